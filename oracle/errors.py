"""What can go wrong in the oracle, one type per thing to do about it. Every exception the
oracle defines is here.

    OracleError                 base
    ├── ConfigError             the settings are invalid: fix the file or the environment
    │   └── OperatorKeyError    the operator's key cannot be loaded (alias, keystore, passphrase)
    ├── TransientError          try again later (RPC or Redis down, store unreachable): never refund
    ├── RequestFailure          this request cannot be served: report `fail(reason)` (the buyer is refunded)
    ├── RpcError                the node answered a JSON-RPC call with an error (its code, message, data)
    ├── GasTooHigh              a transaction's gas estimate exceeds its cap: send less in it
    ├── WouldRevert             the node says a transaction would revert: do not send it
    └── LeaseLost               another keeper took the lease mid-round: stop sending (caught by the keeper)

``python -m oracle`` ends a command on any of them with the message, not a traceback.
"""

from __future__ import annotations

from typing import Any

from voicemarket.protocol import FailReason  # ISynthesisRouter.FailReason, re-exported for the oracle

__all__ = [
    "FailReason",
    "OracleError",
    "ConfigError",
    "OperatorKeyError",
    "TransientError",
    "RequestFailure",
    "RpcError",
    "GasTooHigh",
    "WouldRevert",
    "LeaseLost",
]


class OracleError(Exception):
    """Base of every error the oracle raises on purpose."""


class ConfigError(OracleError):
    """The oracle's settings are invalid; the message names each field and what to do."""


class OperatorKeyError(ConfigError):
    """The operator's account key cannot be loaded; the message says which alias, file or passphrase."""


class TransientError(OracleError):
    """A fault that may pass (RPC down, Redis down, a store that does not answer): retry, never refund."""


class RequestFailure(OracleError):
    """A request that cannot be served, with the on-chain reason to report."""

    def __init__(self, reason: FailReason, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason
        self.detail = detail


class RpcError(OracleError):
    """The node answered a JSON-RPC call with an error (:mod:`oracle.rpc`)."""

    def __init__(self, method: str, error: dict[str, Any]) -> None:
        self.method = method
        self.code = error.get("code")
        self.message = str(error.get("message", error))
        self.data = error.get("data")
        super().__init__(f"{method}: {self.message}")


class GasTooHigh(OracleError):
    """The transaction's gas estimate exceeds ``gas_limit_cap``: send less in it."""


class WouldRevert(OracleError):
    """The node says the transaction would revert; the message is the node's reason."""


class LeaseLost(OracleError):
    """Another keeper took the lease during this keeper's round: it stops sending."""

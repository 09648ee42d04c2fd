"""What can go wrong in the oracle, one type per thing to do about it.

    OracleError                 base
    ├── ConfigError             the settings are invalid: fix the file or the environment
    │   └── OperatorKeyError    the operator's key cannot be loaded (alias, keystore, passphrase)
    ├── TransientError          try again later (RPC or Redis down, store unreachable): never refund
    └── RequestFailure          this request cannot be served: report `fail(reason)` (the buyer is refunded)
"""

from __future__ import annotations

from voicemarket.market.chain import FailReason  # ISynthesisRouter.FailReason, re-exported for the oracle

__all__ = ["FailReason", "OracleError", "ConfigError", "OperatorKeyError", "TransientError", "RequestFailure"]


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

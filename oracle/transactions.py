"""Sending the operator's transactions: nonces shared through Redis, capped gas, stuck-transaction
replacement, and reconciliation after crashes, reorgs and foreign transactions.

Every transaction of the operator account that the oracle sends goes through here, on whichever
process or machine: the nonce is reserved in Redis atomically *together with* the record of the
signed transaction (:meth:`Ledger.begin_submission`), so two processes never sign different
transactions for one nonce, no nonce is ever reserved without a record, and a crash between
the record and the broadcast is repaired by broadcasting the same bytes again.

The next nonce is ``max(Redis counter, the node's pending count)``: another program that uses
the same account ("a nonce taken by another process") only moves the node's count forward. A
submission whose nonce was consumed by a transaction that is not one of ours cannot ever be
mined, so its requests go back to the ready set and are sent again with a fresh nonce.

The counter can also end up *above* the chain's nonce with nothing of ours to fill the gap: a reorg
deeper than ``confirmations`` took mined transactions of ours away (their records were closed), or
Redis came back from an older state. Every later transaction would wait behind the gap for ever;
so when the node's pending count is below the counter and a nonce in between belongs to no open
submission, the counter is brought back to that nonce (``nonce_resyncs``). This is checked before
every submission (and every ``NONCE_CHECK_S``), so that nothing new is sent above a gap; open
submissions already above it are sent again from the new nonce (their requests are checked
on-chain first; should the old transaction still be mined later, the router skips what is
already fulfilled: gas, never a second payment).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from web3 import Web3

from oracle.errors import GasTooHigh, RpcError, WouldRevert
from oracle.keys import OperatorKey
from oracle.ledger import Ledger, Submission
from oracle.rpc import JsonRpc, to_int
from oracle.settings import OracleSettings

log = logging.getLogger("oracle.transactions")

GWEI = 10**9
FOREIGN_GRACE_S = 1.0  # a consumed nonce without our receipt is trusted as foreign after this long
REBROADCAST_AFTER_S = 3.0  # the head-of-line transaction is checked for presence in the node this often
NONCE_CHECK_S = 2.0  # how often the counter is compared with the chain's nonce (a gap nothing will fill)


@dataclass(frozen=True)
class Fees:
    max_fee: int
    tip: int


class TxSender:
    """Signs and sends one operator account's transactions; :meth:`reconcile` follows them to the end."""

    def __init__(
        self,
        rpc: JsonRpc,
        key: OperatorKey,
        ledger: Ledger,
        settings: OracleSettings,
        chain_id: int,
        on_final: Callable[[Submission, Any | None], dict[int, str]] | None = None,
    ) -> None:
        self.rpc = rpc
        self.key = key
        self.ledger = ledger
        self.settings = settings
        self.chain_id = chain_id
        self.on_final = on_final  # receipt -> per-request results (None: the nonce went to a foreign tx)
        self._foreign_since: dict[str, float] = {}
        self._checked_presence: dict[str, float] = {}
        self._nonce_checked = 0.0

    # ------------------------------------------------------------ building
    def fees(self, floor: Fees | None = None, base_fee: int | None = None) -> Fees:
        """EIP-1559 fees for now (2 x base fee + tip), capped at ``max_fee_cap_gwei``; at least
        ``fee_bump`` x ``floor`` when replacing (still capped)."""
        cap = int(self.settings.max_fee_cap_gwei * GWEI)
        if base_fee is None:
            base_fee = to_int(self.rpc.call("eth_getBlockByNumber", "latest", False).get("baseFeePerGas"))
        base = base_fee
        tip = int(self.settings.priority_fee_gwei * GWEI)
        max_fee = 2 * base + tip
        if floor is not None:
            tip = max(tip, int(floor.tip * self.settings.fee_bump) + 1)
            max_fee = max(max_fee, int(floor.max_fee * self.settings.fee_bump) + 1)
        max_fee = min(max_fee, cap)
        return Fees(max_fee=max_fee, tip=min(tip, max_fee))

    def estimate_gas(self, to: str, data: str) -> int:
        """Gas limit for a call (estimate x margin); raises :class:`WouldRevert` or :class:`GasTooHigh`."""
        try:
            estimate = to_int(self.rpc.call("eth_estimateGas", {"from": self.key.address, "to": to, "data": data}))
        except RpcError as exc:
            if "revert" in exc.message.lower() or exc.code == 3:
                raise WouldRevert(f"{exc.message} {exc.data or ''}".strip()) from None
            raise
        if estimate > self.settings.gas_limit_cap:
            raise GasTooHigh(f"estimated {estimate} gas, above gas_limit_cap {self.settings.gas_limit_cap}")
        return min(int(estimate * self.settings.gas_margin), self.settings.gas_limit_cap)

    def _sign(self, to: str, data: str, gas: int, nonce: int, fees: Fees) -> dict[str, Any]:
        tx = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": to,
            "data": data,
            "value": 0,
            "gas": gas,
            "maxFeePerGas": fees.max_fee,
            "maxPriorityFeePerGas": fees.tip,
        }
        signed = Account.sign_transaction(tx, self.key.private_key)
        return {
            "hash": Web3.to_hex(signed.hash),
            "raw": Web3.to_hex(signed.raw_transaction),
            "to": to,
            "data": data,
            "gas": gas,
            "max_fee": str(fees.max_fee),
            "tip": str(fees.tip),
        }

    # ------------------------------------------------------------ sending
    def submit(self, kind: str, request_ids: list[int], to: str, data: str, gas: int) -> str | None:
        """Reserve a nonce, record the signed transaction, then broadcast it. Returns the submission
        id, or None if one of the requests is no longer ready (nothing was reserved or sent)."""
        pending_hex, block = self.rpc.batch(
            [("eth_getTransactionCount", [self.key.address, "pending"]), ("eth_getBlockByNumber", ["latest", False])]
        )
        fees = self.fees(base_fee=to_int(block.get("baseFeePerGas")))
        pending = to_int(pending_hex)
        if self.ledger.next_nonce() > pending:  # usually our own transactions on their way; else a gap
            self.resync_nonce()
        while True:
            nonce = max(self.ledger.next_nonce(), pending)
            tx = self._sign(to, data, gas, nonce, fees)
            verdict, value = self.ledger.begin_submission(nonce, pending, kind, request_ids, tx)
            if verdict == "ok":
                self._broadcast(tx["raw"], value)
                return value
            if verdict == "state":
                return None
            # Another process took that nonce between our read and the reservation: sign again.
            pending = to_int(self.rpc.call("eth_getTransactionCount", self.key.address, "pending"))

    def _broadcast(self, raw: str, sub_id: str) -> None:
        try:
            self.rpc.call("eth_sendRawTransaction", raw)
        except RpcError as exc:
            message = exc.message.lower()
            if "already known" in message or "already imported" in message:
                return
            # "nonce too low" and the like: reconcile() sees the consumed nonce and decides.
            log.warning("broadcast refused", extra={"submission": sub_id, "error": message})
        except (OSError, ConnectionError) as exc:
            # Requests' connection errors derive from OSError; the record stays and is broadcast again.
            log.warning("broadcast failed; will retry", extra={"submission": sub_id, "error": str(exc)})

    # ------------------------------------------------------------ following
    def reconcile(self) -> list[Submission]:
        """Move every recorded submission forward: receipts, confirmations, reorgs, foreign nonces,
        stuck transactions and transactions the node forgot. Returns those still open."""
        if time.monotonic() - self._nonce_checked >= NONCE_CHECK_S:
            self._nonce_checked = time.monotonic()
            self.resync_nonce()
        subs = self.ledger.submissions()
        if not subs:
            return []
        count_hex, head_hex = self.rpc.batch(
            [("eth_getTransactionCount", [self.key.address, "latest"]), ("eth_blockNumber", [])]
        )
        mined_count, head = to_int(count_hex), to_int(head_hex)
        now = time.time()
        self._checked_presence = {k: v for k, v in self._checked_presence.items() if k in {s.id for s in subs}}
        for sub in subs:
            if sub.state == "mined":
                self._confirm(sub, head)
            elif sub.nonce < mined_count:
                self._find_receipt(sub, now, head)
            else:
                self._keep_alive(sub, now, head_of_line=sub.nonce == mined_count)
        return self.ledger.submissions()

    def resync_nonce(self) -> int | None:
        """Bring the Redis counter back to the chain's when a gap below it belongs to no open submission
        (see the module docstring); the nonce it was set to, or None if there was no gap."""
        counter = self.ledger.next_nonce()  # read before the submissions: a newer one has a nonce >= counter
        subs = self.ledger.submissions()
        latest_hex, pending_hex = self.rpc.batch(
            [
                ("eth_getTransactionCount", [self.key.address, "latest"]),
                ("eth_getTransactionCount", [self.key.address, "pending"]),
            ]
        )
        pending = max(to_int(latest_hex), to_int(pending_hex))
        if counter <= pending:
            return None
        covered = {sub.nonce for sub in subs}
        gap = next((n for n in range(pending, counter) if n not in covered), None)
        if gap is None:
            return None
        if not self.ledger.reset_nonce(counter, gap):
            return None  # another process moved the counter meanwhile: look again next time
        stranded = [sub for sub in subs if sub.nonce > gap and sub.state == "sent"]
        log.warning(
            "the nonce counter was above the chain's with nothing to fill the gap (a deep reorg, or Redis "
            "restored from an older state); counting again from the chain's nonce",
            extra={
                "counter": counter,
                "nonce": gap,
                "chain_pending": pending,
                "resent_submissions": [sub.id for sub in stranded],
            },
        )
        self.ledger.count("nonce_resyncs")
        for sub in stranded:  # they wait behind the gap: their requests are sent again from the new nonce
            self.ledger.requeue_submission(sub)
        return gap

    def _receipt(self, tx_hash: str) -> dict[str, Any] | None:
        """The raw JSON-RPC receipt (hex quantities), or None while there is none."""
        return self.rpc.call("eth_getTransactionReceipt", tx_hash)

    def _find_receipt(self, sub: Submission, now: float, head: int) -> None:
        receipts = self.rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for tx in sub.txs])
        for tx, receipt in zip(sub.txs, receipts, strict=True):
            if receipt is not None:
                self._foreign_since.pop(sub.id, None)
                sub.state, sub.mined = (
                    "mined",
                    {"tx": tx["hash"], "block": to_int(receipt["blockNumber"]), "block_hash": receipt["blockHash"]},
                )
                self.ledger.mark_mined(sub.id, sub.mined)
                self._confirm(sub, head, receipt)
                return
        first = self._foreign_since.setdefault(sub.id, now)
        if now - first < FOREIGN_GRACE_S:
            return
        # The nonce went to a transaction that is not ours: ours can never be mined.
        self._foreign_since.pop(sub.id, None)
        log.warning(
            "nonce taken by another transaction; sending its requests again",
            extra={"submission": sub.id, "nonce": sub.nonce, "requests": sub.request_ids},
        )
        self.ledger.count("foreign_nonces")
        if self.on_final is not None:
            self.on_final(sub, None)
        self.ledger.requeue_submission(sub)

    def _confirm(self, sub: Submission, head: int, receipt: dict[str, Any] | None = None) -> None:
        mined = sub.mined
        if head < mined["block"] + self.settings.confirmations:
            return
        if receipt is None or self.settings.confirmations > 0:
            receipt = self._receipt(mined["tx"])  # again: is it still in the canonical chain?
        if receipt is None or receipt["blockHash"] != mined["block_hash"]:
            log.warning(
                "a reorg removed our transaction; following it again",
                extra={"submission": sub.id, "tx": mined["tx"], "block": mined["block"]},
            )
            self.ledger.mark_unmined(sub.id)
            return
        if to_int(receipt["status"]) != 1:
            log.error(
                "transaction reverted; its requests are checked and sent again",
                extra={"submission": sub.id, "tx": mined["tx"], "requests": sub.request_ids},
            )
            self.ledger.count("reverted_transactions")
            if self.on_final is not None:
                self.on_final(sub, receipt)
            self.ledger.requeue_submission(sub)
            return
        results = self.on_final(sub, receipt) if self.on_final is not None else dict.fromkeys(sub.request_ids, "mined")
        self.ledger.count("gas_used", to_int(receipt["gasUsed"]))
        self.ledger.close_submission(sub, results)

    def _keep_alive(self, sub: Submission, now: float, head_of_line: bool) -> None:
        last = sub.txs[-1]
        if now - sub.sent_at >= self.settings.stuck_after_s:
            self._replace(sub)
            return
        if head_of_line and now - self._checked_presence.get(sub.id, 0.0) >= REBROADCAST_AFTER_S:
            self._checked_presence[sub.id] = now
            if self.rpc.call("eth_getTransactionByHash", last["hash"]) is None:
                log.info(
                    "node does not know our transaction; broadcasting it again",
                    extra={"submission": sub.id, "nonce": sub.nonce, "tx": last["hash"]},
                )
                self._broadcast(last["raw"], sub.id)

    def _replace(self, sub: Submission) -> None:
        last = sub.txs[-1]
        floor = Fees(max_fee=int(last["max_fee"]), tip=int(last["tip"]))
        fees = self.fees(floor)
        if fees.max_fee <= floor.max_fee:
            # At the fee cap: nothing higher to offer; make sure the node still has it.
            self._broadcast(last["raw"], sub.id)
            self.ledger.touch_submission(sub.id)
            log.warning(
                "transaction stuck at the fee cap",
                extra={"submission": sub.id, "nonce": sub.nonce, "max_fee": fees.max_fee},
            )
            return
        tx = self._sign(last["to"], last["data"], int(last["gas"]), sub.nonce, fees)
        if not self.ledger.add_tx(sub.id, tx):
            return  # finished meanwhile
        log.info(
            "replacing a stuck transaction",
            extra={
                "submission": sub.id,
                "nonce": sub.nonce,
                "old": last["hash"],
                "new": tx["hash"],
                "max_fee": fees.max_fee,
            },
        )
        self.ledger.count("replacements")
        self._broadcast(tx["raw"], sub.id)

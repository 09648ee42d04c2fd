"""Hands the accepted vouchers in: every ``redeem_interval_s``, one ``redeem`` transaction with the
latest fully served voucher of each lane that is ahead of what the chain redeemed (at most
``redeem_batch`` a transaction), from the operator's key.

The transaction comes from the operator's account, which the oracle's submitter also uses: the
nonce is taken from the node's pending count and a refused nonce is retried at the next round.

``redeem`` skips (with a reason) what it can refuse voucher by voucher, but reverts the whole batch
for a voucher whose licence now charges more than the voucher pays or in another asset. So that one
such voucher (a hostile buyer's, or a term changed since it was accepted) cannot hold every other
lane's money back, a batch whose gas estimate reverts is split in halves until the voucher that
reverts is alone; that one is set aside (``refused``, logged with the node's reason) and not tried
again by this process, and the rest are redeemed.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from eth_account import Account
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from oracle.abi import ErrorNames
from oracle.api.chainview import ChainView
from oracle.api.lanes import LaneBook
from voicemarket.market.channels import Voucher

log = logging.getLogger("oracle.api.redeemer")


class Redeemer:
    def __init__(self, chain: ChainView, lanes: LaneBook, private_key: bytes, batch: int) -> None:
        self.chain, self.lanes, self.batch = chain, lanes, batch
        self._account = Account.from_key(private_key)
        self._lock = threading.Lock()
        self._errors = ErrorNames([chain.channels.abi])
        self.refused: dict[tuple[bytes, int, int, int], str] = {}  # (channel, licence, amount, uses) -> reason

    def due(self) -> list[Voucher]:
        out = []
        for channel, license_id, lane in self.lanes.all_lanes():
            ready = lane.redeemable()
            if ready is None:
                continue
            amount, uses, signature = ready
            done_amount, done_uses = self.chain.redeemed(channel, license_id)
            if (amount, uses) == (done_amount, done_uses) or amount < done_amount or uses < done_uses:
                continue
            if (channel, license_id, amount, uses) in self.refused:
                continue
            out.append(
                Voucher(
                    lane.buyer,
                    self.chain.operator,
                    lane.asset,
                    license_id,
                    lane.model_id,
                    amount,
                    uses,
                    bytes.fromhex(signature.removeprefix("0x")),
                )
            )
        return out

    def redeem_once(self) -> list[dict[str, Any]]:
        """Redeem what is due; returns one summary per transaction sent."""
        with self._lock:
            due = self.due()
            sent = []
            for start in range(0, len(due), self.batch):
                sent.extend(self._send_or_split(due[start : start + self.batch]))
            return sent

    def _send_or_split(self, vouchers: list[Voucher]) -> list[dict[str, Any]]:
        w3 = self.chain.w3
        call = self.chain.channels.functions.redeem([v.as_call() for v in vouchers])
        try:
            tx = call.build_transaction(  # estimates the gas: a batch that would revert raises here
                {
                    "from": self._account.address,
                    "nonce": w3.eth.get_transaction_count(self._account.address, "pending"),
                    "chainId": self.chain.chain_id,
                }
            )
        except ContractLogicError as exc:
            if len(vouchers) > 1:
                half = len(vouchers) // 2
                return self._send_or_split(vouchers[:half]) + self._send_or_split(vouchers[half:])
            v = vouchers[0]
            reason = (self._errors.describe(str(exc.data)) if exc.data else None) or str(exc)
            self.refused[(v.channel, v.license_id, v.amount, v.uses)] = reason
            log.warning(
                "voucher set aside: redeeming it reverts",
                extra={"buyer": v.buyer, "license_id": v.license_id, "amount": v.amount, "uses": v.uses}
                | {"reason": reason},
            )
            return []
        return [self._send(tx, len(vouchers))]

    def _send(self, tx: dict[str, Any], count: int) -> dict[str, Any]:
        w3 = self.chain.w3
        signed = self._account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        redeemed = self.chain.channels.events.VoucherRedeemed().process_receipt(receipt, errors=DISCARD)
        skipped = self.chain.channels.events.VoucherSkipped().process_receipt(receipt, errors=DISCARD)
        summary = {
            "tx": tx_hash.hex(),
            "status": int(receipt["status"]),
            "vouchers": count,
            "redeemed": len(redeemed),
            "skipped": [(e["args"]["licenseId"], int(e["args"]["reason"])) for e in skipped],
            "gas_used": int(receipt["gasUsed"]),
        }
        log.info("vouchers redeemed", extra=summary)
        self.chain.forget()
        return summary

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.wait(interval):
            try:
                self.redeem_once()
            except Exception as exc:  # noqa: BLE001 - a node or nonce hiccup: the next round retries
                log.warning("redemption failed; retrying next round", extra={"error": f"{type(exc).__name__}: {exc}"})

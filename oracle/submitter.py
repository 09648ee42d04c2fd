"""The batch submitter: drains ready outcomes into ``fulfilBatch`` and ``fail`` transactions.

Before anything is sent, every request is checked on-chain in one JSON-RPC batch (still
pending, same commitment, deadline not passed): the operator never pays gas for a request that
is already settled. Fulfilments go out together, up to ``max_batch`` per transaction (split in
halves if the gas estimate exceeds ``gas_limit_cap``); failures go one per transaction (the router
has no batch form of ``fail``). Sending, nonces, replacement and reconciliation are
:class:`~oracle.transactions.TxSender`'s.

Batches fill under a burst: a batch goes out when ``max_batch`` outcomes are ready, or when the
oldest has waited ``batch_linger_s`` and no other request is being worked on — while workers still
have requests queued or in hand, the submitter waits for them up to ``batch_max_wait_s`` (never
closer than ``DEADLINE_MARGIN_S`` to a request's deadline).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from oracle.errors import FailReason, GasTooHigh, WouldRevert
from oracle.ledger import Ledger, Submission
from oracle.router import RequestStatus, RouterClient, SynthesisRequest, status_name
from oracle.rpc import to_int
from oracle.settings import OracleSettings
from oracle.transactions import TxSender

log = logging.getLogger("oracle.submitter")

MAX_REVERTS = 3  # a request whose transaction reverted this often is dropped (and logged)
DEADLINE_MARGIN_S = 60  # a batch never waits for more work once a request in it is this close to its deadline


class Submitter:
    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        router: RouterClient,
        sender: TxSender,
        requeue: Callable[[int, int], None],
    ) -> None:
        self.settings = settings
        self.ledger = ledger
        self.router = router
        self.sender = sender
        self.sender.on_final = self.on_final
        self.requeue = requeue  # publish a task again (a reorg changed the request under its outcome)
        self._reverts: dict[int, int] = {}

    # ------------------------------------------------------------ one round
    def step(self) -> float:
        """Follow what was sent, then send what is ready (within ``max_pending_txs``).

        A batch goes out when ``max_batch`` outcomes are ready or the oldest has waited
        ``batch_linger_s``. Returns how long to wait before the next step."""
        subs = self.sender.reconcile()
        unmined = sum(1 for sub in subs if sub.state == "sent")
        follow = 0.02 if unmined else (0.25 if subs else None)  # receipts, confirmations
        capacity = self.settings.max_pending_txs - unmined
        if capacity <= 0:
            return follow or 0.02
        ready = self.ledger.ready(self.settings.max_batch * capacity)
        if not ready:
            return follow if follow is not None else 0.5
        waited = self.ledger.oldest_ready_age()
        if len(ready) < self.settings.max_batch:
            if waited < self.settings.batch_linger_s:
                return min(follow or 1.0, self.settings.batch_linger_s - waited)
            if waited < self.settings.batch_max_wait_s and self._more_coming(ready, subs):
                return min(follow or 0.05, 0.05, self.settings.batch_max_wait_s - waited)
        fulfils, fails = self._check(ready)
        sent = 0
        for start in range(0, len(fulfils), self.settings.max_batch):
            if sent >= capacity:
                break
            sent += self._send_fulfils(fulfils[start : start + self.settings.max_batch])
        for request, outcome in fails:
            if sent >= capacity:
                break
            sent += self._send_fail(request, int(outcome["reason"]))
        return 0.02 if sent or unmined else (follow or 0.05)

    def _more_coming(self, ready: list[tuple[int, dict[str, Any]]], subs: list[Submission]) -> bool:
        """Whether workers hold or will soon hold other requests (queued or being served), and no
        ready request is near its deadline: then a batch waits for them to fill it."""
        in_submission = sum(len(sub.request_ids) for sub in subs)
        if self.ledger.open_count() - len(ready) - in_submission <= 0:
            return False
        nearest = min(SynthesisRequest.from_json(outcome["request"]).deadline for _, outcome in ready)
        return nearest - time.time() > DEADLINE_MARGIN_S

    def _check(self, ready: list[tuple[int, dict[str, Any]]]) -> tuple[list, list]:
        """Keep only requests that can still be served; finish or requeue the others."""
        states = self.router.request_states([request_id for request_id, _ in ready])
        now = self.router.latest_timestamp()
        fulfils, fails = [], []
        for request_id, outcome in ready:
            request = SynthesisRequest.from_json(outcome["request"])
            status, commitment = states[request_id]
            if status == RequestStatus.NONE:
                log.warning("request vanished before submission (reorg)", extra={"request_id": request_id})
                self.ledger.forget(request_id)
            elif status != RequestStatus.PENDING:
                self.ledger.finish(request_id, f"onchain:{status_name(status)}")
            elif commitment != self.router.commitment(request):
                log.warning(
                    "request changed on-chain under its outcome (reorg); serving it again",
                    extra={"request_id": request_id},
                )
                self.ledger.back_to_queue(request_id)
                self.requeue(request_id, 0)
            elif now + 1 > request.deadline:
                log.warning(
                    "request expired before submission; the buyer can cancelExpired", extra={"request_id": request_id}
                )
                self.ledger.finish(request_id, "expired")
            elif outcome["kind"] == "fulfil":
                fulfils.append((request, outcome))
            else:
                fails.append((request, outcome))
        return fulfils, fails

    def _send_fulfils(self, items: list[tuple[SynthesisRequest, dict[str, Any]]]) -> int:
        data = self.router.fulfil_batch_data(
            [(r, bytes.fromhex(o["digest"][2:]), bytes.fromhex(o["cid"][2:])) for r, o in items]
        )
        try:
            gas = self.sender.estimate_gas(self.router.address, data)
        except GasTooHigh:
            if len(items) == 1:
                log.error("one fulfilment needs more gas than gas_limit_cap", extra={"request_id": items[0][0].id})
                return 0
            half = len(items) // 2
            return self._send_fulfils(items[:half]) + self._send_fulfils(items[half:])
        except WouldRevert as exc:
            if len(items) > 1:
                half = len(items) // 2
                return self._send_fulfils(items[:half]) + self._send_fulfils(items[half:])
            request, _outcome = items[0]
            # The router refuses delivery (model frozen, a retired model's service ended, operator no
            # longer staked): report a failure, which refunds the buyer, instead of retrying the delivery.
            log.error(
                "the router refuses this fulfilment; reporting a failure instead",
                extra={"request_id": request.id, "error": str(exc)},
            )
            return self._send_fail(request, int(FailReason.MODEL_UNAVAILABLE))
        ids = [r.id for r, _ in items]
        sub = self.sender.submit("fulfil", ids, self.router.address, data, gas)
        if sub is not None:
            log.info("fulfilments sent", extra={"submission": sub, "requests": len(ids), "gas": gas})
        return 1 if sub is not None else 0

    def _send_fail(self, request: SynthesisRequest, reason: int) -> int:
        data = self.router.fail_data(request, reason)
        try:
            gas = self.sender.estimate_gas(self.router.address, data)
        except WouldRevert as exc:
            log.error(
                "the router refuses this failure report; dropped (the buyer can cancelExpired)",
                extra={"request_id": request.id, "error": str(exc)},
            )
            self.ledger.finish(request.id, "rejected")
            return 0
        sub = self.sender.submit("fail", [request.id], self.router.address, data, gas)
        if sub is not None:
            log.info(
                "failure sent", extra={"submission": sub, "request_id": request.id, "reason": FailReason(reason).name}
            )
        return 1 if sub is not None else 0

    # ------------------------------------------------------------ outcomes
    def on_final(self, sub: Submission, receipt: Any | None) -> dict[int, str]:
        """Per-request results of a final submission (called by the sender; None: foreign nonce)."""
        if receipt is None:
            return {}
        if to_int(receipt["status"]) != 1:
            for request_id in sub.request_ids:
                self._reverts[request_id] = self._reverts.get(request_id, 0) + 1
                if self._reverts[request_id] >= MAX_REVERTS:
                    log.error("dropping a request whose transactions keep reverting", extra={"request_id": request_id})
                    self.ledger.finish(request_id, "rejected")
            return {}
        results = self.router.outcomes(receipt)
        reasons = self._fail_reasons(sub) if sub.kind == "fail" else {}
        missing = [r for r in sub.request_ids if r not in results]
        for request_id, (status, _) in self.router.request_states(missing).items():
            results[request_id] = f"onchain:{status_name(status)}"
        for request_id, result in results.items():
            if result == "failed" and request_id in reasons:
                results[request_id] = f"failed:{reasons[request_id]}"
            if result.startswith("skipped"):
                log.warning("fulfilment skipped by the router", extra={"request_id": request_id, "result": result})
        return {r: results[r] for r in sub.request_ids}

    def _fail_reasons(self, sub: Submission) -> dict[int, str]:
        out = {}
        for request_id in sub.request_ids:
            raw = self.ledger.request(request_id).get("outcome")
            if raw:
                out[request_id] = json.loads(raw).get("reason_name", "unknown")
        return out

    # ------------------------------------------------------------ loop
    def run(self, stop: threading.Event, hold: Callable[[], bool]) -> None:
        """Submit until ``stop``; act only while ``hold()`` (the submitter lease) is true."""
        while not stop.is_set():
            try:
                if not hold():
                    stop.wait(1.0)
                    continue
                pause = self.step()
                if pause >= 0.5:
                    self.ledger.wait_for_ready(pause)  # idle: a worker's outcome wakes us at once
                else:
                    stop.wait(pause)
            except Exception as exc:  # noqa: BLE001 - RPC or Redis down: wait and try again, never exit
                log.warning("submitter step failed; retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
                stop.wait(1.0)

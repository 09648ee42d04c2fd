"""Following ``SynthesisRequested``: confirmed blocks only, a checkpoint in Redis, overlap on restart.

The listener reads the router's logs up to ``head - confirmations`` (a reorg shallower than that
never produces work for a request that vanished), queues a task for each request that names
this operator (the task id is the request id: duplicates from the overlap or from redelivery are
harmless, see :mod:`oracle.serve`), and saves the last block read, with its hash, in Redis. After
a restart it resumes ``overlap_blocks`` behind the checkpoint; if the checkpoint's block was
replaced by a deeper reorg than ``confirmations``, it goes further back and says so.

After a reorg deeper than ``confirmations`` (a block it had read was replaced), or after Redis lost
its data (:mod:`oracle.recovery`), it reads the chain again from before it and *re-checks* what it
believed: a request id whose commitment is not the one it served was re-used by a new request and
is served afresh; a request it had finished that the chain says is pending again (its fulfilment
was in the blocks that vanished) is served again; a pending request Redis forgot is queued again.
The chain's status is the truth: nothing settled is queued, and the router never pays twice.

It also sweeps: a queued request that no worker has touched for ``requeue_after_s`` and whose task is
no longer in the Celery queue (its message lost with a Redis that restarted, or held by a worker
that died) is queued again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from web3 import Web3

from oracle.ledger import Ledger
from oracle.recovery import RedisGuard
from oracle.router import RequestedEvent, RequestStatus, RouterClient
from oracle.rpc import to_int
from oracle.settings import OracleSettings

log = logging.getLogger("oracle.listener")

DEEP_REORG_REWIND = 128  # blocks re-read when the checkpoint itself was reorged away

Enqueue = Callable[[int, int], None]  # (request id, block number) -> publish a task


class Listener:
    def __init__(
        self,
        settings: OracleSettings,
        ledger: Ledger,
        router: RouterClient,
        operator: str,
        enqueue: Enqueue,
        guard: RedisGuard | None = None,
        queued_tasks: Callable[[], set[int]] | None = None,
    ) -> None:
        self.settings = settings
        self.guard = guard  # notices a Redis that lost its data (None: not checked)
        self.queued_tasks = queued_tasks  # request ids whose task still waits in the Celery queue
        self.recheck_until = -1  # requests in blocks up to this one are checked against the chain
        self.ledger = ledger
        self.router = router
        self.operator = Web3.to_checksum_address(operator)
        self.enqueue = enqueue
        self.next_block: int | None = None
        self.last: tuple[int, str] | None = None  # the last block read and its hash
        self.head = 0
        self._last_sweep = 0.0

    def _block_hash(self, number: int) -> str | None:
        block = self.router.rpc.call("eth_getBlockByNumber", hex(number), False)
        return block["hash"] if block is not None else None

    def resume_block(self) -> int:
        """Where to start reading: behind the checkpoint by the overlap (or further after a deep reorg)."""
        checkpoint = self.ledger.checkpoint()
        if checkpoint is None:
            log.info("no checkpoint; starting", extra={"block": self.settings.start_block})
            return self.settings.start_block
        block, block_hash = checkpoint
        start = max(self.settings.start_block, block - self.settings.overlap_blocks + 1)
        try:
            current = self._block_hash(block)
        except Exception:  # noqa: BLE001 - the node may no longer have it (a chain restarted)
            current = None
        if current != block_hash:
            start = max(self.settings.start_block, block - max(self.settings.overlap_blocks, DEEP_REORG_REWIND))
            log.warning(
                "the checkpoint's block was reorged away (deeper than `confirmations`); re-reading",
                extra={"checkpoint": block, "from_block": start},
            )
            self._deep_reorg(start, block)
        log.info("resuming from checkpoint", extra={"checkpoint": block, "from_block": start})
        return start

    def _deep_reorg(self, from_block: int, last_read: int) -> None:
        self.recheck_until = max(self.recheck_until, last_read)
        self.ledger.count("deep_reorgs")
        if from_block > 0:  # the checkpoint goes back with the listener (a restart resumes from there)
            block_hash = self._block_hash(from_block - 1)
            if block_hash is not None:
                self.ledger.save_checkpoint(from_block - 1, block_hash)
        if self.guard is not None:
            self.guard.rewound(from_block)

    def step(self) -> int:
        """Read the newly confirmed blocks once; returns how many new requests were queued."""
        if self.guard is not None:
            loss = self.guard.check()
            if loss is not None:
                start = max(self.settings.start_block, loss.from_block)
                self.next_block = start if self.next_block is None else min(self.next_block, start)
                self.last = None
                self.recheck_until = max(self.recheck_until, loss.until_block)
        if self.next_block is None:
            self.next_block = self.resume_block()
        calls = [("eth_blockNumber", [])]
        if self.last is not None:
            calls.append(("eth_getBlockByNumber", [hex(self.last[0]), False]))
        answers = self.router.rpc.batch(calls)
        self.head = to_int(answers[0])
        if self.last is not None and (answers[1] or {}).get("hash") != self.last[1]:
            # From before the replaced block, or before the head if the chain is now shorter than what was read.
            below = min(self.last[0], self.head)
            rewind = max(self.settings.start_block, below - max(self.settings.overlap_blocks, DEEP_REORG_REWIND))
            log.warning(
                "a block already read was reorged away (deeper than `confirmations`); re-reading",
                extra={"block": self.last[0], "from_block": rewind},
            )
            self._deep_reorg(rewind, self.last[0])
            self.next_block, self.last = rewind, None
        safe = self.head - self.settings.confirmations
        queued = 0
        while self.next_block <= safe:
            to_block = min(safe, self.next_block + self.settings.max_block_range - 1)
            logs, block = self.router.rpc.batch(
                [
                    self.router.logs_call(self.next_block, to_block, None),
                    ("eth_getBlockByNumber", [hex(to_block), False]),
                ]
            )
            events = [e for e in map(self.router.decode_requested, logs) if e.request.operator == self.operator]
            queued += self._queue(events)
            block_hash = block["hash"]
            self.ledger.save_checkpoint(to_block, block_hash)
            self.last = (to_block, block_hash)
            self.next_block = to_block + 1
        if queued:
            self.ledger.count("queued", queued)
        return queued

    def _queue(self, events: list[RequestedEvent]) -> int:
        """Queue the requests among ``events`` that need serving; how many were queued."""
        if not events:
            return 0
        known = self.ledger.states([e.request.id for e in events])
        recheck = [e.request.id for e in events if e.block_number <= self.recheck_until]
        onchain = self.router.request_states(recheck)
        queued = 0
        for event in events:
            request_id = event.request.id
            state, served = known[request_id]
            commitment = self.router.commitment(event.request)
            reused = served is not None and served != commitment
            if request_id in onchain:
                status, current = onchain[request_id]
                if status != RequestStatus.PENDING or current != commitment:
                    continue  # settled (nothing to do), or a later log of this id follows
                again = state == "done" or (state is not None and reused)
            else:
                again = state == "done" and reused
            if again:
                log.warning(
                    "a request id re-used after a deep reorg; serving the new request"
                    if reused
                    else "a request the oracle had finished is pending on-chain after a reorg; serving it again",
                    extra={"request_id": request_id, "block": event.block_number, "was": state},
                )
                self.ledger.forget(request_id)
                self.ledger.count("reorg_requeued")
                state = None
            if state is not None:
                continue
            self.enqueue(request_id, event.block_number)
            if self.ledger.mark_queued(request_id, event.block_number, commitment):
                queued += 1
                log.info(
                    "request queued",
                    extra={
                        "request_id": request_id,
                        "block": event.block_number,
                        "model_id": hex(event.request.modelId),
                    },
                )
        return queued

    def sweep(self) -> int:
        """Queue again the requests nobody works on (see the module docstring)."""
        stale = self.ledger.stale_queued(self.settings.requeue_after_s)
        if stale and self.queued_tasks is not None:
            # Under a burst a task may wait in the queue longer than requeue_after_s: it is not lost.
            waiting = self.queued_tasks()
            for request_id in stale:
                if request_id in waiting:
                    self.ledger.touch(request_id)
            stale = [request_id for request_id in stale if request_id not in waiting]
        for request_id in stale:
            record = self.ledger.request(request_id)
            log.warning(
                "request forgotten by the workers; queued again",
                extra={"request_id": request_id, "state": record.get("state")},
            )
            self.enqueue(request_id, int(record.get("block", 0)))
            self.ledger.touch(request_id)
        if stale:
            self.ledger.count("requeued", len(stale))
        if self.guard is not None:
            self.guard.save()
        return len(stale)

    def run(self, stop: threading.Event, hold: Callable[[], bool]) -> None:
        """Poll until ``stop``; act only while ``hold()`` (the listener lease) is true."""
        while not stop.is_set():
            try:
                if hold():
                    self.step()
                    if time.monotonic() - self._last_sweep >= self.settings.sweep_interval_s:
                        self._last_sweep = time.monotonic()
                        self.sweep()
                else:
                    self.next_block, self.last = None, None  # re-read the checkpoint on taking over
            except Exception as exc:  # noqa: BLE001 - RPC or Redis down: wait and try again, never exit
                log.warning("listener step failed; retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
                stop.wait(min(5.0, self.settings.poll_interval_s * 2))
            stop.wait(self.settings.poll_interval_s)

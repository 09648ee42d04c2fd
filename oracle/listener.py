"""Following ``SynthesisRequested``: confirmed blocks only, a checkpoint in Redis, overlap on restart.

The listener reads the router's logs up to ``head - confirmations`` (a reorg shallower than that
never produces work for a request that vanished), queues a task for each request that names
this operator (the task id is the request id: duplicates from the overlap or from redelivery are
harmless, see :mod:`oracle.serve`), and saves the last block read, with its hash, in Redis. After
a restart it resumes ``overlap_blocks`` behind the checkpoint; if the checkpoint's block was
replaced by a deeper reorg than ``confirmations``, it goes further back and says so.

It also sweeps: a queued request that no worker has touched for ``requeue_after_s`` (its message
lost with a Redis that restarted, or held by a worker that died) is queued again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from web3 import Web3

from oracle.ledger import Ledger
from oracle.router import RouterClient
from oracle.rpc import to_int
from oracle.settings import OracleSettings

log = logging.getLogger("oracle.listener")

DEEP_REORG_REWIND = 128  # blocks re-read when the checkpoint itself was reorged away

Enqueue = Callable[[int, int], None]  # (request id, block number) -> publish a task


class Listener:
    def __init__(
        self, settings: OracleSettings, ledger: Ledger, router: RouterClient, operator: str, enqueue: Enqueue
    ) -> None:
        self.settings = settings
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
        log.info("resuming from checkpoint", extra={"checkpoint": block, "from_block": start})
        return start

    def step(self) -> int:
        """Read the newly confirmed blocks once; returns how many new requests were queued."""
        if self.next_block is None:
            self.next_block = self.resume_block()
        calls = [("eth_blockNumber", [])]
        if self.last is not None:
            calls.append(("eth_getBlockByNumber", [hex(self.last[0]), False]))
        answers = self.router.rpc.batch(calls)
        self.head = to_int(answers[0])
        if self.last is not None and (answers[1] or {}).get("hash") != self.last[1]:
            rewind = max(self.settings.start_block, self.last[0] - max(self.settings.overlap_blocks, DEEP_REORG_REWIND))
            log.warning(
                "a block already read was reorged away (deeper than `confirmations`); re-reading",
                extra={"block": self.last[0], "from_block": rewind},
            )
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
            for raw in logs:
                event = self.router.decode_requested(raw)
                if event.request.operator != self.operator:
                    continue
                request_id = event.request.id
                if self.ledger.known(request_id):
                    continue
                self.enqueue(request_id, event.block_number)
                if self.ledger.mark_queued(request_id, event.block_number):
                    queued += 1
                    log.info(
                        "request queued",
                        extra={
                            "request_id": request_id,
                            "block": event.block_number,
                            "model_id": hex(event.request.modelId),
                        },
                    )
            block_hash = block["hash"]
            self.ledger.save_checkpoint(to_block, block_hash)
            self.last = (to_block, block_hash)
            self.next_block = to_block + 1
        if queued:
            self.ledger.count("queued", queued)
        return queued

    def sweep(self) -> int:
        """Queue again the requests nobody works on (see the module docstring)."""
        stale = self.ledger.stale_queued(self.settings.requeue_after_s)
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

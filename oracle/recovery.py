"""Noticing that Redis lost the oracle's memory, and what to read again from the chain.

Redis holds every request's state, the Celery queue, the checkpoint and the nonce counter. A Redis
that restarts without persistence (or loses its disk, or is replaced by a fresh one, or comes back
from an older backup) forgets work that was queued, in flight or waiting for the submitter, and
nothing in Redis itself can say so. Two things can:

- the **epoch marker**: a random id the oracle writes once into Redis (``<namespace>:epoch``); a
  Redis without it (or with another one) is not the Redis the oracle last worked with;
- the **durable mark**: a small file on the coordinator's disk (``state_dir``), written at every
  sweep, that holds the epoch, the last block the listener read, and the *low-water block*: the
  oldest block holding a request of ours that was not yet finished (below it, everything was done).

When the marker is missing or differs from the file's, or Redis's checkpoint is behind the file's
(an older backup; an append-only file that lost its last second), the listener re-reads the chain
from the low-water block: every request of this operator still pending on-chain is queued again
(the chain's status is the truth: a fulfilled one is left alone, and the router never accepts a
second fulfilment), and the counter ``redis_losses`` and the log say that it happened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracle.ledger import Ledger

log = logging.getLogger("oracle.recovery")


@dataclass
class Mark:
    """What the file remembers."""

    epoch: str
    low_block: int  # requests in blocks below this were all finished
    checkpoint: int  # the last block the listener had read (-1: none yet)
    losses: int = 0  # Redis losses detected so far (Redis's own counter is lost with it)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "saved_at": time.time()}


class DurableMark:
    """The file ``<state_dir>/<namespace hash>.json`` (written atomically: temporary file, fsync, rename)."""

    def __init__(self, state_dir: Path, namespace: str) -> None:
        self.path = Path(state_dir) / f"mark-{hashlib.sha256(namespace.encode()).hexdigest()[:16]}.json"
        self.namespace = namespace

    def load(self) -> Mark | None:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            log.error("the durable mark is unreadable; starting a new one", extra={"path": str(self.path)})
            return None
        return Mark(str(raw["epoch"]), int(raw["low_block"]), int(raw["checkpoint"]), int(raw.get("losses", 0)))

    def save(self, mark: Mark) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with open(temporary, "w") as out:
            json.dump({**mark.to_json(), "namespace": self.namespace}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)


@dataclass(frozen=True)
class Loss:
    """Redis lost data: re-read the chain from ``from_block`` and check everything up to ``until_block``."""

    from_block: int
    until_block: int
    why: str


class RedisGuard:
    """Checks the marker on every listener step and keeps the durable mark up to date."""

    def __init__(self, ledger: Ledger, mark_file: DurableMark, start_block: int) -> None:
        self.ledger = ledger
        self.file = mark_file
        self.start_block = start_block
        self.mark: Mark | None = None

    def check(self) -> Loss | None:
        """None if Redis is the one we know; else what to read again (and Redis gets its marker back)."""
        marker = self.ledger.epoch()
        if self.mark is None:
            self.mark = self.file.load()
        mark = self.mark
        if mark is None:  # first start on this machine: adopt Redis's epoch or give it one
            epoch = marker or self.ledger.init_epoch(secrets.token_hex(8))
            checkpoint = self.ledger.checkpoint()
            self.mark = Mark(epoch, self.low_block(), checkpoint[0] if checkpoint else -1)
            self.file.save(self.mark)
            return None
        checkpoint = self.ledger.checkpoint()
        if marker == mark.epoch:
            if mark.checkpoint < 0 or (checkpoint is not None and checkpoint[0] >= mark.checkpoint):
                return None
            if checkpoint is None:
                why = "Redis holds no checkpoint although the listener had saved one"
            else:
                why = f"Redis's checkpoint (block {checkpoint[0]}) is behind the durable mark's ({mark.checkpoint})"
        elif marker is None:
            why = "Redis holds no epoch marker: it restarted without its data, or is a new Redis"
        else:
            why = f"Redis's epoch {marker} is not the one this machine last saw ({mark.epoch}): another Redis"
        epoch = marker or self.ledger.init_epoch(secrets.token_hex(8))
        loss = Loss(mark.low_block, max(mark.checkpoint, mark.low_block), why)
        mark.losses += 1
        mark.epoch = epoch
        mark.checkpoint = checkpoint[0] if checkpoint else -1  # what Redis holds now: reported once
        self.file.save(mark)
        self.ledger.set_stat("redis_losses", mark.losses)
        log.error(
            "Redis lost the oracle's data; re-reading the chain from the durable mark",
            extra={"why": why, "from_block": loss.from_block, "until_block": loss.until_block, "epoch": epoch},
        )
        return loss

    def low_block(self) -> int:
        """The oldest block with an unfinished request of ours (else the block after the checkpoint)."""
        checkpoint = self.ledger.checkpoint()
        low = checkpoint[0] + 1 if checkpoint else self.start_block
        oldest = self.ledger.oldest_open_block()
        return min(low, oldest) if oldest is not None else low

    def rewound(self, block: int) -> None:
        """The listener went back to ``block`` (a deep reorg): its checkpoint will be lower, not lost."""
        if self.mark is not None and self.mark.checkpoint >= block:
            self.mark.checkpoint = block - 1
            self.mark.low_block = min(self.mark.low_block, block)
            self.file.save(self.mark)

    def save(self) -> None:
        """Write the durable mark now (the listener does at every sweep)."""
        if self.mark is None or self.ledger.epoch() != self.mark.epoch:
            return  # a loss not yet handled: keep the old mark
        checkpoint = self.ledger.checkpoint()
        self.mark.low_block = self.low_block()
        self.mark.checkpoint = checkpoint[0] if checkpoint else -1
        self.file.save(self.mark)

"""Helpers the oracle tests share: the oracle's processes for one test, and waiting with evidence."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oracle.sandbox import Sandbox
from voicemarket.services import ManagedProcess


@dataclass
class Oracle:
    """The oracle's processes for one test, all stopped (by PID) when the test ends."""

    sandbox: Sandbox
    env: dict[str, str]
    logs: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    coordinator: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)

    def start_worker(self, name: str | None = None, **kwargs) -> ManagedProcess:
        name = name or f"worker{len(self.workers) + 1}"
        process = self.sandbox.start_worker(self.env, self.logs / f"{name}.log", name=name, **kwargs)
        self.workers.append(process)
        self.processes.append(process)
        return process

    def start_coordinator(self, name: str = "coordinator") -> ManagedProcess:
        self.coordinator = self.sandbox.start_coordinator(self.env, self.logs / f"{name}.log", name=name)
        self.processes.append(self.coordinator)
        return self.coordinator

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log_tail(40)}" for p in self.processes)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, oracle: Oracle | None = None,
             interval: float = 0.2) -> None:
    """Poll ``predicate`` until true; fail with the oracle's log tails if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    tails = oracle.log_tails() if oracle is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")

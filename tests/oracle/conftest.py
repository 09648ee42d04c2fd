"""Fixtures for the oracle tests: one market per module on the session's anvil, a private
redis-server per test, and the oracle's real processes (Celery workers and the coordinator)
started as children and stopped by PID.

Accounts (Ape's test accounts): 0 deploys, 1 creates voices, 2 and 3 operate, 4..7 buy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from oracle_helpers import OPERATOR_INDEX, Oracle
from voicemarket.dev.sandbox import PublishedVoice, Sandbox, tiny_voice_files


@pytest.fixture(scope="session")
def tiny_voice(tmp_path_factory):
    return tiny_voice_files(tmp_path_factory.mktemp("oracle-voice"))


@pytest.fixture(scope="session")
def sandbox(accounts, tmp_path_factory, tiny_voice) -> Sandbox:
    box = Sandbox.deploy(accounts[0], tmp_path_factory.mktemp("market"))
    box.tiny = tiny_voice
    return box


@pytest.fixture(scope="session")
def operator(accounts):
    return accounts[OPERATOR_INDEX]


@pytest.fixture(scope="session")
def buyers(accounts):
    return [accounts[i] for i in range(4, 8)]


@pytest.fixture(scope="session")
def voice(sandbox, accounts, operator) -> PublishedVoice:
    return sandbox.publish_voice(accounts[1], [operator], files=sandbox.tiny)


@pytest.fixture(scope="session")
def licenses(sandbox, voice, buyers) -> dict[str, int]:
    return {buyer.address: sandbox.buy_license(buyer, voice) for buyer in buyers}


@pytest.fixture
def start_oracle(sandbox, voice, redis_server, tmp_path, chain) -> Iterator[Callable[..., Oracle]]:
    """Start the oracle (coordinator + ``workers`` Celery workers) with settings overrides."""
    started: list[Oracle] = []

    def start(
        *,
        workers: int = 1,
        coordinator: bool = True,
        voices: list[PublishedVoice] | None = None,
        operator_index: int = OPERATOR_INDEX,
        all_in_one: bool = False,
        **overrides,
    ) -> Oracle:
        """``all_in_one``: one `python -m oracle run --workers N` process, as on a laptop."""
        overrides.setdefault("start_block", chain.blocks.head.number)
        rpc_url = overrides.pop("rpc_url", chain.provider.uri)
        env = sandbox.oracle_env(
            rpc_url=rpc_url,
            redis_url=redis_server.url,
            operator_index=operator_index,
            voices=voices or [voice],
            work_dir=tmp_path,
            **overrides,
        )
        oracle = Oracle(sandbox, env, tmp_path / "logs" / f"oracle{len(started) + 1}")
        started.append(oracle)
        if all_in_one:
            oracle.start_coordinator(workers=workers)
            return oracle
        if coordinator:
            oracle.start_coordinator()
        for _ in range(workers):
            oracle.start_worker()
        return oracle

    yield start
    for oracle in started:
        oracle.stop()

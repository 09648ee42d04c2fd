"""Faults: crashed workers, a restarted Redis, a restarted listener, the RPC endpoint down, a reorg.

Each test makes requests while the fault happens and then checks the chain: every request has
exactly one outcome, a fulfilment (none lost, none fulfilled twice, none failed for a fault
that was only transient).
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest

from oracle.router import RouterClient
from oracle_helpers import TcpProxy, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def client(sandbox, chain):
    return RouterClient.connect(chain.provider.uri, sandbox.router.address)


@pytest.fixture
def ask(sandbox, voice, licenses, buyers, operator):
    counter = iter(range(10**6))

    def make(count: int) -> list[int]:
        ids = []
        for _ in range(count):
            i = next(counter)
            buyer = buyers[i % len(buyers)]
            ids.append(sandbox.request(buyer, voice, licenses[buyer.address], operator, f"Request {i}.", seed=i))
        return ids

    return make


def assert_fulfilled_once(client, ids: list[int], first_block: int, oracle, timeout: float = 90, mine=None) -> None:
    """Every id has exactly one on-chain outcome, a fulfilment (``mine()`` is called while waiting)."""

    def outcomes():
        if mine is not None:
            mine()
        return [(name, rid) for name, rid, _ in client.outcome_logs(first_block) if rid in ids]

    wait_for(lambda: {rid for _, rid in outcomes()} >= set(ids), timeout, "an outcome for every request", oracle)
    time.sleep(0.3)  # anything sent twice would land now
    events = outcomes()
    assert Counter(name for name, _ in events) == {"SynthesisFulfilled": len(ids)}, events
    assert Counter(rid for _, rid in events) == dict.fromkeys(ids, 1)


def test_a_worker_killed_mid_synthesis_loses_nothing(client, ask, start_oracle, chain):
    first_block = chain.blocks.head.number
    # Long sentences (150 semantic tokens) so that the kill lands during synthesis.
    oracle = start_oracle(workers=1, max_semantic_tokens=150, requeue_after_s=4)
    ids = ask(3)
    ledger = oracle.ledger()
    victim = oracle.workers[0]
    wait_for(
        lambda: "voice loaded" in victim.log_path.read_text() and ledger.state_counts()["working"] == 1,
        60,
        "the worker to be synthesising",
        oracle,
        interval=0.05,
    )
    time.sleep(0.3)
    working = [r for r in ids if ledger.request(r).get("state") == "working"]
    victim.signal(signal.SIGKILL)
    victim.stop()
    assert working, "the kill must land while a request is being synthesised"
    oracle.start_worker("replacement")
    assert_fulfilled_once(client, ids, first_block, oracle)


def test_redis_restarted_with_persistence_loses_nothing(client, ask, start_oracle, chain, redis_server):
    first_block = chain.blocks.head.number
    # A task a worker held when Redis went away is redelivered by the sweeper after requeue_after_s.
    oracle = start_oracle(workers=1, requeue_after_s=5)
    ids = ask(4)
    wait_for(lambda: len(client.outcome_logs(first_block)) >= 1, 60, "the first fulfilment", oracle)
    ids += ask(2)
    redis_server.restart(down_for=1.5)
    ids += ask(3)
    assert_fulfilled_once(client, ids, first_block, oracle)


def test_the_listener_restarted_resumes_from_its_checkpoint_and_a_standby_takes_over(client, ask, start_oracle, chain):
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1)
    ids = ask(3)
    wait_for(lambda: len(client.outcome_logs(first_block)) >= 1, 60, "the first fulfilment", oracle)
    oracle.coordinator.signal(signal.SIGKILL)
    oracle.coordinator.stop()
    ids += ask(3)  # made while no listener runs
    restarted = oracle.start_coordinator("restarted")
    # The standby starts once the restarted one holds the listener lease (started together, either
    # may win it, and the one that wins is the one that resumes).
    wait_for(
        lambda: "resuming from checkpoint" in restarted.log_path.read_text(),
        60,
        "the restarted listener to resume from its checkpoint",
        oracle,
    )
    standby = oracle.start_coordinator("standby")  # a second machine: same settings, same Redis
    wait_for(
        lambda: {r for _, r, _ in client.outcome_logs(first_block)} >= set(ids),
        60,
        "the restarted listener to catch up",
        oracle,
    )
    restarted.signal(signal.SIGKILL)  # the active one dies; the standby takes over within the lease
    restarted.stop()
    ids += ask(3)
    assert_fulfilled_once(client, ids, first_block, oracle)
    assert "resuming from checkpoint" in standby.log_path.read_text()


def test_the_rpc_endpoint_down_for_a_while_loses_nothing_and_refunds_nothing(client, ask, start_oracle, chain):
    first_block = chain.blocks.head.number
    proxy = TcpProxy(urlsplit(chain.provider.uri).port).start()
    try:
        oracle = start_oracle(workers=1, rpc_url=proxy.url)
        ids = ask(3)
        wait_for(lambda: len(client.outcome_logs(first_block)) >= 1, 60, "the first fulfilment", oracle)
        proxy.pause()
        ids += ask(3)  # the chain goes on; the oracle cannot see it
        time.sleep(3)
        proxy.resume()
        assert_fulfilled_once(client, ids, first_block, oracle)
    finally:
        proxy.stop()


def test_a_reorg_across_unconfirmed_blocks_produces_no_work_for_the_vanished_request(client, ask, start_oracle, chain):
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1, confirmations=3)
    ledger = oracle.ledger()
    snapshot = chain.snapshot()
    (vanished,) = ask(1)
    chain.mine(2)  # two confirmations of three
    time.sleep(1.0)  # the listener polls every 0.1 s: it must hold back
    assert not ledger.known(vanished)
    chain.restore(snapshot)  # the request and its blocks are gone
    time.sleep(0.5)
    (replacement,) = ask(1)  # a different request that gets the same id
    assert replacement == vanished
    ids = [replacement] + ask(2)
    chain.mine(3)
    assert_fulfilled_once(client, ids, first_block, oracle)

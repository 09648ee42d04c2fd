"""Faults the oracle recovers from by reading the chain again: Redis losing its data mid-run, and a reorg
deeper than ``confirmations`` that re-uses request ids and takes the operator's mined transactions away.

The real anvil (rewound with ``evm_revert``), redis-server (SIGKILLed and started again with an empty
folder and no persistence), coordinator and Celery worker. Each test asserts that every request ends
fulfilled exactly once on-chain and that requests made after the fault are served.
"""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

import test_faults
from oracle_helpers import wait_for

pytestmark = pytest.mark.integration

client, ask = test_faults.client, test_faults.ask  # the fixtures of the other fault tests
fulfilled_once = test_faults.assert_fulfilled_once


def log_events(process) -> list[str]:
    return [json.loads(line).get("event", "") for line in process.log_path.read_text().splitlines() if line[:1] == "{"]


def test_redis_wiped_mid_run_is_detected_and_rebuilt_from_the_chain(client, ask, start_oracle, chain, redis_server):
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1, requeue_after_s=5)
    ids = ask(3)
    wait_for(lambda: len(client.outcome_logs(first_block)) >= 1, 60, "the first fulfilment", oracle)
    ids += ask(5)  # queued or in flight when Redis goes
    unsettled = set(ids) - {rid for _, rid, _ in client.outcome_logs(first_block)}
    # Redis dies and comes back empty (no persistence, its folder lost): queue, states, checkpoint, nonces.
    redis_server._process.signal(signal.SIGKILL)
    redis_server.stop()
    for path in redis_server.directory.iterdir():
        if path.name != "redis.log":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    redis_server.persistent = False
    time.sleep(1.0)
    redis_server.start()
    assert unsettled, "the wipe must land while requests are still unsettled"
    ids += ask(3)  # made after the loss
    fulfilled_once(client, ids, first_block, oracle)
    assert "Redis lost the oracle's data; re-reading the chain from the durable mark" in log_events(oracle.coordinator)
    assert oracle.ledger().stats().get("redis_losses") == 1


def test_a_reorg_deeper_than_confirmations_serves_reused_ids_and_resyncs_the_nonce(
    client, ask, start_oracle, chain, operator
):
    from oracle_helpers import rpc

    snapshot = chain.snapshot()
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1, confirmations=2)
    ledger = oracle.ledger()

    def mine():
        rpc(chain, "evm_mine")

    before = ask(3)
    wait_for(
        lambda: mine() or all(ledger.request(r).get("state") == "done" for r in before),
        120,
        "the first requests to be fulfilled and final (confirmed) in the oracle's eyes",
        oracle,
        interval=0.5,
    )
    nonce_before = ledger.next_nonce()
    chain.restore(snapshot)  # deeper than `confirmations`: requests, fulfilments and their blocks are gone
    assert int(chain.provider.web3.eth.get_transaction_count(operator.address)) < nonce_before
    after = ask(3)
    assert after == before, "the new requests re-use the ids of the vanished ones"
    after += ask(2)
    fulfilled_once(client, after, first_block, oracle, mine=mine)
    stats = ledger.stats()
    assert stats.get("deep_reorgs", 0) >= 1 and stats.get("nonce_resyncs", 0) >= 1, stats
    events = log_events(oracle.coordinator)
    assert "a request id re-used after a deep reorg; serving the new request" in events

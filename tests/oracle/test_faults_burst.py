"""Bursts: many requests mined in two blocks. Batches fill (the submitter waits for work the workers
still hold), and the sweeper never queues again a task that is only waiting in the Celery queue.

The real anvil (automining off while the burst is sent, then two blocks mined), redis-server,
coordinator and Celery workers. The fast test sends 40 requests to one worker with a sweeper that
would call any request untouched for 2 s forgotten; the deep one, 300 requests to two workers.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter

import pytest

from oracle.router import RouterClient
from oracle_helpers import rpc, wait_for
from voicemarket.dev.sandbox import account_key

pytestmark = pytest.mark.integration


def send_burst(sandbox, chain, voice, licenses, buyers, operator, count: int) -> list[int]:
    """``count`` requests from the buyers, mined in two blocks; their ids."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(chain.provider.uri))
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    now = w3.eth.get_block("latest")["timestamp"]
    nonces = {b.address: w3.eth.get_transaction_count(b.address, "pending") for b in buyers}
    hashes = []
    rpc(chain, "evm_setAutomine", [False])
    try:
        for i in range(count):
            buyer = buyers[i % len(buyers)]
            params = sandbox.request_params(
                voice, licenses[buyer.address], operator, f"Burst {i}.", seed=i, now=now, deadline_in=3600
            )
            hashes.append(sandbox.request_raw(account_key(buyer), nonces[buyer.address], params, w3=w3))
            nonces[buyer.address] += 1
            if i == count // 2:
                rpc(chain, "evm_mine")
        rpc(chain, "evm_mine")
    finally:
        rpc(chain, "evm_setAutomine", [True])
    ids, blocks = [], set()
    for tx in hashes:
        receipt = w3.eth.get_transaction_receipt(tx)
        assert receipt["status"] == 1, receipt
        blocks.add(receipt["blockNumber"])
        (log,) = [e for e in receipt["logs"] if e["topics"] and w3.to_hex(e["topics"][0]) == client.requested_topic]
        ids.append(client.decode_requested(log).request.id)
    assert len(blocks) == 2, blocks
    return ids


def batch_sizes(chain, client, from_block: int, ids: list[int]) -> list[int]:
    """Fulfilments of ``ids`` per fulfilBatch transaction."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(chain.provider.uri))
    wanted = set(ids)
    per_tx = Counter()
    for entry in w3.eth.get_logs(
        {"address": client.address, "fromBlock": from_block, "topics": [client.topics["SynthesisFulfilled"]]}
    ):
        if int(entry["topics"][1].hex(), 16) in wanted:
            per_tx[w3.to_hex(entry["transactionHash"])] += 1
    return list(per_tx.values())


def drain(sandbox, voice, licenses, buyers, operator, start_oracle, chain, count: int, workers: int, **settings):
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=workers, **settings)
    ids = send_burst(sandbox, chain, voice, licenses, buyers, operator, count)
    started = time.monotonic()
    wait_for(
        lambda: {r for n, r, _ in client.outcome_logs(first_block) if n == "SynthesisFulfilled"} >= set(ids),
        60 + count,
        "every request of the burst to be fulfilled",
        oracle,
        interval=0.5,
    )
    drained_s = time.monotonic() - started
    time.sleep(0.5)
    events = [(n, r) for n, r, _ in client.outcome_logs(first_block) if r in set(ids)]
    assert Counter(r for n, r in events if n == "SynthesisFulfilled") == dict.fromkeys(ids, 1)
    assert not [e for e in events if e[0] != "SynthesisFulfilled"], events
    sizes = batch_sizes(chain, client, first_block, ids)
    stats = oracle.ledger().stats()
    forgotten = [
        line
        for line in oracle.coordinator.log_path.read_text().splitlines()
        if line.startswith("{") and json.loads(line).get("event") == "request forgotten by the workers; queued again"
    ]
    return sizes, stats, forgotten, drained_s


def test_a_burst_fills_batches_and_the_sweeper_duplicates_nothing(
    sandbox, voice, licenses, buyers, operator, start_oracle, chain
):
    sizes, stats, forgotten, drained_s = drain(
        sandbox,
        voice,
        licenses,
        buyers,
        operator,
        start_oracle,
        chain,
        40,
        1,
        requeue_after_s=2,
        sweep_interval_s=0.5,
        batch_max_wait_s=2,
    )
    assert not forgotten and stats.get("requeued", 0) == 0, (forgotten, stats)
    assert statistics.mean(sizes) >= 5, f"{len(sizes)} transactions for 40 fulfilments: {sizes} ({drained_s:.1f} s)"


@pytest.mark.deep
def test_a_burst_of_300_requests_in_two_blocks(sandbox, voice, licenses, buyers, operator, start_oracle, chain):
    sizes, stats, forgotten, drained_s = drain(
        sandbox, voice, licenses, buyers, operator, start_oracle, chain, 300, 2, requeue_after_s=5
    )
    mean = statistics.mean(sizes)
    print(f"300 requests drained in {drained_s:.1f} s in {len(sizes)} transactions, mean batch {mean:.1f}")
    assert not forgotten and stats.get("requeued", 0) == 0, (forgotten, stats)
    assert statistics.mean(sizes) >= 5, f"{len(sizes)} transactions for 300 fulfilments: {sizes}"

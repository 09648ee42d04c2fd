"""Faults of the content the oracle reads and writes: an input far over the size cap is refused without
being fetched (the worker's bytes read are measured from /proc), and an output store that refuses
everything for a while costs the buyers nothing (their requests are fulfilled, none refunded): 3 s in
make test, the issue's 10 s with deadlines of 10 minutes as a deep test.

The real anvil, redis-server, coordinator and Celery worker; the store is a local folder made unusable
for the outage (its temporary folder replaced by a file: every write fails, as on a full disk)."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from oracle.errors import FailReason
from oracle.router import RouterClient
from oracle_helpers import wait_for
from voicemarket.dev.sandbox import OPERATOR_FEE
from voicemarket.market import chain as vm

pytestmark = pytest.mark.integration

RETRYING = "the output store refused the audio; retrying until the deadline nears"
BIG = 64 * 1024 * 1024  # 1,024 times the oracle's max_input_bytes (64 KiB)


def bytes_read(pid: int) -> int:
    """Bytes the process has read through read(2) and friends so far (files and sockets: /proc/PID/io rchar)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/io has no rchar line")


def _warnings(process, event: str) -> list[dict]:
    out = []
    for line in process.log_path.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event:
                out.append(record)
    return out


def test_an_input_far_over_the_cap_is_refused_unread_and_a_store_outage_refunds_nothing(
    sandbox, voice, licenses, buyers, operator, start_oracle, chain, tmp_path
):
    oversized_input_and_store_outage(sandbox, voice, licenses, buyers, operator, start_oracle, chain, tmp_path, 3.0)


@pytest.mark.deep
def test_a_10_s_store_outage_with_deadlines_of_minutes_refunds_nothing(
    sandbox, voice, licenses, buyers, operator, start_oracle, chain, tmp_path
):
    oversized_input_and_store_outage(sandbox, voice, licenses, buyers, operator, start_oracle, chain, tmp_path, 10.0)


def oversized_input_and_store_outage(
    sandbox, voice, licenses, buyers, operator, start_oracle, chain, tmp_path, outage_s: float
) -> None:
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    first_block = chain.blocks.head.number
    output = tmp_path / "output-store"
    oracle = start_oracle(workers=1, output_store=f"local:{output}")
    worker = oracle.workers[0]
    buyer = buyers[0]
    license = licenses[buyer.address]

    def ask(text: str, **kwargs) -> int:
        return sandbox.request(buyer, voice, license, operator, text, **kwargs)

    # A first request loads the voice, so that what the worker reads next is the request's alone.
    warm = ask("Warm up.")
    wait_for(lambda: len(client.outcome_logs(first_block)) >= 1, 90, "the first fulfilment", oracle)

    # 64 MiB behind a CID (a sparse file: cheap to make, as costly as any to fetch and hash).
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:
        handle.truncate(BIG)
    digest = hashlib.sha256()
    with open(big, "rb") as handle:
        while piece := handle.read(4 << 20):
            digest.update(piece)
    cid = sandbox.store.put_file(big)
    credit_before = sandbox.credit(buyer)
    read_before = bytes_read(worker.pid)
    oversized = ask("unused", input_=vm.cid_input(cid), input_hash=digest.digest())
    wait_for(
        lambda: oversized in {rid for _, rid, _ in client.outcome_logs(first_block)},
        60,
        "the oversized request's outcome",
        oracle,
    )
    read = bytes_read(worker.pid) - read_before
    outcomes = {rid: (name, args) for name, rid, args in client.outcome_logs(first_block)}
    name, args = outcomes[oversized]
    assert name == "SynthesisFailed" and FailReason(args["reason"]) == FailReason.TEXT_TOO_LONG, outcomes[oversized]
    assert sandbox.credit(buyer) - credit_before == OPERATOR_FEE  # refunded
    # Everything the worker read while serving it (Redis, the node, the store): a tiny fraction of the input.
    assert read < 2 * 1024 * 1024, f"the worker read {read} bytes while refusing a {BIG}-byte input"

    # The output store refuses every write for `outage_s` while three requests (deadlines of 10 minutes) are served.
    scratch = output / "tmp"
    moved = output / "tmp.away"
    scratch.rename(moved)
    scratch.write_bytes(b"not a folder: every write to the store fails")
    outage_started = time.monotonic()
    during = [ask(f"During the outage {i}.", seed=i, deadline_in=600) for i in range(3)]
    wait_for(
        lambda: _warnings(worker, RETRYING),
        30,
        "the worker to meet the outage",
        oracle,
    )
    time.sleep(max(0.0, outage_s - (time.monotonic() - outage_started)))
    scratch.unlink()
    moved.rename(scratch)
    ids = [warm, *during]
    wait_for(
        lambda: {rid for _, rid, _ in client.outcome_logs(first_block)} >= set(ids),
        90,
        "an outcome for every request",
        oracle,
    )
    time.sleep(0.3)
    events = [(name, rid) for name, rid, _ in client.outcome_logs(first_block) if rid in ids]
    assert Counter(name for name, _ in events) == {"SynthesisFulfilled": len(ids)}, events
    assert Counter(rid for _, rid in events) == dict.fromkeys(ids, 1)
    retried = {r["request_id"] for r in _warnings(worker, RETRYING)}
    assert retried & set(during), "the outage must have refused at least one of the requests' audio"

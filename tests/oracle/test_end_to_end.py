"""End to end: buyers ask for speech on-chain; the oracle's real processes deliver each exactly once."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest

from oracle.router import RouterClient
from oracle_helpers import wait_for
from voicemarket.content.multiformats import CID
from voicemarket.dev.services import free_port

pytestmark = pytest.mark.integration


# A Cantonese and a Japanese request on a voice whose bundle lists those languages (one sentence each).
SPOKEN = (("yue", "我今日去咗銅鑼灣。"), ("ja", "今日はとても楽しかったです。"))


def test_requests_from_several_buyers_are_each_fulfilled_once_with_retrievable_audio(
    sandbox, accounts, voice, licenses, buyers, operator, start_oracle, chain
):
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    languages = ("en", *(language for language, _ in SPOKEN))
    multilingual = sandbox.publish_voice(accounts[1], [operator], files=sandbox.tiny, languages=languages)
    multilingual_license = sandbox.buy_license(buyers[0], multilingual)
    first_block = chain.blocks.head.number
    metrics_port = free_port()
    oracle = start_oracle(workers=2, metrics_port=metrics_port, voices=[voice, multilingual])
    ids = []
    for i, (language, text) in enumerate(SPOKEN):
        ids.append(
            sandbox.request(buyers[0], multilingual, multilingual_license, operator, text, language=language, seed=i)
        )
    for i in range(8):
        buyer = buyers[i % len(buyers)]
        ids.append(sandbox.request(buyer, voice, licenses[buyer.address], operator, f"Hello number {i}.", seed=i))

    def delivered():
        return [e for e in client.outcome_logs(first_block) if e[1] in ids]

    wait_for(lambda: len({e[1] for e in delivered()}) == len(ids), 60, "every request to be fulfilled", oracle)
    events = delivered()
    assert Counter(name for name, _, _ in events) == {"SynthesisFulfilled": len(ids)}
    assert Counter(rid for _, rid, _ in events) == dict.fromkeys(ids, 1)
    for _, _, args in events:
        cid = CID.from_bytes(bytes(args["outputCid"]))
        audio = sandbox.store.get_bytes(cid)
        assert hashlib.sha256(audio).digest() == bytes(args["outputDigest"])
        assert audio[:4] == b"RIFF" and len(audio) > 1000
    # The worker that loaded the multilingual voice made its front ends ready then, not on its first request.
    loaded = [
        json.loads(line)
        for worker in oracle.workers
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{") and '"voice loaded"' in line and hex(multilingual.model_id) in line
    ]
    assert loaded and all(event["front_ends_ready"] == list(languages) for event in loaded), loaded

    # What the operator sees: `python -m oracle status` and the Prometheus endpoint agree with the chain.
    wait_for(lambda: oracle.ledger().stats().get("fulfilled", 0) == len(ids), 10, "the ledger to catch up", oracle)
    shown = subprocess.run(
        [sys.executable, "-m", "oracle", "status", "--json"],
        env=oracle.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    snapshot = json.loads(shown.stdout)
    assert snapshot["fulfilled"] == len(ids) and snapshot["failed"] == 0
    assert snapshot["in_flight"] == snapshot["ready"] == snapshot["queue_depth"] == 0
    assert snapshot["last_block"] >= first_block + len(ids)
    human = subprocess.run(
        [sys.executable, "-m", "oracle", "status"],
        env=oracle.env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert f"fulfilled         {len(ids)}" in human
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert f"oracle_fulfilled_total {float(len(ids))}" in metrics
    assert 'oracle_requests{state="in_flight"} 0.0' in metrics

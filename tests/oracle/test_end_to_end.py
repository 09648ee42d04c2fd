"""End to end: buyers ask for speech on-chain; the oracle's real processes deliver each exactly once."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from oracle_helpers import wait_for

from oracle.router import RouterClient
from voicemarket.multiformats import CID

pytestmark = pytest.mark.integration


def test_requests_from_several_buyers_are_each_fulfilled_once_with_retrievable_audio(
        sandbox, voice, licences, buyers, operator, start_oracle, chain):
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=2)
    ids = []
    for i in range(8):
        buyer = buyers[i % len(buyers)]
        ids.append(sandbox.request(buyer, voice, licences[buyer.address], operator, f"Hello number {i}.", seed=i))

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

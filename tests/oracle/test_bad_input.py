"""Every input the oracle cannot serve ends in an on-chain `fail` with its reason, and the buyer is refunded
(private requests' sealed inputs included: sealed to another operator, another text than committed, not an
envelope, or by a CID the store does not have)."""

from __future__ import annotations

import hashlib
import json

import pytest

from oracle.errors import FailReason
from oracle.router import RouterClient
from oracle_helpers import SECOND_OPERATOR_INDEX, wait_for
from voicemarket import protocol
from voicemarket.content.envelopes import RequestEnvelope, seal_request
from voicemarket.content.multiformats import CID, RAW
from voicemarket.dev.sandbox import OPERATOR_FEE, public_key
from voicemarket.market import chain as vm
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.market.speech import request_input
from voicemarket.protocol import RequestStatus

pytestmark = pytest.mark.integration
SQUATTER = 8  # registers another creator's public bundle as its own


def _worker_log(oracle) -> list[dict]:
    """The JSON log lines of the oracle's workers."""
    return [
        json.loads(line)
        for worker in oracle.workers
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    ]


def test_each_bad_input_fails_with_its_reason_and_refunds_the_buyer(
    sandbox, accounts, operator, voice, buyers, start_oracle, chain
):
    creator, buyer = accounts[1], buyers[0]
    unserved = sandbox.publish_voice(creator, [operator], files=sandbox.tiny)
    missing = sandbox.publish_voice(creator, [operator], files=sandbox.tiny)
    sandbox.store.path_of(CID.parse(missing.bundle_cid)).unlink()
    corrupt = sandbox.publish_voice(creator, [operator], files=sandbox.tiny)
    stored = sandbox.store.path_of(CID.parse(corrupt.bundle_cid))
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x01
    stored.write_bytes(bytes(data))
    wrong_digest = sandbox.publish_voice(
        creator, [operator], files=sandbox.tiny, registered_digest=hashlib.sha256(b"not this bundle").digest()
    )
    not_for_us = sandbox.publish_voice(creator, [operator], files=sandbox.tiny, recipients=[public_key(creator)])
    # Another account registers the creator's public bundle (and keyring) under its own address: a
    # valid id for that account, an intact bundle, but the bundle names its real creator.
    sealed = sandbox.seal_voice(creator, [public_key(operator), public_key(creator)], files=sandbox.tiny)
    sandbox.register_voice(creator, sealed, [operator], languages=("en",), files=sandbox.tiny, digest=sealed.digest)
    copied = sandbox.register_voice(
        accounts[SQUATTER], sealed, [operator], languages=("en",), files=sandbox.tiny, digest=sealed.digest
    )
    assert copied.model_id == protocol.model_id(accounts[SQUATTER].address, sealed.digest)
    # Registered for Japanese (the router accepts `ja` requests), but the bundle's manifest lists English only.
    japanese = sandbox.publish_voice(
        creator, [operator], files=sandbox.tiny, languages=("en", "ja"), bundle_languages=("en",)
    )
    served = [voice, missing, corrupt, wrong_digest, not_for_us, japanese, copied]
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1, voices=served, max_text_chars=40)

    expected: dict[int, FailReason | None] = {}
    credit_before = sandbox.credit(buyer)

    def ask(target, text: str, reason: FailReason | None, **kwargs) -> int:
        license = sandbox.buy_license(buyer, target)
        request_id = sandbox.request(buyer, target, license, operator, text, **kwargs)
        expected[request_id] = reason
        return request_id

    absent_text = CID(1, RAW, hashlib.sha256(b"never stored").digest())
    ask(unserved, "Hello.", FailReason.MODEL_UNAVAILABLE)
    ask(missing, "Hello.", FailReason.BUNDLE_UNAVAILABLE)
    ask(corrupt, "Hello.", FailReason.BUNDLE_CORRUPT)
    wrong_id = ask(wrong_digest, "Hello.", FailReason.BUNDLE_CORRUPT)
    ask(not_for_us, "Hello.", FailReason.BUNDLE_UNDECRYPTABLE)
    copied_id = ask(copied, "Hello.", FailReason.MODEL_UNAVAILABLE)
    japanese_id = ask(japanese, "こんにちは。", FailReason.UNSUPPORTED_LANGUAGE, language="ja")
    ask(japanese, "Hello.", None)  # the same voice in a language its bundle lists
    ask(voice, "This sentence is much longer than the forty characters allowed.", FailReason.TEXT_TOO_LONG)
    ask(voice, "never stored", FailReason.INPUT_UNAVAILABLE, input_=vm.cid_input(absent_text))
    ask(voice, "Hello.", FailReason.BAD_INPUT, input_hash=hashlib.sha256(b"another text").digest())
    ask(voice, "Hello.", FailReason.BAD_INPUT, input_=b"\x01\x02\x03")  # neither inline text nor a CID
    key = BuyerKey.derive(buyer, chain.chain_id)
    sealed = request_input("Hello.", operator_key=public_key(operator), buyer=key)
    elsewhere = request_input("Hello.", operator_key=public_key(accounts[SECOND_OPERATOR_INDEX]), buyer=key)
    not_ours = ask(voice, "Hello.", FailReason.BAD_INPUT, input_=elsewhere.data, input_hash=elsewhere.input_hash)
    swapped = seal_request(
        RequestEnvelope("Goodbye.", key.public_key, key.input_salt("Goodbye.")), public_key(operator)
    )
    other_text = ask(
        voice, "Hello.", FailReason.BAD_INPUT, input_=vm.private_input(swapped), input_hash=sealed.input_hash
    )
    not_a_box = ask(
        voice,
        "Hello.",
        FailReason.BAD_INPUT,
        input_=vm.private_input(b"VMB\x01" + bytes(200)),
        input_hash=sealed.input_hash,
    )
    ask(
        voice,
        "Hello.",
        FailReason.INPUT_UNAVAILABLE,
        input_=vm.private_cid_input(absent_text),
        input_hash=sealed.input_hash,
    )
    ask(voice, "Hello.", None, input_=sealed.data, input_hash=sealed.input_hash)  # the same text, sealed right
    ask(voice, "Good morning.", None)  # a good request among them is still served

    def outcomes():
        return {rid: (name, args) for name, rid, args in client.outcome_logs(first_block) if rid in expected}

    wait_for(lambda: len(outcomes()) == len(expected), 90, "an outcome for every request", oracle)
    events = client.outcome_logs(first_block)
    assert sorted(rid for _, rid, _ in events if rid in expected) == sorted(expected), "one outcome each"
    got = outcomes()
    for request_id, reason in expected.items():
        name, args = got[request_id]
        if reason is None:
            assert name == "SynthesisFulfilled"
        else:
            assert (name, FailReason(args["reason"])) == ("SynthesisFailed", reason), f"request {request_id}"
    details = {
        event["request_id"]: event["detail"]
        for event in _worker_log(oracle)
        if event.get("event") == "request cannot be served"
    }
    assert f"with creator {creator.address} gives model id" in details[wrong_id]
    assert (
        f"model {japanese.model_id:#x} is registered for 'ja', but its bundle's manifest lists only en"
        in details[japanese_id]
    )
    assert (
        f"registered by {accounts[SQUATTER].address}, but its bundle's manifest names the creator "
        f"{creator.address}: a copy of another creator's bundle, not served" in details[copied_id]
    )
    assert "the private input is not sealed to this operator's key" in details[not_ours]
    assert "the private input's text and salt do not give the request's inputHash" in details[other_text]
    assert "the private input cannot be opened" in details[not_a_box]
    failed = sum(1 for r in expected.values() if r is not None)
    assert sandbox.credit(buyer) - credit_before == failed * OPERATOR_FEE
    for request_id in expected:
        assert sandbox.router.requestStatus(request_id) in (RequestStatus.FAILED, RequestStatus.SETTLED)

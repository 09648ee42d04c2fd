"""End to end: buyers ask for speech on-chain; the oracle's real processes deliver each exactly once.

Two of the requests are private (a text inline and one by CID, sealed to the operator): only the operator
reads the text and only the buyer hears the audio; neither the store's owner nor a chain observer finds
either, and another account's key opens nothing."""

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
from voicemarket.content.envelopes import open_output, open_request
from voicemarket.content.multiformats import CID
from voicemarket.dev.sandbox import account_key, public_key
from voicemarket.dev.services import free_port
from voicemarket.errors import DecryptionError
from voicemarket.market import chain as vm
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.market.speech import request_input

pytestmark = pytest.mark.integration


# A Cantonese and a Japanese request on a voice whose bundle lists those languages (one sentence each).
SPOKEN = (("yue", "我今日去咗銅鑼灣。"), ("ja", "今日はとても楽しかったです。"))
# Private texts: one fits inline once sealed, the other (over 308 bytes) goes sealed into the store by CID.
SECRETS = ("The dragon wakes at dawn; tell no one.", "The unreleased chapter is under the lighthouse. " * 7)
GUESSED = "Follow me!"  # asked privately by one buyer, and publicly (twice, the same seed) by another who guessed it


def _fingerprint(audio: bytes) -> bytes:
    """256 bytes of the audio's samples varied enough that finding them elsewhere means a copy of it."""
    for start in range(44, len(audio) - 256, 256):
        window = audio[start : start + 256]
        if len(set(window)) > 64:
            return window
    raise AssertionError("the audio is too uniform to be recognised")


def _chain_bytes(chain, first_block: int) -> list[bytes]:
    """Everything a chain observer sees from ``first_block`` on: each transaction's calldata and each log."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(chain.provider.uri))
    seen = []
    for number in range(first_block, w3.eth.block_number + 1):
        for tx in w3.eth.get_block(number, full_transactions=True).transactions:
            seen.append(bytes(tx["input"]))
            for log in w3.eth.get_transaction_receipt(tx["hash"])["logs"]:
                seen.append(b"".join(bytes(t) for t in log["topics"]) + bytes(log["data"]))
    return seen


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
    buyer, other = buyers[0], buyers[1]
    key, other_key = BuyerKey.derive(buyer, chain.chain_id), BuyerKey.derive(other, chain.chain_id)
    private = {}
    for text in SECRETS:
        sealed = request_input(text, sandbox.store, operator_key=public_key(operator), buyer=key)
        assert sealed.private and (sealed.cid is None) == (text == SECRETS[0])
        rid = sandbox.request(
            buyer, voice, licenses[buyer.address], operator, text, input_=sealed.data, input_hash=sealed.input_hash
        )
        private[rid] = (text, sealed)
    ids += list(private)
    sealed = request_input(GUESSED, operator_key=public_key(operator), buyer=key)
    guessed = [
        sandbox.request(
            buyer, voice, licenses[buyer.address], operator, GUESSED, input_=sealed.data, input_hash=sealed.input_hash
        ),
        *(sandbox.request(other, voice, licenses[other.address], operator, GUESSED) for _ in range(2)),
    ]
    ids += guessed

    def delivered():
        return [e for e in client.outcome_logs(first_block) if e[1] in ids]

    wait_for(lambda: len({e[1] for e in delivered()}) == len(ids), 60, "every request to be fulfilled", oracle)
    events = delivered()
    assert Counter(name for name, _, _ in events) == {"SynthesisFulfilled": len(ids)}
    assert Counter(rid for _, rid, _ in events) == dict.fromkeys(ids, 1)
    stored = [path.read_bytes() for path in sandbox.store.root.rglob("*") if path.is_file()]
    observed = _chain_bytes(chain, first_block)
    for _, request_id, args in events:
        audio = sandbox.store.get_bytes(CID.from_bytes(bytes(args["outputCid"])))
        if request_id == guessed[0]:
            audio = open_output(audio, key.private_key)
        elif request_id in private:  # sealed: the buyer opens it, another account's key does not
            sealed_audio, audio = audio, open_output(audio, key.private_key)
            with pytest.raises(DecryptionError):
                open_output(sealed_audio, other_key.private_key)
            text = private[request_id][0]
            for blob in stored + observed:  # neither the store's owner nor a chain observer finds text or audio
                assert text.encode() not in blob and _fingerprint(audio) not in blob
        assert hashlib.sha256(audio).digest() == bytes(args["outputDigest"])
        assert audio[:4] == b"RIFF" and len(audio) > 1000
    assert b"Hello number 0." in b"".join(observed), "a public request's text is on-chain, as it always was"
    # The engine repeats itself for the same text and seed, but a private request samples with a seed keyed by
    # its salt: someone who guesses the text and asks for it with the public parameters gets other audio.
    digests = {rid: bytes(args["outputDigest"]) for _, rid, args in events if rid in guessed}
    assert digests[guessed[1]] == digests[guessed[2]] != digests[guessed[0]]
    assert hashlib.sha256(SECRETS[0].encode()).digest() not in b"".join(observed), "inputHash is salted"
    # The sealed text opens with the operator's key only: not the buyer's account key, not another's.
    box = vm.RequestInput.parse(private[min(private)][1].data).inline
    assert open_request(box, account_key(operator)).text == SECRETS[0]
    for wrong in (account_key(buyer), other_key.private_key):
        with pytest.raises(DecryptionError):
            open_request(box, wrong)
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

"""`ape run say` against the session's anvil, a private redis-server and the oracle's real processes.

The command runs as a user runs it (`ape run say --network ethereum:local:foundry`, a child
process connected to the test's anvil through APE_FOUNDRY_HOST) on a market made by
voicemarket.dev.sandbox (a tiny random voice sealed to the operator) whose addresses are saved where
`ape run deploy` saves them. Accounts: 0 deploys, 1 creates, 2 operates (its oracle runs),
3 operates (no oracle runs: its requests expire), 6 buys.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicemarket.content.envelopes import open_output
from voicemarket.content.multiformats import CID
from voicemarket.dev.sandbox import OPERATOR_FEE, Sandbox, tiny_voice_files
from voicemarket.dev.services import RedisServer
from voicemarket.errors import SpeechError
from voicemarket.market import chain as vm
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.protocol import Language, RequestStatus

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OPERATOR, IDLE_OPERATOR, BUYER = 2, 3, 6
MAX_TEXT_CHARS = 60


@pytest.fixture(scope="module")
def market(accounts, chain, tmp_path_factory):
    """A deployment saved for ethereum:local, a voice served by operators 2 and 3, a licence for the buyer."""
    from voicemarket.market import deployments

    home = tmp_path_factory.mktemp("vm-home")
    start_block = chain.blocks.head.number
    box = Sandbox.deploy(accounts[0], tmp_path_factory.mktemp("say-market"))
    creator, operator, idle = accounts[1], accounts[OPERATOR], accounts[IDLE_OPERATOR]
    voice = box.publish_voice(creator, [operator], files=tiny_voice_files(tmp_path_factory.mktemp("say-voice")))
    box.add_operator(idle)
    box.router.setOperatorAllowed(voice.model_id, idle, True, sender=creator)
    license = box.buy_license(accounts[BUYER], voice)
    saved_home = os.environ.get("VOICEMARKET_HOME")
    os.environ["VOICEMARKET_HOME"] = str(home)
    try:
        deployments.save(chain.provider, box.d, start_block=start_block)
    finally:
        if saved_home is None:
            del os.environ["VOICEMARKET_HOME"]
        else:
            os.environ["VOICEMARKET_HOME"] = saved_home
    return {"box": box, "voice": voice, "license": license, "home": home}


@pytest.fixture
def oracle(market, chain, tmp_path):
    """Operator 2's oracle (coordinator + one Celery worker) on a private redis-server, stopped by PID."""
    box, voice = market["box"], market["voice"]
    with RedisServer() as redis_server:
        env = box.oracle_env(
            rpc_url=chain.provider.uri,
            redis_url=redis_server.url,
            operator_index=OPERATOR,
            voices=[voice],
            work_dir=tmp_path,
            start_block=chain.blocks.head.number,
            max_text_chars=MAX_TEXT_CHARS,
        )
        processes = [box.start_coordinator(env, tmp_path / "coordinator.log")]
        try:
            processes.append(box.start_worker(env, tmp_path / "worker.log"))
            yield processes
        finally:
            for process in reversed(processes):
                process.stop()


def say(market, chain, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """`ape run say ... --network ethereum:local:foundry --account TEST::6` on the test's anvil."""
    env = dict(
        os.environ,
        APE_FOUNDRY_HOST=chain.provider.uri,
        VOICEMARKET_HOME=str(market["home"]),
        VOICEMARKET_STORE=f"local:{market['box'].store.root}",
    )
    env.setdefault("APE_DATA_FOLDER", str(ROOT / ".ape"))
    ape = str(Path(sys.executable).parent / "ape")
    argv = [ape, "run", "say", *args, "--network", "ethereum:local:foundry", "--account", f"TEST::{BUYER}"]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def output_of(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr[-3000:]}"


def test_a_fulfilled_request_writes_its_verified_wav_and_a_failed_one_says_why_and_refunds(
    market, oracle, chain, accounts, tmp_path
):
    """One oracle serves both (starting an oracle costs seconds): the good text, private by default (sealed to the
    operator, the audio sealed to the buyer's key from their signature), then a public one too long for it."""
    box, buyer = market["box"], accounts[BUYER]
    out = tmp_path / "hello.wav"
    result = say(
        market, chain, "Hello from the market.", "--licence", str(market["license"]), "-o", str(out), "--seed", "3"
    )
    assert result.returncode == 0, output_of(result)
    buyer_key = BuyerKey.derive(accounts[BUYER], chain.chain_id)
    assert f"private: your encryption key {buyer_key.key_address} (from your signature)" in result.stdout
    assert "(text sealed to the operator, inline," in result.stdout and "(sealed to your key)" in result.stdout
    assert "verified: the audio's SHA-256" in result.stdout
    assert f"wrote {out}" in result.stdout
    request_id = box.router.nextRequestId() - 1
    assert box.router.requestStatus(request_id) == RequestStatus.SETTLED
    delivered = list(
        box.router.SynthesisFulfilled.range(0, chain.blocks.height + 1, search_topics={"requestId": request_id})
    )
    assert len(delivered) == 1
    audio = out.read_bytes()
    assert audio[:4] == b"RIFF"
    assert hashlib.sha256(audio).digest() == bytes(delivered[0].outputDigest)
    stored = box.store.get_bytes(CID.from_bytes(bytes(delivered[0].outputCid)))
    assert stored[:4] == b"VMB\x01" and open_output(stored, buyer_key.private_key) == audio  # sealed in the store
    requested = list(
        box.router.SynthesisRequested.range(0, chain.blocks.height + 1, search_topics={"requestId": request_id})
    )
    assert b"Hello from the market." not in bytes(requested[0].input)
    assert not list(tmp_path.glob(".hello.wav.*")), "no temporary file left beside the output"

    credit_before = box.credit(buyer)
    refused = tmp_path / "long.wav"
    text = "This sentence is deliberately longer than the sixty characters the operator takes."
    result = say(market, chain, text, "--licence", str(market["license"]), "-o", str(refused), "--public")
    assert result.returncode == 1, output_of(result)
    assert "private:" not in result.stdout and "(text inline," in result.stdout
    assert (
        "failed: the operator reported TextTooLong (7): the text is longer than this operator accepts" in result.stdout
    ), output_of(result)
    assert "refunded 0.0001 ETH to your credit on the router" in result.stdout
    assert box.credit(buyer) - credit_before == OPERATOR_FEE
    assert not refused.exists()


def test_an_expired_request_is_followed_again_and_cancelled_for_a_full_refund(market, chain, accounts):
    """Operator 3 runs no oracle: `say` gives up waiting (still pending), then `say --request N
    --cancel-expired` follows the same request past its deadline and cancels it: a full refund."""
    box = market["box"]
    buyer, idle = accounts[BUYER], accounts[IDLE_OPERATOR]
    credit_before = box.credit(buyer)
    result = say(
        market,
        chain,
        "Nobody will say this.",
        "--licence",
        str(market["license"]),
        "--operator",
        idle.address,
        "--ttl",
        "4",
        "--timeout",
        "0.5",
    )
    request_id = box.router.nextRequestId() - 1
    assert result.returncode == 3, output_of(result)
    assert f"still pending after 1 s; follow it again with `ape run say --request {request_id}`" in result.stdout
    assert box.router.requestStatus(request_id) == RequestStatus.PENDING

    result = say(market, chain, "--request", str(request_id), "--cancel-expired")
    assert result.returncode == 1, output_of(result)
    assert f"expired: the operator did not deliver by the deadline; cancelled request {request_id}" in result.stdout
    assert "refunded 0.0001 ETH to your credit on the router" in result.stdout
    assert box.router.requestStatus(request_id) == RequestStatus.EXPIRED
    assert box.credit(buyer) - credit_before == OPERATOR_FEE


def test_bad_input_is_refused_before_anything_is_sent(market, chain, accounts):
    from voicemarket.market import speech

    box = market["box"]
    next_id = box.router.nextRequestId()
    result = say(market, chain, "Bonjour.", "--licence", str(market["license"]), "--lang", "ja")
    assert result.returncode == 1
    assert "speaks en, not 'ja'" in result.stderr, output_of(result)
    with pytest.raises(SpeechError, match="licence 999 does not exist"):
        speech.license_use(box.d.licenses, 999, accounts[BUYER].address)
    with pytest.raises(SpeechError, match="belongs to"):
        speech.license_use(box.d.licenses, market["license"], accounts[BUYER + 1].address)
    with pytest.raises(SpeechError, match="fit on-chain"):
        speech.request_input("x" * 600)
    assert box.router.nextRequestId() == next_id


def test_a_request_carries_the_models_dispute_window_as_the_buyers_floor(market, chain, accounts):
    """By default a request names the model's dispute window as the shortest the buyer accepts: an owner who
    cuts the window after the buyer read it gets the request refused, not a shorter window under it."""
    from voicemarket.cli.console import explain_revert
    from voicemarket.market import speech

    box, creator, buyer, idle = market["box"], accounts[1], accounts[BUYER], accounts[IDLE_OPERATOR]
    model_id, registry = market["voice"].model_id, box.d.registry
    params = vm.SynthesisParams(Language.EN)
    registry.setDisputeWindow(model_id, 3600, sender=creator)
    try:
        license = speech.license_use(box.d.licenses, market["license"], buyer.address)
        assert license.dispute_window == 3600
        registry.setDisputeWindow(model_id, 60, sender=creator)  # the owner cuts it in the meantime
        next_id = box.router.nextRequestId()
        with pytest.raises(box.router.Router_DisputeWindowTooShort) as refused:
            speech.submit(box.router, buyer, license, "Hello.", params, operator=idle.address, max_fee=OPERATOR_FEE)
        assert refused.value.inputs == {"window": 60, "minWindow": 3600}
        assert explain_revert(refused.value).startswith(
            "the model's dispute window (60 s) is now shorter than the 3600 s you asked for"
        )
        assert box.router.nextRequestId() == next_id

        license = speech.license_use(box.d.licenses, market["license"], buyer.address)
        with pytest.raises(SpeechError, match="dispute window of 60 s, shorter than the 120 s you ask for"):
            speech.submit(
                box.router,
                buyer,
                license,
                "Hello.",
                params,
                operator=idle.address,
                max_fee=OPERATOR_FEE,
                min_dispute_window=120,
            )
        submitted = speech.submit(
            box.router, buyer, license, "Hello.", params, operator=idle.address, max_fee=OPERATOR_FEE, ttl_s=5
        )
        assert vm.SynthesisParams.unpack(submitted.fields["params"]).min_dispute_window == 60
        assert submitted.fields["disputeWindow"] == 60

        result = say(
            market,
            chain,
            "Hello.",
            "--licence",
            str(market["license"]),
            "--operator",
            idle.address,
            "--min-dispute-window",
            "7200",
        )
        assert result.returncode == 1, output_of(result)
        assert "dispute window of 60 s, shorter than the 7200 s you ask for" in result.stderr, output_of(result)
    finally:
        registry.setDisputeWindow(model_id, 0, sender=creator)

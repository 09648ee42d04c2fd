"""The speech API end to end: the real `python -m oracle api` (uvicorn, its synth engine, Redis),
anvil, and the buyer's client (voicemarket.market.speech_api)."""

from __future__ import annotations

import json
import socket
import threading
import time
import wave
from urllib.parse import urlsplit

import httpx
import pytest

from api_helpers import DEPOSIT, FEE, USE_PRICE, buy, publish_ppu
from voicemarket import protocol
from voicemarket.market.channels import Voucher, channel_id, domain_separator, key_signer
from voicemarket.market.speech_api import ApiError, read_frames
from voicemarket.protocol import DAY, ETH, Tier

PER_USE = USE_PRICE + FEE


def test_stream_received_verified_and_redeemed_in_one_batch_with_the_exact_split(
    api_world, channels, tmp_path, accounts
):
    """Two buyers, two sentences each: the audio arrives as a stream of pieces and makes a WAV whose
    SHA-256 the operator signed; one redeem transaction then pays 4 x use price into the model's pot
    (split exactly as a router use) and 4 x fee to the operator, and counts 2 uses on each licence."""
    w = api_world
    a, b = w.buyers[0], w.buyers[1]
    pieces = []
    for buyer in (a, b):
        for i in range(2):
            out = tmp_path / f"{buyer.address[:8]}-{i}.wav"
            receipt = buyer.client.say(buyer.license_id, f"Line {i} of the script.", out=out, on_audio=pieces.append)
            assert receipt.uses == i + 1 and receipt.amount == (i + 1) * PER_USE
            with wave.open(str(out)) as wav:
                assert wav.getnframes() > 0 and wav.getframerate() == 32_000
    assert len(pieces) >= 8  # header + several audio pieces per stream
    model = w.voice.model_id
    pot_before = tuple(channels.potOf(model, ETH))
    credit_before = channels.creditOf(w.operator, ETH)
    summary = w.redeemer().redeem_once()
    assert [(s["vouchers"], s["redeemed"], s["skipped"]) for s in summary] == [(2, 2, [])]
    price = 4 * USE_PRICE
    pot = tuple(channels.potOf(model, ETH))
    assert (pot[0] - pot_before[0], pot[1] - pot_before[1]) == (price - price // 5, price // 5)
    assert channels.creditOf(w.operator, ETH) - credit_before == 4 * FEE
    for buyer in (a, b):
        cid = channel_id(buyer.address, w.operator.address, ETH)
        assert tuple(channels.channel(cid)) == (DEPOSIT - 2 * PER_USE, 0)
        assert w.sandbox.d.licenses.license(buyer.license_id).used == 2
    creator = accounts[1]
    channels.distribute(model, ETH, sender=creator)
    assert protocol.split_revenue(pot[0], creator.address, []) == {creator.address: pot[0]}  # no other payee
    assert channels.creditOf(creator, ETH) == pot[0]
    assert channels.platformBalance(ETH) == pot[1]
    assert w.redeemer().redeem_once() == []  # nothing is redeemed twice


def test_bad_vouchers_are_refused_before_any_synthesis(api_world):
    """Forged, cross-channel, underpaid, over-spent, stale and replayed vouchers: 4xx with what to do."""
    w = api_world
    buyer, mallory = w.buyers[2], w.buyers[3]
    client = buyer.client
    client.sign_in()
    info = client.info
    domain = domain_separator(info["channels"], int(info["chain_id"]))

    def send(voucher: Voucher, *, signer=None, text="Hello.") -> httpx.Response:  # noqa: ANN001
        signed = voucher.signed(domain, key_signer(str((signer or buyer.account).private_key)))
        body = {
            "license_id": buyer.license_id,
            "text": text,
            "language": "en",
            "voucher": {
                "asset": ETH,
                "amount": str(signed.amount),
                "uses": signed.uses,
                "signature": "0x" + signed.signature.hex(),
            },
        }
        return client.http.post("/v1/speech", json=body, headers=client._auth())

    def voucher(amount: int, uses: int, operator: str | None = None) -> Voucher:
        return Voucher(
            buyer.address, operator or w.operator.address, ETH, buyer.license_id, w.voice.model_id, amount, uses
        )

    def refused(response: httpx.Response, status: int, code: str) -> str:
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code, error
        return error["message"]

    refused(send(voucher(PER_USE, 1), signer=mallory.account), 402, "bad_voucher")  # forged
    refused(send(voucher(PER_USE, 1, operator=mallory.address)), 402, "bad_voucher")  # another channel
    assert "sign amount" in refused(send(voucher(PER_USE - 1, 1)), 402, "underpaid")
    assert "top it up" in refused(send(voucher(DEPOSIT + 1, 1)), 402, "insufficient_deposit")
    refused(send(voucher(PER_USE, 1), text="x" * 201), 400, "text_too_long")
    assert client.channel()["lanes"] == {}  # nothing accepted, nothing served
    good = voucher(PER_USE, 1)
    response = send(good)
    assert response.status_code == 200
    frames = list(read_frames(iter([response.content])))
    assert frames[-1][0] == b"R"
    refused(send(good), 402, "voucher_spent")  # replayed
    refused(send(voucher(PER_USE - 1, 1)), 409, "stale_voucher")
    lane = client.channel()["lanes"][str(buyer.license_id)]
    assert (lane["uses"], lane["served"], lane["amount"]) == (1, 1, str(PER_USE))


def test_sign_in_limits_and_errors(api_world):
    w = api_world
    buyer = w.buyers[4]
    r = httpx.post(w.url + "/v1/speech", json={})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    offer = httpx.get(w.url + "/v1/siwe/nonce").json()
    from datetime import UTC, datetime

    from voicemarket.market.speech_api import SiweMessage, personal_digest

    for domain, nonce in (("evil.example", offer["nonce"]), (offer["domain"], "unknownnonce1")):
        message = SiweMessage(
            domain, buyer.address, None, offer["uri"], offer["chain_id"], nonce, datetime.now(UTC)
        ).text()
        signature = key_signer(str(buyer.account.private_key))(personal_digest(message))
        r = httpx.post(w.url + "/v1/siwe/login", json={"message": message, "signature": "0x" + signature.hex()})
        assert r.status_code == 401 and r.json()["error"]["code"] == "bad_sign_in", r.text
    r = httpx.post(w.url + "/v1/siwe/login", json={"message": "hello", "signature": "0x" + "00" * 65})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_sign_in"
    token = buyer.client.sign_in()
    r = httpx.post(w.url + "/v1/speech", content=b"{not json", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_parameter"
    r = httpx.post(
        w.url + "/v1/speech",
        json={"license_id": buyer.license_id, "text": "a", "language": "xx", "voucher": {}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 400


def test_an_expired_licence_is_refused_before_any_synthesis(api_world, chain):
    """A one-hour subscription that lapsed: 403 before the voucher is even looked at."""
    w = api_world
    creator = w.sandbox.d.registry.ownerOf(w.voice.model_id)
    buyer = w.buyers[5]
    offer = publish_ppu(w.sandbox, w.voice, creator, tier=Tier.SUBSCRIPTION, price=10**12, period=3600)
    licence = buy(w.sandbox, offer, buyer.account, value=10**12)
    chain.pending_timestamp += 2 * 3600
    chain.mine()
    time.sleep(1.0)  # the API's licence answers live 0.5 s
    with pytest.raises(ApiError) as refused:
        buyer.client.say(licence, "Too late.", out=w.sandbox.root / "late.wav")
    assert refused.value.status == 403 and refused.value.code == "licence_refused"
    assert str(licence) not in buyer.client.channel()["lanes"]


def test_a_client_that_disconnects_is_charged_only_what_it_signed_and_reclaims_the_rest(api_world, channels, chain):
    """The buyer signs one use, reads the first piece of audio and hangs up (a stream left before any
    audio would give the use back): the operator can redeem
    that one voucher and nothing more; then the buyer asks for the rest and, after the delay, takes
    exactly the deposit less that use. The API refuses new vouchers on a closing channel."""
    w = api_world
    buyer = w.buyers[4]
    client = buyer.client
    voucher = client.next_voucher(buyer.license_id)
    body = {
        "license_id": buyer.license_id,
        "text": "A long line that the buyer will not wait for. " * 3,
        "language": "en",
        "voucher": {
            "asset": ETH,
            "amount": str(voucher.amount),
            "uses": voucher.uses,
            "signature": "0x" + voucher.signature.hex(),
        },
    }
    with client.http.stream("POST", "/v1/speech", json=body, headers=client._auth()) as response:
        assert response.status_code == 200
        for kind, payload in read_frames(response.iter_bytes()):
            assert kind == b"A"
            if not payload.startswith(b"RIFF"):  # the first piece of audio after the header
                break
    # hung up after the first audio: the stream is closed before its end
    summary = w.redeemer().redeem_once()  # (Ape's isolation undid earlier tests' redemptions: those lanes too)
    assert len(summary) == 1 and summary[0]["skipped"] == []
    cid = channel_id(buyer.address, w.operator.address, ETH)
    assert tuple(channels.redeemed(cid, buyer.license_id)) == (PER_USE, 1)
    channels.startWithdrawal(w.operator, ETH, sender=buyer.account)
    time.sleep(1.0)  # the API sees the WithdrawalStarted log
    with pytest.raises(ApiError) as refused:
        client.say(buyer.license_id, "One more?", out=w.sandbox.root / "closing.wav")
    assert refused.value.code == "channel_closing"
    chain.pending_timestamp += 2 * DAY
    before = buyer.account.balance
    receipt = channels.withdrawChannel(w.operator, ETH, sender=buyer.account)
    assert receipt.return_value == DEPOSIT - PER_USE
    assert buyer.account.balance == before + DEPOSIT - PER_USE - receipt.total_fees_paid


def test_a_slow_client_cannot_hold_the_api(api_world):
    """A client that sends half a body and stalls gets 408 after body_timeout_s, while another
    buyer's stream is served meanwhile."""
    w = api_world
    buyer = w.buyers[3]
    token = buyer.client.sign_in()
    host, port = urlsplit(w.url).hostname, urlsplit(w.url).port
    stalled = socket.create_connection((host, port))
    stalled.sendall(
        f"POST /v1/speech HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"license_id":'.encode()
    )
    served = []
    other = w.buyers[2]
    thread = threading.Thread(
        target=lambda: served.append(other.client.say(other.license_id, "Meanwhile.", out=w.sandbox.root / "m.wav"))
    )
    started = time.monotonic()
    thread.start()
    stalled.settimeout(10)
    answer = stalled.recv(4096).decode(errors="replace")
    waited = time.monotonic() - started
    stalled.settimeout(0.5)
    while not answer.rstrip().endswith("}"):
        try:
            more = stalled.recv(4096).decode(errors="replace")
        except TimeoutError:
            break
        if not more:
            break
        answer += more
    thread.join(30)
    stalled.close()
    assert " 408 " in answer.split("\r\n")[0], answer
    assert json.loads(answer.split("\r\n\r\n", 1)[1])["error"]["code"] == "body_timeout"
    assert 1.0 <= waited < 5.0
    assert served and served[0].uses >= 1


def test_concurrent_streams_share_the_gpt_decode_and_each_is_the_audio_made_alone(api_world, tmp_path):
    """Three buyers at once, four sentences each: their sentences are decoded in the voice's one GPT
    decode loop (the server's /v1/metrics counts them in), every stream
    ends with a receipt the client verified, and each is, byte for byte, the audio of the same
    request served alone (continuous batching changes no token and no sample)."""
    w = api_world
    buyers = w.buyers[6:9]
    text = "One line. Two lines here. Three lines. Four, the last."
    alone = buyers[0].client.say(buyers[0].license_id, text, out=tmp_path / "alone.wav")
    before = w.metrics()["voices"]
    receipts: dict[int, object] = {}
    barrier = threading.Barrier(len(buyers))

    def run(i: int) -> None:
        barrier.wait()
        buyer = buyers[i]
        receipts[i] = buyer.client.say(buyer.license_id, text, out=tmp_path / f"together-{i}.wav")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(buyers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(receipts) == [0, 1, 2]  # each stream complete, its receipt checked against the audio
    assert {r.audio_sha256 for r in receipts.values()} == {alone.audio_sha256}
    ((voice, after),) = w.metrics()["voices"].items()
    # Every sentence of the three streams went through the voice's one decode loop (4 each). Whether
    # two streams' sentences meet in one step depends on timing here (the tiny voice decodes a
    # sentence in milliseconds; on a quiet machine the three requests' checks can stagger them
    # apart): that rows of different submitters share steps and draw their own tokens is tested
    # deterministically in tests/synth/test_batching.py.
    assert after["admitted"] - before.get(voice, {}).get("admitted", 0) == 12, after
    assert after["running"] == 0 and after["admitted"] == after["finished"]


def test_ape_run_say_api_and_the_channel_commands_library(api_world, channels, tmp_path, capsys, chain):
    """`ape run say --api` (its function, in this process: the same code path after option parsing)
    writes the stream and keeps the receipt; `ape run channel`'s operations top up and close."""
    import importlib.util

    from voicemarket.market import channels as lib

    w = api_world
    buyer = w.buyers[5]
    spec = importlib.util.spec_from_file_location(
        "say_script", lib.__file__.replace("voicemarket/market/channels.py", "scripts/say.py")
    )
    say = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(say)
    out, receipts = tmp_path / "api.wav", tmp_path / "receipts.jsonl"
    say._say_via_api(w.url, buyer.account, buyer.license_id, "Hello from the command line.", "en", {}, out, receipts)
    printed = capsys.readouterr().out
    assert "first audio after" in printed and "receipt signed by" in printed
    kept = [json.loads(line) for line in receipts.read_text().splitlines()]
    assert len(kept) == 1 and kept[0]["uses"] == 1 and kept[0]["operator"] == w.operator.address
    with wave.open(str(out)) as wav:
        assert wav.getnframes() > 0
    lib.deposit(channels, buyer.account, w.operator.address, ETH, 10**15)
    state = lib.channel_state(channels, buyer.address, w.operator.address)
    assert state.balance == DEPOSIT + 10**15 and state.withdrawable_at == 0
    assert lib.close(channels, buyer.account, w.operator.address, ETH, chain.pending_timestamp)[0] == "asked"
    assert lib.close(channels, buyer.account, w.operator.address, ETH, chain.pending_timestamp)[0] == "waiting"


def test_a_voucher_that_reverts_the_batch_cannot_hold_the_other_lanes_money_back(api_world, channels, chain, tmp_path):
    """Attack: a buyer gets a voucher into the operator's book that pays less than its uses cost
    (1 wei for 3 uses; the API itself refuses it, but a term can change between acceptance and
    redemption, or a book can be written by an older API). `redeem` reverts the whole batch for it
    (Channels_PriceAboveAmount), so without care no lane's money would ever be redeemed again. The
    redeemer isolates it, sets it aside with the node's reason and redeems everyone else's."""
    from oracle.api.lanes import Lane

    w = api_world
    honest, mallory = w.buyers[7], w.buyers[8]
    honest.client.say(honest.license_id, "An honest line.", out=tmp_path / "honest.wav")
    redeemer = w.redeemer()
    bad = Voucher(mallory.address, w.operator.address, ETH, mallory.license_id, w.voice.model_id, 1, 3).signed(
        domain_separator(channels.address, chain.chain_id), key_signer(str(mallory.account.private_key))
    )
    mallory_channel = channel_id(mallory.address, w.operator.address, ETH)
    before = tuple(channels.redeemed(mallory_channel, mallory.license_id))
    redeemer.lanes.save(
        mallory_channel,
        mallory.license_id,
        Lane(mallory.address, ETH, w.voice.model_id, 1, 3, "0x" + bad.signature.hex(), served=3),
    )
    honest_channel = channel_id(honest.address, w.operator.address, ETH)
    summary = redeemer.redeem_once()
    assert sum(s["redeemed"] for s in summary) >= 1 and all(s["status"] == 1 for s in summary)
    assert tuple(channels.redeemed(honest_channel, honest.license_id))[1] >= 1  # the honest use is paid
    assert tuple(channels.redeemed(mallory_channel, mallory.license_id)) == before  # nothing of Mallory's
    ((key, reason),) = redeemer.refused.items()
    assert key == (mallory_channel, mallory.license_id, 1, 3) and "PriceAboveAmount" in reason
    assert redeemer.redeem_once() == []  # set aside: not tried again

"""`ape run fetch-model` and `ape run report-usage` on anvil, with a tiny sealed voice in a local store.

The creator is the key holder here and delivers by hand (``local_use.deliver_key``); the key
service that does it without anyone at a keyboard is tested in tests/oracle/test_key_delivery.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy

from conftest import fails, ok
from voicemarket.content.odrl import CONTRACT_FIELDS
from voicemarket.dev.sandbox import Sandbox, account_key
from voicemarket.errors import LocalUseError
from voicemarket.market import deployments
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.market.local_use import (
    LocalUse,
    UsageReport,
    buy_local_use,
    deliver_key,
    fetch_model,
    license_public_key,
    offer_local_use,
    sealed_key_id,
    submit_usage_reports,
)
from voicemarket.protocol import LocalUseStatus

LOCAL_ACTIVITY = ("local use bought", "key delivered", "usage reported", "local use settled", "local use refunded")

PRICE = 10**15


@pytest.fixture(scope="module")
def local(run, market, accounts, tmp_path_factory, chain, tiny_voice):
    """A tiny voice offered for local use, a licence with local use bought by account 5 (`local-use
    buy`) and delivered by hand by the creator, and one still waiting."""
    root = tmp_path_factory.mktemp("local-use")
    box = Sandbox(market, root)
    creator, buyer = accounts[1], accounts[5]
    voice = box.publish_voice(creator, [], files=tiny_voice, label="fetch-model voice")
    key_id = sealed_key_id(box.store, voice.model_id, market.registry)
    offer_local_use(market, voice.offer_id, PRICE, creator, key_id)  # `local-use offer`: in the deep test below
    licence = box.buy_license(buyer, voice)
    text = ok(run("local-use buy", str(licence), "--max-price", "0.001 ether", account=5))
    assert "a delivered key cannot be taken back" in text
    offers = ok(run("offers", hex(voice.model_id)))
    assert f"Offer {voice.offer_id} also sells local use for 0.001 ETH" in offers
    assert "a delivered key cannot be taken back" in offers
    waiting = box.buy_license(buyer, voice)
    key = BuyerKey.derive(buyer, chain.chain_id)
    buy_local_use(market, waiting, buyer, license_public_key(key.private_key, waiting), max_price=PRICE)
    deliver_key(market, box.store, licence, voice.keyring_cid, account_key(creator), creator)
    return box, voice, licence, waiting


def test_fetch_model_writes_the_voice_folder_and_says_how_to_speak(run, local, market, tmp_path, chain):
    box, _, licence, waiting = local
    store = f"local:{box.store.root}"
    text = ok(run("fetch-model", str(licence), "--out", str(tmp_path / "voice"), "--store", store, account=5))
    assert "SHA-256 of the bundle = the one the model id commits to" in text
    assert "python -m synth say --gpt" in text and str(tmp_path / "voice") in text
    manifest = json.loads((tmp_path / "voice" / "manifest.json").read_text())
    listed = {"manifest.json", "consent.json"} | {f["path"] for f in manifest["files"]}
    assert {p.name for p in (tmp_path / "voice").iterdir()} == listed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    # Another account's key opens nothing and leaves nothing behind.
    text = fails(run("fetch-model", str(licence), "--out", str(tmp_path / "theirs"), "--store", store, account=6))
    assert "is not the model's key" in text
    assert not (tmp_path / "theirs").exists()
    # The buyer's own dispute of a key that opens is refused before anything is sent.
    assert "nothing to dispute" in fails(run("local-use dispute", str(licence), "--store", store, account=5))
    # After the dispute window anyone settles; the creator's share is withdrawn with the others.
    chain.mine(timestamp=LocalUse.read(market.key_delivery, licence).deadline)
    assert "settled" in ok(run("local-use settle", str(licence), account=9))
    assert "local use (keys, refunds)" in ok(run("withdraw", account=1))
    # A licence still waiting for its key (the library the command calls):
    with pytest.raises(LocalUseError, match="wait for the key holder"):
        fetch_model(market, box.store, waiting, b"\x01" * 32, tmp_path / "early")


def test_report_usage_signed_and_submitted_then_seen_by_the_creator(run, local, market, chain, accounts, tmp_path):
    _, voice, licence, waiting = local
    start = chain.blocks.head.timestamp - 60
    args = ("--sentences", "12", "--seconds", "30", "--since", str(start))
    text = ok(run("report-usage", str(licence), *args, account=5))
    assert "12 sentences, 30 s of audio" in text and "self-reported" in text
    record = LocalUse.read(market.key_delivery, licence)
    assert record.status == LocalUseStatus.DELIVERED and record.reported_until > start
    usage = ok(run("local-use usage", hex(voice.model_id)))
    assert f"{licence} {accounts[5].address} 1 12 30" in usage and "self-reported" in usage
    # `earnings` shows the model's local use (one delivered, still in its dispute window, one waiting:
    # both prices in escrow) and the reports summed.
    report = ok(run("earnings", "--model", hex(voice.model_id)))
    assert "local use: 1 delivered, 1 pending; in escrow 0.002 ETH" in report
    assert "usage reported (self-reported): 1 reports, 12 sentences, 30 s of audio" in report
    # The market's index reads KeyDelivery's events too: purchases, the delivery and the report.
    db = f"sqlite:///{tmp_path / 'index.db'}"
    settings = {"db": db, "rpc_url": chain.provider.uri, "deployment": deployments.path_for(), "confirmations": 0}
    env = {**os.environ, **{f"VOICEMARKET_INDEX_{k.upper()}": str(v) for k, v in settings.items()}}
    command = [sys.executable, "-m", "voicemarket.index", "run", "--once"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    with sqlalchemy.create_engine(db).connect() as connection:
        rows = connection.execute(sqlalchemy.text("SELECT kind, license_id, data FROM activity")).all()
    local = [(kind, license_id) for kind, license_id, _ in rows if kind in LOCAL_ACTIVITY]
    assert sorted(local) == sorted(
        [
            ("local use bought", licence),
            ("key delivered", licence),
            ("usage reported", licence),
            ("local use bought", waiting),
        ]
    )
    (usage,) = [
        json.loads(data) if isinstance(data, str) else data for kind, _, data in rows if kind == "usage reported"
    ]
    assert (usage["sentences"], usage["audio_seconds"]) == (12, 30)
    # The same period again overlaps what is on-chain: refused before sending, saying why.
    with pytest.raises(LocalUseError, match="overlaps what was reported"):
        again = UsageReport(licence, start, start + 10, 1, 1)
        submit_usage_reports(market, [(again, b"")], accounts[9])


@pytest.mark.deep
def test_a_device_signs_offline_and_another_account_submits_and_the_owner_offers_by_command(
    run, local, market, chain, tmp_path
):
    box, voice, licence, _ = local
    chain.mine(timestamp=chain.blocks.head.timestamp + 120)
    signed = run("report-usage", str(licence), "--sentences", "3", "--seconds", "4", "--sign-only", account=5)
    path = tmp_path / "reports.json"
    path.write_text(signed.output)
    assert json.loads(path.read_text())[0]["report"]["sentences"] == 3
    assert "3 sentences, 4 s of audio" in ok(run("report-usage", "--submit", str(path), account=9))
    terms = market.licenses.offer(voice.offer_id).terms
    offer = (
        market.offers.publishOffer(
            {**dict(zip(CONTRACT_FIELDS, terms, strict=True)), "policyHash": b"\x07" * 32},
            b"",
            sender=market.registry.ownerOf(voice.model_id),
        )
        .events.filter(market.offers.OfferPublished)[0]
        .offerId
    )
    store = f"local:{box.store.root}"
    text = ok(run("local-use offer", str(offer), "--price", "0.002 ether", "--store", store, account=1))
    assert "a delivered key cannot be taken back" in text

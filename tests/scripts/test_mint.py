"""`ape run mint`: one command from a model folder to a registered model with offers."""

from __future__ import annotations

import json

from conftest import fails
from voicemarket import protocol
from voicemarket.content.odrl import PolicySubject, parse_policy, policy_hash, terms_from_contract
from voicemarket.market.minting import consent_policy_hash, read_offers
from voicemarket.protocol import language_bits


def test_mint_registers_with_consent_and_publishes_the_offers(minted, market, accounts, operator, offers_file, chain):
    model_id = minted["model_id"]
    registry, licenses, router = market.registry, market.licenses, market.router
    # The id binds the bundle to its creator: nobody else can register under it.
    digest = bytes.fromhex(minted["record"]["bundleSha256"][2:])
    assert model_id == protocol.model_id(accounts[1].address, digest) == registry.modelIdOf(accounts[1].address, digest)
    info = registry.modelInfo(model_id)
    assert info.creator == accounts[1].address and info.voiceOwner == accounts[3].address and info.voiceOwnerBps == 1000
    assert info.languages == language_bits("en", "zh")
    creator, payees = registry.revenueSplit(model_id)
    assert creator == accounts[1].address and [tuple(p) for p in payees] == [
        (accounts[3].address, 1000),
        (accounts[4].address, 500),
    ]
    assert router.isOperatorAllowed(model_id, operator)
    # The voice owner signed the hash of exactly these terms (ModelRegistered carries it).
    registered = list(
        registry.ModelRegistered.range(0, chain.blocks.head.number + 1, search_topics={"modelId": model_id})
    )
    expected = consent_policy_hash(read_offers(offers_file, market), chain.chain_id)
    assert bytes(registered[0].policyHash) == expected == bytes.fromhex(minted["record"]["consentPolicyHash"][2:])
    assert bytes(registered[0].bundleDigest) == digest
    # Each offer's policyHash is the hash of its ODRL document, which the store holds.
    from voicemarket.market.minting import open_store

    store = open_store()
    assert set(minted["offers"]) == {"subscription", "pay-per-use", "buyout"}
    for record in minted["record"]["offers"]:
        stored = licenses.offer(record["offerId"])
        terms, onchain_model, hash_ = terms_from_contract(stored.terms)
        document = store.get_bytes(record["policyCid"])
        assert policy_hash(json.loads(document)) == hash_ == bytes.fromhex(record["policyHash"][2:])
        parsed_terms, subject = parse_policy(document)
        assert subject == PolicySubject(chain.chain_id, registry.address, accounts[1].address, model_id)
        assert onchain_model == model_id and parsed_terms.price == terms.price
    assert "model id" in minted["output"] and minted["record"]["keyringCid"] in minted["output"]


def test_the_public_preview_is_spoken_by_the_model_not_the_reference(minted, model_folder):
    """voice.yaml names no preview: the model said the default text; that clip (kept in the folder for the next
    mint) is what the store publishes, and it is short and holds nothing of the reference clip."""
    from voicemarket.content.previews import check_preview
    from voicemarket.market.minting import DEFAULT_PREVIEW_TEXTS, open_store

    assert f"Public preview: the model says {DEFAULT_PREVIEW_TEXTS['en']!r} (en)" in minted["output"]
    (spoken,) = model_folder.glob("preview-*.wav")
    published = open_store().get_bytes(minted["record"]["previewCid"])
    assert published == spoken.read_bytes() != (model_folder / "reference.wav").read_bytes()
    assert published[:4] == b"RIFF" and 1 <= check_preview(spoken, [model_folder / "reference.wav"]) <= 15


def test_minting_with_the_reference_as_preview_is_refused(
    run, market, operator, offers_file, model_folder, accounts, tmp_path
):
    """The old default: the reference clip as the public preview would let anyone clone the voice zero-shot."""
    from voicemarket.dev.sandbox import REFERENCE_TEXT
    from voicemarket.market.minting import write_model_folder

    folder = write_model_folder(
        tmp_path / "leaky",
        name="Leaky",
        languages=["en"],
        gpt=model_folder / "gpt.ckpt",
        sovits=model_folder / "sovits.pth",
        reference_audio=model_folder / "reference.wav",
        reference_text=REFERENCE_TEXT,
        preview=model_folder / "reference.wav",
    )
    before = market.registry.balanceOf(accounts[1])
    out = fails(run("mint", str(folder), "--offers", str(offers_file), "--operator", operator.address, account=1))
    assert "the preview preview.wav is the recording reference.wav" in out
    assert "a zero-shot model needs to clone it" in out and "synthesise the preview with your model" in out
    assert market.registry.balanceOf(accounts[1]) == before  # nothing registered


def test_the_sealed_bundle_opens_for_the_operator_only(minted, market, operator, accounts, tmp_path):
    import pytest

    from voicemarket.content.sealed_bundle import RegisteredModel, open_bundle
    from voicemarket.dev.sandbox import account_key
    from voicemarket.errors import DecryptionError, IntegrityError
    from voicemarket.market.minting import open_store

    store, record = open_store(), minted["record"]
    registered = RegisteredModel(minted["model_id"], accounts[1].address)
    unpacked = open_bundle(
        store, record["bundleCid"], record["keyringCid"], account_key(operator), registered, tmp_path / "m"
    )
    assert unpacked.manifest.name == "Ada" and unpacked.consent["policyHash"] == record["consentPolicyHash"]
    assert unpacked.manifest.creator == unpacked.consent["creator"] == accounts[1].address
    # The same id claimed for another creator does not match the bundle's digest.
    with pytest.raises(IntegrityError, match=f"with creator {accounts[4].address} gives model id"):
        open_bundle(
            store,
            record["bundleCid"],
            record["keyringCid"],
            account_key(operator),
            RegisteredModel(minted["model_id"], accounts[4].address),
            tmp_path / "w",
        )
    assert not (tmp_path / "w").exists()
    digest = bytes.fromhex(record["bundleSha256"][2:])
    try:
        open_bundle(store, record["bundleCid"], record["keyringCid"], account_key(accounts[7]), digest, tmp_path / "x")
    except DecryptionError:
        pass
    else:
        raise AssertionError("a non-recipient opened the bundle")


def test_minting_the_same_bundle_again_says_it_is_registered(
    run, minted, model_folder, offers_file, operator, accounts
):
    out = fails(
        run(
            "mint",
            str(model_folder),
            "--offers",
            str(offers_file),
            "--operator",
            operator.address,
            "--voice-owner",
            "TEST::3",
            "--voice-owner-share",
            "10%",
            "--co-creator",
            f"{accounts[4].address}:500",
            account=1,
        )
    )
    assert f"{accounts[1].address} already registered this exact bundle as model {minted['model_id']:#066x}" in out
    assert "ape run offers" in out


def test_an_unregistered_operator_is_refused_before_sealing(run, market, model_folder, offers_file, accounts):
    out = fails(
        run("mint", str(model_folder), "--offers", str(offers_file), "--operator", accounts[9].address, account=1)
    )
    assert f"{accounts[9].address} is not a registered operator" in out and "ape run operator register" in out


def test_a_bad_offers_file_names_the_offer_and_key(run, market, model_folder, operator, tmp_path):
    bad = tmp_path / "offers.yaml"
    bad.write_text("offers:\n  - tier: subscription\n    price: 0.01 ether\n")
    out = fails(run("mint", str(model_folder), "--offers", str(bad), "--operator", operator.address, account=1))
    assert "offer 1" in out and "Subscription needs a period" in out
    bad.write_text("offers:\n  - tier: rental\n    price: 1\n")
    assert "unknown tier 'rental': use one of buyout, subscription, pay-per-use" in fails(
        run("mint", str(model_folder), "--offers", str(bad), "--operator", operator.address, account=1)
    )


def test_a_subscription_period_longer_than_the_retirement_notice_is_refused_before_sealing(
    run, market, model_folder, operator, accounts, tmp_path
):
    """Subscription time is never sold further ahead than the notice (45 days here): a 45-day period plus
    its one-day renewal lead cannot be offered (the offer book would revert Licensing_PeriodAboveNotice)."""
    offers = tmp_path / "offers.yaml"
    offers.write_text("offers:\n  - tier: subscription\n    price: 0.01 ether\n    period: 45 days\n")
    before = market.registry.balanceOf(accounts[1])
    out = fails(run("mint", str(model_folder), "--offers", str(offers), "--operator", operator.address, account=1))
    assert "offer 1: a subscription period of 45 days (plus its 1 day renewal lead)" in out
    assert "retirement notice of 45 days: choose a shorter period" in out
    assert market.registry.balanceOf(accounts[1]) == before  # nothing registered

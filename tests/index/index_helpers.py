"""A small market for the index tests, built through Ape on the session's anvil, and the helpers
that run the real indexer and API processes against it.

The market (accounts: 0 deploys and arbitrates, 1 and 2 create, 5..7 buy, 8 operates):

=====  ==========================  =====  =======  ==============================================
model  name                        langs  creator  offers
=====  ==========================  =====  =======  ==============================================
ada    Ada, calm narrator          en zh  1        subscription 0.01 ETH / 30 days; pay-per-use
                                                   0.05 mUSD packs of 10
mei    Mei, Cantonese storyteller  yue    2        subscription 5 mUSD / 30 days; buyout 0.5 ETH;
                                                   a buyout whose policy hash does not match
kenji  Kenji, Japanese announcer   ja     1        subscription 20 mUSD / 30 days; retired
minji  Minji, Korean podcaster     ko     2        subscription 3 mUSD / 7 days; frozen
ada2   Ada v2 (version of ada)     en     1        buyout 1 ETH
four   hostile metadata            en     2        not JSON / too large / a JSON list / not in the store
=====  ==========================  =====  =======  ==============================================

Licences: 5 buys ada's subscription and a pack; 6 buys mei's subscription (mUSD); 7 buys mei's
buyout. Requests: 3 on ada (2 fulfilled and settled at once, 1 failed), 1 on mei (pending). Ada's
ETH pot is distributed (payouts to creator 1 and voice owner 3, 10%).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

from voicemarket.content.metadata import metadata_bytes
from voicemarket.content.multiformats import CID, RAW
from voicemarket.content.odrl import OfferTerms, PolicySubject, build_policy, contract_offer_terms, policy_hash
from voicemarket.content.store import LocalStore
from voicemarket.market import chain as vm
from voicemarket.protocol import DAY as DAY_S
from voicemarket.protocol import ETH, Action, FailReason, Language, Tier, language_bits, model_id

ROOT = Path(__file__).resolve().parents[2]
MUSD = 10**6  # the mock stablecoin has 6 decimals
ETHER = 10**18
FEE = 10**14
MAX_METADATA_BYTES = 4_096
LATE_METADATA = metadata_bytes({"name": "Late", "description": "Metadata that reached the store late."})


@dataclass
class SmallMarket:
    """What the tests need to know about the market they index."""

    deployment: Any
    deployment_file: Path
    store_root: Path
    start_block: int
    models: dict[str, int] = field(default_factory=dict)  # label -> model id
    offers: dict[str, int] = field(default_factory=dict)  # label -> offer id
    licenses: dict[str, int] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)

    def key(self, label: str) -> str:
        return f"0x{self.models[label]:064x}"


def _metadata(name: str, description: str, languages: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "animation_url": "ipfs://bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
        "attributes": [
            {"trait_type": "Languages", "value": ", ".join(languages)},
            {"trait_type": "Architecture", "value": "GPT-SoVITS v2"},
            {"trait_type": "Version", "value": "1.0.0"},
        ],
        "properties": {"languages": languages},
    }


def build_market(accounts, chain, project, root: Path) -> SmallMarket:  # noqa: ANN001 - Ape fixtures
    """Deploy and fill the market described in the module docstring."""
    deployer, creator_a, creator_b, voice, _, buyer5, buyer6, buyer7, operator = (accounts[i] for i in range(9))
    start = chain.blocks.head.number
    d = vm.deploy(deployer, stablecoin="mock", project=project)
    store = LocalStore(root / "store")
    deployment_file = root / "deployment.json"
    deployment_file.write_text(
        json.dumps({"chainId": chain.chain_id, "startBlock": start, "contracts": d.addresses}, indent=2)
    )
    market = SmallMarket(d, deployment_file, store.root, start)
    market.accounts = {
        "creator_a": creator_a.address,
        "creator_b": creator_b.address,
        "voice": voice.address,
        "buyer5": buyer5.address,
        "buyer6": buyer6.address,
        "buyer7": buyer7.address,
        "operator": operator.address,
    }

    def register(label: str, creator, languages: list[str], document: bytes | None, **extra) -> int:  # noqa: ANN001
        # None: the CID of LATE_METADATA, which the store does not hold (yet)
        metadata_cid = (
            store.put_bytes(document) if document is not None else CID(1, RAW, sha256(LATE_METADATA).digest())
        )
        digest = hashlib.sha256(label.encode()).digest()
        registration = vm.model_registration(
            bundle_digest=digest,
            bundle_cid=metadata_cid,
            metadata_cid=metadata_cid,
            languages=language_bits(*languages),
            voice_owner=extra.pop("voice_owner", creator.address),
            policy_hash=hashlib.sha256(f"policy {label}".encode()).digest(),
            **extra,
        )
        d.registry.registerModel(registration, sender=creator)
        market.models[label] = model_id(creator.address, digest)
        return market.models[label]

    def offer(label: str, model: str, owner, tier: Tier, price: int, *, asset: str = ETH, bad_hash=False, **terms):  # noqa: ANN001
        mid = market.models[model]
        offer_terms = OfferTerms(tier=tier, price=price, asset=asset, permissions=int(Action.TEXT_TO_SPEECH), **terms)
        digest = policy_hash(
            build_policy(offer_terms, PolicySubject(chain.chain_id, d.registry.address, owner.address, mid))
        )
        if bad_hash:
            digest = hashlib.sha256(b"not the document").digest()
        receipt = d.offers.publishOffer(contract_offer_terms(offer_terms, mid, digest), b"", sender=owner)
        market.offers[label] = int(receipt.events.filter(d.offers.OfferPublished)[0].offerId)

    def meta(name: str, description: str, languages: list[str]) -> bytes:
        return metadata_bytes(_metadata(name, description, languages))

    _consented(
        market,
        "ada",
        d,
        store,
        chain,
        creator_a,
        voice,
        meta("Ada", "A calm narrator voice for audiobooks.", ["en", "zh"]),
        ["en", "zh"],
        parent=0,
    )
    register("mei", creator_b, ["yue"], meta("Mei", "A Cantonese storyteller, warm and lively.", ["yue"]))
    register("kenji", creator_a, ["ja"], meta("Kenji", "A Japanese station announcer.", ["ja"]))
    register("minji", creator_b, ["ko"], meta("Minji", "A Korean podcaster.", ["ko"]))
    _consented(
        market,
        "ada2",
        d,
        store,
        chain,
        creator_a,
        voice,
        meta("Ada v2", "A calm narrator voice, second version.", ["en"]),
        ["en"],
        parent=market.models["ada"],
    )
    register("notjson", creator_b, ["en"], b"\xff\xfe not json at all")
    register("toolarge", creator_b, ["en"], metadata_bytes({"name": "Huge", "description": "x" * 10_000}))
    register("list", creator_b, ["en"], b"[1, 2, 3]")
    register("missing", creator_b, ["en"], None)

    usd = d.stablecoin.address
    offer("ada-sub", "ada", creator_a, Tier.SUBSCRIPTION, ETHER // 100, period=30 * DAY_S)
    offer("ada-ppu", "ada", creator_a, Tier.PAY_PER_USE, 5 * MUSD // 100, asset=usd, pack_size=10)
    offer("mei-sub", "mei", creator_b, Tier.SUBSCRIPTION, 5 * MUSD, asset=usd, period=30 * DAY_S)
    offer("mei-buyout", "mei", creator_b, Tier.BUYOUT, ETHER // 2)
    offer("mei-badhash", "mei", creator_b, Tier.BUYOUT, ETHER, bad_hash=True)
    offer("kenji-sub", "kenji", creator_a, Tier.SUBSCRIPTION, 20 * MUSD, asset=usd, period=30 * DAY_S)
    offer("minji-sub", "minji", creator_b, Tier.SUBSCRIPTION, 3 * MUSD, asset=usd, period=7 * DAY_S)
    offer("ada2-buyout", "ada2", creator_a, Tier.BUYOUT, ETHER)
    offer("notjson-buyout", "notjson", creator_b, Tier.BUYOUT, ETHER // 10)

    def buy(label: str, buyer, offer_label: str, cost: int, asset: str = ETH, quantity: int = 1) -> None:  # noqa: ANN001
        offer_id = market.offers[offer_label]
        if asset == ETH:
            receipt = d.licenses.buy(offer_id, cost, quantity, value=cost, sender=buyer)
        else:
            d.stablecoin.mint(buyer, cost, sender=buyer)
            d.stablecoin.approve(d.licenses, cost, sender=buyer)
            receipt = d.licenses.buy(offer_id, cost, quantity, sender=buyer)
        market.licenses[label] = int(receipt.events.filter(d.licenses.LicensePurchased)[0].licenseId)

    buy("ada-sub", buyer5, "ada-sub", ETHER // 100)
    buy("ada-pack", buyer5, "ada-ppu", 5 * MUSD // 10, asset=usd)
    buy("mei-sub", buyer6, "mei-sub", 5 * MUSD, asset=usd)
    buy("mei-buyout", buyer7, "mei-buyout", ETHER // 2)

    from voicemarket.dev.sandbox import public_key

    d.router.registerOperator(public_key(operator), value=d.router.minStake(), sender=operator)
    d.router.setFee(ETH, FEE, sender=operator)
    for label, creator in (("ada", creator_a), ("mei", creator_b)):
        d.router.setOperatorAllowed(market.models[label], operator, True, sender=creator)

    def request(label: str, buyer, model: str, license_label: str, language: Language = Language.EN) -> tuple:  # noqa: ANN001
        params = {
            "modelId": market.models[model],
            "licenseId": market.licenses[license_label],
            "operator": operator.address,
            "maxFee": FEE,
            "deadline": chain.pending_timestamp + 3_600,
            "params": vm.SynthesisParams(language).pack(),
            "inputHash": vm.input_hash(label),
            "input": vm.inline_input(label),
        }
        receipt = d.router.requestSynthesis(params, value=FEE, sender=buyer)
        log = receipt.events.filter(d.router.SynthesisRequested)[0]
        market.requests[label] = int(log.requestId)
        return vm.request_from_log(log)

    output = b"\x01\x55\x12\x20" + hashlib.sha256(b"audio").digest()
    for text in ("first", "second"):
        request_struct = request(text, buyer5, "ada", "ada-sub")
        d.router.fulfil(request_struct, hashlib.sha256(b"audio").digest(), output, sender=operator)
    failed = request("third", buyer5, "ada", "ada-sub")
    d.router.fail(failed, int(FailReason.TEXT_TOO_LONG), sender=operator)
    request("fourth", buyer7, "mei", "mei-buyout", Language.YUE)

    d.licenses.distribute(market.models["ada"], ETH, sender=creator_a)
    d.registry.retire(market.models["kenji"], sender=creator_a)
    d.registry.freeze(market.models["minji"], b"\x01" * 32, sender=deployer)
    return market


def _consented(market, label, d, store, chain, creator, voice, document, languages, parent) -> None:  # noqa: ANN001
    cid = store.put_bytes(document)
    digest = hashlib.sha256(label.encode()).digest()
    policy = hashlib.sha256(f"policy {label}".encode()).digest()
    deadline = chain.pending_timestamp + DAY_S
    signature = vm.sign_consent(
        voice,
        d.registry,
        bundle_digest=digest,
        creator=creator.address,
        policy_hash=policy,
        voice_owner_bps=1_000,
        deadline=deadline,
    )
    registration = vm.model_registration(
        bundle_digest=digest,
        bundle_cid=cid,
        metadata_cid=cid,
        languages=language_bits(*languages),
        voice_owner=voice.address,
        voice_owner_bps=1_000,
        policy_hash=policy,
        consent_deadline=deadline,
        consent_signature=signature,
        parent_id=parent,
    )
    d.registry.registerModel(registration, sender=creator)
    market.models[label] = model_id(creator.address, digest)


# ---------------------------------------------------------------- the real processes


def index_env(**settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMARKET_INDEX_")}
    env.update({f"VOICEMARKET_INDEX_{k.upper()}": str(v) for k, v in settings.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def index_settings(market: SmallMarket, db: str, rpc_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "db": db,
        "rpc_url": rpc_url,
        "deployment": market.deployment_file,
        "store": f"local:{market.store_root}",
        "confirmations": 0,
        "poll_interval_s": 0.1,
        "metadata_max_bytes": MAX_METADATA_BYTES,
        "metadata_retry_s": 3_600,
        **overrides,
    }


def run_once(settings: dict[str, Any], timeout: float = 60) -> str:
    """``python -m voicemarket.index run --once`` as a child process; returns its log."""
    result = subprocess.run(
        [sys.executable, "-m", "voicemarket.index", "run", "--once"],
        env=index_env(**settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, f"the indexer failed ({result.returncode}):\n{result.stderr}"
    return result.stderr


def dump_tables(url: str, *, skip: tuple[str, ...] = ("journal", "blocks")) -> dict[str, list[tuple]]:
    """Every index table's rows, sorted (for comparing two databases), from SQLite or PostgreSQL."""
    from sqlalchemy import select

    from voicemarket.index import db, schema

    engine = db.open_engine(url)
    out = {}
    with engine.connect() as connection:
        for table in schema.metadata.sorted_tables:
            if table.name in skip:
                continue
            columns = [c for c in table.columns if c.name not in ("next_attempt_at",)]
            rows = connection.execute(select(*columns)).all()
            out[table.name] = sorted(tuple(json.dumps(v, sort_keys=True, default=str) for v in row) for row in rows)
    engine.dispose()
    return out

"""Helpers of the speech API tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import httpx

from oracle.settings import load_settings
from voicemarket.content.odrl import OfferTerms, contract_offer_terms
from voicemarket.dev.sandbox import PublishedVoice, Sandbox
from voicemarket.dev.services import ManagedProcess
from voicemarket.market.channels import key_signer
from voicemarket.market.speech_api import SpeechClient
from voicemarket.protocol import ETH, Action, Tier

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_INDEX = 2
USE_PRICE = 10**15
FEE = 10**14  # the sandbox's operator fee
DEPOSIT = 10**17
BUYERS = 9  # one per test that needs a fresh lane (three for the concurrent streams)


@dataclass
class Buyer:
    account: object
    license_id: int
    client: SpeechClient

    @property
    def address(self) -> str:
        return self.account.address


@dataclass
class ApiWorld:
    sandbox: Sandbox
    voice: PublishedVoice
    operator: object
    url: str
    env: dict
    process: ManagedProcess
    buyers: list[Buyer]
    ppu_offer: int

    def redeemer(self):  # noqa: ANN201 - the API's own redeemer class, on the API's Redis
        from oracle.api.chainview import ChainView
        from oracle.api.lanes import LaneBook
        from oracle.api.redeemer import Redeemer
        from oracle.api.settings import ApiSettings
        from oracle.keys import ape_test_key
        from oracle.runtime import namespace, redis_client

        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("ORACLE_")})
        try:
            settings = load_settings(None)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        key = ape_test_key(OPERATOR_INDEX)
        chain = ChainView(settings, ApiSettings(), key.address)
        return Redeemer(chain, LaneBook(redis_client(settings), namespace(settings)), key.private_key, 100)

    def metrics(self) -> dict:
        """The API's GET /v1/metrics: streams under way, and per voice what its decode loop did."""
        return httpx.get(self.url + "/v1/metrics", timeout=30).json()

    def client(self, account) -> SpeechClient:  # noqa: ANN001
        return SpeechClient(self.url, key_signer(str(account.private_key)), account.address, timeout=120)


def publish_ppu(sandbox: Sandbox, voice: PublishedVoice, creator, **terms) -> int:  # noqa: ANN001
    """A pay-per-use offer (no packs: each use pays USE_PRICE) unless ``terms`` say otherwise."""
    fields = {"tier": Tier.PAY_PER_USE, "price": USE_PRICE, "asset": ETH, "permissions": int(Action.TEXT_TO_SPEECH)}
    fields.update(terms)
    offer = contract_offer_terms(
        OfferTerms(**fields), voice.model_id, hashlib.sha256(repr(sorted(fields.items())).encode()).digest()
    )
    receipt = sandbox.d.offers.publishOffer(offer, b"", sender=creator)
    return receipt.events.filter(sandbox.d.offers.OfferPublished)[0].offerId


def buy(sandbox: Sandbox, offer_id: int, buyer, value: int = 0) -> int:  # noqa: ANN001
    receipt = sandbox.d.licenses.buy(offer_id, value, 1, value=value, sender=buyer)
    return receipt.events.filter(sandbox.d.licenses.LicensePurchased)[0].licenseId

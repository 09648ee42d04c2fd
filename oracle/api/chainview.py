"""What the speech API reads on-chain, with caches: licence terms (immutable: kept), licence
validity, operator allowance, model languages and channel balances (kept ``licence_cache_s``, and
dropped as soon as the licence manager, the registry, the router or the channels log anything:
a transfer, a renewal, a freeze, a deposit or a withdrawal request reaches the API within
``events_poll_s``)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError

from oracle.api.settings import ApiSettings
from oracle.router import load_abi
from oracle.settings import OracleSettings
from voicemarket.protocol import Action, Tier

log = logging.getLogger("oracle.api.chain")


@dataclass(frozen=True)
class LicenceTerms:
    """What a licence's (immutable) offer says that the API needs."""

    license_id: int
    model_id: int
    asset: str
    use_price: int  # paid into the model's split per use (pay-per-use without packs), else 0


class ChainView:
    def __init__(self, settings: OracleSettings, api: ApiSettings, operator: str) -> None:
        self.settings, self.api, self.operator = settings, api, operator
        self.w3 = Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": settings.rpc_timeout_s}))
        self.chain_id = int(self.w3.eth.chain_id)
        self.router = self._contract("ISynthesisRouter", settings.router)
        self.licenses = self._contract("ILicenseManager", self.router.functions.licenseManager().call())
        self.channels = self._contract("IPaymentChannels", self.licenses.functions.paymentChannels().call())
        self.registry = self._contract(
            "IVoiceModelRegistry", settings.registry or self.router.functions.registry().call()
        )
        self._terms: dict[int, LicenceTerms | None] = {}
        self._cache: dict[tuple, tuple[float, Any]] = {}
        self._lock = threading.Lock()
        self._last_block = int(self.w3.eth.block_number)
        self.watched = [self.licenses.address, self.registry.address, self.router.address, self.channels.address]

    def _contract(self, name: str, address: str):  # noqa: ANN202 - a web3 contract
        return self.w3.eth.contract(address=to_checksum_address(address), abi=load_abi(name))

    # ------------------------------------------------------------ caches
    def _cached(self, key: tuple, compute, ttl: float | None = None):  # noqa: ANN001, ANN202
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                return hit[1]
        value = compute()
        with self._lock:
            self._cache[key] = (now + (self.api.licence_cache_s if ttl is None else ttl), value)
        return value

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def poll_events(self) -> int:
        """Drop the caches if any watched contract logged something since the last poll; returns the
        number of logs seen."""
        head = int(self.w3.eth.block_number)
        if head <= self._last_block:
            return 0
        logs = self.w3.eth.get_logs({"address": self.watched, "fromBlock": self._last_block + 1, "toBlock": head})
        self._last_block = head
        if logs:
            self.forget()
        return len(logs)

    # ------------------------------------------------------------ licences
    def terms(self, license_id: int) -> LicenceTerms | None:
        """The licence's model, asset and use price; None if there is no such licence."""
        if license_id in self._terms:
            return self._terms[license_id]
        try:
            offer_id = self.licenses.functions.offerOf(license_id).call()
        except ContractLogicError:
            return None  # unknown (or burnt) licence: not cached, it may be minted later
        t = self.licenses.functions.offer(offer_id).call()[0]
        model_id, tier, asset, price, pack_size = t[0], Tier(t[1]), to_checksum_address(t[2]), int(t[3]), int(t[6])
        use_price = price if tier == Tier.PAY_PER_USE and pack_size == 0 else 0
        terms = LicenceTerms(license_id, int(model_id), asset, use_price)
        self._terms[license_id] = terms
        return terms

    def licensed(self, license_id: int, buyer: str, model_id: int) -> tuple[bool, int]:
        """``isLicensed(licence, buyer, model, TEXT_TO_SPEECH)``: (valid now, uses left)."""

        def ask() -> tuple[bool, int]:
            ok, left = self.licenses.functions.isLicensed(
                license_id, buyer, model_id, int(Action.TEXT_TO_SPEECH)
            ).call()
            return bool(ok), int(left)

        return self._cached(("licensed", license_id, buyer, model_id), ask)

    def operator_allowed(self, model_id: int) -> bool:
        """The model's owner allows this operator (for at least another minute)."""

        def ask() -> bool:
            until = self.router.functions.operatorAllowedUntil(model_id, self.operator).call()
            return int(until) > time.time() + 60

        return self._cached(("allowed", model_id), ask)

    def model_languages(self, model_id: int) -> int:
        return self._cached(
            ("languages", model_id), lambda: int(self.registry.functions.modelTerms(model_id).call()[3])
        )

    def fee(self, asset: str) -> int:
        if self.api.fee is not None:
            return self.api.fee
        return self._cached(("fee", asset), lambda: int(self.router.functions.operatorFee(self.operator, asset).call()))

    # ------------------------------------------------------------ channels
    def channel(self, channel: bytes) -> tuple[int, int]:
        """(balance, withdrawableAt) of a channel (withdrawableAt 0: not closing)."""
        return self._cached(
            ("channel", channel), lambda: tuple(map(int, self.channels.functions.channel(channel).call()))
        )

    def redeemed(self, channel: bytes, license_id: int) -> tuple[int, int]:
        """What the lane has redeemed on-chain: (amount, uses)."""
        return tuple(map(int, self.channels.functions.redeemed(channel, license_id).call()))

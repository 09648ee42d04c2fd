"""Property tests of the whole market (Contracts I and II) against a Python model of it.

A Hypothesis RuleBasedStateMachine drives random sequences of: publish / deactivate offers, buy
(each tier, ETH and a stablecoin), renew, cancel, transfer licences, retire, freeze / unfreeze,
pause / unpause, platform-fee changes, distribute, withdraw (accounts and the platform), requests
for speech, fulfil, fulfil in batches, fail, cancel after expiry, disputes and their resolution,
settlement, and operators registering, adding stake, unbonding and leaving; by random actors
with random amounts and random passages of time. Every action's outcome (success, or the custom
error among those the model allows) is predicted by the model, and after every step the model
and the chain must agree on every number:

1. conservation: for ETH and the stablecoin, each contract holds exactly the sum of its credits,
   revenue pots and platform balance, plus (router) the escrow of undecided requests and the
   operators' stakes;
2. nobody withdraws more than was credited to them, and every credit is withdrawable (each
   example ends by distributing every pot and withdrawing every credit: the contracts are left
   holding exactly the escrow and stakes);
3. a licence is valid exactly when it was bought, has not expired, is within its limits, its
   model is not frozen, and its model's retirement notice has not run out;
4. only the owner of a thing or the right role changes it (actions by anyone else revert);
5. the terms of a sold licence never change (offers are compared at the end of each example);
6. every request is in exactly one state the model expects (pending until fulfilled, failed or
   expired; refunds after the deadline work even while paused); a request pays out at most
   once; only allowed, staked operators deliver; uses consumed equal requests not refunded.

Profiles (tests/conftest.py): `ci` (default, 200 examples x 30 steps) and `audit`
(HYPOTHESIS_PROFILE=audit, 2,000 x 100).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from eth_abi import encode
from eth_utils import keccak
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from market_helpers import RawViews, Rpc, offer_terms, public_key

from voicemarket import chain as vm
from voicemarket.multiformats import CID, RAW
from web3.exceptions import ContractLogicError as Web3ContractLogicError

TTS = 1
BPS = 10_000
MAX_UINT = 2**256 - 1
MIN_STAKE = 10**17
SLASH = 3 * 10**16
NOTICE = 3_000
RENEWAL_LEAD = 86_400
OUT_CID = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
OUT_DIGEST = hashlib.sha256(b"wav").digest()
S = vm.RequestStatus
UNDECIDED = (S.PENDING, S.FULFILLED, S.DISPUTED)


# ---------------------------------------------------------------- the world every example starts from


@pytest.fixture(scope="module")
def world(deployment, actors, market, project, chain, usd):
    """Two models, two operators, funded buyers; reverted after this module (module isolation)."""
    d = deployment
    a = actors
    d.registry.setRetirementNotice(NOTICE, sender=a.deployer)
    d.router.setSlashAmount(SLASH, sender=a.deployer)
    m1 = market.register(creator=a.creator, voice_owner_bps=3_333, co_creators=[(a.co.address, 1_111)],
                         dispute_window=0, label="property model 1")
    m2 = market.register(creator=a.co, voice_owner_bps=2_500, dispute_window=600, label="property model 2")
    for op, fee_eth, fee_usd, models in ((a.operator, 10**14, 100, (m1, m2)), (a.keeper, 7 * 10**13, 0, (m1,))):
        d.router.registerOperator(public_key(op), value=MIN_STAKE, sender=op)
        d.router.setFee(vm.ETH, fee_eth, sender=op)
        d.router.setFee(usd, fee_usd, sender=op)
        for model in models:
            d.router.setOperatorAllowed(model, op, True, sender=d.registry.ownerOf(model))
    for buyer in (a.buyer, a.other):
        usd.mint(buyer, 10**15, sender=a.deployer)
        usd.approve(d.licenses, MAX_UINT, sender=buyer)
        usd.approve(d.router, MAX_UINT, sender=buyer)
    # Every example starts with one offer of each kind per model, and licences on most of them.
    kinds = [
        dict(tier=vm.Tier.BUYOUT, asset=vm.ETH, price=10**15 + 7, transferable=True),
        dict(tier=vm.Tier.SUBSCRIPTION, asset=usd.address, price=999_999, period=1_000, max_uses=2),
        dict(tier=vm.Tier.PAY_PER_USE, asset=vm.ETH, price=3 * 10**14 + 1),
        dict(tier=vm.Tier.PAY_PER_USE, asset=usd.address, price=50_001, pack_size=2, max_uses=6),
    ]
    offers = []
    for model in (m1, m2):
        for kind in kinds:
            terms = offer_terms(model, permissions=TTS | int(vm.Action.COMMERCIAL_USE), prohibitions=0, **kind)
            owner = d.registry.ownerOf(model)
            d.licenses.publishOffer(terms, b"", sender=owner)
            offers.append((d.licenses.nextOfferId() - 1, terms))
    licences = []
    for index, buyer in ((0, a.buyer), (1, a.buyer), (2, a.buyer), (3, a.other), (5, a.other), (6, a.other)):
        licences.append((market.buy(offers[index][0], buyer, quantity=2 if index == 3 else 1), index, buyer.address))
    # Pay the world's own sales out, so that each example's final drain covers only its own money.
    for model in (m1, m2):
        for asset in (vm.ETH, usd.address):
            if any(d.licenses.potOf(model, asset)):
                d.licenses.distribute(model, asset, sender=a.deployer)
    for account in (a.creator, a.voice, a.co):
        for asset in (vm.ETH, usd.address):
            if d.licenses.creditOf(account, asset):
                d.licenses.withdraw(asset, sender=account)
    for asset in (vm.ETH, usd.address):
        if d.licenses.platformBalance(asset):
            d.licenses.withdrawPlatformFees(asset, a.treasurer, sender=a.treasurer)
    lens = a.deployer.deploy(project.LedgerLens)
    w3 = chain.provider.web3

    def raw(contract):
        abi = [item.model_dump(mode="json", by_alias=True) for item in contract.contract_type.abi]
        return w3.eth.contract(address=contract.address, abi=abi)

    errors = {}
    for name in ("VoiceModelRegistry", "LicenseManager", "SynthesisRouter", "MockStablecoin"):
        for abi in getattr(project, name).contract_type.abi:
            if abi.type == "error":
                errors[keccak(text=abi.selector)[:4]] = abi.name
    # Speed only, for this module: web3 asks anvil for the chain id before every call and
    # requests scans the environment for proxies on every request; neither can change here.
    provider = w3.provider
    saved = (provider.cache_allowed_requests, provider.cacheable_requests)
    provider.cache_allowed_requests, provider.cacheable_requests = True, {"eth_chainId"}
    session = provider._request_session_manager.cache_and_return_session(provider.endpoint_uri)
    session.trust_env = False
    # The invariants' three LedgerLens reads after every step: raw eth_calls decoded by eth_abi.
    rpc = Rpc(provider.endpoint_uri)
    lens_abi = [item.model_dump(mode="json", by_alias=True) for item in lens.contract_type.abi]
    yield SimpleNamespace(d=d, a=a, usd=usd, lens=RawViews(rpc, lens.address, lens_abi), usd_raw=raw(usd),
                          offers_raw=raw(d.licenses), models=(m1, m2), offers=offers, licences=licences,
                          chain=chain, errors=errors, w3=w3)
    rpc.close()
    provider.cache_allowed_requests, provider.cacheable_requests = saved
    session.trust_env = True


# ---------------------------------------------------------------- the model


@dataclass
class ModelM:
    id: int
    owner: str
    creator: str
    payees: list[tuple[str, int]]
    window: int
    languages: int = 0b11
    frozen: bool = False
    service_ends: int = 0


@dataclass
class OfferM:
    id: int
    model: int
    tier: vm.Tier
    asset: str
    price: int
    period: int
    max_uses: int
    pack_size: int
    valid_until: int
    max_licenses: int
    permissions: int
    transferable: bool
    terms: tuple = ()
    active: bool = True
    sold: int = 0


@dataclass
class LicenceM:
    id: int
    offer: OfferM
    holder: str
    expires: int = 0
    anchor: int = 0
    used: int = 0
    period_start: int = 0
    limit: int = 0
    cancelled: bool = False
    consumed: int = 0  # requests made minus requests refunded (checked against `used` when lifetime)


@dataclass
class RequestM:
    struct: tuple
    licence: LicenceM
    status: S = S.PENDING
    settle_after: int = 0

    def get(self, name: str):
        return self.struct[vm.REQUEST_FIELDS.index(name)]

    @property
    def id(self) -> int:
        return self.struct[0]


@dataclass
class OperatorM:
    address: str
    stake: int = MIN_STAKE
    unbonding_ends: int = 0
    open_disputes: int = 0
    registered: bool = True
    fees: dict = field(default_factory=dict)


@dataclass
class LedgerM:
    credits: dict = field(default_factory=dict)
    pots: dict = field(default_factory=dict)
    platform: dict = field(default_factory=dict)

    def credit(self, account: str, asset: str, amount: int) -> None:
        if amount:
            self.credits[(account, asset)] = self.credits.get((account, asset), 0) + amount

    def accrue(self, model: int, asset: str, amount: int, fee_bps: int) -> None:
        fee = amount * fee_bps // BPS
        share, platform = self.pots.get((model, asset), (0, 0))
        self.pots[(model, asset)] = (share + amount - fee, platform + fee)


REQUEST_TYPES = ("uint256", "uint256", "uint256", "address", "address", "address", "uint128", "uint128", "uint128",
                 "bytes32", "uint40", "uint32", "uint40", "uint16")


def error_name(exc: Web3ContractLogicError, errors: dict[bytes, str]) -> str:
    """The custom error's name from the revert data of an eth_call (or the revert message)."""
    data = exc.data if isinstance(exc.data, str) else ""
    if data.startswith("0x") and len(data) >= 10:
        return errors.get(bytes.fromhex(data[2:10]), data)
    return str(exc.message or exc)


# ---------------------------------------------------------------- the machine


def machine_for(w):
    d, a, usd = w.d, w.a, w.usd
    eth, dollar = vm.ETH, usd.address
    everyone = [a.deployer, a.creator, a.voice, a.buyer, a.operator, a.keeper, a.co, a.arbiter, a.treasurer, a.other]
    addresses = [x.address for x in everyone]
    by_address = {x.address: x for x in everyone}
    buyers = [a.buyer, a.other]
    op_accounts = [a.operator, a.keeper]

    class Market(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._isolation = w.chain.isolate()
            self._isolation.__enter__()
            self.now = w.chain.blocks.head.timestamp + 1
            self.head_time = self.now - 1
            self.next_offer = d.licenses.nextOfferId()
            self.next_licence = d.licenses.nextLicenseId()
            self.next_request = d.router.nextRequestId()
            m1, m2 = w.models
            self.models = {
                m1: ModelM(m1, a.creator.address, a.creator.address,
                           [(a.voice.address, 3_333), (a.co.address, 1_111)], 0),
                m2: ModelM(m2, a.co.address, a.co.address, [(a.voice.address, 2_500)], 600),
            }
            self.offers: list[OfferM] = []
            for offer_id, t in w.offers:
                terms = (t["modelId"], t["tier"], t["asset"], t["price"], t["period"], t["maxUses"], t["packSize"],
                         t["validUntil"], t["maxLicenses"], t["permissions"], t["prohibitions"], t["attribution"],
                         t["transferable"], t["purposes"], t["policyHash"])
                self.offers.append(OfferM(offer_id, t["modelId"], vm.Tier(t["tier"]), t["asset"], t["price"],
                                          t["period"], t["maxUses"], t["packSize"], t["validUntil"],
                                          t["maxLicenses"], t["permissions"], t["transferable"], terms=terms))
            self.licences: list[LicenceM] = []
            for licence_id, index, holder in w.licences:
                record = w.offers_raw.functions.license(licence_id).call()
                offer = self.offers[index]
                offer.sold += 1
                self.licences.append(LicenceM(licence_id, offer, holder, expires=record[1], anchor=record[2],
                                              used=record[3], period_start=record[4], limit=record[5]))
            self.requests: list[RequestM] = []
            self.ops = {
                a.operator.address: OperatorM(a.operator.address, fees={eth: 10**14, dollar: 100}),
                a.keeper.address: OperatorM(a.keeper.address, fees={eth: 7 * 10**13, dollar: 0}),
            }
            self.allowed = {(m1, a.operator.address), (m2, a.operator.address), (m1, a.keeper.address)}
            self.ledgers = {"lm": LedgerM(), "rt": LedgerM()}  # the world paid its own sales out
            self.contracts = {"lm": d.licenses, "rt": d.router}
            self.paused = {"lm": False, "rt": False}
            self.fee_bps = 2_000
            self.credited_total: dict = {}
            self.withdrawn_total: dict = {}

        def teardown(self) -> None:
            try:
                self._drain()
                self._check_terms()
            finally:
                self._isolation.__exit__(None, None, None)

        # ------------------------------------------------------------ helpers


        def _send(self, fn, *args, sender, expected: set[str] = frozenset(), value: int = 0):
            """Runs `fn(*args)` from `sender` at the model's next second and checks the outcome.

            The call is simulated first (eth_call on the pending block, whose timestamp is set): a
            revert must be one the model expects, and is not sent. Otherwise the transaction is
            sent and must succeed; its receipt is returned.
            """
            self.now += 1
            w.w3.provider.make_request("evm_setNextBlockTimestamp", [self.now])
            tx = {"from": sender.address, "to": fn.contract.address, "data": fn.encode_input(*args), "value": value}
            try:
                w.w3.eth.call(tx, "pending")
            except Web3ContractLogicError as exc:
                name = error_name(exc, w.errors)
                assert expected, f"{fn.abis[0].name} reverted with {name} but the model expected success"
                assert name in expected, f"{fn.abis[0].name} reverted with {name}; expected one of {sorted(expected)}"
                return None
            assert not expected, f"{fn.abis[0].name} succeeded but the model expected one of {sorted(expected)}"
            tx_hash = w.w3.eth.send_transaction({**tx, "gas": 6_000_000, "maxFeePerGas": 10**10,
                                                 "maxPriorityFeePerGas": 0})
            receipt = w.w3.eth.wait_for_transaction_receipt(tx_hash)
            assert receipt.status == 1, f"{fn.abis[0].name} failed when mined after a successful simulation"
            self.head_time = self.now
            return receipt

        def _credit(self, ledger: str, account: str, asset: str, amount: int) -> None:
            self.ledgers[ledger].credit(account, asset, amount)
            key = (ledger, account, asset)
            self.credited_total[key] = self.credited_total.get(key, 0) + amount

        def _model_state_errors(self, model: ModelM, *, selling: bool) -> set[str]:
            errors = set()
            if model.frozen:
                errors.add("Licensing_ModelFrozen")
            if model.service_ends:
                if selling:
                    errors.add("Licensing_ModelRetired")
                elif self.now >= model.service_ends:
                    errors.add("Licensing_ServiceEnded")
            return errors

        def _quota(self, lic: LicenceM, t: int) -> tuple[int, int, int]:
            """(limit, used in the current quota period, tag) at time t."""
            o = lic.offer
            if o.tier == vm.Tier.SUBSCRIPTION:
                start = lic.anchor + ((t - lic.anchor) // o.period) * o.period
                return o.max_uses, (lic.used if lic.period_start == start else 0), start
            if o.tier == vm.Tier.PAY_PER_USE and o.pack_size:
                return lic.limit, lic.used, 0
            return o.max_uses, lic.used, 0

        def _licensed(self, lic: LicenceM, t: int) -> tuple[bool, int]:
            o, m = lic.offer, self.models[lic.offer.model]
            if not o.permissions & TTS or (o.valid_until and t > o.valid_until) or m.frozen:
                return False, 0
            if m.service_ends and t >= m.service_ends:
                return False, 0
            if o.tier == vm.Tier.SUBSCRIPTION and t >= lic.expires:
                return False, 0
            limit, used, _ = self._quota(lic, t)
            if limit == 0:
                return True, MAX_UINT
            return (False, 0) if used >= limit else (True, limit - used)

        def _escrow(self, r: RequestM) -> int:
            return r.get("usePrice") + r.get("fee")

        def _refund(self, r: RequestM) -> None:
            self._credit("rt", r.get("requester"), r.get("asset"), self._escrow(r))
            lic = r.licence
            lic.consumed -= 1
            if lic.used and lic.period_start == r.get("useTag"):
                lic.used -= 1

        def _pay_out(self, r: RequestM) -> None:
            self._credit("rt", r.get("operator"), r.get("asset"), r.get("fee"))
            if r.get("usePrice"):
                self.ledgers["rt"].accrue(r.get("modelId"), r.get("asset"), r.get("usePrice"), r.get("platformFeeBps"))

        # ------------------------------------------------------------ time and roles

        @rule(seconds=st.sampled_from([1, 30, 300, 700, 3_600, RENEWAL_LEAD, 20 * 86_400]))
        def advance_time(self, seconds):
            self.now += seconds

        @rule(which=st.sampled_from(["lm", "rt"]), pause=st.booleans(), actor=st.sampled_from([0, 0, 0, 9]))
        def pause_or_unpause(self, which, pause, actor):
            contract = self.contracts[which]
            expected = set()
            if actor != 0:
                expected.add("AccessControlUnauthorizedAccount")
            elif self.paused[which] == pause:
                expected.add("EnforcedPause" if pause else "ExpectedPause")
            fn = contract.pause if pause else contract.unpause
            if self._send(fn, sender=everyone[actor], expected=expected):
                self.paused[which] = pause

        @rule(bps=st.integers(0, 2_100), actor=st.sampled_from([0, 0, 1]))
        def set_platform_fee(self, bps, actor):
            expected = set()
            if actor != 0:
                expected.add("AccessControlUnauthorizedAccount")
            elif bps > 2_000:
                expected.add("Licensing_PlatformFeeTooHigh")
            if self._send(d.licenses.setPlatformFee, bps, sender=everyone[actor], expected=expected):
                self.fee_bps = bps

        @rule(index=st.integers(0, 1), freeze=st.booleans(), actor=st.sampled_from([7, 7, 7, 1]))
        def freeze_or_unfreeze(self, index, freeze, actor):
            model = self.models[w.models[index]]
            expected = set()
            if actor != 7:
                expected.add("AccessControlUnauthorizedAccount")
            elif model.frozen == freeze:
                expected.add("Registry_AlreadyFrozen" if freeze else "Registry_NotFrozen")
            fn = d.registry.freeze if freeze else d.registry.unfreeze
            args = (model.id, b"\x01" * 32) if freeze else (model.id,)
            if self._send(fn, *args, sender=everyone[actor], expected=expected):
                model.frozen = freeze

        @rule(index=st.integers(0, 1), actor=st.sampled_from([1, 6, 6, 9]))
        def retire(self, index, actor):
            model = self.models[w.models[index]]
            expected = set()
            if addresses[actor] != model.owner:
                expected.add("Registry_NotModelOwner")
            elif model.service_ends:
                expected.add("Registry_AlreadyRetired")
            if self._send(d.registry.retire, model.id, sender=everyone[actor], expected=expected):
                model.service_ends = self.now + NOTICE

        # ------------------------------------------------------------ offers and sales

        @rule(
            index=st.integers(0, 1), tier=st.sampled_from(list(vm.Tier)), in_usd=st.booleans(),
            price=st.integers(0, 10**6), period=st.sampled_from([100, 1_000, 5_000]), max_uses=st.integers(0, 3),
            pack_size=st.integers(0, 3), max_licenses=st.integers(0, 3), valid_for=st.sampled_from([0, 0, 2_000]),
            tts=st.sampled_from([True, True, True, False]), transferable=st.booleans(),
            by_owner=st.sampled_from([True, True, True, False]),
        )
        def publish_offer(self, index, tier, in_usd, price, period, max_uses, pack_size, max_licenses, valid_for, tts,
                          transferable, by_owner):
            model = self.models[w.models[index]]
            actor = model.owner if by_owner else a.other.address
            asset = dollar if in_usd else eth
            scaled = price if in_usd else price * 10**9
            permissions = (TTS if tts else 0) | int(vm.Action.COMMERCIAL_USE)
            terms = {
                "modelId": model.id, "tier": int(tier), "asset": asset, "price": scaled,
                "period": period if tier == vm.Tier.SUBSCRIPTION else 0, "maxUses": max_uses,
                "packSize": pack_size if tier == vm.Tier.PAY_PER_USE else 0,
                "validUntil": self.now + 1 + valid_for if valid_for else 0, "maxLicenses": max_licenses,
                "permissions": permissions, "prohibitions": 0, "attribution": True, "transferable": transferable,
                "purposes": 0, "policyHash": keccak(text=f"offer {len(self.offers)} {price}"),
            }
            expected = set()
            if actor != model.owner:
                expected.add("Licensing_NotModelOwner")
            if model.frozen:
                expected.add("Licensing_ModelFrozen")
            if model.service_ends:
                expected.add("Licensing_ModelRetired")
            receipt = self._send(d.licenses.publishOffer, terms, b"US", sender=by_address[actor], expected=expected)
            if receipt:
                offer_id = self.next_offer
                self.next_offer += 1
                self.offers.append(OfferM(
                    offer_id, model.id, tier, asset, scaled, terms["period"], max_uses, terms["packSize"],
                    terms["validUntil"], max_licenses, permissions, transferable, terms=tuple(terms.values())))

        @precondition(lambda self: self.offers)
        @rule(data=st.data(), by_owner=st.booleans())
        def deactivate_offer(self, data, by_owner):
            offer = data.draw(st.sampled_from(self.offers))
            owner = self.models[offer.model].owner
            actor = by_address[owner] if by_owner else a.other
            expected = set()
            if not by_owner:
                expected.add("Licensing_NotModelOwner")
            elif not offer.active:
                expected.add("Licensing_OfferInactive")
            if self._send(d.licenses.deactivateOffer, offer.id, sender=actor, expected=expected):
                offer.active = False

        @precondition(lambda self: self.offers)
        @rule(data=st.data(), buyer=st.sampled_from([0, 1]), quantity=st.integers(0, 3), short=st.booleans())
        def buy(self, data, buyer, quantity, short):
            offer = data.draw(st.sampled_from(self.offers))
            model = self.models[offer.model]
            account = buyers[buyer]
            expected = set()
            if self.paused["lm"]:
                expected.add("EnforcedPause")
            if not offer.active:
                expected.add("Licensing_OfferInactive")
            if offer.valid_until and self.now + 1 > offer.valid_until:
                expected.add("Licensing_OfferExpired")
            if offer.max_licenses and offer.sold >= offer.max_licenses:
                expected.add("Licensing_SoldOut")
            expected |= self._model_state_errors(model, selling=True)
            limit = 0
            if offer.tier == vm.Tier.SUBSCRIPTION:
                cost = offer.price * quantity
                if quantity == 0:
                    expected.add("Licensing_BadQuantity")
            elif offer.tier == vm.Tier.PAY_PER_USE and offer.pack_size:
                limit = quantity * offer.pack_size
                cost = offer.price * limit
                if quantity == 0:
                    expected.add("Licensing_BadQuantity")
                elif offer.max_uses and limit > offer.max_uses:
                    expected.add("Licensing_TooManyUses")
            else:
                cost = offer.price if offer.tier == vm.Tier.BUYOUT else 0
                if quantity != 1:
                    expected.add("Licensing_BadQuantity")
            max_price = cost - 1 if short and cost else cost
            if max_price < cost:
                expected.add("Licensing_PriceAboveMax")
            value = cost if offer.asset == eth else 0
            receipt = self._send(d.licenses.buy, offer.id, max_price, quantity, value=value, sender=account,
                                 expected=expected)
            if not receipt:
                return
            offer.sold += 1
            lic = LicenceM(self.next_licence, offer, account.address, limit=limit)
            self.next_licence += 1
            if offer.tier == vm.Tier.SUBSCRIPTION:
                lic.anchor, lic.expires = self.now, self.now + offer.period * quantity
            self.licences.append(lic)
            if cost:
                self.ledgers["lm"].accrue(model.id, offer.asset, cost, self.fee_bps)

        @precondition(lambda self: self.licences)
        @rule(data=st.data(), by_holder=st.booleans(), periods=st.integers(0, 2))
        def renew(self, data, by_holder, periods):
            lic = data.draw(st.sampled_from(self.licences))
            o, model = lic.offer, self.models[lic.offer.model]
            caller = by_address[lic.holder] if by_holder else a.keeper
            t = self.now + 1
            expected = set()
            if self.paused["lm"]:
                expected.add("EnforcedPause")
            if o.tier != vm.Tier.SUBSCRIPTION:
                expected.add("Licensing_NotSubscription")
            else:
                if periods == 0:
                    expected.add("Licensing_BadDuration")
                if not by_holder:
                    if lic.cancelled:
                        expected.add("Licensing_SubscriptionCancelled")
                    if periods > 1:
                        expected.add("Licensing_BadDuration")
                    if t + RENEWAL_LEAD < lic.expires:
                        expected.add("Licensing_RenewalNotDue")
                if o.valid_until and t > o.valid_until:
                    expected.add("Licensing_OfferExpired")
                expected |= self._model_state_errors(model, selling=True)
            duration = o.period * periods if o.tier == vm.Tier.SUBSCRIPTION else 1_000
            cost = o.price * periods
            value = cost if o.asset == eth else 0
            if not self._send(d.licenses.renewSubscription, lic.id, duration, value=value, sender=caller,
                              expected=expected):
                return
            if t >= lic.expires:
                lic.anchor, lic.used, lic.period_start, lic.expires = t, 0, 0, t + duration
            else:
                lic.expires += duration
            if by_holder:
                lic.cancelled = False
            if cost:
                self.ledgers["lm"].accrue(model.id, o.asset, cost, self.fee_bps)

        @precondition(lambda self: self.licences)
        @rule(data=st.data(), by_holder=st.booleans())
        def cancel_subscription(self, data, by_holder):
            lic = data.draw(st.sampled_from(self.licences))
            caller = by_address[lic.holder] if by_holder else a.keeper
            expected = set()
            if not by_holder:
                expected.add("Licensing_NotLicenseHolder")
            elif lic.offer.tier != vm.Tier.SUBSCRIPTION:
                expected.add("Licensing_NotSubscription")
            if self._send(d.licenses.cancelSubscription, lic.id, sender=caller, expected=expected):
                lic.cancelled = True

        @precondition(lambda self: self.licences)
        @rule(data=st.data())
        def transfer_licence(self, data):
            lic = data.draw(st.sampled_from(self.licences))
            to = a.other.address if lic.holder == a.buyer.address else a.buyer.address
            expected = set() if lic.offer.transferable else {"Licensing_NotTransferable"}
            if self._send(d.licenses.transferFrom, lic.holder, to, lic.id, sender=by_address[lic.holder],
                          expected=expected):
                lic.holder = to

        # ------------------------------------------------------------ revenue

        @rule(ledger=st.sampled_from(["lm", "rt"]), index=st.integers(0, 1), in_usd=st.booleans(),
              actor=st.integers(0, 9))
        def distribute(self, ledger, index, in_usd, actor):
            model = self.models[w.models[index]]
            asset = dollar if in_usd else eth
            share, platform = self.ledgers[ledger].pots.get((model.id, asset), (0, 0))
            expected = set() if share or platform else {"Ledger_NothingToDistribute"}
            if not self._send(self.contracts[ledger].distribute, model.id, asset, sender=everyone[actor],
                              expected=expected):
                return
            self._apply_distribution(ledger, model, asset)

        def _apply_distribution(self, ledger: str, model: ModelM, asset: str) -> None:
            share, platform = self.ledgers[ledger].pots.pop((model.id, asset))
            lm = self.ledgers[ledger]
            lm.platform[asset] = lm.platform.get(asset, 0) + platform
            rest = share
            for account, bps in model.payees:
                cut = share * bps // BPS
                rest -= cut
                self._credit(ledger, account, asset, cut)
            self._credit(ledger, model.creator, asset, rest)

        @rule(ledger=st.sampled_from(["lm", "rt"]), actor=st.integers(0, 9), in_usd=st.booleans())
        def withdraw(self, ledger, actor, in_usd):
            self._withdraw(ledger, everyone[actor], dollar if in_usd else eth)

        def _withdraw(self, ledger: str, account, asset: str) -> None:
            owed = self.ledgers[ledger].credits.get((account.address, asset), 0)
            before = self._holding(account.address, asset)
            expected = set() if owed else {"Ledger_NothingToWithdraw"}
            receipt = self._send(self.contracts[ledger].withdraw, asset, sender=account, expected=expected)
            if not receipt:
                return
            gas = receipt.gasUsed * receipt.effectiveGasPrice if asset == eth else 0
            assert self._holding(account.address, asset) - before + gas == owed, "withdrew other than the credit"
            del self.ledgers[ledger].credits[(account.address, asset)]
            key = (ledger, account.address, asset)
            self.withdrawn_total[key] = self.withdrawn_total.get(key, 0) + owed
            assert self.withdrawn_total[key] <= self.credited_total.get(key, 0), "withdrew more than credited"

        def _holding(self, address: str, asset: str) -> int:
            if asset == eth:
                return w.w3.eth.get_balance(address)
            return w.usd_raw.functions.balanceOf(address).call()

        @rule(ledger=st.sampled_from(["lm", "rt"]), in_usd=st.booleans(), actor=st.sampled_from([8, 8, 0]))
        def withdraw_platform_fees(self, ledger, in_usd, actor):
            asset = dollar if in_usd else eth
            owed = self.ledgers[ledger].platform.get(asset, 0)
            expected = set()
            if actor != 8:
                expected.add("AccessControlUnauthorizedAccount")
            elif not owed:
                expected.add("Ledger_NothingToWithdraw")
            if self._send(self.contracts[ledger].withdrawPlatformFees, asset, a.treasurer, sender=everyone[actor],
                          expected=expected):
                self.ledgers[ledger].platform[asset] = 0

        # ------------------------------------------------------------ requests

        @precondition(lambda self: self.licences)
        @rule(data=st.data(), by_holder=st.sampled_from([True] * 5 + [False]), op=st.integers(0, 1),
              deadline_in=st.sampled_from([20, 800]), fee_short=st.sampled_from([False] * 5 + [True]),
              language=st.sampled_from([vm.Language.ZH, vm.Language.EN] * 3 + [vm.Language.JA]))
        def request(self, data, by_holder, op, deadline_in, fee_short, language):
            lic = data.draw(st.sampled_from(self.licences))
            self._request(lic, by_holder, op, deadline_in, fee_short, language)

        def _request(self, lic: LicenceM, by_holder: bool, op: int, deadline_in: int, fee_short: bool,
                     language: vm.Language) -> RequestM | None:
            o, model = lic.offer, self.models[lic.offer.model]
            requester = by_address[lic.holder] if by_holder else a.creator
            operator = self.ops[op_accounts[op].address]
            t = self.now + 1
            expected = set()
            if self.paused["rt"]:
                expected.add("EnforcedPause")
            if not operator.registered:
                expected.add("Router_OperatorNotRegistered")
            else:
                if operator.unbonding_ends:
                    expected.add("Router_OperatorUnbonding")
                if operator.stake < MIN_STAKE:
                    expected.add("Router_StakeBelowMinimum")
                if (model.id, operator.address) not in self.allowed:
                    expected.add("Router_OperatorNotAllowed")
            if requester.address != lic.holder:
                expected.add("Licensing_NotLicenseHolder")
            if not o.permissions & TTS:
                expected.add("Licensing_ActionNotPermitted")
            expected |= self._model_state_errors(model, selling=False)
            if o.valid_until and t > o.valid_until:
                expected.add("Licensing_OfferExpired")
            if o.tier == vm.Tier.SUBSCRIPTION and t >= lic.expires:
                expected.add("Licensing_LicenseExpired")
            limit, used, tag = self._quota(lic, t)
            if limit and used >= limit:
                expected.add("Licensing_UsesExhausted")
            if not model.languages & (1 << language):
                expected.add("Router_LanguageNotSupported")
            fee = operator.fees.get(o.asset, 0)
            max_fee = fee - 1 if fee_short and fee else fee
            if max_fee < fee:
                expected.add("Router_FeeAboveMax")
            use_price = o.price if o.tier == vm.Tier.PAY_PER_USE and not o.pack_size else 0
            value = use_price + max_fee if o.asset == eth else 0
            params = {
                "modelId": model.id, "licenseId": lic.id, "operator": operator.address, "maxFee": max_fee,
                "deadline": t + deadline_in, "params": vm.SynthesisParams(language).pack(),
                "inputHash": vm.input_hash("hello"), "input": vm.inline_input("hello"),
            }
            receipt = self._send(d.router.requestSynthesis, params, value=value, sender=requester, expected=expected)
            if not receipt:
                return None
            struct = (self.next_request, model.id, lic.id, requester.address, operator.address, o.asset, use_price,
                      fee, params["params"], params["inputHash"], params["deadline"], model.window, tag, self.fee_bps)
            self.next_request += 1
            r = RequestM(struct, lic)
            if lic.offer.tier == vm.Tier.SUBSCRIPTION and lic.period_start != tag:
                lic.period_start, lic.used = tag, 0
            lic.used += 1
            lic.consumed += 1
            self.requests.append(r)
            return r

        @precondition(lambda self: self.licences)
        @rule(data=st.data(), outcome=st.sampled_from(["fulfil", "fail", "expire", "dispute", "pending"]),
              reason=st.sampled_from(list(vm.FailReason)))
        def request_and_decide(self, data, outcome, reason):
            """A request its operator can serve, then one outcome: the paths through the router."""
            usable = [lic for lic in self.licences if self._licensed(lic, self.now + 1)[0]] or self.licences
            lic = data.draw(st.sampled_from(usable))
            served = [i for i, x in enumerate(op_accounts) if (lic.offer.model, x.address) in self.allowed]
            r = self._request(lic, True, served[0] if served else 0, 800, False, vm.Language.EN)
            if r is None:
                return
            operator = by_address[r.get("operator")]
            if outcome in ("fulfil", "dispute"):
                self._fulfil(r, operator)
                if outcome == "dispute" and r.status == S.FULFILLED:
                    self._dispute(r, True)
                    if r.status == S.DISPUTED:
                        self._resolve(r, data.draw(st.booleans()), 7)
            elif outcome == "fail":
                self._fail(r, operator, reason)
            elif outcome == "expire":
                self.now += 800
                self._cancel(r, a.keeper)

        def _delivery_errors(self, r: RequestM, sender: str, t: int) -> set[str]:
            """Errors of fulfil for one request by `sender` (status and deadline aside)."""
            errors = set()
            if sender != r.get("operator"):
                errors.add("Router_NotAssignedOperator")
            if (r.get("modelId"), sender) not in self.allowed:
                errors.add("Router_OperatorNotAllowed")
            if self.models[r.get("modelId")].frozen:
                errors.add("Router_ModelFrozen")
            return errors

        def _staked_errors(self, sender: str) -> set[str]:
            op = self.ops.get(sender)
            if op is None or not op.registered:
                return {"Router_OperatorNotRegistered"}
            return {"Router_StakeBelowMinimum"} if op.stake < MIN_STAKE else set()

        def _deliver(self, r: RequestM, t: int) -> None:
            if r.get("disputeWindow") == 0:
                r.status, r.settle_after = S.SETTLED, t
                self._pay_out(r)
            else:
                r.status, r.settle_after = S.FULFILLED, t + r.get("disputeWindow")

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), op=st.sampled_from([None] * 4 + [0, 1, 2]))
        def fulfil(self, data, op):
            r = data.draw(st.sampled_from(self.requests))
            self._fulfil(r, by_address[r.get("operator")] if op is None else [a.operator, a.keeper, a.other][op])

        def _fulfil(self, r: RequestM, sender) -> None:
            t = self.now + 1
            expected = self._staked_errors(sender.address)
            if r.status != S.PENDING:
                expected.add("Router_WrongStatus")
            elif t > r.get("deadline"):
                expected.add("Router_RequestExpired")
            else:
                expected |= self._delivery_errors(r, sender.address, t)
            if self._send(d.router.fulfil, r.struct, OUT_DIGEST, OUT_CID, sender=sender, expected=expected):
                self._deliver(r, t)

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), op=st.integers(0, 1))
        def fulfil_batch(self, data, op):
            sender = op_accounts[op]
            batch = data.draw(st.lists(st.sampled_from(self.requests), min_size=1, max_size=4, unique_by=id))
            t = self.now + 1
            expected = self._staked_errors(sender.address)
            deliverable = [r for r in batch if r.status == S.PENDING and t <= r.get("deadline")]
            for r in deliverable:
                expected |= self._delivery_errors(r, sender.address, t)
            items = [(r.struct, OUT_DIGEST, OUT_CID) for r in batch]
            receipt = self._send(d.router.fulfilBatch, items, sender=sender, expected=expected)
            if not receipt:
                return
            topic = keccak(text="FulfilmentSkipped(uint256,uint8)")
            skipped = {int.from_bytes(log.topics[1], "big") for log in receipt.logs if log.topics[0] == topic}
            assert skipped == {r.id for r in batch} - {r.id for r in deliverable}
            for r in deliverable:
                self._deliver(r, t)

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), by_operator=st.sampled_from([True] * 4 + [False]),
              reason=st.sampled_from(list(vm.FailReason)))
        def fail(self, data, by_operator, reason):
            r = data.draw(st.sampled_from(self.requests))
            self._fail(r, by_address[r.get("operator")] if by_operator else a.other, reason)

        def _fail(self, r: RequestM, sender, reason: vm.FailReason) -> None:
            expected = set()
            if sender.address != r.get("operator"):
                expected.add("Router_NotAssignedOperator")
            elif r.status != S.PENDING:
                expected.add("Router_WrongStatus")
            elif self.now + 1 > r.get("deadline"):
                expected.add("Router_RequestExpired")
            if self._send(d.router.fail, r.struct, int(reason), sender=sender, expected=expected):
                r.status = S.FAILED
                self._refund(r)

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), actor=st.integers(0, 9))
        def cancel_expired(self, data, actor):
            self._cancel(data.draw(st.sampled_from(self.requests)), everyone[actor])

        def _cancel(self, r: RequestM, caller) -> None:
            expected = set()
            if r.status != S.PENDING:
                expected.add("Router_WrongStatus")
            elif self.now + 1 <= r.get("deadline"):
                expected.add("Router_NotExpired")
            if self._send(d.router.cancelExpired, r.struct, sender=caller, expected=expected):
                r.status = S.EXPIRED
                self._refund(r)

        @precondition(lambda self: any(r.status == S.FULFILLED for r in self.requests))
        @rule(data=st.data(), by_requester=st.booleans())
        def dispute(self, data, by_requester):
            r = data.draw(st.sampled_from([r for r in self.requests if r.status == S.FULFILLED]))
            self._dispute(r, by_requester)

        def _dispute(self, r: RequestM, by_requester: bool) -> None:
            sender = by_address[r.get("requester")] if by_requester else a.keeper
            expected = set()
            if not by_requester:
                expected.add("Router_NotRequester")
            elif self.now + 1 >= r.settle_after:
                expected.add("Router_DisputeWindowClosed")
            if self._send(d.router.dispute, r.struct, sender=sender, expected=expected):
                r.status = S.DISPUTED
                self.ops[r.get("operator")].open_disputes += 1

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), upheld=st.booleans(), actor=st.sampled_from([7, 7, 0]))
        def resolve_dispute(self, data, upheld, actor):
            disputed = [r for r in self.requests if r.status == S.DISPUTED]
            self._resolve(data.draw(st.sampled_from(disputed or self.requests)), upheld, actor)

        def _resolve(self, r: RequestM, upheld: bool, actor: int) -> None:
            expected = set()
            if actor != 7:
                expected.add("AccessControlUnauthorizedAccount")
            elif r.status != S.DISPUTED:
                expected.add("Router_WrongStatus")
            if not self._send(d.router.resolveDispute, r.struct, upheld, sender=everyone[actor], expected=expected):
                return
            op = self.ops[r.get("operator")]
            op.open_disputes -= 1
            if upheld:
                r.status = S.REVERSED
                slashed = min(SLASH, op.stake)
                op.stake -= slashed
                self._credit("rt", r.get("requester"), eth, slashed)
                self._refund(r)
            else:
                r.status = S.SETTLED
                self._pay_out(r)

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), actor=st.integers(0, 9))
        def settle(self, data, actor):
            batch = data.draw(st.lists(st.sampled_from(self.requests), min_size=1, max_size=3, unique_by=id))
            t = self.now + 1
            expected = set()
            for r in batch:
                if r.status != S.FULFILLED:
                    expected.add("Router_WrongStatus")
                elif t < r.settle_after:
                    expected.add("Router_DisputeWindowOpen")
            if self._send(d.router.settle, [r.struct for r in batch], sender=everyone[actor], expected=expected):
                for r in batch:
                    r.status = S.SETTLED
                    self._pay_out(r)

        # ------------------------------------------------------------ operators

        @rule(op=st.integers(0, 1))
        def start_unbonding(self, op):
            operator = self.ops[op_accounts[op].address]
            expected = set()
            if not operator.registered:
                expected.add("Router_OperatorNotRegistered")
            elif operator.unbonding_ends:
                expected.add("Router_OperatorUnbonding")
            if self._send(d.router.startUnbonding, sender=op_accounts[op], expected=expected):
                operator.unbonding_ends = self.now + d.router.unbondingDelay()

        @rule(op=st.integers(0, 1))
        def withdraw_stake(self, op):
            operator = self.ops[op_accounts[op].address]
            expected = set()
            if not operator.registered:
                expected.add("Router_OperatorNotRegistered")
            elif not operator.unbonding_ends:
                expected.add("Router_OperatorNotUnbonding")
            elif self.now + 1 < operator.unbonding_ends:
                expected.add("Router_StakeLocked")
            elif operator.open_disputes:
                expected.add("Router_OpenDisputes")
            before = w.w3.eth.get_balance(operator.address)
            receipt = self._send(d.router.withdrawStake, sender=op_accounts[op], expected=expected)
            if receipt:
                gained = w.w3.eth.get_balance(operator.address) - before + receipt.gasUsed * receipt.effectiveGasPrice
                assert gained == operator.stake, "the stake paid back is not the stake held"
                operator.stake, operator.unbonding_ends, operator.registered = 0, 0, False

        @rule(op=st.integers(0, 1))
        def register_operator(self, op):
            operator = self.ops[op_accounts[op].address]
            expected = {"Router_OperatorAlreadyRegistered"} if operator.registered else set()
            if self._send(d.router.registerOperator, public_key(op_accounts[op]), value=MIN_STAKE,
                          sender=op_accounts[op], expected=expected):
                operator.stake, operator.registered, operator.open_disputes = MIN_STAKE, True, 0

        @rule(op=st.integers(0, 1), amount=st.sampled_from([1, SLASH]))
        def add_stake(self, op, amount):
            operator = self.ops[op_accounts[op].address]
            expected = set() if operator.registered else {"Router_OperatorNotRegistered"}
            if self._send(d.router.addStake, value=amount, sender=op_accounts[op], expected=expected):
                operator.stake += amount

        @rule(index=st.integers(0, 1), op=st.integers(0, 1), allowed=st.booleans(), by_owner=st.booleans())
        def set_operator_allowed(self, index, op, allowed, by_owner):
            model = self.models[w.models[index]]
            actor = by_address[model.owner] if by_owner else a.other
            operator = op_accounts[op].address
            expected = set() if by_owner else {"Router_NotModelOwner"}
            if self._send(d.router.setOperatorAllowed, model.id, operator, allowed, sender=actor, expected=expected):
                (self.allowed.add if allowed else self.allowed.discard)((model.id, operator))

        # ------------------------------------------------------------ invariants

        @invariant()
        def the_chain_agrees_with_the_model(self):
            self._check_ledgers()
            self._check_licences(self.head_time)
            self._check_requests()

        def _check_ledgers(self) -> None:
            assets, models = [eth, dollar], list(w.models)
            out = w.lens.snapshot([d.licenses.address, d.router.address], assets, addresses, models)
            k = 0
            for name in ("lm", "rt"):
                lm = self.ledgers[name]
                for asset in assets:
                    holding, platform = out[k], out[k + 1]
                    credits = out[k + 2: k + 2 + len(addresses)]
                    k += 2 + len(addresses)
                    pots = out[k: k + 2 * len(models)]
                    k += 2 * len(models)
                    assert platform == lm.platform.get(asset, 0), f"{name} platform balance in {asset}"
                    assert credits == [lm.credits.get((x, asset), 0) for x in addresses], f"{name} credits in {asset}"
                    expected_pots = [v for m in models for v in lm.pots.get((m, asset), (0, 0))]
                    assert pots == expected_pots, f"{name} pots in {asset}"
                    held = sum(credits) + sum(pots) + platform
                    if name == "rt":
                        held += sum(self._escrow(r) for r in self.requests
                                    if r.status in UNDECIDED and r.get("asset") == asset)
                        if asset == eth:
                            held += sum(op.stake for op in self.ops.values())
                    assert holding == held, f"conservation: {name} holds {holding} of {asset}, owes {held}"

        def _check_licences(self, t: int) -> None:
            if not self.licences:
                return
            ids = [lic.id for lic in self.licences]
            holders, licensed, left, records = w.lens.licences(
                d.licenses.address, ids, [lic.offer.model for lic in self.licences])
            for lic, holder, ok, uses, record in zip(self.licences, holders, licensed, left, records, strict=True):
                assert holder == lic.holder
                assert (ok, uses) == self._licensed(lic, t), f"licence {lic.id} validity"
                record = tuple(record)
                assert record == (lic.offer.id, lic.expires, lic.anchor, lic.used, lic.period_start, lic.limit,
                                  lic.cancelled), f"licence {lic.id} record"
                if lic.offer.tier != vm.Tier.SUBSCRIPTION:
                    assert lic.used == lic.consumed, "uses consumed differ from requests not refunded"

        def _check_requests(self) -> None:
            ids = [r.id for r in self.requests]
            statuses, settle_after, commitments, infos = w.lens.requests(
                d.router.address, ids, [x.address for x in op_accounts])
            for r, status, after, commitment in zip(self.requests, statuses, settle_after, commitments, strict=True):
                assert status == r.status, f"request {r.id} is {S(status).name}, the model says {r.status.name}"
                if r.status in (S.FULFILLED, S.DISPUTED):
                    assert after == r.settle_after
                assert commitment[:26] == keccak(encode(REQUEST_TYPES, r.struct))[:26], f"request {r.id} commitment"
            for account, info in zip(op_accounts, infos, strict=True):
                op = self.ops[account.address]
                assert tuple(info) == (op.stake, op.unbonding_ends, op.open_disputes, op.registered), "operator record"

        # ------------------------------------------------------------ end of an example

        def _drain(self) -> None:
            """Every credit is withdrawable: distribute every pot, withdraw every credit and fee."""
            for ledger in ("lm", "rt"):
                for (model_id, asset) in list(self.ledgers[ledger].pots):
                    self._send(self.contracts[ledger].distribute, model_id, asset, sender=a.other)
                    self._apply_distribution(ledger, self.models[model_id], asset)
                for (account, asset), owed in list(self.ledgers[ledger].credits.items()):
                    if owed:
                        self._withdraw(ledger, by_address[account], asset)
                for asset, owed in list(self.ledgers[ledger].platform.items()):
                    if owed:
                        self._send(self.contracts[ledger].withdrawPlatformFees, asset, a.treasurer,
                                   sender=a.treasurer)
                        self.ledgers[ledger].platform[asset] = 0
            self._check_ledgers()

        def _check_terms(self) -> None:
            """Sold licences keep their terms: every offer still reads as published."""
            for offer in self.offers:
                terms, active, sold = w.offers_raw.functions.offer(offer.id).call()
                assert tuple(terms) == offer.terms, f"offer {offer.id} changed"
                assert (sold, active) == (offer.sold, offer.active)

    return Market


def test_market_state_machine(world):
    """Random sequences of every market action keep the chain equal to the model (see the module doc)."""
    run_state_machine_as_test(machine_for(world), settings=settings())

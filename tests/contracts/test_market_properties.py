"""Property tests of the whole market (Contracts I and II) against a Python model of it.

A Hypothesis RuleBasedStateMachine drives random sequences of every market action, by random
actors with random amounts and random passages of time, on a world of its own (notice 2 days,
four models, two routers, operators on both, buyers, and strangers: accounts with a standing
allowance on the licence manager that buy little or nothing):

- registry: models (ids modelIdOf(creator, digest): the same bundle by another creator is
  another model; the creator as voice owner, or the voice owner's EIP-712 consent: signed,
  missing, revoked first, expired), versions (keeping the parent's voice owner, with or without
  consent, dropping it, under a frozen parent), dispute windows, retirements (with prepaid
  subscriptions; service running out with requests on their way), freezes, the retirement
  notice (a shortened one runs down);
- licences: offers published and withdrawn through the OfferBook, sales (each tier, ETH and the
  stablecoin, past validUntil or the notice), holders' renewals (any number of periods; a lapsed
  one restarts), keeper renewals by random callers (keepers, strangers, accounts approved on the
  token or for all), autoRenew on and off, cancelling, approvals, transfers to strangers (H-1's
  push), allowances, the stablecoin de-listed, pauses, the platform fee;
- speech: requests (either router, the buyer's minimum dispute window, operators being removed),
  deliveries (one, batches with duplicates), failures, expiries, disputes with bonds, resolved or
  lapsing through settle after ARBITRATION_PERIOD (also while the operator unbonds), settlement
  batches that skip, operators registering, staking, unbonding, leaving, their removal after the
  notice, the dispute bond, minimum stake and slash bounds;
- the router's replacement (propose, ROUTER_DELAY, activate), also with requests pending on the
  old router, which still refunds them (fail, cancelExpired, an upheld dispute) or delivers them;
- a probe of what issue 13 made impossible, in whatever state the example is in.

Most rules take one `fault` (the one thing wrong with the call, or none). Every call's outcome
(success, or the custom error, with its arguments where the model knows them, among those the
model allows) is predicted by the model, and after every step the model and the chain agree on
every number:

1. conservation: for ETH and the stablecoin, each contract (the licence manager and both
   routers) holds exactly its credits, revenue pots and platform balance, plus (a router) the
   escrow of its undecided requests, its operators' stakes and the dispute bonds it holds;
2. every account's ETH and stablecoin balance and allowances are the model's: every wei leaving
   an account is a purchase, a request, a bond, a stake or a renewal the model predicted; a
   renewal on anyone else's word succeeds only when the current holder turned autoRenew on, for
   one period, when due and not lapsed (so at most once per period), paid from the holder's
   allowance (ERC-20) or the caller's ETH (also asserted apart from the prediction);
3. nobody withdraws more than was credited to them, and every credit is withdrawable (each
   example ends by distributing every pot and withdrawing every credit from the three ledgers);
4. a licence is valid exactly when the model says (isLicensed), renewable exactly when it says
   (isRenewable), and no licence is paid beyond its model's end of service;
5. the settings (retirement notice, routers, pauses, the stablecoin's listing, bonds, stakes,
   operator allowances, canServe) and each model's state are the model's; the terms of a sold
   licence never change;
6. every request is in exactly the state (status, settlement time, bond, commitment) the model
   expects; a request pays out at most once; uses consumed equal requests not refunded.

Successes are counted per rule and per important path, errors per function; after all the
examples every rule must have succeeded and every error path of issue 13 must have been reached
(for profiles at least as large as `ci`); the table is printed.

Profiles (tests/conftest.py), with examples twice as long here (machine_settings): `ci` (default,
200 examples x 60 steps) and `audit` (HYPOTHESIS_PROFILE=audit, 2,000 x 200).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from eth_abi import decode, encode
from eth_utils import keccak, to_checksum_address
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from market_helpers import RawViews, Rpc, RpcError, public_key
from voicemarket import protocol
from voicemarket.content.multiformats import CID, DAG_PB, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import (
    ETH,
    Action,
    FailReason,
    Language,
    RequestStatus,
    Tier,
    language_bits,
    renewal_lead,
    split_revenue,
)
from voicemarket.protocol import share as protocol_share

TTS = 1
MAX_UINT = 2**256 - 1
DAY = 86_400
MIN_STAKE = 10**17
SLASH = 3 * 10**16
NOTICE = 2 * DAY  # the registry's retirement notice at the start of each example
MIN_NOTICE, MAX_NOTICE = DAY, 400 * DAY
ROUTER_DELAY = 2 * DAY
ARBITRATION_PERIOD = 7 * DAY
MAX_TTL = DAY
MAX_DISPUTE_WINDOW = 7 * DAY
MAX_DISPUTE_BOND = 10**18
MAX_MIN_STAKE = 1_000 * 10**18
UNBONDING = 8 * DAY
BOND = 10**15  # the first router's dispute bond at the start (the second's is 0)
ALWAYS = 2**40 - 1  # operatorAllowedUntil while allowed
ZERO = "0x0000000000000000000000000000000000000000"
MAX_MODELS = 9
OUT_CID = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
OUT_DIGEST = hashlib.sha256(b"wav").digest()
S = RequestStatus
UNDECIDED = (S.PENDING, S.FULFILLED, S.DISPUTED)

# Across all the examples of a run: successes per rule (and per important path), and the errors
# reached per function.
SUCCESSES: Counter = Counter()
ERRORS: Counter = Counter()

# Paths that must succeed at least once in a run, besides every rule.
REQUIRED_PATHS = (
    "buy: subscription",
    "renew: holder restarts a lapsed subscription",
    "keeper_renew: ETH from the caller",
    "keeper_renew: ERC-20 from the holder's allowance",
    "keeper_renew: by an account approved on the licence",
    "transfer_licence: to a stranger",
    "retire: with prepaid subscriptions",
    "register_model: with consent",
    "register_model: own voice",
    "register_model: a bundle another creator registered",
    "register_version: with the voice owner's consent",
    "register_version: own voice",
    "revoke_consents",
    "set_router: propose",
    "set_router: replace",
    "fail: through a former router",
    "cancel_expired: through a former router",
    "resolve_dispute: upheld through a former router",
    "fulfil: through a former router",
    "settle: a dispute lapses",
    "settle: skips an item",
    "fulfil_batch: skips an item",
    "dispute: with a bond",
    "resolve_dispute: upheld",
    "resolve_dispute: rejected",
    "set_operator_allowed: removal (after the notice)",
    "request: to an operator being removed",
    "fulfil: by an operator being removed",
    "set_retirement_notice: shortened",
)
# Error paths that must be reached at least once in a run: (function, error): those of issue 13.
REQUIRED_ERRORS = (
    # H-1: keepers renew only what the current holder agreed to, one period, when due, never lapsed
    ("renewSubscription", "Licensing_AutoRenewOff"),
    ("renewSubscription", "Licensing_RenewalNotDue"),
    ("renewSubscription", "Licensing_SubscriptionLapsed"),
    ("renewSubscription", "Licensing_BadDuration"),
    ("renewSubscription", "Licensing_RenewalAllowanceTooLow"),
    ("transferFrom", "Licensing_NotTransferable"),
    # L-2, L-1, M-2: renewals need the offer and its asset; no time sold past validUntil or the notice
    ("renewSubscription", "Licensing_OfferInactive"),
    ("renewSubscription", "Licensing_AssetNotAllowed"),
    ("renewSubscription", "Licensing_BeyondNotice"),
    ("buy", "Licensing_BeyondNotice"),
    ("buy", "Licensing_BeyondValidUntil"),
    ("publishOffer", "Licensing_PeriodAboveNotice"),
    ("setRetirementNotice", "Registry_NoticeTooShort"),
    # M-1: only the current router takes uses; a replacement waits ROUTER_DELAY
    ("requestSynthesis", "Licensing_NotRouter"),
    ("setRouter", "Licensing_RouterNotYet"),
    # M-3: removals and retirements take the notice; no delivery after the end of service
    ("requestSynthesis", "Router_OperatorNotAllowed"),
    ("requestSynthesis", "Licensing_ServiceEnded"),
    ("fulfil", "Router_ServiceEnded"),
    # M-4, M-6: ids are the creator's; versions keep the voice owner, who consents, never under a freeze
    ("registerModel", "Registry_ModelExists"),
    ("registerModel", "Registry_ParentFrozen"),
    ("registerModel", "Registry_VoiceOwnerChanged"),
    ("registerModel", "Registry_InvalidConsent"),
    # M-5, L-4: disputes cost a bond and hold stakes only until they lapse; the buyer's window floor
    ("dispute", "Router_WrongPayment"),
    ("withdrawStake", "Router_OpenDisputes"),
    ("requestSynthesis", "Router_DisputeWindowTooShort"),
    # pausing the licence manager stops uses; admin bounds
    ("requestSynthesis", "EnforcedPause (licence manager)"),
    ("setDisputeBond", "Router_DisputeBondTooHigh"),
    ("setSlashAmount", "Router_SlashTooHigh"),
)


def err(name: str, *args) -> str | tuple:
    """An expected revert: the error's name, with its arguments when the model knows them all."""
    return (name, tuple(args)) if args else name


def sha(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def registration(
    d,
    creator,
    *,
    voice,
    bps: int,
    label: str,
    window: int = 0,
    parent: int = 0,
    co=(),
    signer=None,
    deadline: int = 0,
    sign: bool = True,
) -> dict[str, Any]:
    """A ModelRegistration for `creator`; the voice owner's consent signed by `signer` when asked."""
    digest, policy = sha(label), sha("consent policy " + label)
    signature = b""
    if sign and signer is not None:
        signature = vm.sign_consent(
            signer,
            d.registry,
            bundle_digest=digest,
            creator=creator.address,
            policy_hash=policy,
            voice_owner_bps=bps,
            deadline=deadline,
        )
    return vm.model_registration(
        bundle_digest=digest,
        bundle_cid=CID(1, RAW, sha("sealed " + label)),
        metadata_cid=CID(0, DAG_PB, sha("metadata " + label)),
        languages=language_bits("zh", "en"),
        voice_owner=voice,
        voice_owner_bps=bps,
        co_creators=list(co),
        policy_hash=policy,
        consent_deadline=deadline,
        consent_signature=signature,
        royalty_bps=500,
        dispute_window=window,
        parent_id=parent,
    )


def terms_of(
    model_id: int,
    tier: Tier,
    *,
    asset: str,
    price: int,
    period: int = 0,
    max_uses: int = 0,
    pack_size: int = 0,
    valid_until: int = 0,
    max_licenses: int = 0,
    permissions: int = TTS | 2,
    transferable: bool = False,
    label: str = "",
) -> dict[str, Any]:
    return {
        "modelId": model_id,
        "tier": int(tier),
        "asset": str(asset),
        "price": price,
        "period": period,
        "maxUses": max_uses,
        "packSize": pack_size,
        "validUntil": valid_until,
        "maxLicenses": max_licenses,
        "permissions": permissions,
        "prohibitions": 0,
        "attribution": True,
        "transferable": transferable,
        "purposes": 0,
        "policyHash": keccak(text=f"offer {model_id} {label} {price}"),
    }


def cost_of(terms: dict, quantity: int) -> int:
    if terms["tier"] == Tier.SUBSCRIPTION:
        return terms["price"] * quantity
    if terms["tier"] == Tier.PAY_PER_USE:
        return terms["price"] * terms["packSize"] * quantity
    return terms["price"]


# ---------------------------------------------------------------- the world every example starts from


@pytest.fixture(scope="module")
def world(actors, project, chain):
    """A deployment of its own (notice 2 days), a second router, two models, operators on both
    routers, funded buyers and strangers, offers and licences; reverted after this module."""
    a = actors
    d = vm.deploy(
        a.deployer,
        stablecoin="mock",
        arbiter=a.arbiter,
        treasurer=a.treasurer,
        min_stake=MIN_STAKE,
        slash_amount=SLASH,
        retirement_notice=NOTICE,
        dispute_bond=BOND,
        project=project,
    )
    usd = d.stablecoin
    spare = a.deployer.deploy(project.SynthesisRouter, a.deployer, d.registry, d.licenses, MIN_STAKE, SLASH, UNBONDING)
    for role, account in (
        (spare.PAUSER_ROLE(), a.deployer),
        (spare.ARBITER_ROLE(), a.arbiter),
        (spare.TREASURER_ROLE(), a.treasurer),
    ):
        spare.grantRole(role, account, sender=a.deployer)
    routers = (d.router, spare)
    assert d.router.unbondingDelay() == UNBONDING
    # Two models whose voice owner consented (m1 with a co-creator), one whose creator is its own
    # voice owner (m3: anyone can make one, as the attacker of H-1 did), and one the retirement
    # scenarios retire first (m4), so that the others stay in service longer.
    models = []
    for creator, voice, bps, co, window, label in (
        (a.creator, a.voice, 3_333, [(a.co.address, 1_111)], 0, "property model 1"),
        (a.co, a.voice, 2_500, [], 600, "property model 2"),
        (a.other, a.other, 0, [], 0, "property model 3"),
        (a.creator, a.voice, 1_000, [], 600, "property model 4"),
    ):
        now = chain.pending_timestamp
        r = registration(
            d,
            creator,
            voice=voice.address,
            bps=bps,
            co=co,
            window=window,
            label=label,
            signer=voice if voice != creator else None,
            deadline=now + 3_600,
        )
        d.registry.registerModel(r, sender=creator)
        models.append(d.registry.modelIdOf(creator, r["bundleDigest"]))
    m1, m2, m3, m4 = models
    assert m1 == protocol.model_id(a.creator.address, sha("property model 1"))
    fees = {a.operator.address: (10**14, 100), a.keeper.address: (7 * 10**13, 0)}
    allowed = [
        (0, m1, a.operator),
        (0, m2, a.operator),
        (0, m1, a.keeper),
        (0, m3, a.operator),
        (0, m4, a.operator),
        (1, m1, a.operator),
        (1, m2, a.operator),
        (1, m1, a.keeper),
        (1, m4, a.keeper),
    ]
    for router in routers:
        for op in (a.operator, a.keeper):
            router.registerOperator(public_key(op), value=MIN_STAKE, sender=op)
            router.setFee(ETH, fees[op.address][0], sender=op)
            router.setFee(usd, fees[op.address][1], sender=op)
    for index, model, op in allowed:
        routers[index].setOperatorAllowed(model, op, True, sender=d.registry.ownerOf(model))
    # Buyers: plenty of the stablecoin, standing allowances. Strangers (who buy little or
    # nothing but may be handed licences): a standing allowance on the licence manager, and
    # little money (arbiter) or a finite allowance (treasurer).
    funding = {
        a.buyer: (10**15, MAX_UINT, MAX_UINT),
        a.other: (10**15, MAX_UINT, MAX_UINT),
        a.voice: (10**12, MAX_UINT, MAX_UINT),
        a.treasurer: (10**12, 1_500_000, MAX_UINT),
        a.arbiter: (2_500_000, MAX_UINT, 0),
    }
    for account, (amount, to_licenses, to_routers) in funding.items():
        usd.mint(account, amount, sender=a.deployer)
        usd.approve(d.licenses, to_licenses, sender=account)
        for router in routers:
            if to_routers:
                usd.approve(router, to_routers, sender=account)
    # One offer of each kind per model (both subscriptions transferable: licences can be pushed
    # to strangers), and licences on most of them, some with autoRenew on.
    kinds = [
        dict(tier=Tier.BUYOUT, asset=ETH, price=10**15 + 7, transferable=True),
        dict(tier=Tier.SUBSCRIPTION, asset=usd.address, price=999_999, period=1_000, max_uses=2, transferable=True),
        dict(tier=Tier.PAY_PER_USE, asset=ETH, price=3 * 10**14 + 1),
        dict(tier=Tier.PAY_PER_USE, asset=usd.address, price=50_001, pack_size=2, max_uses=6),
        dict(tier=Tier.SUBSCRIPTION, asset=ETH, price=2 * 10**13 + 3, period=3_600, transferable=True),
    ]
    # m3 sells what the attacker of H-1 sold: a transferable hourly subscription in the stablecoin.
    offers = []
    for model, kind in [(m, k) for m in (m1, m2) for k in kinds] + [
        (m3, dict(tier=Tier.SUBSCRIPTION, asset=usd.address, price=1_000, period=3_600, transferable=True)),
        (m4, kinds[0]),
        (m4, kinds[1]),
    ]:
        terms = terms_of(model, label=f"world {len(offers)}", **kind)
        d.offers.publishOffer(terms, b"", sender=d.registry.ownerOf(model))
        offers.append((d.licenses.nextOfferId() - 1, terms))
    licenses = []
    for index, buyer, quantity, auto_renew in (
        (0, a.buyer, 1, False),
        (1, a.buyer, 3, True),
        (2, a.buyer, 1, False),
        (3, a.other, 2, False),
        (4, a.other, 20, True),
        (5, a.other, 1, False),
        (6, a.other, 1, True),
        (9, a.buyer, 10, True),
        (10, a.other, 1, True),
        (11, a.buyer, 1, False),
        (12, a.other, 3, True),
    ):
        offer_id, terms = offers[index]
        cost = cost_of(terms, quantity)
        value = cost if terms["asset"] == ETH else 0
        receipt = d.licenses.buy(offer_id, cost, quantity, value=value, sender=buyer)
        license_id = receipt.events.filter(d.licenses.LicensePurchased)[0].licenseId
        if auto_renew:
            d.licenses.setAutoRenew(license_id, True, sender=buyer)
        licenses.append((license_id, index, buyer.address))
    # Pay the world's own sales out, so that each example's final drain covers only its own money.
    for model in models:
        for asset in (ETH, usd.address):
            if any(d.licenses.potOf(model, asset)):
                d.licenses.distribute(model, asset, sender=a.deployer)
    for account in (a.creator, a.voice, a.co, a.other):
        for asset in (ETH, usd.address):
            if d.licenses.creditOf(account, asset):
                d.licenses.withdraw(asset, sender=account)
    for asset in (ETH, usd.address):
        if d.licenses.platformBalance(asset):
            d.licenses.withdrawPlatformFees(asset, a.treasurer, sender=a.treasurer)
    lens = a.deployer.deploy(project.LedgerLens)
    w3 = chain.provider.web3
    errors = {}
    for name in ("VoiceModelRegistry", "LicenseManager", "OfferBook", "SynthesisRouter", "MockStablecoin"):
        for abi in getattr(project, name).contract_type.abi:
            if abi.type == "error":
                errors[keccak(text=abi.selector)[:4]] = (abi.name, [x.canonical_type for x in abi.inputs])
    # Speed only, for this module: web3 asks anvil for the chain id before every call and
    # requests scans the environment for proxies on every request; neither can change here.
    provider = w3.provider
    saved = (provider.cache_allowed_requests, provider.cacheable_requests)
    provider.cache_allowed_requests, provider.cacheable_requests = True, {"eth_chainId"}
    session = provider._request_session_manager.cache_and_return_session(provider.endpoint_uri)
    session.trust_env = False
    # Reads (the invariants' LedgerLens views, simulations) go as raw eth_calls decoded by eth_abi.
    rpc = Rpc(provider.endpoint_uri)

    def views(contract):
        return RawViews(
            rpc, contract.address, [x.model_dump(mode="json", by_alias=True) for x in contract.contract_type.abi]
        )

    everyone = [a.deployer, a.creator, a.voice, a.buyer, a.operator, a.keeper, a.co, a.arbiter, a.treasurer, a.other]
    addresses = [x.address for x in everyone]
    lens_views = views(lens)
    spenders = [d.licenses.address, d.router.address, spare.address]
    start = lens_views.snapshot(spenders, [ETH, usd.address], addresses, [])
    k = 3 * 2 * (2 + len(addresses))
    balances = {}
    for x in addresses:
        balances[x] = start[k : k + 5]
        k += 5
    records = lens_views.licenses(
        d.licenses.address, [x[0] for x in licenses], [offers[x[1]][1]["modelId"] for x in licenses]
    )[3]
    yield SimpleNamespace(
        d=d,
        a=a,
        usd=usd,
        routers=routers,
        lens=lens_views,
        lm=views(d.licenses),
        rpc=rpc,
        models=models,
        allowed=[(i, m, op.address) for i, m, op in allowed],
        offers=offers,
        licenses=licenses,
        records=records,
        balances=balances,
        fees=fees,
        everyone=everyone,
        addresses=addresses,
        chain=chain,
        errors=errors,
        w3=w3,
    )
    rpc.close()
    provider.cache_allowed_requests, provider.cacheable_requests = saved
    session.trust_env = True


# ---------------------------------------------------------------- the model


@dataclass
class ModelM:
    id: int
    owner: str
    creator: str
    voice: str  # the voice owner as the registry answers it (the creator when it named none)
    payees: list[tuple[str, int]]
    window: int
    languages: int = 0b11
    frozen: bool = False
    service_ends: int = 0
    parent: int = 0
    label: str = ""  # the bundle's label (its digest is sha256 of it)


@dataclass
class OfferM:
    id: int
    model: int
    tier: Tier
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
class LicenseM:
    id: int
    offer: OfferM
    holder: str
    expires: int = 0
    anchor: int = 0
    used: int = 0
    period_start: int = 0
    limit: int = 0
    auto_renew: bool = False
    agreed_by: str = ZERO  # the holder who turned autoRenew on (property check of keeper renewals)
    approved: str = ZERO
    consumed: int = 0  # requests made minus requests refunded (checked against `used` when lifetime)


@dataclass
class RequestM:
    struct: tuple
    license: LicenseM
    router: int
    status: S = S.PENDING
    settle_after: int = 0
    bond: int = 0

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
        fee = protocol_share(amount, fee_bps)
        share, platform = self.pots.get((model, asset), (0, 0))
        self.pots[(model, asset)] = (share + amount - fee, platform + fee)


@dataclass
class RouterM:
    index: int
    contract: Any
    ops: dict
    allowed_until: dict  # (model, operator) -> until when it may be named (ALWAYS while allowed)
    ledger: LedgerM = field(default_factory=LedgerM)
    next_request: int = 1
    paused: bool = False
    bond: int = 0
    min_stake: int = MIN_STAKE
    slash: int = SLASH

    @property
    def address(self) -> str:
        return self.contract.address


REQUEST_TYPES = (
    "uint256",
    "uint256",
    "uint256",
    "address",
    "address",
    "address",
    "uint128",
    "uint128",
    "uint128",
    "bytes32",
    "uint40",
    "uint32",
    "uint40",
    "uint16",
)


def decode_error(data, errors: dict) -> tuple[str, tuple]:
    """The custom error's name and arguments from a revert's data (or the node's message)."""
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        raw = bytes.fromhex(data[2:])
        known = errors.get(raw[:4])
        if known:
            name, types = known
            values = decode(types, raw[4:])
            pairs = zip(types, values, strict=True)
            return name, tuple(to_checksum_address(v) if t == "address" else v for t, v in pairs)
        return data[:10], ()
    return str(data), ()


# ---------------------------------------------------------------- the machine


def machine_for(w):
    d, a, usd = w.d, w.a, w.usd
    eth, dollar = ETH, usd.address
    everyone, addresses = w.everyone, w.addresses
    by_address = {x.address: x for x in everyone}
    buyers = [a.buyer, a.other]
    strangers = [a.voice, a.treasurer, a.arbiter]
    op_accounts = [a.operator, a.keeper]
    admin = a.deployer
    lm_address = d.licenses.address

    class Market(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self._isolation = w.chain.isolate()
            self._isolation.__enter__()
            head = w.rpc("eth_getBlockByNumber", "latest", False)
            self.block, self.head_time = int(head["number"], 16), int(head["timestamp"], 16)
            self.now = self.head_time + 1
            self.next_offer = w.offers[-1][0] + 1
            self.next_license = w.licenses[-1][0] + 1
            m1, m2, m3, m4 = w.models
            self.models = {
                m1: ModelM(
                    m1,
                    a.creator.address,
                    a.creator.address,
                    a.voice.address,
                    [(a.voice.address, 3_333), (a.co.address, 1_111)],
                    0,
                    label="property model 1",
                ),
                m2: ModelM(
                    m2,
                    a.co.address,
                    a.co.address,
                    a.voice.address,
                    [(a.voice.address, 2_500)],
                    600,
                    label="property model 2",
                ),
                m3: ModelM(m3, a.other.address, a.other.address, a.other.address, [], 0, label="property model 3"),
                m4: ModelM(
                    m4,
                    a.creator.address,
                    a.creator.address,
                    a.voice.address,
                    [(a.voice.address, 1_000)],
                    600,
                    label="property model 4",
                ),
            }
            self.labels = 0
            self.offers: list[OfferM] = []
            for offer_id, t in w.offers:
                self.offers.append(
                    OfferM(
                        offer_id,
                        t["modelId"],
                        Tier(t["tier"]),
                        t["asset"],
                        t["price"],
                        t["period"],
                        t["maxUses"],
                        t["packSize"],
                        t["validUntil"],
                        t["maxLicenses"],
                        t["permissions"],
                        t["transferable"],
                        terms=tuple(t.values()),
                    )
                )
            self.licenses: list[LicenseM] = []
            for (license_id, index, holder), record in zip(w.licenses, w.records, strict=True):
                offer = self.offers[index]
                offer.sold += 1
                self.licenses.append(
                    LicenseM(
                        license_id,
                        offer,
                        holder,
                        expires=record[1],
                        anchor=record[2],
                        used=record[3],
                        period_start=record[4],
                        limit=record[5],
                        auto_renew=record[6],
                        agreed_by=holder if record[6] else ZERO,
                    )
                )
            self.requests: list[RequestM] = []
            self.routers = []
            for index, contract in enumerate(w.routers):
                ops = {
                    x.address: OperatorM(x.address, fees={eth: w.fees[x.address][0], dollar: w.fees[x.address][1]})
                    for x in op_accounts
                }
                allowed = {(m, op): ALWAYS for i, m, op in w.allowed if i == index}
                self.routers.append(RouterM(index, contract, ops, allowed, bond=BOND if index == 0 else 0))
            self.lm_router = 0  # index of the licence manager's router
            self.former: set[int] = set()
            self.pending_router = (ZERO, 0)
            self.for_all: set[tuple[str, str]] = set()  # (holder, operator) approvals for all tokens
            # What the chain said before (for the checks apart from the model): the notice in
            # force, and the last router proposed (its address and the time of the proposal).
            self.seen_notice = (self.head_time, NOTICE)
            self.seen_proposal = (ZERO, 0)
            self.lm_ledger = LedgerM()  # the world paid its own sales out
            self.lm_paused = False
            self.usd_allowed = True
            self.fee_bps = 2_000
            self.notice_state = (NOTICE, NOTICE, 0)  # (notice, previous, changed at): see _notice
            self.eth = {x: b[0] for x, b in w.balances.items()}
            self.usd = {x: b[1] for x, b in w.balances.items()}
            self.allowance = {}
            for x, b in w.balances.items():
                for spender, amount in zip([lm_address] + [r.address for r in self.routers], b[2:], strict=True):
                    self.allowance[(x, spender)] = amount
            self.credited_total: dict = {}
            self.withdrawn_total: dict = {}
            self.last_error = None

        def teardown(self) -> None:
            try:
                self._drain()
                self._check_terms()
            finally:
                self._isolation.__exit__(None, None, None)

        # ------------------------------------------------------------ helpers

        def _send(self, fn, *args, sender, expected=frozenset(), value: int = 0):
            """Runs `fn(*args)` from `sender` at the model's next second and checks the outcome.

            The call is simulated first (eth_call on the pending block, whose timestamp is set): a
            revert must be one the model expects (by name, or by name and arguments), and is not
            sent. Otherwise the transaction is sent and must succeed; the sender's ETH goes down by
            the gas and the value; its receipt is returned.
            """
            self.now += 1
            w.rpc("evm_setNextBlockTimestamp", self.now)
            name = fn.abis[0].name
            data = "0x" + bytes(fn.encode_input(*args)).hex()
            tx = {"from": sender.address, "to": fn.contract.address, "data": data, "value": hex(value)}
            try:
                w.rpc("eth_call", tx, "pending")
            except RpcError as exc:
                error, error_args = decode_error(exc.data, w.errors)
                shown = sorted(map(str, expected))
                assert expected, f"{name} reverted with {error}{error_args} but the model expected success"
                assert error in expected or (error, error_args) in expected, (
                    f"{name} reverted with {error}{error_args}; expected one of {shown}"
                )
                ERRORS[(name, error)] += 1
                self.last_error = error
                return None
            assert not expected, f"{name} succeeded but the model expected one of {sorted(map(str, expected))}"
            # Sent as raw JSON-RPC (web3's formatting of the request and the receipt took most of
            # the time); anvil mines it at once: the receipt is waited for before anything else.
            tx_hash = w.rpc(
                "eth_sendTransaction",
                {**tx, "gas": hex(6_000_000), "maxFeePerGas": hex(10**10), "maxPriorityFeePerGas": "0x0"},
            )
            receipt = w.rpc("eth_getTransactionReceipt", tx_hash)
            while receipt is None:
                time.sleep(0.001)
                receipt = w.rpc("eth_getTransactionReceipt", tx_hash)
            assert int(receipt["status"], 16) == 1, f"{name} failed when mined after a successful simulation"
            assert int(receipt["blockNumber"], 16) == self.block + 1, "a block was mined that the model did not send"
            self.block += 1
            self.head_time = self.now
            self.eth[sender.address] -= int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16) + value
            return receipt

        def _won(self, label: str) -> None:
            SUCCESSES[label] += 1

        @staticmethod
        def _pick(data, items: list, preferred: list):
            """One of `items`, mostly one of `preferred` when there are any (successes need live
            things; the others reach the error paths)."""
            if preferred and data.draw(st.sampled_from([True, True, True, False])):
                return data.draw(st.sampled_from(preferred))
            return data.draw(st.sampled_from(items))

        def _advance_to(self, t: int) -> None:
            """The next transaction happens at `t` (or now, if `t` has passed)."""
            self.now = max(self.now, t - 1)

        def _notice(self, t: int) -> int:
            """registry.retirementNotice() at time t: a shortened notice runs down as time passes."""
            notice, previous, changed_at = self.notice_state
            elapsed = t - changed_at
            if previous > notice and previous > elapsed and previous - elapsed > notice:
                return previous - elapsed
            return notice

        def _credit(self, ledger: LedgerM, key: str, account: str, asset: str, amount: int) -> None:
            ledger.credit(account, asset, amount)
            k = (key, account, asset)
            self.credited_total[k] = self.credited_total.get(k, 0) + amount

        def _ledger(self, key) -> tuple[Any, LedgerM]:
            if key == "lm":
                return d.licenses, self.lm_ledger
            return self.routers[key].contract, self.routers[key].ledger

        def _pull_errors(self, account: str, spender: str, amount: int) -> set:
            """The ERC-20's errors for transferFrom(account -> spender) of `amount`."""
            if not amount:
                return set()
            allowance = self.allowance[(account, spender)]
            if allowance < amount:
                return {err("ERC20InsufficientAllowance", spender, allowance, amount)}
            if self.usd[account] < amount:
                return {err("ERC20InsufficientBalance", account, self.usd[account], amount)}
            return set()

        def _pay_usd(self, account: str, spender: str, amount: int) -> None:
            """`spender` took `amount` of the stablecoin from `account` (transferFrom)."""
            self.usd[account] -= amount
            if self.allowance[(account, spender)] != MAX_UINT:
                self.allowance[(account, spender)] -= amount

        def _model_state_errors(self, model: ModelM, *, selling: bool) -> set:
            errors = set()
            if model.frozen:
                errors.add(err("Licensing_ModelFrozen", model.id))
            if model.service_ends:
                if selling:
                    errors.add(err("Licensing_ModelRetired", model.id, model.service_ends))
                elif self.now + 1 >= model.service_ends:
                    errors.add(err("Licensing_ServiceEnded", model.id, model.service_ends))
            return errors

        def _quota(self, lic: LicenseM, t: int) -> tuple[int, int, int]:
            """(limit, used in the current quota period, tag) at time t."""
            o = lic.offer
            if o.tier == Tier.SUBSCRIPTION:
                start = lic.anchor + ((t - lic.anchor) // o.period) * o.period
                return o.max_uses, (lic.used if lic.period_start == start else 0), start
            if o.tier == Tier.PAY_PER_USE and o.pack_size:
                return lic.limit, lic.used, 0
            return o.max_uses, lic.used, 0

        def _licensed(self, lic: LicenseM, t: int) -> tuple[bool, int]:
            o, m = lic.offer, self.models[lic.offer.model]
            if not o.permissions & TTS or (o.valid_until and t > o.valid_until) or m.frozen:
                return False, 0
            if m.service_ends and t >= m.service_ends:
                return False, 0
            if o.tier == Tier.SUBSCRIPTION and t >= lic.expires:
                return False, 0
            limit, used, _ = self._quota(lic, t)
            if limit == 0:
                return True, MAX_UINT
            return (False, 0) if used >= limit else (True, limit - used)

        def _escrow(self, r: RequestM) -> int:
            return r.get("usePrice") + r.get("fee")

        def _refund(self, r: RequestM) -> None:
            router = self.routers[r.router]
            self._credit(router.ledger, r.router, r.get("requester"), r.get("asset"), self._escrow(r))
            lic = r.license
            lic.consumed -= 1
            if lic.used and lic.period_start == r.get("useTag"):
                lic.used -= 1

        def _pay_out(self, r: RequestM) -> None:
            router = self.routers[r.router]
            self._credit(router.ledger, r.router, r.get("operator"), r.get("asset"), r.get("fee"))
            if r.get("usePrice"):
                router.ledger.accrue(r.get("modelId"), r.get("asset"), r.get("usePrice"), r.get("platformFeeBps"))

        def _via(self, r: RequestM) -> str:
            return "" if r.router == self.lm_router else " through a former router"

        # ------------------------------------------------------------ time and roles

        @rule(seconds=st.sampled_from([1, 30, 300, 700, 3_600, DAY, 20 * DAY]))
        def advance_time(self, seconds):
            self.now += seconds
            self._won("advance_time")

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            which=st.sampled_from(["lm", "lm", 0, 1]),
            pause=st.sampled_from([True, False, False]),
            actor=st.sampled_from([0, 0, 0, 9]),
            hold=st.sampled_from([False, False, True]),
        )
        def pause_or_unpause(self, data, which, pause, actor, hold):
            """The pauser pauses or unpauses the licence manager or a router. A pause is mostly
            brief (unless `hold`): a request is tried while it lasts (refused: pausing the licence
            manager stops consumeUse too), and an expired request is refunded (refunds never stop)."""
            if not pause:  # mostly something paused
                which = self._pick(data, [which], ["lm"] * self.lm_paused + [r.index for r in self.routers if r.paused])
            if not self._pause(which, pause, everyone[actor]):
                return
            self._won("pause_or_unpause")
            if pause and not hold:
                self._request_served(data, self.lm_router)
                expired = [r for r in self.requests if r.status == S.PENDING and r.get("deadline") <= self.now]
                if expired:
                    self._cancel(data.draw(st.sampled_from(expired)), a.keeper)
                self._pause(which, False)

        def _pause(self, which, pause: bool, sender=admin) -> bool:
            contract = d.licenses if which == "lm" else self.routers[which].contract
            paused = self.lm_paused if which == "lm" else self.routers[which].paused
            expected = set()
            if sender != admin:
                expected.add("AccessControlUnauthorizedAccount")
            elif paused == pause:
                expected.add("EnforcedPause" if pause else "ExpectedPause")
            fn = contract.pause if pause else contract.unpause
            if not self._send(fn, sender=sender, expected=expected):
                return False
            if which == "lm":
                self.lm_paused = pause
            else:
                self.routers[which].paused = pause
            return True

        @rule(bps=st.integers(0, 2_100), actor=st.sampled_from([0, 0, 1]))
        def set_platform_fee(self, bps, actor):
            expected = set()
            if actor != 0:
                expected.add("AccessControlUnauthorizedAccount")
            elif bps > 2_000:
                expected.add(err("Licensing_PlatformFeeTooHigh", bps, 2_000))
            if self._send(d.licenses.setPlatformFee, bps, sender=everyone[actor], expected=expected):
                self.fee_bps = bps
                self._won("set_platform_fee")

        @rule(allowed=st.sampled_from([False, True, True, True]), actor=st.sampled_from([0, 0, 0, 1]))
        def set_asset_allowed(self, allowed, actor):
            if self._set_asset_allowed(allowed, everyone[actor]):
                self._won("set_asset_allowed")

        def _set_asset_allowed(self, allowed: bool, sender=admin) -> bool:
            expected = set() if sender == admin else {"AccessControlUnauthorizedAccount"}
            if not self._send(d.licenses.setAssetAllowed, dollar, allowed, sender=sender, expected=expected):
                return False
            self.usd_allowed = allowed
            return True

        @rule(
            notice=st.sampled_from([MIN_NOTICE - 1, MIN_NOTICE, MIN_NOTICE, NOTICE, 3 * DAY, MAX_NOTICE + 1]),
            actor=st.sampled_from([0, 0, 0, 1]),
        )
        def set_retirement_notice(self, notice, actor):
            if self._set_notice(notice, everyone[actor]):
                self._won("set_retirement_notice")

        def _set_notice(self, notice: int, sender) -> bool:
            t = self.now + 1
            expected = set()
            if sender != admin:
                expected.add("AccessControlUnauthorizedAccount")
            elif notice > MAX_NOTICE:
                expected.add(err("Registry_NoticeTooLong", notice, MAX_NOTICE))
            elif notice < MIN_NOTICE:
                expected.add(err("Registry_NoticeTooShort", notice, MIN_NOTICE))
            if not self._send(d.registry.setRetirementNotice, notice, sender=sender, expected=expected):
                return False
            in_force = self._notice(t)
            self.notice_state = (notice, in_force, t)
            if notice < in_force:
                self._won("set_retirement_notice: shortened")
            return True

        @precondition(lambda self: self.models)
        @rule(data=st.data(), freeze=st.sampled_from([True, False, False]), actor=st.sampled_from([7, 7, 7, 1]))
        def freeze_or_unfreeze(self, data, freeze, actor):
            frozen = [m for m in self.models if self.models[m].frozen]
            model = self.models[self._pick(data, list(self.models), [] if freeze else frozen)]
            expected = set()
            if actor != 7:
                expected.add("AccessControlUnauthorizedAccount")
            elif model.frozen == freeze:
                expected.add(err("Registry_AlreadyFrozen" if freeze else "Registry_NotFrozen", model.id))
            fn = d.registry.freeze if freeze else d.registry.unfreeze
            args = (model.id, b"\x01" * 32) if freeze else (model.id,)
            if self._send(fn, *args, sender=everyone[actor], expected=expected):
                model.frozen = freeze
                self._won("freeze_or_unfreeze")

        @rule(data=st.data(), by_owner=st.sampled_from([True, False, False, False]))
        def retire(self, data, by_owner):
            model = self.models[self._pick(data, list(self.models), list(self.models)[3:])]
            actor = by_address[model.owner] if by_owner else (a.other if model.owner != a.other.address else a.buyer)
            if self._retire(model, actor):
                self._won("retire")

        def _retire(self, model: ModelM, actor) -> bool:
            t = self.now + 1
            expected = set()
            if actor.address != model.owner:
                expected.add(err("Registry_NotModelOwner", model.id, actor.address))
            elif model.service_ends:
                expected.add(err("Registry_AlreadyRetired", model.id, model.service_ends))
            if not self._send(d.registry.retire, model.id, sender=actor, expected=expected):
                return False
            model.service_ends = t + self._notice(t)
            if any(lic.offer.model == model.id and lic.expires > t for lic in self.licenses):
                self._won("retire: with prepaid subscriptions")
            return True

        @precondition(lambda self: self.licenses)
        @rule(data=st.data(), reason=st.sampled_from(list(FailReason)))
        def retire_with_service(self, data, reason):
            """M-2, M-3: a model is retired with licences in use. Until its service ends requests
            work; a delivery after the end is refused (the operator fails the request: refund); no
            request is taken after it; no licence was paid beyond it (checked after every step)."""
            rt, t = self.routers[self.lm_router], self.now + 1
            usable = [
                lic
                for lic in self.licenses
                if self._licensed(lic, t)[0]
                and not self.models[lic.offer.model].service_ends
                and self._servers(rt, lic.offer.model, t + 800)
            ]
            if not usable:
                return
            # Mostly a licence that is not a subscription (it works until the end of service), on a
            # model other than m1..m3 (which then stay in service longer).
            spare = [x for x in usable if x.offer.model not in w.models[:3]]
            lic = self._pick(data, usable, [x for x in spare or usable if x.offer.tier != Tier.SUBSCRIPTION])
            model = self.models[lic.offer.model]
            if not self._retire(model, by_address[model.owner]):
                return
            self._won("retire_with_service")
            self._advance_to(model.service_ends - 100)
            served = self._servers(rt, model.id, self.now + 801)
            op = data.draw(st.sampled_from(served)) if served else 0
            r = self._request(lic, by_address[lic.holder], self.lm_router, op, 800, False, Language.EN)
            self._advance_to(model.service_ends)
            if r is not None:
                self._fulfil(r, op_accounts[op])  # Router_ServiceEnded
                self._fail(r, op_accounts[op], reason)
            self._request(lic, by_address[lic.holder], self.lm_router, op, 800, False, Language.EN)

        @rule(
            data=st.data(),
            window=st.sampled_from([0, 600, 601, MAX_DISPUTE_WINDOW, MAX_DISPUTE_WINDOW + 1]),
            by_owner=st.sampled_from([True, True, True, False]),
        )
        def set_dispute_window(self, data, window, by_owner):
            model = self.models[data.draw(st.sampled_from(list(self.models)))]
            actor = by_address[model.owner] if by_owner else (a.other if model.owner != a.other.address else a.buyer)
            if self._set_window(model, window, actor):
                self._won("set_dispute_window")

        def _set_window(self, model: ModelM, window: int, actor) -> bool:
            expected = set()
            if actor.address != model.owner:
                expected.add(err("Registry_NotModelOwner", model.id, actor.address))
            elif window > MAX_DISPUTE_WINDOW:
                expected.add(err("Registry_DisputeWindowTooLong", window, MAX_DISPUTE_WINDOW))
            if not self._send(d.registry.setDisputeWindow, model.id, window, sender=actor, expected=expected):
                return False
            model.window = window
            return True

        # ------------------------------------------------------------ registry: models and versions

        def _consent(self, creator, voice: str, bps: int, label: str, consent: str):
            """The registration, signed as `consent` says; returns (registration, errors of the consent)."""
            t = self.now + 1
            if voice == creator.address:
                return registration(d, creator, voice=voice, bps=0, label=label, deadline=t), set()
            signer = by_address[voice]
            if consent == "revoked":
                # Signed with the current nonce, then revoked before the creator registers.
                r = registration(d, creator, voice=voice, bps=bps, label=label, signer=signer, deadline=t + 3_600)
                if self._send(d.registry.revokeConsents, sender=signer):
                    self._won("revoke_consents")
                return r, {err("Registry_InvalidConsent", voice)}
            if consent == "expired":
                r = registration(d, creator, voice=voice, bps=bps, label=label, signer=signer, deadline=t - 1)
                return r, {err("Registry_ConsentExpired", t - 1, t)}
            r = registration(
                d,
                creator,
                voice=voice,
                bps=bps,
                label=label,
                signer=signer,
                deadline=t + 3_600,
                sign=consent == "signed",
            )
            return r, set() if consent == "signed" else {err("Registry_InvalidConsent", voice)}

        def _register(
            self, creator, r: dict, expected: set, parent: int, rule_name: str, label: str = ""
        ) -> ModelM | None:
            model_id = protocol.model_id(creator.address, r["bundleDigest"])
            if model_id in self.models:
                expected.add(err("Registry_ModelExists", model_id))
            if not self._send(d.registry.registerModel, r, sender=creator, expected=expected):
                return None
            voice, bps = r["voiceOwner"], r["voiceOwnerBps"]
            payees = [(voice, bps)] if voice != creator.address else []
            model = ModelM(
                model_id,
                creator.address,
                creator.address,
                voice,
                payees,
                r["disputeWindow"],
                parent=parent,
                label=label,
            )
            self.models[model_id] = model
            self._won(rule_name)
            self._won(f"{rule_name}: own voice" if voice == creator.address else f"{rule_name}: with consent")
            return model

        @precondition(lambda self: len(self.models) < MAX_MODELS - 2)  # room for versions
        @rule(
            creator=st.sampled_from([1, 6, 9, 3]),
            own_voice=st.sampled_from([False, False, True]),
            squat=st.sampled_from([False, False, True]),
            window=st.sampled_from([0, 600]),
            fault=st.sampled_from([None] * 4 + ["same bundle", "no consent", "revoked", "expired"]),
        )
        def register_model(self, creator, own_voice, squat, window, fault):
            """A new model: its id is modelIdOf(creator, digest), so the same bundle registered by
            another creator (`squat`) is another model, and nobody takes a creator's id first; the
            same creator cannot register a bundle twice. `fault`: the one thing wrong, if any."""
            creator = everyone[creator]
            if fault == "same bundle":
                mine = [m.label for m in self.models.values() if m.creator == creator.address]
                creator = creator if mine else a.creator
                label = mine[0] if mine else "property model 1"
            elif squat:
                label = next(m.label for m in self.models.values() if m.creator != creator.address)
            else:
                self.labels += 1
                label = f"bundle {self.labels}"
            voice = creator.address if own_voice else a.voice.address
            consent = {"no consent": "none", "revoked": "revoked", "expired": "expired"}.get(fault, "signed")
            r, expected = self._consent(creator, voice, 2_000, label, consent)
            r["disputeWindow"] = window
            model = self._register(creator, r, expected, 0, "register_model", label)
            if model and squat:
                self._won("register_model: a bundle another creator registered")

        @precondition(lambda self: len(self.models) < MAX_MODELS)
        @rule(
            data=st.data(),
            own=st.booleans(),
            fault=st.sampled_from(
                [None] * 5
                + [
                    "not owner",
                    "voice to caller",
                    "voice to stranger",
                    "no consent",
                    "revoked",
                    "expired",
                    "frozen parent",
                ]
            ),
        )
        def register_version(self, data, own, fault):
            """A new version of a model: only by the parent's owner, never under a frozen parent,
            keeping the parent's voice owner, who consents again unless they register it (`own`:
            mostly a parent whose creator is its voice owner). `fault`: the one thing wrong, if any."""
            live = [m for m, x in self.models.items() if not x.frozen]
            self_voiced = [m for m in live if self.models[m].voice == self.models[m].owner]
            parent = self.models[self._pick(data, list(self.models), self_voiced if own and self_voiced else live)]
            if fault == "frozen parent" and not parent.frozen:
                if self._send(d.registry.freeze, parent.id, b"\x02" * 32, sender=a.arbiter):
                    parent.frozen = True
            caller = (
                by_address[parent.owner]
                if fault != "not owner"
                else (a.other if parent.owner != a.other.address else a.buyer)
            )
            voice_owner = {"voice to caller": caller.address, "voice to stranger": a.treasurer.address}.get(
                fault, parent.voice
            )
            consent = {"no consent": "none", "revoked": "revoked", "expired": "expired"}.get(fault, "signed")
            self.labels += 1
            r, consent_errors = self._consent(caller, voice_owner, 1_500, f"version {self.labels}", consent)
            r["parentId"] = parent.id
            expected = set()
            if caller.address != parent.owner:
                expected.add(err("Registry_NotModelOwner", parent.id, caller.address))
            else:
                if parent.frozen:
                    expected.add(err("Registry_ParentFrozen", parent.id))
                if voice_owner != parent.voice:
                    expected.add(err("Registry_VoiceOwnerChanged", parent.id, parent.voice, voice_owner))
            expected |= consent_errors
            model = self._register(caller, r, expected, parent.id, "register_version", f"version {self.labels}")
            if model and model.voice != caller.address:
                self._won("register_version: with the voice owner's consent")

        # ------------------------------------------------------------ offers and sales

        @precondition(lambda self: self.models)
        @rule(
            data=st.data(),
            tier=st.sampled_from(list(Tier)),
            in_usd=st.booleans(),
            price=st.integers(0, 10**6),
            period=st.sampled_from([1_000, 100, 3_600, DAY]),
            max_uses=st.integers(0, 3),
            pack_size=st.integers(0, 3),
            max_licenses=st.integers(0, 3),
            valid_for=st.sampled_from([0, 0, 2_000, 5 * DAY]),
            tts=st.sampled_from([True, True, True, False]),
            transferable=st.booleans(),
            fault=st.sampled_from([None] * 6 + ["not owner", "valid until passed", "period above notice"]),
        )
        def publish_offer(
            self,
            data,
            tier,
            in_usd,
            price,
            period,
            max_uses,
            pack_size,
            max_licenses,
            valid_for,
            tts,
            transferable,
            fault,
        ):
            """The model's owner publishes an offer through the OfferBook. `fault`: the one thing
            wrong, if any (a subscription whose period and renewal lead do not fit in the notice)."""
            live = [m for m, x in self.models.items() if not x.frozen and not x.service_ends]
            model = self.models[self._pick(data, list(self.models), live)]
            t = self.now + 1
            if fault == "period above notice":
                tier, period = Tier.SUBSCRIPTION, self._notice(t)
            actor = a.other if model.owner != a.other.address else a.buyer
            if self._publish(
                model,
                by_address[model.owner] if fault != "not owner" else actor,
                tier,
                dollar if in_usd else eth,
                price if in_usd else price * 10**9,
                period,
                max_uses,
                pack_size,
                -1 if fault == "valid until passed" else valid_for,
                max_licenses,
                (TTS if tts else 0) | int(Action.COMMERCIAL_USE),
                transferable,
            ):
                self._won("publish_offer")

        def _publish(
            self,
            model: ModelM,
            sender,
            tier: Tier,
            asset: str,
            price: int,
            period: int,
            max_uses: int,
            pack_size: int,
            valid_for: int,
            max_licenses: int,
            permissions: int,
            transferable: bool,
        ) -> OfferM | None:
            t = self.now + 1
            subscription = tier == Tier.SUBSCRIPTION
            terms = {
                "modelId": model.id,
                "tier": int(tier),
                "asset": asset,
                "price": price,
                "period": period if subscription else 0,
                "maxUses": max_uses,
                "packSize": pack_size if tier == Tier.PAY_PER_USE else 0,
                "validUntil": 0 if valid_for == 0 else t if valid_for < 0 else t + valid_for,
                "maxLicenses": max_licenses,
                "permissions": permissions,
                "prohibitions": 0,
                "attribution": True,
                "transferable": transferable,
                "purposes": 0,
                "policyHash": keccak(text=f"offer {len(self.offers)} {price}"),
            }
            expected = set()
            if sender.address != model.owner:
                expected.add(err("Licensing_NotModelOwner", model.id, sender.address))
            else:
                if terms["validUntil"] and terms["validUntil"] <= t:
                    expected.add(err("Licensing_ValidUntilPassed", terms["validUntil"]))
                notice = self._notice(t)
                if subscription and period + renewal_lead(period) > notice:
                    expected.add(err("Licensing_PeriodAboveNotice", period, notice))
                if asset == dollar and not self.usd_allowed:
                    expected.add(err("Licensing_AssetNotAllowed", dollar))
                expected |= self._model_state_errors(model, selling=True)
            if not self._send(d.offers.publishOffer, terms, b"US", sender=sender, expected=expected):
                return None
            offer = OfferM(
                self.next_offer,
                model.id,
                tier,
                asset,
                price,
                terms["period"],
                max_uses,
                terms["packSize"],
                terms["validUntil"],
                max_licenses,
                permissions,
                transferable,
                terms=tuple(terms.values()),
            )
            self.next_offer += 1
            self.offers.append(offer)
            return offer

        @precondition(lambda self: self.offers)
        @rule(data=st.data(), actor=st.sampled_from(["owner", "admin", "stranger", "stranger", "stranger"]))
        def deactivate_offer(self, data, actor):
            offer = data.draw(st.sampled_from(self.offers))
            owner = self.models[offer.model].owner
            sender = {
                "owner": by_address[owner],
                "admin": admin,
                "stranger": a.other if owner != a.other.address else a.buyer,
            }[actor]
            if self._deactivate(offer, sender):
                self._won("deactivate_offer")

        def _deactivate(self, offer: OfferM, sender) -> bool:
            """The model's owner or the licence manager's admin withdraws an offer (for good)."""
            owner = self.models[offer.model].owner
            expected = set()
            if sender.address not in (owner, admin.address):
                expected.add(err("Licensing_NotModelOwner", offer.model, sender.address))
            elif not offer.active:
                expected.add(err("Licensing_OfferInactive", offer.id))
            if not self._send(d.offers.deactivateOffer, offer.id, sender=sender, expected=expected):
                return False
            offer.active = False
            return True

        def _paid_until_errors(self, o: OfferM, end: int, t: int) -> set:
            """A subscription is paid no further than its offer's validUntil nor now + the notice."""
            errors = set()
            if o.valid_until and end > o.valid_until:
                errors.add(err("Licensing_BeyondValidUntil", end, o.valid_until))
            latest = t + self._notice(t)
            if end > latest:
                errors.add(err("Licensing_BeyondNotice", end, latest))
            return errors

        @precondition(lambda self: self.offers)
        @rule(
            data=st.data(),
            buyer=st.sampled_from([3, 9, 3, 9, 2, 8, 7]),
            fault=st.sampled_from(
                [None] * 4 + ["no quantity", "quantity 2", "many periods", "short", "past validUntil", "any offer"]
            ),
        )
        def buy(self, data, buyer, fault):
            """Buy licences (subscriptions of any number of periods: capped by validUntil and the
            notice). `fault`: the one thing wrong with the call, if any (the offer's state aside;
            "past validUntil": the owner of a live model first publishes a subscription valid for
            2.5 periods, and three are asked)."""
            offer = self._pick(data, self.offers, [] if fault == "any offer" else [o for o in self.offers if o.active])
            live = [m for m in self.models.values() if not m.frozen and not m.service_ends]
            if fault == "past validUntil" and live:
                model = data.draw(st.sampled_from(live))
                offer = (
                    self._publish(
                        model,
                        by_address[model.owner],
                        Tier.SUBSCRIPTION,
                        eth,
                        10**12,
                        1_000,
                        0,
                        0,
                        2_500,
                        0,
                        TTS,
                        False,
                    )
                    or offer
                )
            if fault == "many periods":
                offer = self._pick(
                    data, self.offers, [o for o in self.offers if o.active and o.tier == Tier.SUBSCRIPTION]
                )
            subscription = offer.tier == Tier.SUBSCRIPTION
            usual = data.draw(st.sampled_from([1, 2, 3])) if subscription else 1
            past_notice = self._notice(self.now + 1) // offer.period + 1 if subscription else 60
            quantity = {"no quantity": 0, "quantity 2": 2, "many periods": past_notice, "past validUntil": 3}.get(
                fault, usual
            )
            if self._buy(offer, everyone[buyer], quantity, fault == "short"):
                self._won("buy")

        def _sale(self, data) -> None:
            """A buyer buys one period or licence of an offer that sells now (revenue to share)."""
            t = self.now + 1
            selling = [
                o
                for o in self.offers
                if o.active
                and o.price
                and not (o.valid_until and t > o.valid_until)
                and not self.models[o.model].frozen
                and not self.models[o.model].service_ends
            ]
            if selling and not self.lm_paused:
                offer = data.draw(st.sampled_from(selling))
                self._buy(offer, a.buyer if offer.asset == eth else data.draw(st.sampled_from(buyers)), 1, False)

        def _buy(self, offer: OfferM, account, quantity: int, short: bool) -> bool:
            model = self.models[offer.model]
            t = self.now + 1
            expected = set()
            if self.lm_paused:
                expected.add("EnforcedPause")
            if not offer.active:
                expected.add(err("Licensing_OfferInactive", offer.id))
            if offer.valid_until and t > offer.valid_until:
                expected.add(err("Licensing_OfferExpired", offer.id, offer.valid_until))
            if offer.max_licenses and offer.sold >= offer.max_licenses:
                expected.add(err("Licensing_SoldOut", offer.id, offer.max_licenses))
            if offer.asset == dollar and not self.usd_allowed:
                expected.add(err("Licensing_AssetNotAllowed", dollar))
            expected |= self._model_state_errors(model, selling=True)
            limit = 0
            if offer.tier == Tier.SUBSCRIPTION:
                cost = offer.price * quantity
                if quantity == 0:
                    expected.add(err("Licensing_BadQuantity", int(offer.tier), quantity))
                else:
                    expected |= self._paid_until_errors(offer, t + offer.period * quantity, t)
            elif offer.tier == Tier.PAY_PER_USE and offer.pack_size:
                limit = quantity * offer.pack_size
                cost = offer.price * limit
                if quantity == 0:
                    expected.add(err("Licensing_BadQuantity", int(offer.tier), quantity))
                elif offer.max_uses and limit > offer.max_uses:
                    expected.add(err("Licensing_TooManyUses", limit, offer.max_uses))
            else:
                cost = offer.price if offer.tier == Tier.BUYOUT else 0
                if quantity != 1:
                    expected.add(err("Licensing_BadQuantity", int(offer.tier), quantity))
            max_price = cost - 1 if short and cost else cost
            if max_price < cost:
                expected.add(err("Licensing_PriceAboveMax", cost, max_price))
            if offer.asset == dollar:
                expected |= self._pull_errors(account.address, lm_address, cost)
            value = cost if offer.asset == eth else 0
            receipt = self._send(
                d.licenses.buy, offer.id, max_price, quantity, value=value, sender=account, expected=expected
            )
            if not receipt:
                return False
            offer.sold += 1
            lic = LicenseM(self.next_license, offer, account.address, limit=limit)
            self.next_license += 1
            if offer.tier == Tier.SUBSCRIPTION:
                lic.anchor, lic.expires = t, t + offer.period * quantity
                self._won("buy: subscription")
            self.licenses.append(lic)
            if cost:
                self.lm_ledger.accrue(model.id, offer.asset, cost, self.fee_bps)
                if offer.asset == dollar:
                    self._pay_usd(account.address, lm_address, cost)
            return True

        def _renewal_errors(self, lic: LicenseM, caller: str, duration: int, value: int, t: int) -> set:
            """Every error renewSubscription(lic, duration) from `caller` with `value` may raise at t."""
            o, model = lic.offer, self.models[lic.offer.model]
            holder = lic.holder
            expected = set()
            if self.lm_paused:
                expected.add("EnforcedPause")
            if o.tier != Tier.SUBSCRIPTION:
                return expected | {err("Licensing_NotSubscription", lic.id)}
            if duration == 0 or duration % o.period:
                expected.add(err("Licensing_BadDuration", duration, o.period))
            if not o.active:
                expected.add(err("Licensing_OfferInactive", o.id))
            if o.asset == dollar and not self.usd_allowed:
                expected.add(err("Licensing_AssetNotAllowed", dollar))
            lead = renewal_lead(o.period)
            if caller != holder:
                if not lic.auto_renew:
                    expected.add(err("Licensing_AutoRenewOff", lic.id))
                if duration != o.period:
                    expected.add(err("Licensing_BadDuration", duration, o.period))
                if t >= lic.expires:
                    expected.add(err("Licensing_SubscriptionLapsed", lic.id, lic.expires))
                elif t + lead < lic.expires:
                    expected.add(err("Licensing_RenewalNotDue", lic.id, lic.expires - lead))
            expected |= self._model_state_errors(model, selling=True)
            end = (t if t >= lic.expires else lic.expires) + duration
            expected |= self._paid_until_errors(o, end, t)
            cost = o.price * (duration // o.period)
            if o.asset == eth or cost == 0:
                if value != (cost if o.asset == eth else 0):
                    expected.add(err("Licensing_WrongPayment", cost if o.asset == eth else 0, value))
            else:
                if value:
                    expected.add(err("Licensing_WrongPayment", 0, value))
                allowance, balance = self.allowance[(holder, lm_address)], self.usd[holder]
                if allowance < cost:
                    expected.add(err("Licensing_RenewalAllowanceTooLow", lic.id, allowance, cost))
                elif balance < cost:
                    expected.add(err("Licensing_RenewalBalanceTooLow", lic.id, balance, cost))
            return expected

        def _renewable(self, lic: LicenseM) -> bool:
            """Whether the licence's offer still sells (active, asset allowed, model sellable)."""
            o, model = lic.offer, self.models[lic.offer.model]
            return (
                o.active
                and (o.asset == eth or self.usd_allowed)
                and not model.frozen
                and not model.service_ends
                and not self.lm_paused
            )

        def _renewable_now(self, lic: LicenseM, t: int) -> bool:
            """isRenewable at t: the holder could renew one period (pause and payment aside)."""
            o = lic.offer
            if o.tier != Tier.SUBSCRIPTION:
                return False
            end = max(t, lic.expires) + o.period
            return (
                o.active
                and (o.asset == eth or self.usd_allowed)
                and not (o.valid_until and end > o.valid_until)
                and end <= t + self._notice(t)
                and not self.models[o.model].frozen
                and not self.models[o.model].service_ends
            )

        def _apply_renewal(self, lic: LicenseM, duration: int, t: int) -> bool:
            """The renewal succeeded: the licence's new term and the payment. True if it had lapsed."""
            o = lic.offer
            lapsed = t >= lic.expires
            if lapsed:
                lic.anchor, lic.used, lic.period_start, lic.expires = t, 0, 0, t + duration
            else:
                lic.expires += duration
            cost = o.price * (duration // o.period)
            if cost:
                self.lm_ledger.accrue(o.model, o.asset, cost, self.fee_bps)
                if o.asset == dollar:
                    self._pay_usd(lic.holder, lm_address, cost)
            return lapsed

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            fault=st.sampled_from(
                [None] * 4
                + [
                    "no periods",
                    "odd",
                    "wrong value",
                    "past the notice",
                    "offer withdrawn",
                    "asset de-listed",
                    "allowance",
                    "any licence",
                ]
            ),
        )
        def renew(self, data, fault):
            """The holder renews by any number of periods, at any time (a lapsed one restarts now),
            only while the offer still sells in its asset. `fault`: the one thing wrong, if any
            (the last three are made just before: the owner withdraws the offer, the admin de-lists
            the stablecoin (listed again after), the holder's allowance falls short)."""
            subscriptions = [x for x in self.licenses if x.offer.tier == Tier.SUBSCRIPTION]
            renewable = [x for x in subscriptions if self._renewable(x)] or subscriptions
            if fault in ("asset de-listed", "allowance"):
                renewable = [x for x in renewable if x.offer.asset == dollar] or renewable
            lic = self._pick(data, self.licenses, [] if fault == "any licence" else renewable)
            o, holder = lic.offer, by_address[lic.holder]
            listed, allowance = self.usd_allowed, self.allowance[(holder.address, lm_address)]
            if fault == "offer withdrawn" and o.active:
                self._deactivate(o, admin)
            elif fault == "asset de-listed" and listed:
                self._set_asset_allowed(False)
            elif fault == "allowance" and o.price:
                self._approve(holder, lm_address, o.price - 1)
            t = self.now + 1
            periods = {"no periods": 0, "past the notice": 1 + self._notice(t) // o.period if o.period else 1}.get(
                fault, data.draw(st.sampled_from([1, 1, 2, 3]))
            )
            if self._holder_renew(lic, periods, odd=fault == "odd", wrong_value=fault == "wrong value"):
                self._won("renew")
            if fault == "asset de-listed" and listed:
                self._set_asset_allowed(True)
            elif fault == "allowance" and o.price:
                self._approve(holder, lm_address, allowance)

        def _holder_renew(self, lic: LicenseM, periods: int, odd: bool = False, wrong_value: bool = False) -> bool:
            o = lic.offer
            duration = (o.period * periods + odd) if o.tier == Tier.SUBSCRIPTION else 1_000
            return self._renew(lic, by_address[lic.holder], duration, wrong_value)

        def _renew(self, lic: LicenseM, sender, duration: int, wrong_value: bool = False) -> bool:
            """renewSubscription(lic, duration) from `sender`, paying the cost in ETH (plus 1 wei if
            `wrong_value`); True if it succeeded. A renewal on someone else's word is checked
            against the property apart from the model's prediction: the current holder agreed to
            it, it is one period, due and not lapsed."""
            o, t = lic.offer, self.now + 1
            cost = o.price * (duration // o.period) if o.period else 0
            value = (cost if o.asset == eth else 0) + wrong_value
            expected = self._renewal_errors(lic, sender.address, duration, value, t)
            if not self._send(
                d.licenses.renewSubscription, lic.id, duration, value=value, sender=sender, expected=expected
            ):
                return False
            if sender.address != lic.holder:
                lead = renewal_lead(o.period)
                assert lic.auto_renew and lic.agreed_by == lic.holder, "a keeper renewed without the holder's consent"
                assert duration == o.period, "a keeper renewed more than one period"
                assert lic.expires - lead <= t < lic.expires, "a keeper renewed a licence not due or lapsed"
                self._won(
                    "keeper_renew: ETH from the caller"
                    if o.asset == eth
                    else "keeper_renew: ERC-20 from the holder's allowance"
                )
                if sender.address == lic.approved:
                    self._won("keeper_renew: by an account approved on the licence")
            if self._apply_renewal(lic, duration, t):
                self._won("renew: holder restarts a lapsed subscription")
            return True

        @precondition(lambda self: any(lic.offer.tier == Tier.SUBSCRIPTION for lic in self.licenses))
        @rule(
            data=st.data(),
            caller=st.sampled_from(["keeper", "keeper", "stranger", "approved", "approved", "buyer", "holder"]),
            fault=st.sampled_from(
                [None] * 4
                + [
                    "now",
                    "early",
                    "lapsed",
                    "periods",
                    "wrong value",
                    "cancelled",
                    "pushed to a stranger",
                    "any licence",
                ]
            ),
        )
        def keeper_renew(self, data, caller, fault):
            """Anyone renews someone's subscription: the model predicts when this may happen (the
            current holder turned autoRenew on, one period, due, not lapsed), who pays (the holder's
            ERC-20 allowance, or the caller's ETH), and checks that a success is of that kind.
            `fault`: the one thing wrong with the call, if any (the licence's state aside); the
            holder "cancelled" just before, or the licence was "pushed to a stranger" (H-1: the new
            holder never agreed)."""
            subscriptions = [lic for lic in self.licenses if lic.offer.tier == Tier.SUBSCRIPTION]
            agreed = [x for x in subscriptions if x.auto_renew and x.expires > self.now + 1]
            agreed = [x for x in agreed if self._renewable(x)] or agreed
            renewable = [x for x in subscriptions if self._renewable(x)]
            if not agreed and renewable and fault != "any licence":
                # A holder agrees: renews a lapsed subscription if need be, and turns autoRenew on.
                lic = data.draw(st.sampled_from(renewable))
                if lic.expires > self.now + 1 or self._holder_renew(lic, 1):
                    if lic.auto_renew or self._set_auto_renew(lic, True, by_address[lic.holder]):
                        agreed = [lic]
            if fault == "any licence":
                lic = data.draw(st.sampled_from(subscriptions))
            elif caller == "approved":
                approved = [x for x in agreed if x.approved not in (ZERO, x.holder)]
                lic = data.draw(st.sampled_from(approved or agreed or subscriptions))
                if lic.approved in (ZERO, lic.holder):
                    # The holder approves a stranger on the licence first.
                    stranger = next(x for x in strangers if x.address != lic.holder)
                    if self._send(d.licenses.approve, stranger.address, lic.id, sender=by_address[lic.holder]):
                        lic.approved = stranger.address
            else:
                lic = self._pick(data, subscriptions, agreed)
            if fault == "cancelled":
                self._send(d.licenses.cancelSubscription, lic.id, sender=by_address[lic.holder])
                lic.auto_renew, lic.agreed_by = False, ZERO
            elif fault == "pushed to a stranger" and lic.offer.transferable:
                self._transfer(
                    lic, by_address[lic.holder], next(x.address for x in strangers if x.address != lic.holder)
                )
            o = lic.offer
            lead = renewal_lead(o.period)
            when = fault if fault in ("now", "early", "lapsed") else data.draw(st.sampled_from(["due", "due_end"]))
            if when == "due":
                self._advance_to(lic.expires - lead)
            elif when == "due_end":
                self._advance_to(lic.expires - 1)
            elif when == "early":
                if self.now + 1 >= lic.expires - lead - 1 and self._renewable(lic):
                    self._holder_renew(lic, 1)  # the holder pays one more period: not due any more
                self._advance_to(lic.expires - lead - 1)
            elif when == "lapsed":
                self._advance_to(lic.expires)
            others = [x for x in everyone if x.address != lic.holder]
            sender = {
                "keeper": a.keeper if a.keeper.address != lic.holder else a.operator,
                "stranger": data.draw(st.sampled_from([x for x in strangers if x.address != lic.holder] or others)),
                "approved": by_address.get(lic.approved) if lic.approved != ZERO else None,
                "buyer": data.draw(st.sampled_from(others)),
                "holder": by_address[lic.holder],
            }[caller] or a.keeper
            periods = data.draw(st.sampled_from([0, 2, 3])) if fault == "periods" else 1
            if self._renew(lic, sender, o.period * periods, fault == "wrong value"):
                self._won("keeper_renew")

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            on=st.sampled_from([True, True, False]),
            caller=st.sampled_from(["holder"] * 4 + ["approved", "stranger"]),
        )
        def set_auto_renew(self, data, on, caller):
            lic = data.draw(st.sampled_from(self.licenses))
            if self._set_auto_renew(lic, on, self._caller_for(lic, caller)):
                self._won("set_auto_renew")

        def _set_auto_renew(self, lic: LicenseM, on: bool, sender) -> bool:
            expected = set()
            if sender.address != lic.holder:
                expected.add(err("Licensing_NotLicenseHolder", lic.id, sender.address))
            elif lic.offer.tier != Tier.SUBSCRIPTION:
                expected.add(err("Licensing_NotSubscription", lic.id))
            if not self._send(d.licenses.setAutoRenew, lic.id, on, sender=sender, expected=expected):
                return False
            lic.auto_renew, lic.agreed_by = on, lic.holder if on else ZERO
            return True

        def _caller_for(self, lic: LicenseM, caller: str):
            if caller == "holder" or (caller == "approved" and lic.approved == ZERO):
                return by_address[lic.holder]
            if caller == "approved":
                return by_address[lic.approved]
            return a.keeper

        @precondition(lambda self: self.licenses)
        @rule(data=st.data(), caller=st.sampled_from(["holder", "holder", "approved", "stranger"]))
        def cancel_subscription(self, data, caller):
            lic = data.draw(st.sampled_from(self.licenses))
            sender = self._caller_for(lic, caller)
            expected = set()
            if not self._authorized(lic, sender.address):
                expected.add(err("Licensing_NotLicenseHolder", lic.id, sender.address))
            elif lic.offer.tier != Tier.SUBSCRIPTION:
                expected.add(err("Licensing_NotSubscription", lic.id))
            if self._send(d.licenses.cancelSubscription, lic.id, sender=sender, expected=expected):
                lic.auto_renew, lic.agreed_by = False, ZERO
                self._won("cancel_subscription")

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            to=st.sampled_from([2, 8, 7, 5, 0]),
            by_holder=st.sampled_from([True] * 5 + [False]),
            for_all=st.sampled_from([False, False, False, True]),
            on=st.sampled_from([True, True, False]),
        )
        def approve_license(self, data, to, by_holder, for_all, on):
            """The holder approves an account on one licence token, or on all its tokens
            (`for_all`, `on`): that account may then transfer the licences, approve others and
            cancel, and calls renewSubscription like anyone else (never on the holder's word)."""
            lic = data.draw(st.sampled_from(self.licenses))
            sender = by_address[lic.holder] if by_holder else a.keeper
            if for_all:
                target = everyone[to or 5].address
                if self._send(d.licenses.setApprovalForAll, target, on, sender=sender):
                    (self.for_all.add if on else self.for_all.discard)((sender.address, target))
                    self._won("approve_license")
                return
            target = everyone[to].address if to else ZERO
            expected = set()
            if sender.address != lic.holder and (lic.holder, sender.address) not in self.for_all:
                expected.add(err("ERC721InvalidApprover", sender.address))
            if self._send(d.licenses.approve, target, lic.id, sender=sender, expected=expected):
                lic.approved = target
                self._won("approve_license")

        def _authorized(self, lic: LicenseM, account: str) -> bool:
            """ERC-721: the holder, the account approved on the token, or one approved for all."""
            return account in (lic.holder, lic.approved) or (lic.holder, account) in self.for_all

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            to=st.sampled_from([2, 8, 7, 3, 9]),
            by=st.sampled_from(["holder"] * 4 + ["approved", "stranger"]),
        )
        def transfer_license(self, data, to, by):
            """Licences move to buyers and to strangers (accounts with a standing allowance on the
            licence manager): the new holder never inherits the old one's autoRenew."""
            lic = data.draw(st.sampled_from(self.licenses))
            target = everyone[to].address
            if target == lic.holder:
                target = a.buyer.address if lic.holder != a.buyer.address else a.other.address
            if self._transfer(lic, self._caller_for(lic, by), target):
                self._won("transfer_license")

        def _transfer(self, lic: LicenseM, sender, target: str) -> bool:
            expected = set()
            if not self._authorized(lic, sender.address):
                expected.add(err("ERC721InsufficientApproval", sender.address, lic.id))
            elif not lic.offer.transferable:
                expected.add(err("Licensing_NotTransferable", lic.id))
            if not self._send(d.licenses.transferFrom, lic.holder, target, lic.id, sender=sender, expected=expected):
                return False
            lic.holder, lic.auto_renew, lic.agreed_by, lic.approved = target, False, ZERO, ZERO
            if by_address[target] in strangers:
                self._won("transfer_licence: to a stranger")
            return True

        @rule(
            account=st.sampled_from([3, 9, 2, 8, 7]),
            spender=st.sampled_from(["lm", "lm", 0, 1]),
            amount=st.sampled_from([0, 1_000_000, 3_000_000, MAX_UINT]),
        )
        def set_allowance(self, account, spender, amount):
            """A holder changes a standing allowance (an unrelated approval must never let a
            keeper revive or over-renew anything)."""
            owner = everyone[account]
            to = lm_address if spender == "lm" else self.routers[spender].address
            if self._approve(owner, to, amount):
                self._won("set_allowance")

        def _approve(self, owner, spender: str, amount: int) -> bool:
            if not self._send(usd.approve, spender, amount, sender=owner):
                return False
            self.allowance[(owner.address, spender)] = amount
            return True

        # ------------------------------------------------------------ revenue

        def _pots(self) -> list[tuple]:
            return [(key, m, x) for key in ("lm", 0, 1) for (m, x) in self._ledger(key)[1].pots]

        @rule(
            data=st.data(),
            ledger=st.sampled_from(["lm", "lm", 0, 1]),
            in_usd=st.booleans(),
            actor=st.integers(0, 9),
            fresh=st.sampled_from([True, True, False]),
        )
        def distribute(self, data, ledger, in_usd, actor, fresh):
            """Anyone shares a pot out (after a sale when there is none)."""
            if fresh and not self._pots():
                self._sale(data)
            choice = [(ledger, m, dollar if in_usd else eth) for m in self.models]
            if self._distribute(*self._pick(data, choice, self._pots()), everyone[actor]):
                self._won("distribute")

        def _distribute(self, key, model_id: int, asset: str, sender) -> bool:
            contract, book = self._ledger(key)
            share, platform = book.pots.get((model_id, asset), (0, 0))
            expected = set() if share or platform else {err("Ledger_NothingToDistribute", model_id, asset)}
            if not self._send(contract.distribute, model_id, asset, sender=sender, expected=expected):
                return False
            self._apply_distribution(key, self.models[model_id], asset)
            return True

        def _apply_distribution(self, key, model: ModelM, asset: str) -> None:
            _, book = self._ledger(key)
            share, platform = book.pots.pop((model.id, asset))
            book.platform[asset] = book.platform.get(asset, 0) + platform
            for account, cut in split_revenue(share, model.creator, model.payees).items():
                self._credit(book, key, account, asset, cut)

        @rule(data=st.data(), ledger=st.sampled_from(["lm", "lm", 0, 1]), actor=st.integers(0, 9), in_usd=st.booleans())
        def withdraw(self, data, ledger, actor, in_usd):
            owed = [(key, x, asset) for key in ("lm", 0, 1) for (x, asset) in self._ledger(key)[1].credits]
            if not owed and not self._pots():
                self._sale(data)
            if not owed and self._pots():  # share a pot out first
                self._distribute(*data.draw(st.sampled_from(self._pots())), a.other)
                owed = [(key, x, asset) for key in ("lm", 0, 1) for (x, asset) in self._ledger(key)[1].credits]
            ledger, account, asset = self._pick(data, [(ledger, addresses[actor], dollar if in_usd else eth)], owed)
            if self._withdraw(ledger, by_address[account], asset):
                self._won("withdraw")

        def _withdraw(self, key, account, asset: str) -> bool:
            contract, book = self._ledger(key)
            owed = book.credits.get((account.address, asset), 0)
            expected = set() if owed else {err("Ledger_NothingToWithdraw", account.address, asset)}
            if not self._send(contract.withdraw, asset, sender=account, expected=expected):
                return False
            del book.credits[(account.address, asset)]
            if asset == eth:
                self.eth[account.address] += owed
            else:
                self.usd[account.address] += owed
            k = (key, account.address, asset)
            self.withdrawn_total[k] = self.withdrawn_total.get(k, 0) + owed
            assert self.withdrawn_total[k] <= self.credited_total.get(k, 0), "withdrew more than credited"
            return True

        @rule(
            data=st.data(),
            ledger=st.sampled_from(["lm", "lm", 0, 1]),
            in_usd=st.booleans(),
            actor=st.sampled_from([8, 8, 0]),
        )
        def withdraw_platform_fees(self, data, ledger, in_usd, actor):
            owed = [(key, x) for key in ("lm", 0, 1) for x, v in self._ledger(key)[1].platform.items() if v]
            if not owed and not self._pots():
                self._sale(data)
            if not owed and self._pots():  # share a pot out first
                self._distribute(*data.draw(st.sampled_from(self._pots())), a.other)
                owed = [(key, x) for key in ("lm", 0, 1) for x, v in self._ledger(key)[1].platform.items() if v]
            ledger, asset = self._pick(data, [(ledger, dollar if in_usd else eth)], owed)
            if self._withdraw_platform(ledger, asset, everyone[actor]):
                self._won("withdraw_platform_fees")

        def _withdraw_platform(self, key, asset: str, sender) -> bool:
            contract, book = self._ledger(key)
            owed = book.platform.get(asset, 0)
            expected = set()
            if sender != a.treasurer:
                expected.add("AccessControlUnauthorizedAccount")
            elif not owed:
                expected.add(err("Ledger_NothingToWithdraw", contract.address, asset))
            if not self._send(contract.withdrawPlatformFees, asset, a.treasurer, sender=sender, expected=expected):
                return False
            book.platform[asset] = 0
            if asset == eth:
                self.eth[a.treasurer.address] += owed
            else:
                self.usd[a.treasurer.address] += owed
            return True

        # ------------------------------------------------------------ requests

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            op=st.integers(0, 1),
            deadline_in=st.sampled_from([20, 800, 800, MAX_TTL]),
            language=st.sampled_from([Language.ZH, Language.EN]),
            fault=st.sampled_from(
                [None] * 4
                + [
                    "other router",
                    "not holder",
                    "deadline",
                    "fee",
                    "language",
                    "window",
                    "manager paused",
                    "any licence",
                ]
            ),
        )
        def request(self, data, op, deadline_in, language, fault):
            """A request for speech (the licence manager checks the licence and counts the use).
            `fault`: the one thing wrong with the call, if any (the state aside; "manager paused":
            the admin pauses the licence manager just before, and unpauses it after)."""
            pause = fault == "manager paused" and not self.lm_paused
            if pause:
                self._pause("lm", True)
            t = self.now + 1
            router = 1 - self.lm_router if fault == "other router" else self.lm_router
            deadline_in = MAX_TTL + 1 if fault == "deadline" else deadline_in
            # Mostly a licence that works now; sometimes to an operator whose removal is under way.
            usable = [] if fault == "any licence" else [lic for lic in self.licenses if self._licensed(lic, t)[0]]
            removing = [
                (lic, i)
                for lic in usable
                for i, x in enumerate(op_accounts)
                if ALWAYS > self.routers[router].allowed_until.get((lic.offer.model, x.address), 0) >= t + deadline_in
            ]
            if removing and data.draw(st.booleans()):
                lic, op = data.draw(st.sampled_from(removing))
            else:
                lic = self._pick(data, self.licenses, usable)
                served = self._servers(self.routers[router], lic.offer.model, t + deadline_in)
                op = data.draw(st.sampled_from(served)) if served and fault != "any licence" else op
            requester = a.creator if fault == "not holder" else by_address[lic.holder]
            window = self.models[lic.offer.model].window
            min_window = window + 1 if fault == "window" else data.draw(st.sampled_from([0, window]))
            language = Language.JA if fault == "language" else language
            if self._request(lic, requester, router, op, deadline_in, fault == "fee", language, min_window):
                self._won("request")
            if pause:
                self._pause("lm", False)

        def _request(
            self,
            lic: LicenseM,
            requester,
            router_index: int,
            op: int,
            deadline_in: int,
            fee_short: bool,
            language: Language,
            min_window: int = 0,
        ) -> RequestM | None:
            o, model = lic.offer, self.models[lic.offer.model]
            router = self.routers[router_index]
            operator = router.ops[op_accounts[op].address]
            t = self.now + 1
            deadline = t + deadline_in
            expected = set()
            if router.paused:
                expected.add("EnforcedPause")
            if deadline > t + MAX_TTL:
                expected.add(err("Router_DeadlineOutOfRange", deadline, t + MAX_TTL))
            if not operator.registered:
                expected.add(err("Router_OperatorNotRegistered", operator.address))
            else:
                if operator.unbonding_ends:
                    expected.add(err("Router_OperatorUnbonding", operator.address, operator.unbonding_ends))
                if operator.stake < router.min_stake:
                    expected.add(err("Router_StakeBelowMinimum", operator.address, operator.stake, router.min_stake))
                if router.allowed_until.get((model.id, operator.address), 0) < deadline:
                    expected.add(err("Router_OperatorNotAllowed", model.id, operator.address))
            # The licence manager's consumeUse:
            lm_paused = self.lm_paused
            if lm_paused:
                expected.add("EnforcedPause")
            if router_index != self.lm_router:
                expected.add(err("Licensing_NotRouter", router.address))
            if requester.address != lic.holder:
                expected.add(err("Licensing_NotLicenseHolder", lic.id, requester.address))
            if not o.permissions & TTS:
                expected.add(err("Licensing_ActionNotPermitted", lic.id, TTS))
            expected |= self._model_state_errors(model, selling=False)
            if o.valid_until and t > o.valid_until:
                expected.add(err("Licensing_OfferExpired", o.id, o.valid_until))
            if o.tier == Tier.SUBSCRIPTION and t >= lic.expires:
                expected.add(err("Licensing_LicenseExpired", lic.id, lic.expires))
            limit, used, tag = self._quota(lic, t)
            if limit and used >= limit:
                expected.add(err("Licensing_UsesExhausted", lic.id, limit))
            if not model.languages & (1 << language):
                expected.add(err("Router_LanguageNotSupported", model.id, int(language)))
            if model.window < min_window:
                expected.add(err("Router_DisputeWindowTooShort", model.window, min_window))
            fee = operator.fees.get(o.asset, 0)
            max_fee = fee - 1 if fee_short and fee else fee
            if max_fee < fee:
                expected.add(err("Router_FeeAboveMax", fee, max_fee))
            use_price = o.price if o.tier == Tier.PAY_PER_USE and not o.pack_size else 0
            if o.asset == dollar:
                expected |= self._pull_errors(requester.address, router.address, use_price + fee)
            value = use_price + max_fee if o.asset == eth else 0
            params = {
                "modelId": model.id,
                "licenseId": lic.id,
                "operator": operator.address,
                "maxFee": max_fee,
                "deadline": deadline,
                "params": vm.SynthesisParams(language, min_dispute_window=min_window).pack(),
                "inputHash": vm.input_hash("hello"),
                "input": vm.inline_input("hello"),
            }
            receipt = self._send(
                router.contract.requestSynthesis, params, value=value, sender=requester, expected=expected
            )
            if not receipt:
                if lm_paused and self.last_error == "EnforcedPause" and not router.paused:
                    ERRORS[("requestSynthesis", "EnforcedPause (licence manager)")] += 1
                return None
            struct = (
                router.next_request,
                model.id,
                lic.id,
                requester.address,
                operator.address,
                o.asset,
                use_price,
                fee,
                params["params"],
                params["inputHash"],
                deadline,
                model.window,
                tag,
                self.fee_bps,
            )
            router.next_request += 1
            r = RequestM(struct, lic, router_index)
            if lic.offer.tier == Tier.SUBSCRIPTION and lic.period_start != tag:
                lic.period_start, lic.used = tag, 0
            lic.used += 1
            lic.consumed += 1
            if o.asset == dollar:
                self._pay_usd(requester.address, router.address, use_price + fee)
            self.requests.append(r)
            if router.allowed_until[(model.id, operator.address)] != ALWAYS:
                self._won("request: to an operator being removed")
            return r

        def _servers(self, router: RouterM, model: int, deadline: int) -> list[int]:
            """The operators (indices) that may be named for `model` with this deadline."""
            return [
                i
                for i, x in enumerate(op_accounts)
                if router.ops[x.address].registered
                and not router.ops[x.address].unbonding_ends
                and router.ops[x.address].stake >= router.min_stake
                and router.allowed_until.get((model, x.address), 0) >= deadline
            ]

        def _request_served(self, data, router_index: int, windowed: bool = False) -> RequestM | None:
            """A request its operator can serve, on a licence that works now (if there is one;
            `windowed`: on a model with a dispute window)."""
            t = self.now + 1
            router = self.routers[router_index]
            usable = [
                lic
                for lic in self.licenses
                if self._licensed(lic, t)[0] and self._servers(router, lic.offer.model, t + 800)
            ]
            if windowed and usable and not any(self.models[lic.offer.model].window for lic in usable):
                model = self.models[data.draw(st.sampled_from(usable)).offer.model]
                self._set_window(model, 600, by_address[model.owner])  # its owner opens a dispute window
            lic = self._pick(
                data, self.licenses, [x for x in usable if self.models[x.offer.model].window or not windowed]
            )
            served = self._servers(router, lic.offer.model, t + 800)
            op = data.draw(st.sampled_from(served)) if served else 0
            return self._request(lic, by_address[lic.holder], router_index, op, 800, False, Language.EN)

        def _live(self, data, kind: str) -> RequestM | None:
            """A request `kind` ("pending": not expired; "fulfilled": in its dispute window;
            "disputed"), made now (requested, delivered, disputed) when there is none."""

            def live(r: RequestM) -> bool:
                t = self.now + 1
                return {
                    "pending": r.status == S.PENDING and t <= r.get("deadline"),
                    "fulfilled": r.status == S.FULFILLED and t < r.settle_after,
                    "disputed": r.status == S.DISPUTED,
                }[kind]

            candidates = [r for r in self.requests if live(r)]
            if candidates:
                return data.draw(st.sampled_from(candidates))
            if not self.licenses:
                return None
            r = self._request_served(data, self.lm_router, windowed=kind != "pending")
            if r is not None and kind != "pending":
                self._fulfil(r, by_address[r.get("operator")])
                if kind == "disputed" and r.status == S.FULFILLED:
                    self._dispute(r, True, "right")
            return r if r is not None and live(r) else None

        def _some_request(self, data, kind: str, fresh: bool) -> RequestM | None:
            """Mostly a live request of `kind` (see _live), else any request."""
            r = self._live(data, kind) if fresh else None
            if r is None and self.requests:
                r = data.draw(st.sampled_from(self.requests))
            return r

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            outcome=st.sampled_from(["fulfil", "fail", "expire", "dispute", "lapse", "pending"]),
            reason=st.sampled_from(list(FailReason)),
        )
        def request_and_decide(self, data, outcome, reason):
            """A request its operator can serve, then one outcome: the paths through the router."""
            r = self._request_served(data, self.lm_router, windowed=outcome in ("dispute", "lapse"))
            if r is None:
                return
            self._won("request_and_decide")
            self._decide(r, outcome, reason, data)

        def _decide(self, r: RequestM, outcome: str, reason: FailReason, data) -> None:
            operator = by_address[r.get("operator")]
            if outcome in ("fulfil", "dispute", "lapse"):
                self._fulfil(r, operator)
                if outcome != "fulfil" and r.status == S.FULFILLED:
                    self._dispute(r, True, "right")
                    if r.status == S.DISPUTED and outcome == "dispute":
                        self._resolve(r, data.draw(st.booleans()), 7)
                    elif r.status == S.DISPUTED:
                        self._advance_to(r.settle_after)
                        self._settle([r], a.other)
            elif outcome == "fail":
                self._fail(r, operator, reason)
            elif outcome == "expire":
                self._advance_to(r.get("deadline") + 1)
                self._cancel(r, a.keeper)

        def _delivery_errors(self, r: RequestM, sender: str, t: int) -> set:
            """Errors of fulfil for one request by `sender` (stake, status and deadline aside)."""
            if sender != r.get("operator"):
                return {err("Router_NotAssignedOperator", r.id, sender)}
            model = self.models[r.get("modelId")]
            errors = set()
            if model.frozen:
                errors.add(err("Router_ModelFrozen", model.id))
            if model.service_ends and t >= model.service_ends:
                errors.add(err("Router_ServiceEnded", model.id, model.service_ends))
            return errors

        def _staked_errors(self, router: RouterM, sender: str) -> set:
            op = router.ops.get(sender)
            if op is None or not op.registered:
                return {err("Router_OperatorNotRegistered", sender)}
            if op.stake < router.min_stake:
                return {err("Router_StakeBelowMinimum", sender, op.stake, router.min_stake)}
            return set()

        def _deliver(self, r: RequestM, t: int) -> None:
            if r.get("disputeWindow") == 0:
                r.status, r.settle_after = S.SETTLED, t
                self._pay_out(r)
            else:
                r.status, r.settle_after = S.FULFILLED, t + r.get("disputeWindow")

        @precondition(lambda self: self.licenses)
        @rule(data=st.data(), op=st.sampled_from([None] * 4 + [0, 1, 2]), fresh=st.sampled_from([True] * 3 + [False]))
        def fulfil(self, data, op, fresh):
            r = self._some_request(data, "pending", fresh)
            if r is None:
                return
            if self._fulfil(r, by_address[r.get("operator")] if op is None else [a.operator, a.keeper, a.other][op]):
                self._won("fulfil")

        def _fulfil(self, r: RequestM, sender) -> bool:
            router = self.routers[r.router]
            t = self.now + 1
            expected = self._staked_errors(router, sender.address)
            if not expected:
                if r.status != S.PENDING:
                    expected.add(err("Router_WrongStatus", r.id, int(r.status)))
                elif t > r.get("deadline"):
                    expected.add(err("Router_RequestExpired", r.id, r.get("deadline")))
                else:
                    expected |= self._delivery_errors(r, sender.address, t)
            if not self._send(router.contract.fulfil, r.struct, OUT_DIGEST, OUT_CID, sender=sender, expected=expected):
                return False
            self._deliver(r, t)
            if self._via(r):
                self._won("fulfil:" + self._via(r))
            if router.allowed_until.get((r.get("modelId"), sender.address), 0) != ALWAYS:
                self._won("fulfil: by an operator being removed")
            return True

        @precondition(lambda self: self.requests)
        @rule(data=st.data(), op=st.integers(0, 1))
        def fulfil_batch(self, data, op):
            """A batch (duplicates too): items no longer pending or past their deadline are skipped."""
            sender = op_accounts[op]
            router_index = data.draw(st.sampled_from(sorted({r.router for r in self.requests})))
            router = self.routers[router_index]
            mine = [r for r in self.requests if r.router == router_index]
            batch = data.draw(st.lists(st.sampled_from(mine), min_size=1, max_size=4))
            t = self.now + 1
            expected = self._staked_errors(router, sender.address)
            status = {r.id: r.status for r in batch}
            skipped, delivered = [], []
            for r in batch:
                if status[r.id] != S.PENDING or t > r.get("deadline"):
                    skipped.append(r.id)
                    continue
                expected |= self._delivery_errors(r, sender.address, t)
                status[r.id] = S.SETTLED if r.get("disputeWindow") == 0 else S.FULFILLED
                delivered.append(r)
            items = [(r.struct, OUT_DIGEST, OUT_CID) for r in batch]
            receipt = self._send(router.contract.fulfilBatch, items, sender=sender, expected=expected)
            if not receipt:
                return
            assert self._logged(receipt, "FulfilmentSkipped(uint256,uint8)") == skipped
            for r in delivered:
                self._deliver(r, t)
            self._won("fulfil_batch")
            if skipped:
                self._won("fulfil_batch: skips an item")

        def _logged(self, receipt, event: str) -> list[int]:
            topic = "0x" + keccak(text=event).hex()
            return [int(log["topics"][1], 16) for log in receipt["logs"] if log["topics"][0] == topic]

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            by_operator=st.sampled_from([True] * 4 + [False]),
            reason=st.sampled_from(list(FailReason)),
            fresh=st.sampled_from([True] * 3 + [False]),
        )
        def fail(self, data, by_operator, reason, fresh):
            r = self._some_request(data, "pending", fresh)
            if r is None:
                return
            if self._fail(r, by_address[r.get("operator")] if by_operator else a.other, reason):
                self._won("fail")

        def _fail(self, r: RequestM, sender, reason: FailReason) -> bool:
            expected = set()
            if sender.address != r.get("operator"):
                expected.add(err("Router_NotAssignedOperator", r.id, sender.address))
            elif r.status != S.PENDING:
                expected.add(err("Router_WrongStatus", r.id, int(r.status)))
            elif self.now + 1 > r.get("deadline"):
                expected.add(err("Router_RequestExpired", r.id, r.get("deadline")))
            if not self._send(
                self.routers[r.router].contract.fail, r.struct, int(reason), sender=sender, expected=expected
            ):
                return False
            r.status, r.settle_after = S.FAILED, 0
            self._refund(r)
            if self._via(r):
                self._won("fail:" + self._via(r))
            return True

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            actor=st.integers(0, 9),
            wait=st.sampled_from([True, True, False]),
            fresh=st.sampled_from([True] * 3 + [False]),
        )
        def cancel_expired(self, data, actor, wait, fresh):
            r = self._some_request(data, "pending", fresh)
            if r is None:
                return
            if wait:
                self._advance_to(r.get("deadline") + 1)
            if self._cancel(r, everyone[actor]):
                self._won("cancel_expired")

        def _cancel(self, r: RequestM, caller) -> bool:
            expected = set()
            if r.status != S.PENDING:
                expected.add(err("Router_WrongStatus", r.id, int(r.status)))
            elif self.now + 1 <= r.get("deadline"):
                expected.add(err("Router_NotExpired", r.id, r.get("deadline")))
            if not self._send(
                self.routers[r.router].contract.cancelExpired, r.struct, sender=caller, expected=expected
            ):
                return False
            r.status, r.settle_after = S.EXPIRED, 0
            self._refund(r)
            if self._via(r):
                self._won("cancel_expired:" + self._via(r))
            return True

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            fault=st.sampled_from([None] * 5 + ["not requester", "more", "none", "late"]),
            fresh=st.sampled_from([True] * 3 + [False]),
        )
        def dispute(self, data, fault, fresh):
            """The requester disputes a delivery in its window, posting the router's bond."""
            r = self._some_request(data, "fulfilled", fresh)
            if r is None:
                return
            if fault == "late" and r.settle_after:
                self._advance_to(r.settle_after)
            if self._dispute(r, fault != "not requester", fault if fault in ("more", "none") else "right"):
                self._won("dispute")

        def _dispute(self, r: RequestM, by_requester: bool, pay: str) -> bool:
            router = self.routers[r.router]
            sender = by_address[r.get("requester")] if by_requester else a.keeper
            bond = router.bond
            value = {"right": bond, "more": bond + 1, "none": 0}[pay]
            t = self.now + 1
            expected = set()
            if sender.address != r.get("requester"):
                expected.add(err("Router_NotRequester", r.id, sender.address))
            elif r.status != S.FULFILLED:
                expected.add(err("Router_WrongStatus", r.id, int(r.status)))
            elif t >= r.settle_after:
                expected.add(err("Router_DisputeWindowClosed", r.id, r.settle_after))
            elif value != bond:
                expected.add(err("Router_WrongPayment", bond, value))
            if not self._send(router.contract.dispute, r.struct, value=value, sender=sender, expected=expected):
                return False
            r.status, r.settle_after, r.bond = S.DISPUTED, t + ARBITRATION_PERIOD, bond
            router.ops[r.get("operator")].open_disputes += 1
            if bond:
                self._won("dispute: with a bond")
            return True

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            upheld=st.booleans(),
            actor=st.sampled_from([7, 7, 7, 0]),
            fresh=st.sampled_from([True] * 3 + [False]),
        )
        def resolve_dispute(self, data, upheld, actor, fresh):
            r = self._some_request(data, "disputed", fresh)
            if r is None:
                return
            if self._resolve(r, upheld, actor):
                self._won("resolve_dispute")

        def _resolve(self, r: RequestM, upheld: bool, actor: int) -> bool:
            router = self.routers[r.router]
            expected = set()
            if actor != 7:
                expected.add("AccessControlUnauthorizedAccount")
            elif r.status != S.DISPUTED:
                expected.add(err("Router_WrongStatus", r.id, int(r.status)))
            if not self._send(
                router.contract.resolveDispute, r.struct, upheld, sender=everyone[actor], expected=expected
            ):
                return False
            op = router.ops[r.get("operator")]
            op.open_disputes -= 1
            bond, r.bond, r.settle_after = r.bond, 0, 0
            if upheld:
                r.status = S.REVERSED
                slashed = min(router.slash, op.stake)
                op.stake -= slashed
                self._credit(router.ledger, r.router, r.get("requester"), eth, slashed + bond)
                self._refund(r)
                self._won("resolve_dispute: upheld" + self._via(r))
                self._top_up(r.router)
            else:
                r.status = S.SETTLED
                self._credit(router.ledger, r.router, r.get("operator"), eth, bond)
                self._pay_out(r)
                self._won("resolve_dispute: rejected")
            return True

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            actor=st.integers(0, 9),
            wait=st.sampled_from([False, True]),
            kind=st.sampled_from(["fulfilled", "disputed"]),
            fresh=st.sampled_from([True] * 3 + [False]),
        )
        def settle(self, data, actor, wait, kind, fresh):
            """A batch (duplicates too): items not ready are skipped; a dispute left undecided past
            its arbitration period lapses (the delivery is paid, the bond goes back)."""
            first = self._some_request(data, kind, fresh)
            if first is None:
                return
            mine = [r for r in self.requests if r.router == first.router]
            batch = [first] + data.draw(st.lists(st.sampled_from(mine), max_size=3))
            if wait:
                self._advance_to(max(r.settle_after for r in batch))
            if self._settle(batch, everyone[actor]):
                self._won("settle")

        def _settle(self, batch: list[RequestM], sender) -> bool:
            router = self.routers[batch[0].router]
            t = self.now + 1
            status = {r.id: r.status for r in batch}
            skipped, lapsed, settled = [], [], []
            for r in batch:
                if status[r.id] in (S.FULFILLED, S.DISPUTED) and t >= r.settle_after:
                    if status[r.id] == S.DISPUTED:
                        lapsed.append(r.id)
                    status[r.id] = S.SETTLED
                    settled.append(r)
                else:
                    skipped.append(r.id)
            receipt = self._send(router.contract.settle, [r.struct for r in batch], sender=sender)
            assert self._logged(receipt, "SettlementSkipped(uint256,uint8)") == skipped
            assert self._logged(receipt, "DisputeLapsed(uint256)") == lapsed
            for r in settled:
                if r.status == S.DISPUTED:
                    router.ops[r.get("operator")].open_disputes -= 1
                    self._credit(router.ledger, r.router, r.get("requester"), eth, r.bond)
                    r.bond = 0
                    self._won("settle: a dispute lapses")
                r.status, r.settle_after = S.SETTLED, 0
                self._pay_out(r)
            if skipped:
                self._won("settle: skips an item")
            return True

        @precondition(lambda self: self.licenses)
        @rule(data=st.data(), unbond=st.booleans())
        def dispute_lapses(self, data, unbond):
            """M-5: a dispute the arbiter leaves undecided holds the operator's stake only until the
            arbitration period ends: then anyone's settle lets it lapse (the delivery is paid, the
            bond goes back to the requester) and a leaving operator can take its stake back."""
            r = self._live(data, "fulfilled")
            if r is None or not self._dispute(r, True, "right"):
                return
            op = [x.address for x in op_accounts].index(r.get("operator"))
            operator = self.routers[r.router].ops[r.get("operator")]
            if unbond and not operator.unbonding_ends:
                self._start_unbonding(r.router, op)
            self._advance_to(max(r.settle_after, operator.unbonding_ends))
            if unbond:
                self._withdraw_stake(r.router, op)  # Router_OpenDisputes
            self._settle([r], a.keeper)
            self._won("dispute_lapses")
            if unbond and self._withdraw_stake(r.router, op):
                self._register_operator(r.router, op)  # and comes back

        # ------------------------------------------------------------ the router's replacement

        def _set_router(self, target: str, sender) -> bool:
            t = self.now + 1
            index = next((r.index for r in self.routers if r.address == target), None)
            pending, at = self.pending_router
            proposing = pending != target or at == 0
            expected = set()
            if sender != admin:
                expected.add("AccessControlUnauthorizedAccount")
            elif index is None:
                expected.add(err("Licensing_RouterNotContract", target))
            elif not proposing and t < at:
                expected.add(err("Licensing_RouterNotYet", target, at))
            receipt = self._send(d.licenses.setRouter, target, sender=sender, expected=expected)
            if not receipt:
                return False
            # M-1, apart from the prediction: a router is made only ROUTER_DELAY after its proposal.
            if self._logged(receipt, "RouterProposed(address,uint40)"):
                self.seen_proposal = (target, t)
            if self._logged(receipt, "RouterSet(address)"):
                assert self.seen_proposal[0] == target and t >= self.seen_proposal[1] + ROUTER_DELAY, (
                    f"router {target} made at {t}; the last proposal: {self.seen_proposal}"
                )
            if proposing:
                self.pending_router = (target, t + ROUTER_DELAY)
                self._won("set_router: propose")
            else:
                self.pending_router = (ZERO, 0)
                self.former.add(self.lm_router)
                self.lm_router = index
                self._won("set_router: replace")
            return True

        @rule(
            wait=st.sampled_from([None, "at", "at"]),
            current=st.sampled_from([False, False, True]),
            fault=st.sampled_from([None] * 3 + ["early", "not a contract", "not admin"]),
        )
        def set_router(self, wait, current, fault):
            """The admin proposes a router, then makes it after ROUTER_DELAY by calling again (`wait`:
            proposed first if need be, then called again at `at`; the `current` router may be
            proposed again too). `fault`: the one thing wrong, if any ("early": a second before)."""
            address = self.routers[self.lm_router if current else 1 - self.lm_router].address
            if fault == "not a contract":
                address = a.other.address
            actor = 9 if fault == "not admin" else 0
            wait = "early" if fault == "early" else wait
            if wait and self.pending_router[0] != address and actor == 0:
                self._set_router(address, admin)
            pending, at = self.pending_router
            if wait and pending == address and at:
                self._advance_to(at if wait == "at" else at - 1)
            if self._set_router(address, everyone[actor]):
                self._won("set_router")

        @precondition(lambda self: self.licenses)
        @rule(
            data=st.data(),
            outcome=st.sampled_from(["uphold", "fail", "expire", "uphold", "fail", "fulfil", "pending"]),
            reason=st.sampled_from(list(FailReason)),
        )
        def replace_router_with_pending(self, data, outcome, reason):
            """The router is replaced with a request pending on it, which the old router then
            refunds (fail, an upheld dispute, expiry) or delivers."""
            old, new = self.lm_router, 1 - self.lm_router
            target = self.routers[new].address
            if self.pending_router[0] != target:
                self._set_router(target, admin)
            at = self.pending_router[1]
            self._advance_to(at - 300)
            r = self._request_served(data, old, windowed=outcome == "uphold")
            self._advance_to(at)
            if not self._set_router(target, admin) or r is None:
                return
            self._won("replace_router_with_pending")
            if outcome == "uphold":
                self._fulfil(r, by_address[r.get("operator")])
                if r.status == S.FULFILLED:
                    self._dispute(r, True, "right")
                if r.status == S.DISPUTED:
                    self._resolve(r, True, 7)
            elif outcome != "pending":
                self._decide(r, outcome, reason, data)

        # ------------------------------------------------------------ operators

        @rule(data=st.data(), router=st.integers(0, 1), op=st.integers(0, 1))
        def start_unbonding(self, data, router, op):
            leaving = [
                (i, j)
                for i, rt in enumerate(self.routers)
                for j, x in enumerate(op_accounts)
                if rt.ops[x.address].unbonding_ends or not rt.ops[x.address].registered
            ]
            router, op = self._pick(data, [(router, op)], leaving)  # an operator's leaving is rare
            if self._start_unbonding(router, op):
                self._won("start_unbonding")

        def _start_unbonding(self, router: int, op: int) -> bool:
            rt = self.routers[router]
            operator = rt.ops[op_accounts[op].address]
            t = self.now + 1
            expected = set()
            if not operator.registered:
                expected.add(err("Router_OperatorNotRegistered", operator.address))
            elif operator.unbonding_ends:
                expected.add(err("Router_OperatorUnbonding", operator.address, operator.unbonding_ends))
            if not self._send(rt.contract.startUnbonding, sender=op_accounts[op], expected=expected):
                return False
            operator.unbonding_ends = t + UNBONDING
            return True

        @rule(
            data=st.data(),
            router=st.integers(0, 1),
            op=st.integers(0, 1),
            wait=st.sampled_from([True, True, False]),
            leave=st.booleans(),
        )
        def withdraw_stake(self, data, router, op, wait, leave):
            """An operator takes its stake back after the unbonding delay (it first starts
            unbonding when no operator is, if `leave`)."""
            leaving = [
                (i, j)
                for i, rt in enumerate(self.routers)
                for j, x in enumerate(op_accounts)
                if rt.ops[x.address].unbonding_ends
            ]
            router, op = self._pick(data, [(router, op)], leaving)
            if not leaving and leave:
                self._start_unbonding(router, op)
            operator = self.routers[router].ops[op_accounts[op].address]
            if wait and operator.unbonding_ends:
                self._advance_to(operator.unbonding_ends)
            if self._withdraw_stake(router, op):
                self._won("withdraw_stake")

        def _withdraw_stake(self, router: int, op: int) -> bool:
            rt = self.routers[router]
            operator = rt.ops[op_accounts[op].address]
            expected = set()
            if not operator.registered:
                expected.add(err("Router_OperatorNotRegistered", operator.address))
            elif not operator.unbonding_ends:
                expected.add(err("Router_OperatorNotUnbonding", operator.address))
            elif self.now + 1 < operator.unbonding_ends:
                expected.add(err("Router_StakeLocked", operator.address, operator.unbonding_ends))
            elif operator.open_disputes:
                expected.add(err("Router_OpenDisputes", operator.address, operator.open_disputes))
            if not self._send(rt.contract.withdrawStake, sender=op_accounts[op], expected=expected):
                return False
            self.eth[operator.address] += operator.stake
            operator.stake, operator.unbonding_ends, operator.registered = 0, 0, False
            return True

        @rule(
            data=st.data(),
            router=st.integers(0, 1),
            op=st.integers(0, 1),
            short=st.sampled_from([False] * 5 + [True]),
            leave=st.booleans(),
        )
        def register_operator(self, data, router, op, short, leave):
            """(Re-)registration with the minimum stake; when every operator is registered, one
            first leaves (unbonding, the delay, its stake withdrawn)."""
            gone = [
                (i, j)
                for i, rt in enumerate(self.routers)
                for j, x in enumerate(op_accounts)
                if not rt.ops[x.address].registered
            ]
            if not gone and leave:
                self._start_unbonding(router, op)
                self._advance_to(self.routers[router].ops[op_accounts[op].address].unbonding_ends)
                self._withdraw_stake(router, op)
            else:
                router, op = self._pick(data, [(router, op)], gone)
            if self._register_operator(router, op, short):
                self._won("register_operator")

        def _register_operator(self, router: int, op: int, short: bool = False) -> bool:
            rt = self.routers[router]
            operator = rt.ops[op_accounts[op].address]
            stake = rt.min_stake - 1 if short else rt.min_stake
            expected = set()
            if operator.registered:
                expected.add(err("Router_OperatorAlreadyRegistered", operator.address))
            elif short:
                expected.add(err("Router_StakeTooLow", stake, rt.min_stake))
            if not self._send(
                rt.contract.registerOperator,
                public_key(op_accounts[op]),
                value=stake,
                sender=op_accounts[op],
                expected=expected,
            ):
                return False
            operator.stake, operator.registered, operator.open_disputes = stake, True, 0
            return True

        @rule(router=st.integers(0, 1), op=st.integers(0, 1), amount=st.sampled_from([1, SLASH, MIN_STAKE]))
        def add_stake(self, router, op, amount):
            if self._add_stake(router, op, amount):
                self._won("add_stake")

        def _add_stake(self, router: int, op: int, amount: int) -> bool:
            rt = self.routers[router]
            operator = rt.ops[op_accounts[op].address]
            expected = set() if operator.registered else {err("Router_OperatorNotRegistered", operator.address)}
            if not self._send(rt.contract.addStake, value=amount, sender=op_accounts[op], expected=expected):
                return False
            operator.stake += amount
            return True

        def _top_up(self, router: int) -> None:
            """Registered operators below the minimum stake (slashed, or the minimum was raised)
            add what they lack, as operators who mean to keep serving do."""
            rt = self.routers[router]
            for op, x in enumerate(op_accounts):
                operator = rt.ops[x.address]
                if operator.registered and operator.stake < rt.min_stake:
                    self._add_stake(router, op, rt.min_stake - operator.stake)

        @rule(
            data=st.data(),
            router=st.sampled_from([0, 0, 1]),
            allowed=st.sampled_from([False, True]),
            by_owner=st.sampled_from([True, True, True, False]),
        )
        def set_operator_allowed(self, data, router, allowed, by_owner):
            """A removal takes the retirement notice to take effect (requests made before it can
            still be delivered; none may be made with a deadline past it)."""
            rt = self.routers[router]
            pairs = [(m, x.address) for m in self.models for x in op_accounts]
            changing = [(m, x) for m, x in pairs if (rt.allowed_until.get((m, x), 0) == ALWAYS) == (not allowed)]
            model, operator = self._pick(data, pairs, changing)
            model = self.models[model]
            actor = by_address[model.owner] if by_owner else (a.other if model.owner != a.other.address else a.buyer)
            if self._set_allowed(rt, model, operator, allowed, actor):
                self._won("set_operator_allowed")

        def _set_allowed(self, rt: RouterM, model: ModelM, operator: str, allowed: bool, actor) -> bool:
            t = self.now + 1
            expected = set() if actor.address == model.owner else {err("Router_NotModelOwner", model.id, actor.address)}
            if not self._send(
                rt.contract.setOperatorAllowed, model.id, operator, allowed, sender=actor, expected=expected
            ):
                return False
            current = rt.allowed_until.get((model.id, operator), 0)
            rt.allowed_until[(model.id, operator)] = until = ALWAYS if allowed else min(current, t + self._notice(t))
            if not allowed and current == ALWAYS:
                self._won("set_operator_allowed: removal (after the notice)")
                # M-3, apart from the prediction: a removal cuts no subscription time already paid.
                paid = [lic.expires for lic in self.licenses if lic.offer.model == model.id and lic.expires > t]
                assert until >= max(paid, default=0), f"a removal at {t} ends service at {until}, before {paid}"
            return True

        @precondition(lambda self: self.licenses)
        @rule(data=st.data(), late=st.sampled_from([False, True]))
        def remove_operator(self, data, late):
            """M-3: the owner removes an operator from a model: it can still be named in requests
            whose deadline falls within the notice (and delivers them: deliveries do not check the
            allowance), not in any later one."""
            rt, t = self.routers[self.lm_router], self.now + 1
            pairs = [
                (lic, i)
                for lic in self.licenses
                if self._licensed(lic, t)[0]
                for i in self._servers(rt, lic.offer.model, t + 800)
            ]
            if not pairs:
                return
            lic, op = data.draw(st.sampled_from(pairs))
            model, operator = self.models[lic.offer.model], op_accounts[op]
            if rt.allowed_until[(model.id, operator.address)] == ALWAYS:
                self._set_allowed(rt, model, operator.address, False, by_address[model.owner])
            until = rt.allowed_until[(model.id, operator.address)]
            if late:
                self._advance_to(until - 799)  # a deadline 800 s on is past the removal
            r = self._request(lic, by_address[lic.holder], self.lm_router, op, 800, False, Language.EN)
            if r is not None:
                self._won("remove_operator")
                self._fulfil(r, operator)

        @rule(
            router=st.integers(0, 1),
            bond=st.sampled_from([0, 10**15, 10**15, MAX_DISPUTE_BOND, MAX_DISPUTE_BOND + 1]),
            actor=st.sampled_from([0, 0, 0, 7]),
        )
        def set_dispute_bond(self, router, bond, actor):
            if self._set_bond(self.routers[router], bond, everyone[actor]):
                self._won("set_dispute_bond")

        def _set_bond(self, rt: RouterM, bond: int, sender) -> bool:
            expected = set()
            if sender != admin:
                expected.add("AccessControlUnauthorizedAccount")
            elif bond > MAX_DISPUTE_BOND:
                expected.add(err("Router_DisputeBondTooHigh", bond, MAX_DISPUTE_BOND))
            if not self._send(rt.contract.setDisputeBond, bond, sender=sender, expected=expected):
                return False
            rt.bond = bond
            return True

        @rule(
            router=st.integers(0, 1),
            change=st.sampled_from(
                [
                    ("min", MIN_STAKE),
                    ("min", MIN_STAKE),
                    ("min", 2 * MIN_STAKE),
                    ("min", SLASH // 2),
                    ("slash", SLASH),
                    ("slash", 0),
                    ("slash", "min"),
                ]
            ),
            fault=st.sampled_from([None] * 3 + ["not admin", "minimum too high", "slash above the minimum"]),
        )
        def set_stake_params(self, router, change, fault):
            """The admin's bounds: minStake <= MAX_MIN_STAKE, slash <= minStake (lowering the
            minimum lowers the slash). `fault`: the one thing wrong, if any."""
            rt = self.routers[router]
            kind, amount = {
                "minimum too high": ("min", MAX_MIN_STAKE + 1),
                "slash above the minimum": ("slash", rt.min_stake + 1),
            }.get(fault, change)
            amount = rt.min_stake if amount == "min" else amount
            if self._set_stake(router, kind, amount, a.arbiter if fault == "not admin" else admin):
                self._won("set_stake_params")

        def _set_stake(self, router: int, kind: str, amount: int, sender) -> bool:
            rt = self.routers[router]
            expected = set()
            if sender != admin:
                expected.add("AccessControlUnauthorizedAccount")
            elif kind == "min" and amount > MAX_MIN_STAKE:
                expected.add(err("Router_MinStakeTooHigh", amount, MAX_MIN_STAKE))
            elif kind == "slash" and amount > rt.min_stake:
                expected.add(err("Router_SlashTooHigh", amount, rt.min_stake))
            fn = rt.contract.setMinStake if kind == "min" else rt.contract.setSlashAmount
            if not self._send(fn, amount, sender=sender, expected=expected):
                return False
            if kind == "min":
                rt.min_stake, rt.slash = amount, min(rt.slash, amount)
                self._top_up(router)
            else:
                rt.slash = amount
            return True

        # ------------------------------------------------------------ refusals

        @precondition(lambda self: self.licenses)
        @rule(data=st.data())
        def probe_refusals(self, data):
            """What issue 13 made impossible, tried in the current state. Each call is predicted by
            the model like any other (all of them are refused here, with the errors the model names;
            the only transaction mined is a voice owner's revocation of a consent just signed): the
            random rules reach these paths too, this rule makes sure every run does."""
            t, before = self.now + 1, sum(ERRORS.values())
            subs = [x for x in self.licenses if x.offer.tier == Tier.SUBSCRIPTION]
            live = [x for x in subs if x.expires > t]

            def one(items: list):
                return data.draw(st.sampled_from(items)) if items else None

            def keeper(lic: LicenseM):
                return a.keeper if lic.holder != a.keeper.address else a.operator

            # H-1: a keeper renews what its holder never agreed to, what is not due yet, two
            # periods, what has lapsed; a licence that cannot move is not pushed to anyone.
            for lic, periods in (
                (one([x for x in live if not x.auto_renew]), 1),
                (one([x for x in live if x.auto_renew and t + renewal_lead(x.offer.period) < x.expires]), 1),
                (one([x for x in live if x.auto_renew]), 2),
                (one([x for x in subs if x not in live]), 1),
            ):
                if lic is not None:
                    self._renew(lic, keeper(lic), lic.offer.period * periods)
            # H-1: an account approved on a licence renews it by several periods.
            lic = one([x for x in subs if x.approved not in (ZERO, x.holder)])
            if lic is not None:
                self._renew(lic, by_address[lic.approved], lic.offer.period * 3)
            lic = one([x for x in self.licenses if not x.offer.transferable])
            if lic is not None:
                stranger = next(x.address for x in strangers if x.address != lic.holder)
                self._transfer(lic, by_address[lic.holder], stranger)
            # L-2: the holder renews from an offer withdrawn, or in a stablecoin de-listed.
            lic = one([x for x in subs if not x.offer.active or (x.offer.asset == dollar and not self.usd_allowed)])
            if lic is not None:
                self._holder_renew(lic, 1)
            # L-1, M-2: time paid past the notice (renewal, sale); a period that cannot fit in it.
            notice = self._notice(t)
            lic = one(subs)
            if lic is not None:
                self._holder_renew(lic, notice // lic.offer.period + 1)
            offer = one([o for o in self.offers if o.active and o.tier == Tier.SUBSCRIPTION])
            if offer is not None:
                self._buy(offer, a.buyer, notice // offer.period + 1, False)
            model = self.models[one(list(self.models))]
            self._publish(model, by_address[model.owner], Tier.SUBSCRIPTION, eth, 1, notice, 0, 0, 0, 0, TTS, False)
            # L-4, M-1, M-3: a request with too short a window for the buyer, one through the router
            # the licence manager does not use, one naming an operator not allowed for the model
            # until its deadline, one on a model whose service has ended.
            rt = self.routers[self.lm_router]
            usable = [x for x in self.licenses if self._licensed(x, t)[0]]
            lic = one([x for x in usable if self._servers(rt, x.offer.model, t + 800)])
            if lic is not None:
                op = self._servers(rt, lic.offer.model, t + 800)[0]
                window = self.models[lic.offer.model].window
                self._request(lic, by_address[lic.holder], self.lm_router, op, 800, False, Language.EN, window + 1)
                self._request(lic, by_address[lic.holder], 1 - self.lm_router, op, 800, False, Language.EN)
            pairs = [
                (x, i)
                for x in usable
                for i, o in enumerate(op_accounts)
                if rt.allowed_until.get((x.offer.model, o.address), 0) < t + 800
            ]
            if pairs:
                lic, op = one(pairs)
                self._request(lic, by_address[lic.holder], self.lm_router, op, 800, False, Language.EN)
            lic = one([x for x in self.licenses if 0 < self.models[x.offer.model].service_ends <= t])
            if lic is not None:
                self._request(lic, by_address[lic.holder], self.lm_router, 0, 800, False, Language.EN)
            # M-4, M-6: the same bundle registered twice by its creator; a version that drops the
            # parent's voice owner; a version under a frozen parent (neither signed: refused first).
            model = self.models[one(list(self.models))]
            r, errors = self._consent(by_address[model.creator], model.creator, 0, model.label, "none")
            self._register(by_address[model.creator], r, errors, 0, "register_model", model.label)
            parents = [m for m in self.models.values() if m.voice == m.owner or not m.frozen]
            for parent in filter(None, (one(parents), one([m for m in self.models.values() if m.frozen]))):
                owner = by_address[parent.owner]
                voice = (
                    parent.voice
                    if parent.frozen
                    else (a.treasurer.address if parent.voice == parent.owner else parent.owner)
                )
                self.labels += 1
                r, errors = self._consent(
                    owner, voice, 0 if voice == parent.owner else 1_500, f"version {self.labels}", "none"
                )
                r["parentId"] = parent.id
                errors.add(
                    err("Registry_ParentFrozen", parent.id)
                    if parent.frozen
                    else err("Registry_VoiceOwnerChanged", parent.id, parent.voice, voice)
                )
                self._register(owner, r, errors, parent.id, "register_version", f"version {self.labels}")
            # A consent its voice owner revoked after signing it.
            self.labels += 1
            r, errors = self._consent(a.creator, a.voice.address, 2_000, f"bundle {self.labels}", "revoked")
            self._register(a.creator, r, errors, 0, "register_model", f"bundle {self.labels}")
            # M-5: a dispute without the bond; M-1: a replacement before its delay.
            r = one(
                [
                    x
                    for x in self.requests
                    if x.status == S.FULFILLED and t < x.settle_after and self.routers[x.router].bond
                ]
            )
            if r is not None:
                self._dispute(r, True, "none")
            pending, at = self.pending_router
            if at and t < at:
                self._set_router(pending, admin)
            # The admin's bounds: the notice, the dispute bond, the slash.
            self._set_notice(MIN_NOTICE - 1, admin)
            self._set_bond(rt, MAX_DISPUTE_BOND + 1, admin)
            self._set_stake(self.lm_router, "slash", rt.min_stake + 1, admin)
            if sum(ERRORS.values()) > before:
                self._won("probe_refusals")

        # ------------------------------------------------------------ invariants

        @invariant()
        def the_chain_agrees_with_the_model(self):
            self._check_ledgers()
            self._check_settings()
            self._check_licenses(self.head_time)
            self._check_requests()

        def _check_ledgers(self) -> None:
            assets, models = [eth, dollar], list(self.models)
            ledgers = [lm_address] + [r.address for r in self.routers]
            out = w.lens.snapshot(ledgers, assets, addresses, models)
            k = 0
            for key in ["lm", 0, 1]:
                book = self._ledger(key)[1]
                for asset in assets:
                    holding, platform = out[k], out[k + 1]
                    credits = out[k + 2 : k + 2 + len(addresses)]
                    k += 2 + len(addresses)
                    pots = out[k : k + 2 * len(models)]
                    k += 2 * len(models)
                    assert platform == book.platform.get(asset, 0), f"{key} platform balance in {asset}"
                    assert credits == [book.credits.get((x, asset), 0) for x in addresses], f"{key} credits in {asset}"
                    expected_pots = [v for m in models for v in book.pots.get((m, asset), (0, 0))]
                    assert pots == expected_pots, f"{key} pots in {asset}"
                    held = sum(credits) + sum(pots) + platform
                    if key != "lm":
                        mine = [r for r in self.requests if r.router == key]
                        held += sum(self._escrow(r) for r in mine if r.status in UNDECIDED and r.get("asset") == asset)
                        if asset == eth:
                            held += sum(op.stake for op in self.routers[key].ops.values())
                            held += sum(r.bond for r in mine if r.status == S.DISPUTED)
                    assert holding == held, f"conservation: {key} holds {holding} of {asset}, owes {held}"
            for x in addresses:
                eth_balance, usd_balance = out[k], out[k + 1]
                allowances = out[k + 2 : k + 5]
                k += 5
                assert eth_balance == self.eth[x], f"ETH of {x}: {eth_balance}, the model says {self.eth[x]}"
                assert usd_balance == self.usd[x], f"stablecoin of {x}: {usd_balance}, the model says {self.usd[x]}"
                assert allowances == [self.allowance[(x, s)] for s in ledgers], f"allowances of {x}"

        def _check_settings(self) -> None:
            models, ops = list(self.models), [x.address for x in op_accounts]
            out = w.lens.settings(
                d.registry.address, lm_address, dollar, [r.address for r in self.routers], models, ops
            )
            pending, at = self.pending_router
            assert out[0] == self._notice(self.head_time), "retirement notice"
            assert out[1:6] == [
                int(self.routers[self.lm_router].address, 16),
                int(pending, 16),
                at,
                int(self.lm_paused),
                int(self.usd_allowed),
            ], "licence manager settings"
            # Apart from the model's formula: the notice in force never falls faster than time passes.
            seen_at, seen_notice = self.seen_notice
            assert out[0] >= seen_notice - (self.head_time - seen_at), "the retirement notice fell faster than time"
            self.seen_notice = (self.head_time, out[0])
            k = 6
            for m in models:
                model = self.models[m]
                assert out[k : k + 3] == [int(model.frozen), model.service_ends, model.window], f"model {m:#x}"
                k += 3
            for rt in self.routers:
                assert out[k : k + 4] == [int(rt.paused), rt.bond, rt.min_stake, rt.slash], f"router {rt.index}"
                k += 4
                for m in models:
                    for op in ops:
                        until = rt.allowed_until.get((m, op), 0)
                        operator = rt.ops[op]
                        serves = (
                            operator.registered
                            and not operator.unbonding_ends
                            and operator.stake >= rt.min_stake
                            and until > self.head_time + MAX_TTL
                        )
                        assert out[k : k + 2] == [until, int(serves)], f"router {rt.index}: {op} for {m:#x}"
                        k += 2

        def _check_licenses(self, t: int) -> None:
            if not self.licenses:
                return
            ids = [lic.id for lic in self.licenses]
            holders, licensed, left, records, approved, renewable = w.lens.licenses(
                lm_address, ids, [lic.offer.model for lic in self.licenses]
            )
            for lic, holder, ok, uses, record, approval, renews in zip(
                self.licenses, holders, licensed, left, records, approved, renewable, strict=True
            ):
                assert holder == lic.holder
                assert approval == lic.approved, f"licence {lic.id} approval"
                assert renews == self._renewable_now(lic, t), f"licence {lic.id} isRenewable"
                assert (ok, uses) == self._licensed(lic, t), f"licence {lic.id} validity"
                assert tuple(record) == (
                    lic.offer.id,
                    lic.expires,
                    lic.anchor,
                    lic.used,
                    lic.period_start,
                    lic.limit,
                    lic.auto_renew,
                ), f"licence {lic.id} record"
                if lic.offer.tier != Tier.SUBSCRIPTION:
                    assert lic.used == lic.consumed, "uses consumed differ from requests not refunded"
                # Retirement never voids paid time: nothing is paid beyond the end of service.
                ends = self.models[lic.offer.model].service_ends
                assert not ends or record[1] <= ends, f"licence {lic.id} is paid until {record[1]}, after {ends}"

        def _check_requests(self) -> None:
            ids = [r.id for r in self.requests]
            statuses, settle_after, commitments, bonds, infos = w.lens.requests(
                [r.address for r in self.routers],
                ids,
                [r.router for r in self.requests],
                [x.address for x in op_accounts],
            )
            for r, status, after, commitment, bond in zip(
                self.requests, statuses, settle_after, commitments, bonds, strict=True
            ):
                assert status == r.status, f"request {r.id} is {S(status).name}, the model says {r.status.name}"
                assert after == r.settle_after, f"request {r.id} settles after {after}, the model says {r.settle_after}"
                assert bond == r.bond, f"request {r.id} bond"
                assert commitment[:26] == keccak(encode(REQUEST_TYPES, r.struct))[:26], f"request {r.id} commitment"
            for i, info in enumerate(infos):
                op = self.routers[i // len(op_accounts)].ops[op_accounts[i % len(op_accounts)].address]
                assert tuple(info) == (op.stake, op.unbonding_ends, op.open_disputes, op.registered), "operator record"

        # ------------------------------------------------------------ end of an example

        def _drain(self) -> None:
            """Every credit is withdrawable: distribute every pot, withdraw every credit and fee."""
            for key in ("lm", 0, 1):
                _contract, book = self._ledger(key)
                for model_id, asset in list(book.pots):
                    assert self._distribute(key, model_id, asset, a.other)
                for (account, asset), owed in list(book.credits.items()):
                    if owed:
                        self._withdraw(key, by_address[account], asset)
                for asset, owed in list(book.platform.items()):
                    if owed:
                        self._withdraw_platform(key, asset, a.treasurer)
            self._check_ledgers()

        def _check_terms(self) -> None:
            """Sold licences keep their terms: every offer still reads as published."""
            for offer in self.offers:
                terms, active, sold = w.lm.offer(offer.id)
                assert tuple(terms) == offer.terms, f"offer {offer.id} changed"
                assert (sold, active) == (offer.sold, offer.active)

    return Market


def machine_settings() -> settings:
    """The profile's settings with examples twice as long and three quarters as many: this machine
    has some fifty rules, and many paths (a keeper's renewal when due, a refund through a replaced
    router, a lapsed dispute) need several earlier steps; three quarters of the examples keep
    `make test` within its 15 minutes. ci: 150 examples x 60 steps, derandomised, so that the
    gate's "every rule and path reached" check gives the same answer on every run of the same
    code (random runs reach the rarest paths a dozen times on average, but not always); the
    audit profile (1,500 x 200) explores at random."""
    profile = settings()
    gate = profile.max_examples <= 200
    return settings(
        profile,
        max_examples=max(1, profile.max_examples * 3 // 4),
        stateful_step_count=2 * profile.stateful_step_count,
        derandomize=gate,
    )


def rule_names(machine) -> list[str]:
    return sorted(name for name, f in vars(machine).items() if hasattr(f, "hypothesis_stateful_rule"))


def test_market_state_machine(world, capsys):
    """Random sequences of every market action keep the chain equal to the model (see the module
    doc); every rule succeeds and every important error path is reached in a run."""
    SUCCESSES.clear()
    ERRORS.clear()
    machine = machine_for(world)
    profile = machine_settings()
    run_state_machine_as_test(machine, settings=profile)
    required = rule_names(machine) + list(REQUIRED_PATHS)
    lines = [f"{'successes':>9}  rule or path"]
    lines += [f"{SUCCESSES[name]:>9}  {name}" for name in sorted(set(required) | set(SUCCESSES))]
    lines += ["", f"{'reached':>9}  function: error"]
    lines += [f"{count:>9}  {fn}: {name}" for (fn, name), count in sorted(ERRORS.items())]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    if profile.max_examples * profile.stateful_step_count >= 9_000:  # the ci profile or deeper
        missing = [name for name in required if not SUCCESSES[name]]
        assert not missing, f"never succeeded: {missing}"
        unreached = [pair for pair in REQUIRED_ERRORS if not ERRORS[pair]]
        assert not unreached, f"error paths never reached: {unreached}"

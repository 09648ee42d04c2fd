"""The security round's findings (issue 13), each tried as its attacker would try it.

One test per finding: the attack as it worked on the contracts of commit 9678dfa (read them with
``git show 9678dfa:contracts/...``), run against today's contracts, with the money of every party
checked before and after: no wei is taken from anyone. Each docstring says what the attacker got on
the old code, and what stops it now.

Parties: ``actors.other`` is the attacker (Mallory), ``actors.buyer`` the victim unless a test says
otherwise; ``usd`` is the deployment's 6-decimal stablecoin, whose balances move without gas.
"""

from __future__ import annotations

import hashlib

import pytest

from market_helpers import MIN_STAKE, MONTH, OPERATOR_FEE, SLASH, error_data, reverts
from voicemarket import protocol
from voicemarket.content.multiformats import CID, RAW
from voicemarket.protocol import DAY, ETH, FailReason, RequestStatus, Tier

HOUR = 3600
WEEK = 7 * DAY
NOTICE = 45 * DAY  # vm.deploy's default retirement notice
PRICE = 1_000_000  # 1 mUSD a period
MAX_UINT = 2**256 - 1
OUT_CID = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
OUT_DIGEST = hashlib.sha256(b"wav bytes").digest()
Status = RequestStatus


def balances(token, *accounts) -> list[int]:
    return [token.balanceOf(account) for account in accounts]


def fund(usd, holder, amount, spender, deployer, allowance=MAX_UINT) -> None:
    """`holder` gets `amount` mUSD and a standing allowance for `spender`."""
    usd.mint(holder, amount, sender=deployer)
    usd.approve(spender, allowance, sender=holder)


def drain_revenue(licenses, model, asset, payees, sender) -> None:
    """Pays a model's pot out to its parties and lets each withdraw (as an attacker would)."""
    if any(licenses.potOf(model, asset)):
        licenses.distribute(model, asset, sender=sender)
    for payee in payees:
        if licenses.creditOf(payee, asset):
            licenses.withdraw(asset, sender=payee)


@pytest.fixture
def bot(project, actors):
    """A contract making one call many times in one transaction (one block)."""
    return actors.deployer.deploy(project.RepeatCaller)


def renewal_call(licenses, license_id: int, duration: int) -> bytes:
    return licenses.renewSubscription.as_transaction(license_id, duration).data


# ---------------------------------------------------------------- H-1: keeper renewals


def test_h1_24_keeper_renewals_in_one_block_of_a_subscription_pushed_to_a_victim(market, licenses, usd, actors, bot):
    """H-1. Mallory registers her own model (she is its voice owner: no consent), publishes a
    transferable hourly subscription, buys one hour and pushes the licence to a victim who keeps a
    standing allowance on the licence manager; then calls renewSubscription 24 times in one block.

    Old code: every call passed (anyone could renew; `cancelled` was false; "due" was expiresAt <=
    now + 1 day whatever the period), so 24 x 1 mUSD left the victim's wallet in one block, and
    Mallory, as creator and voice owner, distributed and withdrew 80% of it.

    Now: a transfer clears autoRenew and only the holder turns it on, so all 24 fail with
    Licensing_AutoRenewOff. Even a holder who agreed to keeper renewals pays for one period at a time:
    an hourly plan is due only in its last hour, so the second renewal of the block is not due.
    """
    mallory, victim = actors.other, actors.buyer
    model = market.register(creator=mallory, voice_owner=mallory)
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE, period=HOUR, transferable=True)
    license_id = market.buy(offer, mallory)
    fund(usd, victim, 100 * PRICE, licenses, actors.deployer)
    licenses.transferFrom(mallory, victim, license_id, sender=mallory)
    start = balances(usd, victim, mallory, licenses)

    bot.repeat(licenses, renewal_call(licenses, license_id, HOUR), 24, sender=mallory)
    assert (bot.attempts(), bot.succeeded()) == (24, 0)
    assert bytes(bot.firstFailure()) == error_data(licenses.Licensing_AutoRenewOff, license_id)
    drain_revenue(licenses, model, usd, [mallory], mallory)
    victim_now, mallory_now, manager_now = balances(usd, victim, mallory, licenses)
    assert victim_now == start[0] and usd.allowance(victim, licenses) == MAX_UINT
    assert mallory_now == start[1] + PRICE * 8 // 10  # her own hour's revenue, net of the platform fee
    assert manager_now == start[2] - PRICE * 8 // 10 == PRICE * 2 // 10  # the platform's fee only

    # A holder who wants keeper renewals pays one due period per period: one in this block.
    licenses.setAutoRenew(license_id, True, sender=victim)
    expires = licenses.expiresAt(license_id)
    bot.repeat(licenses, renewal_call(licenses, license_id, HOUR), 24, sender=mallory)
    assert bot.succeeded() == 1
    assert bytes(bot.firstFailure()) == error_data(licenses.Licensing_RenewalNotDue, license_id, expires)
    assert licenses.expiresAt(license_id) == expires + HOUR
    assert usd.balanceOf(victim) == start[0] - PRICE


def test_h1_a_lapsed_subscription_is_not_revived_when_its_holder_approves_for_something_else(
    market, licenses, usd, actors, chain
):
    """H-1, variant. The victim once let keepers renew a monthly plan (autoRenew on), then let it lapse
    (no allowance left). A year later they approve the licence manager for exactly the price of an
    unrelated purchase; Mallory, the plan's creator, front-runs that purchase with a keeper renewal.

    Old code: the renewal revived the subscription a year after it lapsed and pulled a month's price
    from the allowance (Mallory's revenue); the victim's purchase then reverted for lack of allowance.

    Now: keepers never renew a lapsed subscription (Licensing_SubscriptionLapsed); the purchase goes
    through and the victim pays exactly its price.
    """
    mallory, victim = actors.other, actors.buyer
    plan = market.register(creator=mallory, voice_owner=mallory)
    offer = market.publish(plan, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE, period=MONTH)
    license_id = market.buy(offer, victim)
    licenses.setAutoRenew(license_id, True, sender=victim)
    expires = licenses.expiresAt(license_id)
    other_model = market.register()
    buyout = market.publish(other_model, asset=usd.address, price=5 * PRICE)
    chain.pending_timestamp = expires + 365 * DAY
    fund(usd, victim, 5 * PRICE, licenses, actors.deployer, allowance=5 * PRICE)
    start = balances(usd, victim, mallory, licenses)

    with reverts(licenses.Licensing_SubscriptionLapsed, licenseId=license_id, expiresAt=expires):
        licenses.renewSubscription(license_id, MONTH, sender=mallory)
    licenses.buy(buyout, 5 * PRICE, 1, sender=victim)
    assert balances(usd, victim, mallory, licenses) == [start[0] - 5 * PRICE, start[1], start[2] + 5 * PRICE]
    assert licenses.expiresAt(license_id) == expires
    assert licenses.potOf(plan, usd) == (PRICE * 8 // 10, PRICE * 2 // 10)  # the first month's sale only


def test_h1_an_account_approved_on_the_license_cannot_renew_from_the_holders_tokens(
    market, licenses, usd, actors, chain
):
    """H-1, variant. The victim approved Mallory (say, a marketplace) on their weekly licence token and
    keeps a standing allowance. Mallory renews a year ahead.

    Old code: an approved account counted as the holder: any number of periods, at any time, paid from
    the holder's tokens (52 weeks at once: 52 mUSD, the creator's revenue).

    Now: an approved account is a keeper: it needs the holder's autoRenew (which it cannot set), then
    renews exactly one period, only when due. The holder's tokens do not move.
    """
    mallory, victim = actors.other, actors.buyer
    model = market.register()
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE, period=WEEK)
    license_id = market.buy(offer, victim)
    licenses.approve(mallory, license_id, sender=victim)
    fund(usd, victim, 100 * PRICE, licenses, actors.deployer)
    expires = licenses.expiresAt(license_id)
    start = balances(usd, victim, licenses)

    with reverts(licenses.Licensing_AutoRenewOff, licenseId=license_id):
        licenses.renewSubscription(license_id, 52 * WEEK, sender=mallory)
    with reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=mallory.address):
        licenses.setAutoRenew(license_id, True, sender=mallory)
    licenses.setAutoRenew(license_id, True, sender=victim)  # the holder wants keeper renewals
    with reverts(licenses.Licensing_BadDuration, duration=52 * WEEK, period=WEEK):
        licenses.renewSubscription(license_id, 52 * WEEK, sender=mallory)
    with reverts(licenses.Licensing_RenewalNotDue, licenseId=license_id, dueAt=expires - DAY):
        licenses.renewSubscription(license_id, WEEK, sender=mallory)
    assert balances(usd, victim, licenses) == start and licenses.expiresAt(license_id) == expires


# ---------------------------------------------------------------- M-1: router replacement


def test_m1_a_replaced_router_still_refunds_its_escrow(market, project, licenses, registry, router, actors, chain):
    """M-1. The admin replaces the router while requests are pending on it: one the operator will
    fail, one that will expire, one delivered and disputed.

    Old code: setRouter revoked the old router's ROUTER_ROLE, so its fail, cancelExpired and upheld
    resolveDispute all reverted inside restoreUse (AccessControlUnauthorizedAccount): the three
    escrows (usePrice + fee each) were stuck in the old router for good, the uses were lost, and the
    open dispute could never be upheld.

    Now: a replacement is proposed and made two days later; afterwards the old router can no longer
    consume uses (Licensing_NotRouter) but still gives them back: every refund path works, the buyer
    withdraws every wei of escrow plus the slash, and the licence gets its three uses back.
    """
    buyer, use_price = actors.buyer, 10**15
    model = market.register(dispute_window=HOUR)
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, price=use_price, max_uses=3))
    new_router = actors.deployer.deploy(
        project.SynthesisRouter, actors.deployer, registry, licenses, MIN_STAKE, SLASH, 8 * DAY
    )
    at = licenses.setRouter(new_router, sender=actors.deployer).events.filter(licenses.RouterProposed)[0].at
    chain.pending_timestamp = at - 2 * HOUR
    to_fail, _ = market.request(model, license_id, deadline_in=DAY)
    to_expire, _ = market.request(model, license_id, deadline_in=3 * HOUR)
    disputed, _ = market.request(model, license_id, deadline_in=DAY)
    router.fulfil(disputed, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(disputed, sender=buyer)
    escrow = 3 * (use_price + OPERATOR_FEE)
    assert router.balance == MIN_STAKE + escrow
    assert licenses.isLicensed(license_id, buyer, model, 1) == (False, 0)

    chain.pending_timestamp = at
    licenses.setRouter(new_router, sender=actors.deployer)
    assert licenses.router() == new_router.address
    with reverts(licenses.Licensing_NotRouter, caller=router.address):
        market.request(model, license_id)
    router.fail(to_fail, int(FailReason.MODEL_UNAVAILABLE), sender=actors.operator)
    router.resolveDispute(disputed, True, sender=actors.arbiter)
    chain.pending_timestamp = at + 2 * HOUR
    router.cancelExpired(to_expire, sender=actors.keeper)

    assert [router.requestStatus(r[0]) for r in (to_fail, to_expire, disputed)] == [
        Status.FAILED,
        Status.EXPIRED,
        Status.REVERSED,
    ]
    assert licenses.isLicensed(license_id, buyer, model, 1) == (True, 3)
    credit = router.creditOf(buyer, ETH)
    assert credit == escrow + SLASH
    before = buyer.balance
    fees = router.withdraw(ETH, sender=buyer).total_fees_paid
    assert buyer.balance == before + credit - fees
    assert router.balance == router.operatorInfo(actors.operator).stake == MIN_STAKE - SLASH


# ---------------------------------------------------------------- M-2: retirement and prepaid time


def test_m2_retirement_never_cuts_prepaid_subscription_time(market, licenses, registry, router, usd, actors, chain):
    """M-2. A buyer prepays a subscription; the admin shortens the retirement notice to its minimum
    and the creator retires the model at once.

    Old code: the buyer could prepay any number of months (3 here), the admin could set the notice
    to 0, and retire() ended the service in the same block: every prepaid month was lost, with no
    refund, and the creator kept the money.

    Now: subscription time is sold at most the notice ahead (3 months: Licensing_BeyondNotice); the
    notice has a 1-day floor and a shortening only runs down as time passes; so the retirement's end
    of service is at or after the end of every paid period, and the buyer is served to the last hour.
    """
    model = market.register()
    market.operator(models=[model])
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE)
    fund(usd, actors.buyer, 3 * PRICE, licenses, actors.deployer)
    chain.pending_timestamp = start = market.now
    with reverts(licenses.Licensing_BeyondNotice, end=start + 3 * MONTH, latest=start + NOTICE):
        licenses.buy(offer, 3 * PRICE, 3, sender=actors.buyer)
    license_id = market.buy(offer)
    chain.pending_timestamp = licenses.expiresAt(license_id) - 10 * DAY
    licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)  # prepaid to ~60 days
    paid_until = licenses.expiresAt(license_id)
    spent = balances(usd, actors.buyer, licenses)

    registry.setRetirementNotice(DAY, sender=actors.deployer)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    assert ends >= paid_until
    with reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    chain.pending_timestamp = paid_until - HOUR
    req, _ = market.request(model, license_id, deadline_in=HOUR // 2, max_fee=0, value=0)  # no fee in mUSD
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert balances(usd, actors.buyer, licenses) == spent  # two months paid, two months served


# ---------------------------------------------------------------- M-3: operator removal


def test_m3_disallowing_the_operator_leaves_paid_up_licenses_the_notice(market, router, registry, actors, chain):
    """M-3. The model's owner cuts off the operator serving a bought-out licence, with a request of
    the buyer's on its way.

    Old code: setOperatorAllowed(false) took effect at once: the pending request could not be
    delivered (Router_OperatorNotAllowed in fulfil) and no new one could be made: the paid-up licence
    got nothing, and the retirement notice guaranteed nothing.

    Now: the removal takes the retirement notice: requests naming the operator with a deadline up to
    then, and their deliveries, still work; only after it are requests refused. Every request made
    is paid out exactly once; the refused one moves no money.
    """
    model = market.register()
    market.operator(models=[model])
    license_id = market.buy(market.publish(model))
    pending, _ = market.request(model, license_id)
    until = (
        router.setOperatorAllowed(model, actors.operator, False, sender=actors.creator)
        .events.filter(router.ModelOperatorSet)[0]
        .allowedUntil
    )
    assert until == chain.blocks.head.timestamp + NOTICE
    router.fulfil(pending, OUT_DIGEST, OUT_CID, sender=actors.operator)
    chain.pending_timestamp = until - DAY
    last, _ = market.request(model, license_id, deadline_in=DAY)
    router.fulfil(last, OUT_DIGEST, OUT_CID, sender=actors.operator)
    assert router.creditOf(actors.operator, ETH) == 2 * OPERATOR_FEE

    chain.pending_timestamp = until + 1
    escrow = router.balance
    with reverts(router.Router_OperatorNotAllowed, modelId=model, operator=actors.operator.address):
        market.request(model, license_id, deadline_in=HOUR)
    assert router.balance == escrow and router.creditOf(actors.buyer, ETH) == 0


@pytest.mark.xfail(
    strict=True,
    reason="known limit (docs/contracts.md, Known limits): the licence manager does not "
    "know the router's operator allowances, so a sale made after the model's last operator was "
    "disallowed can outlast the service; buyers must check `router.canServe` before paying",
)
def test_m3_residual_a_license_sold_after_the_removal_is_served_for_its_paid_time(
    market, router, licenses, usd, actors, chain
):
    """M-3, not fixed for licences sold after the removal. FAILS on the contracts as of this round.

    The owner disallows the model's only operator (allowedUntil = now + 45 days) but leaves its
    monthly offer on sale (nothing stops the sale: the licence manager knows nothing of operators).
    Five days before allowedUntil a buyer pays for a month; from allowedUntil on every request naming
    the operator reverts (Router_OperatorNotAllowed), so 25 of the 30 paid days cannot be used, and
    the creator keeps the whole price. A retirement would have stopped the sale; a removal does not,
    so "disallow every operator, keep selling" cuts paid-up service as M-3 did, for every licence
    sold or renewed after the removal.

    The property asserted: a subscription sold while the model is on sale can be used until it
    expires. (If the fix is to refuse such sales instead, this test should assert that refusal.)
    """
    model = market.register()
    market.operator(models=[model])
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE)
    until = (
        router.setOperatorAllowed(model, actors.operator, False, sender=actors.creator)
        .events.filter(router.ModelOperatorSet)[0]
        .allowedUntil
    )
    chain.pending_timestamp = until - 5 * DAY
    license_id = market.buy(offer)  # on sale, at the full price
    paid_until = licenses.expiresAt(license_id)
    assert paid_until == until + 25 * DAY
    chain.pending_timestamp = until + DAY
    req, _ = market.request(model, license_id, deadline_in=HOUR, max_fee=0, value=0)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    assert router.requestStatus(req[0]) == Status.SETTLED


# ---------------------------------------------------------------- M-4: model id squatting


def test_m4_a_front_runner_cannot_take_a_bundles_model_id(market, registry, licenses, offers, actors):
    """M-4. Mallory sees the creator's registerModel in the mempool and registers the same bundle
    digest first, naming herself voice owner (no consent needed).

    Old code: the model id was the bundle digest: Mallory's copy took it, the creator's registration
    reverted with Registry_ModelExists, and the id every index and oracle used for that bundle sold
    Mallory's licences, with no share for the real voice owner.

    Now: the id is keccak256(creator, digest): Mallory gets her own, different id; the voice owner's
    consent (which names the creator) does not work for her; the creator registers the bundle under
    its own id and Mallory can publish nothing on it.
    """
    mallory = actors.other
    r = market.registration(label="front-run bundle")
    with reverts(registry.Registry_InvalidConsent, voiceOwner=actors.voice.address):
        registry.registerModel(r, sender=mallory)  # the voice owner's consent names the creator
    copy = {**r, "voiceOwner": mallory.address, "voiceOwnerBps": 0, "consentSignature": b""}
    registry.registerModel(copy, sender=mallory)
    squatted = protocol.model_id(mallory.address, r["bundleDigest"])

    receipt = registry.registerModel(r, sender=actors.creator)
    model = receipt.events.filter(registry.ModelRegistered)[0].modelId
    assert model == protocol.model_id(actors.creator.address, r["bundleDigest"]) != squatted
    assert (registry.ownerOf(model), registry.ownerOf(squatted)) == (actors.creator, mallory)
    assert registry.consentOf(model) == (actors.voice, 2_000)
    with reverts(offers.Licensing_NotModelOwner, modelId=model, caller=mallory.address):
        market.publish(model, owner=mallory)
    market.buy(market.publish(model, price=10**16))
    licenses.distribute(model, ETH, sender=mallory)
    assert licenses.creditOf(mallory, ETH) == 0
    assert licenses.creditOf(actors.voice, ETH) == 8 * 10**15 * 2_000 // 10_000


# ---------------------------------------------------------------- M-5: free, endless disputes


def test_m5_a_dispute_needs_the_bond_and_lapses_when_left_undecided(market, router, actors, chain):
    """M-5. A buyer holding a free pay-per-use licence disputes a good delivery to lock up the
    operator's fee and stake.

    Old code: dispute() cost nothing, and a Disputed request stayed so until the arbiter acted:
    settle reverted (Router_WrongStatus), and withdrawStake reverted with Router_OpenDisputes, so
    one free call locked the fee and the whole stake for as long as the arbiter stayed silent.

    Now: a dispute posts the bond (Router_WrongPayment without it) and gives the arbiter seven days;
    after that anyone settles it: the dispute lapses, the operator is paid, the buyer gets the bond
    back, and the operator withdraws its stake once unbonded.
    """
    bond, use_price = 10**16, 10**15
    router.setDisputeBond(bond, sender=actors.deployer)
    model = market.register(dispute_window=HOUR)
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, price=use_price))
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    with reverts(router.Router_WrongPayment, expected=bond, sent=0):
        router.dispute(req, sender=actors.buyer)
    decide_by = router.dispute(req, value=bond, sender=actors.buyer).events.filter(router.SynthesisDisputed)[0].decideBy
    unbonded = router.startUnbonding(sender=actors.operator).events.filter(router.UnbondingStarted)[0].unbondingEndsAt
    assert router.balance == MIN_STAKE + use_price + OPERATOR_FEE + bond

    chain.pending_timestamp = decide_by
    receipt = router.settle([req], sender=actors.keeper)
    assert receipt.events.filter(router.DisputeLapsed)[0].requestId == req[0]
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.buyer, ETH) == bond
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE
    assert router.potOf(model, ETH) == (use_price * 8 // 10, use_price * 2 // 10)
    chain.pending_timestamp = unbonded
    before = actors.operator.balance
    fees = router.withdrawStake(sender=actors.operator).total_fees_paid
    fees += router.withdraw(ETH, sender=actors.operator).total_fees_paid
    assert actors.operator.balance == before + MIN_STAKE + OPERATOR_FEE - fees
    router.withdraw(ETH, sender=actors.buyer)
    assert router.balance == use_price  # only the model's pot is left


# ---------------------------------------------------------------- M-6: versions


def test_m6_a_new_version_keeps_the_voice_owner_and_its_share(market, registry, licenses, actors):
    """M-6. The creator registers a "new version" of a consented model that names themself as the
    voice owner, and another under the parent while it is frozen.

    Old code: a version only checked that the caller owned the parent: the child dropped the voice
    owner with no consent and took their 20% share (all revenue to the creator), and versions could
    be registered under a frozen (taken-down) parent.

    Now: Registry_VoiceOwnerChanged and Registry_ParentFrozen; a version with the voice owner's fresh
    consent registers, and its sales pay the voice owner their share.
    """
    parent = market.register()
    r = market.registration(voice_owner=actors.creator, parent_id=parent)
    with reverts(
        registry.Registry_VoiceOwnerChanged,
        parentId=parent,
        parentVoiceOwner=actors.voice.address,
        voiceOwner=actors.creator.address,
    ):
        registry.registerModel(r, sender=actors.creator)
    registry.freeze(parent, b"\x01" * 32, sender=actors.arbiter)
    with reverts(registry.Registry_ParentFrozen, parentId=parent):
        registry.registerModel(market.registration(parent_id=parent), sender=actors.creator)
    registry.unfreeze(parent, sender=actors.arbiter)

    child = market.register(parent_id=parent)
    assert registry.parentOf(child) == parent and registry.consentOf(child) == (actors.voice, 2_000)
    market.buy(market.publish(child, price=10**16))
    licenses.distribute(child, ETH, sender=actors.other)
    assert licenses.creditOf(actors.voice, ETH) == 8 * 10**15 * 2_000 // 10_000
    assert licenses.creditOf(actors.creator, ETH) == 8 * 10**15 * 8_000 // 10_000


# ---------------------------------------------------------------- L-1 .. L-4


def test_l1_subscription_time_is_never_sold_past_valid_until(market, licenses, usd, actors, chain):
    """L-1. An offer valid for ten more days sells weekly periods: the buyer buys two weeks, or one
    and then renews.

    Old code: both sold the second week although the licence stops working at validUntil (isLicensed
    is false after it): four paid days were worth nothing.

    Now: Licensing_BeyondValidUntil on the purchase and on the renewal (holder's or keeper's); the
    buyer pays for one week only.
    """
    until = market.now + 10 * DAY
    model = market.register()
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE, period=WEEK, valid_until=until)
    fund(usd, actors.buyer, 3 * PRICE, licenses, actors.deployer)
    chain.pending_timestamp = start = market.now
    with reverts(licenses.Licensing_BeyondValidUntil, end=start + 2 * WEEK, validUntil=until):
        licenses.buy(offer, 2 * PRICE, 2, sender=actors.buyer)
    license_id = market.buy(offer)
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    expires = licenses.expiresAt(license_id)
    chain.pending_timestamp = expires - HOUR
    spent = balances(usd, actors.buyer, licenses)
    for renewer in (actors.buyer, actors.keeper):
        with reverts(licenses.Licensing_BeyondValidUntil, end=expires + WEEK, validUntil=until):
            licenses.renewSubscription(license_id, WEEK, sender=renewer)
    assert balances(usd, actors.buyer, licenses) == spent == [3 * PRICE, PRICE]  # one week bought in all


def test_l2_renewals_stop_when_the_offer_is_withdrawn_or_its_asset_delisted(
    market, licenses, offers, usd, actors, chain
):
    """L-2. Holders with keeper renewals on and standing allowances: the creator withdraws one offer,
    the admin de-lists the token of another.

    Old code: renewals read neither the offer's `active` flag nor the asset allow-list: keepers kept
    charging holders under a withdrawn offer and in a de-listed token.

    Now: Licensing_OfferInactive and Licensing_AssetNotAllowed on every renewal (holder or keeper);
    nobody's tokens move.
    """
    model = market.register()
    withdrawn = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=PRICE, period=WEEK)
    delisted = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=2 * PRICE, period=WEEK)
    first, second = market.buy(withdrawn), market.buy(delisted)
    for license_id in (first, second):
        licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    fund(usd, actors.buyer, 10 * PRICE, licenses, actors.deployer)
    offers.deactivateOffer(withdrawn, sender=actors.creator)
    licenses.setAssetAllowed(usd, False, sender=actors.deployer)
    chain.pending_timestamp = licenses.expiresAt(first) - HOUR
    spent = balances(usd, actors.buyer, licenses)
    for renewer in (actors.buyer, actors.keeper):
        with reverts(licenses.Licensing_OfferInactive, offerId=withdrawn):
            licenses.renewSubscription(first, WEEK, sender=renewer)
        with reverts(licenses.Licensing_AssetNotAllowed, asset=usd.address):
            licenses.renewSubscription(second, WEEK, sender=renewer)
    assert balances(usd, actors.buyer, licenses) == spent
    assert not licenses.isRenewable(first) and not licenses.isRenewable(second)


def test_l3_a_griefer_settling_one_item_first_does_not_revert_a_keepers_batch(market, router, actors, chain):
    """L-3. A keeper settles three delivered requests in one batch; Mallory settles the middle one
    first.

    Old code: settle reverted the whole batch on the already-settled item (Router_WrongStatus), so
    for the price of settling one item anyone could make every keeper batch fail.

    Now: the settled item is skipped (SettlementSkipped) and the other two are settled; each payout
    happens exactly once.
    """
    model = market.register(dispute_window=600)
    market.operator(models=[model])
    license_id = market.buy(market.publish(model))
    reqs = [market.request(model, license_id)[0] for _ in range(3)]
    for req in reqs:
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    chain.pending_timestamp += 601
    router.settle([reqs[1]], sender=actors.other)
    assert router.settle.call(reqs, sender=actors.keeper) == 2
    receipt = router.settle(reqs, sender=actors.keeper)
    assert [e.requestId for e in receipt.events.filter(router.SynthesisSettled)] == [reqs[0][0], reqs[2][0]]
    assert [(e.requestId, e.status) for e in receipt.events.filter(router.SettlementSkipped)] == [
        (reqs[1][0], Status.SETTLED)
    ]
    assert [router.requestStatus(r[0]) for r in reqs] == [Status.SETTLED] * 3
    assert router.creditOf(actors.operator, ETH) == 3 * OPERATOR_FEE
    assert router.balance == MIN_STAKE + 3 * OPERATOR_FEE


def test_l4_the_buyers_floor_beats_a_front_run_of_set_dispute_window_zero(market, router, registry, licenses, actors):
    """L-4. The buyer asks for speech from a model with a one-hour dispute window; its owner sees the
    request coming and front-runs it with setDisputeWindow(0).

    Old code: the buyer could state no floor (params bits 88..127 were reserved:
    Router_NonZeroReservedParams), so the request went through with a zero window and the delivery
    paid out at once: whatever was delivered, there was nothing left to dispute.

    Now: the buyer puts the window they accept in params (bits 88..111); the front-run request reverts
    with Router_DisputeWindowTooShort(0, 3600), consuming no use and moving no money.
    """
    use_price = 10**15
    model = market.register(dispute_window=HOUR)
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, price=use_price, max_uses=5))
    registry.setDisputeWindow(model, 0, sender=actors.creator)  # the front-run
    escrow = router.balance
    with reverts(router.Router_DisputeWindowTooShort, window=0, minWindow=HOUR):
        market.request(model, license_id, min_dispute_window=HOUR)
    assert router.balance == escrow and licenses.isLicensed(license_id, actors.buyer, model, 1) == (True, 5)


# ---------------------------------------------------------------- the smaller points


def test_one_wallets_consent_is_not_accepted_for_another(market, registry, project, actors):
    """Consent replay across ERC-1271 wallets. The voice owner's key controls two smart wallets; a
    consent signed for wallet A is submitted naming wallet B.

    Old code: the signed struct did not name the voice owner, so wallet B (same owner key) validated
    A's signature: one account's consent registered a model for another.

    Now: VoiceConsent names the voice owner: Registry_InvalidConsent(B).
    """
    wallet_a = actors.deployer.deploy(project.ConsentWallet, actors.voice)
    wallet_b = actors.deployer.deploy(project.ConsentWallet, actors.voice)
    r = market.registration(voice_owner=wallet_a.address, signer=actors.voice)
    with reverts(registry.Registry_InvalidConsent, voiceOwner=wallet_b.address):
        registry.registerModel({**r, "voiceOwner": wallet_b.address}, sender=actors.creator)
    registry.registerModel(r, sender=actors.creator)
    assert registry.consentOf(protocol.model_id(actors.creator.address, r["bundleDigest"]))[0] == wallet_a.address


def test_a_consent_cannot_be_used_after_revoke_consents(market, registry, actors):
    """Consent revocation. The voice owner signed a consent (valid for an hour), then changed their
    mind before the creator used it.

    Old code: the consent had no nonce and the registry no revokeConsents: a signature stayed good
    until its deadline, whatever the voice owner did.

    Now: revokeConsents() raises the nonce; the old signature fails with Registry_InvalidConsent.
    """
    r = market.registration()
    registry.revokeConsents(sender=actors.voice)
    with reverts(registry.Registry_InvalidConsent, voiceOwner=actors.voice.address):
        registry.registerModel(r, sender=actors.creator)


def test_pausing_the_license_manager_stops_uses_but_not_refunds(market, router, licenses, actors, chain):
    """Pause. The pauser stops the licence manager (say, during an incident).

    Old code: consumeUse ignored the pause: the router kept consuming uses and escrowing payments
    while licence sales were stopped.

    Now: consumeUse reverts while paused (requests fail with EnforcedPause); pending requests are
    still refunded (fail, cancelExpired) and the buyer withdraws every wei.
    """
    model = market.register()
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, price=10**15, max_uses=2))
    failing, _ = market.request(model, license_id, deadline_in=HOUR)
    expiring, _ = market.request(model, license_id, deadline_in=HOUR)
    licenses.pause(sender=actors.deployer)
    with reverts(router.EnforcedPause):
        market.request(model, license_id)
    router.fail(failing, int(FailReason.SYNTHESIS_ERROR), sender=actors.operator)
    chain.pending_timestamp += HOUR + 1
    router.cancelExpired(expiring, sender=actors.keeper)
    assert router.creditOf(actors.buyer, ETH) == 2 * (10**15 + OPERATOR_FEE)
    router.withdraw(ETH, sender=actors.buyer)
    assert router.balance == MIN_STAKE
    licenses.unpause(sender=actors.deployer)
    assert licenses.isLicensed(license_id, actors.buyer, model, 1) == (True, 2)


def test_admin_powers_are_bounded(project, registry, licenses, router, actors, chain):
    """Admin bounds. The admin tries the worst settings at once.

    Old code: all accepted: a slash of any size (10**30 took an operator's whole stake per dispute), a
    retirement notice of 0 (retire() ended service in the same block), and any account (an EOA) as
    router, granted ROUTER_ROLE at once. Disputes had no bond, so there was no setter to bound. The
    ROUTER_ROLE no longer exists: the licence manager names one router (`router()`).

    Now: Router_SlashTooHigh (slash <= minStake), Registry_NoticeTooShort (>= 1 day),
    Router_DisputeBondTooHigh (<= 1 ether), Licensing_RouterNotContract, and a replacement router is
    only proposed (RouterProposed): it takes effect two days later (Licensing_RouterNotYet before).
    """
    with reverts(router.Router_SlashTooHigh, slashAmount=MIN_STAKE + 1, minStake=MIN_STAKE):
        router.setSlashAmount(MIN_STAKE + 1, sender=actors.deployer)
    with reverts(registry.Registry_NoticeTooShort, notice=0, min=DAY):
        registry.setRetirementNotice(0, sender=actors.deployer)
    with reverts(router.Router_DisputeBondTooHigh, bond=10**18 + 1, max=10**18):
        router.setDisputeBond(10**18 + 1, sender=actors.deployer)
    with reverts(licenses.Licensing_RouterNotContract, router=actors.other.address):
        licenses.setRouter(actors.other, sender=actors.deployer)
    hostile = actors.deployer.deploy(project.HostileAccount)
    receipt = licenses.setRouter(hostile, sender=actors.deployer)
    at = receipt.timestamp + 2 * DAY
    assert not receipt.events.filter(licenses.RouterSet) and licenses.router() == router.address
    with reverts(licenses.Licensing_RouterNotYet, router=hostile.address, at=at):
        licenses.setRouter(hostile, sender=actors.deployer)
    assert (router.slashAmount(), registry.retirementNotice(), router.disputeBond()) == (SLASH, NOTICE, 0)

"""LicenseManager: offers, the three tiers in ETH and ERC-20, subscriptions (ERC-5643), revenue."""

from __future__ import annotations

import ape
import pytest

from market_helpers import MONTH, offer_terms, reverts, view_reverts
from voicemarket.protocol import DAY, ETH, Action, Tier

TTS = int(Action.TEXT_TO_SPEECH)
WEEK = 7 * DAY
NOTICE = 45 * DAY  # vm.deploy's default retirement notice


@pytest.fixture
def model(market):
    return market.register()


# ---------------------------------------------------------------- offers


def test_publish_records_the_terms_and_emits_the_territories(market, licenses, offers, model, actors, usd):
    terms = offer_terms(
        model,
        Tier.SUBSCRIPTION,
        asset=usd.address,
        price=5_000_000,
        max_uses=30,
        valid_until=market.now + 10 * MONTH,
        max_licenses=100,
        purposes=0b1001,
        transferable=True,
        permissions=0xFF ^ int(Action.SUBLICENSING),
        attribution=False,
    )
    assert licenses.offerBook() == offers.address and offers.licenseManager() == licenses.address
    first = licenses.nextOfferId()
    receipt = offers.publishOffer(terms, b"USGB", sender=actors.creator)
    event = receipt.events.filter(offers.OfferPublished)[0]
    assert (event.offerId, event.modelId, event.publisher, event.territories) == (first, model, actors.creator, b"USGB")
    assert licenses.nextOfferId() == first + 1
    stored = licenses.offer(event.offerId)
    assert stored.active and stored.sold == 0
    assert {k: getattr(stored.terms, k) for k in terms} == {**terms, "asset": usd.address}
    emitted = dict(zip(terms, event.terms, strict=True))
    assert {**emitted, "asset": emitted["asset"].lower()} == {**terms, "asset": usd.address.lower()}


@pytest.mark.parametrize(
    ("change", "error", "args"),
    [
        ({"tier": 1, "period": 0}, "Licensing_BadPeriod", {"tier": 1, "period": 0}),
        ({"tier": 0, "period": 5}, "Licensing_BadPeriod", {"tier": 0, "period": 5}),
        ({"packSize": 5}, "Licensing_BadPackSize", {"tier": 0, "packSize": 5}),
        ({"permissions": 0x100}, "Licensing_UnknownBits", {"actions": 0x100 | int(Action.SUBLICENSING)}),
        ({"purposes": 1 << 10}, "Licensing_UnknownBits", {"purposes": 1 << 10}),
        ({"prohibitions": TTS}, "Licensing_PermissionOverlap", {"overlap": TTS}),
        ({"validUntil": 1}, "Licensing_ValidUntilPassed", {"validUntil": 1}),
        ({"policyHash": bytes(32)}, "Licensing_EmptyPolicyHash", {}),
        ({"asset": "0x" + "42" * 20}, "Licensing_AssetNotAllowed", {"asset": "0x" + "42" * 20}),
        ({"tier": 1, "period": NOTICE}, "Licensing_PeriodAboveNotice", {"period": NOTICE, "notice": NOTICE}),
        ({"tier": 1, "period": NOTICE - DAY + 1}, "Licensing_PeriodAboveNotice", {"period": NOTICE - DAY + 1}),
    ],
)
def test_publish_refuses_terms_the_contract_cannot_honour(offers, model, actors, change, error, args):
    terms = {**offer_terms(model), **change}
    with reverts(getattr(offers, error), **args):
        offers.publishOffer(terms, b"", sender=actors.creator)


def test_a_subscription_period_fits_the_notice_with_its_renewal_lead(market, licenses, offers, model, actors):
    """period + min(1 day, period) <= notice: the longest period that fits is notice - 1 day."""
    offer = market.publish(model, Tier.SUBSCRIPTION, period=NOTICE - DAY)
    assert licenses.offer(offer).terms.period == NOTICE - DAY


def test_publish_checks_territories_owner_and_model_state(market, licenses, offers, registry, model, actors):
    with reverts(offers.Licensing_BadTerritories, index=3):
        offers.publishOffer(offer_terms(model), b"USG", sender=actors.creator)
    with reverts(offers.Licensing_BadTerritories, index=1):
        offers.publishOffer(offer_terms(model), b"Us", sender=actors.creator)
    with reverts(offers.Licensing_NotModelOwner, modelId=model, caller=actors.other.address):
        offers.publishOffer(offer_terms(model), b"", sender=actors.other)
    # An unknown model has no owner: the registry's ownerOf refuses it.
    with reverts(registry.ERC721NonexistentToken, tokenId=77):
        offers.publishOffer(offer_terms(77), b"", sender=actors.creator)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with reverts(licenses.Licensing_ModelFrozen, modelId=model):
        offers.publishOffer(offer_terms(model), b"", sender=actors.creator)
    registry.unfreeze(model, sender=actors.arbiter)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        offers.publishOffer(offer_terms(model), b"", sender=actors.creator)


def test_only_the_offer_book_records_and_closes_offers(licenses, model, actors):
    with reverts(licenses.Licensing_NotOfferBook, caller=actors.creator.address):
        licenses.recordOffer([0, 0, model, 0, 1], sender=actors.creator)
    with reverts(licenses.Licensing_NotOfferBook, caller=actors.deployer.address):
        licenses.closeOffer(1, actors.deployer, sender=actors.deployer)


def test_deactivation_stops_sales_but_not_sold_licenses(market, licenses, offers, model, actors):
    offer = market.publish(model)
    license_id = market.buy(offer)
    with reverts(offers.Licensing_NotModelOwner, modelId=model, caller=actors.other.address):
        offers.deactivateOffer(offer, sender=actors.other)
    receipt = offers.deactivateOffer(offer, sender=actors.creator)
    event = receipt.events.filter(offers.OfferDeactivated)[0]
    assert (event.offerId, event.modelId) == (offer, model)
    assert not licenses.offer(offer).active
    with reverts(licenses.Licensing_OfferInactive, offerId=offer):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    with reverts(licenses.Licensing_OfferInactive, offerId=offer):
        offers.deactivateOffer(offer, sender=actors.creator)
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 2**256 - 1)
    other = market.publish(model)
    offers.deactivateOffer(other, sender=actors.deployer)  # the admin may too
    assert not licenses.offer(other).active
    with reverts(licenses.Licensing_UnknownOffer, offerId=99):
        offers.deactivateOffer(99, sender=actors.creator)


# ---------------------------------------------------------------- buying


def test_buyout_in_eth_mints_a_license_and_fills_the_pot(market, licenses, model, actors):
    offer = market.publish(model, price=10**16)
    receipt = licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    license_id = receipt.events.filter(licenses.LicensePurchased)[0].licenseId
    assert licenses.ownerOf(license_id) == actors.buyer
    assert licenses.offerOf(license_id) == offer and licenses.offer(offer).sold == 1
    assert licenses.potOf(model, ETH) == (8 * 10**15, 2 * 10**15)  # the 20% platform fee
    assert licenses.expiresAt(license_id) == 0 and not licenses.isRenewable(license_id)


def test_subscription_in_erc20_runs_for_the_periods_bought(market, licenses, model, actors, usd):
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=3_000_000, period=WEEK)
    license_id = market.buy(offer, quantity=2)
    lic = licenses.license(license_id)
    assert lic.expiresAt == lic.anchor + 2 * WEEK == licenses.expiresAt(license_id)
    assert not lic.autoRenew  # a buyer agrees to keeper renewals separately (setAutoRenew)
    assert licenses.isRenewable(license_id)
    assert usd.balanceOf(licenses) == 6_000_000
    assert licenses.potOf(model, usd) == (4_800_000, 1_200_000)


def test_subscription_time_is_sold_within_the_notice_and_valid_until(market, licenses, model, actors, chain):
    """A purchase never pays for time past now + retirement notice, nor past the offer's validUntil."""
    offer = market.publish(model, Tier.SUBSCRIPTION, price=10**15, period=WEEK)
    chain.pending_timestamp = start = market.now
    with reverts(licenses.Licensing_BeyondNotice, end=start + 7 * WEEK, latest=start + NOTICE):
        licenses.buy(offer, 7 * 10**15, 7, value=7 * 10**15, sender=actors.buyer)
    chain.pending_timestamp = start + 1
    assert licenses.expiresAt(market.buy(offer, quantity=6)) == start + 1 + 6 * WEEK
    until = market.now + 10 * DAY
    timed = market.publish(model, Tier.SUBSCRIPTION, price=10**15, period=WEEK, valid_until=until)
    chain.pending_timestamp = start = market.now
    with reverts(licenses.Licensing_BeyondValidUntil, end=start + 2 * WEEK, validUntil=until):
        licenses.buy(timed, 2 * 10**15, 2, value=2 * 10**15, sender=actors.buyer)
    assert licenses.expiresAt(market.buy(timed)) <= until


def test_credit_packs_buy_uses(market, licenses, model, actors):
    offer = market.publish(model, Tier.PAY_PER_USE, price=10**14, pack_size=10, max_uses=40)
    license_id = market.buy(offer, quantity=3)
    assert licenses.license(license_id).limit == 30
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 30)
    with reverts(licenses.Licensing_TooManyUses, uses=50, maxUses=40):
        licenses.buy(offer, 5 * 10**15, 5, value=5 * 10**15, sender=actors.buyer)


def test_pay_per_use_without_packs_is_free_to_acquire(market, licenses, model, actors):
    offer = market.publish(model, Tier.PAY_PER_USE, price=10**14)
    receipt = licenses.buy(offer, 0, 1, sender=actors.buyer)
    license_id = receipt.events.filter(licenses.LicensePurchased)[0].licenseId
    assert receipt.events.filter(licenses.LicensePurchased)[0].paid == 0
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 2**256 - 1)
    assert licenses.potOf(model, ETH) == (0, 0)


def test_buy_refuses_to_charge_more_than_agreed(market, licenses, model, actors):
    offer = market.publish(model, price=10**16)
    with reverts(licenses.Licensing_PriceAboveMax, cost=10**16, maxPrice=10**16 - 1):
        licenses.buy(offer, 10**16 - 1, 1, value=10**16, sender=actors.buyer)


@pytest.mark.parametrize(
    ("tier", "extra", "quantity"),
    [
        (Tier.BUYOUT, {}, 2),
        (Tier.BUYOUT, {}, 0),
        (Tier.SUBSCRIPTION, {}, 0),
        (Tier.PAY_PER_USE, {}, 2),
        (Tier.PAY_PER_USE, {"pack_size": 5}, 0),
    ],
)
def test_bad_quantities(market, licenses, model, actors, tier, extra, quantity):
    offer = market.publish(model, tier, **extra)
    with reverts(licenses.Licensing_BadQuantity, tier=int(tier), quantity=quantity):
        licenses.buy(offer, 10**30, quantity, value=0, sender=actors.buyer)


def test_payment_must_be_exact(market, licenses, model, actors, usd):
    offer = market.publish(model, price=10**16)
    with reverts(licenses.Licensing_WrongPayment, expected=10**16, sent=10**16 + 1):
        licenses.buy(offer, 10**17, 1, value=10**16 + 1, sender=actors.buyer)
    token_offer = market.publish(model, asset=usd.address, price=100)
    usd.mint(actors.buyer, 100, sender=actors.deployer)
    usd.approve(licenses, 100, sender=actors.buyer)
    with reverts(licenses.Licensing_WrongPayment, expected=0, sent=1):
        licenses.buy(token_offer, 100, 1, value=1, sender=actors.buyer)
    with reverts(usd.ERC20InsufficientAllowance):
        licenses.buy(token_offer, 200, 1, sender=actors.other)


def test_sold_out_expired_delisted_and_unknown_offers_sell_nothing(market, licenses, model, actors, usd, chain):
    offer = market.publish(model, max_licenses=1)
    market.buy(offer)
    with reverts(licenses.Licensing_SoldOut, offerId=offer, maxLicenses=1):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    until = market.now + 100
    timed = market.publish(model, valid_until=until)
    chain.pending_timestamp += 200
    with reverts(licenses.Licensing_OfferExpired, offerId=timed, validUntil=until):
        licenses.buy(timed, 10**16, 1, value=10**16, sender=actors.buyer)
    token_offer = market.publish(model, asset=usd.address, price=1)
    licenses.setAssetAllowed(usd, False, sender=actors.deployer)
    with reverts(licenses.Licensing_AssetNotAllowed, asset=usd.address):
        licenses.buy(token_offer, 1, 1, sender=actors.buyer)
    with reverts(licenses.Licensing_UnknownOffer, offerId=999):
        licenses.buy(999, 1, 1, sender=actors.buyer)


def test_pause_stops_consuming_uses(market, licenses, model, actors, router, chain):
    """A paused licence manager lets no request consume a use (through the router or not)."""
    license_id = market.buy(market.publish(model))
    hooks = ape.accounts[router.address]
    chain.set_balance(router.address, 10**18)
    licenses.pause(sender=actors.deployer)
    with reverts(licenses.EnforcedPause):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    licenses.restoreUse(license_id, 0, sender=hooks)  # giving uses back (refunds) goes on


def test_frozen_or_retired_models_sell_nothing(market, licenses, registry, model, actors):
    offer = market.publish(model)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    registry.unfreeze(model, sender=actors.arbiter)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)


def test_pause_stops_sales_but_not_withdrawals(market, licenses, model, actors):
    offer = market.publish(model)
    market.buy(offer)
    licenses.distribute(model, ETH, sender=actors.other)
    with reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address):
        licenses.pause(sender=actors.other)
    licenses.pause(sender=actors.deployer)
    with reverts(licenses.EnforcedPause):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    before = actors.creator.balance
    receipt = licenses.withdraw(ETH, sender=actors.creator)
    assert actors.creator.balance == before + 64 * 10**14 - receipt.total_fees_paid
    licenses.unpause(sender=actors.deployer)
    market.buy(offer)


def test_licenses_move_only_when_transferable(market, licenses, model, actors):
    locked = market.buy(market.publish(model, transferable=False))
    with reverts(licenses.Licensing_NotTransferable, licenseId=locked):
        licenses.transferFrom(actors.buyer, actors.other, locked, sender=actors.buyer)
    free = market.buy(market.publish(model, transferable=True))
    licenses.transferFrom(actors.buyer, actors.other, free, sender=actors.buyer)
    assert licenses.isLicensed(free, actors.other, model, TTS)[0]
    assert not licenses.isLicensed(free, actors.buyer, model, TTS)[0]


def test_a_transfer_clears_the_holders_agreement_to_keeper_renewals(market, licenses, model, actors):
    offer = market.publish(model, Tier.SUBSCRIPTION, transferable=True)
    license_id = market.buy(offer)
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    receipt = licenses.transferFrom(actors.buyer, actors.other, license_id, sender=actors.buyer)
    assert [(e.licenseId, e.autoRenew) for e in receipt.events.filter(licenses.AutoRenewSet)] == [(license_id, False)]
    assert not licenses.license(license_id).autoRenew
    # A transfer of a licence without the agreement says nothing.
    receipt = licenses.transferFrom(actors.other, actors.buyer, license_id, sender=actors.other)
    assert not receipt.events.filter(licenses.AutoRenewSet)


# ---------------------------------------------------------------- subscriptions (ERC-5643)


@pytest.fixture
def subscription(market, model, usd):
    """A weekly subscription in the stablecoin (2 uses a week), bought for one week by the buyer."""
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=1_000_000, max_uses=2, period=WEEK)
    return offer, market.buy(offer)


def fund(usd, licenses, holder, amount, deployer):
    usd.mint(holder, amount, sender=deployer)
    usd.approve(licenses, amount, sender=holder)


def test_keeper_renews_a_due_subscription_from_the_holders_allowance(
    market, licenses, subscription, actors, usd, chain
):
    _, license_id = subscription
    expires = licenses.expiresAt(license_id)
    fund(usd, licenses, actors.buyer, 1_000_000, actors.deployer)
    with reverts(licenses.Licensing_AutoRenewOff, licenseId=license_id):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    receipt = licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    assert [(e.licenseId, e.autoRenew) for e in receipt.events.filter(licenses.AutoRenewSet)] == [(license_id, True)]
    with reverts(licenses.Licensing_RenewalNotDue, licenseId=license_id, dueAt=expires - DAY):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    chain.pending_timestamp = expires - DAY
    receipt = licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    assert receipt.events.filter(licenses.SubscriptionUpdate)[0].expiration == expires + WEEK
    assert licenses.expiresAt(license_id) == expires + WEEK
    assert usd.balanceOf(actors.buyer) == 0 and usd.balanceOf(actors.keeper) == 0
    assert usd.balanceOf(licenses) == 2_000_000
    with reverts(licenses.Licensing_BadDuration, duration=2 * WEEK, period=WEEK):
        licenses.renewSubscription(license_id, 2 * WEEK, sender=actors.keeper)
    # Renewed, it is not due again until a day before its new expiry.
    with reverts(licenses.Licensing_RenewalNotDue, licenseId=license_id, dueAt=expires + WEEK - DAY):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)


def test_keepers_never_revive_a_lapsed_subscription(market, licenses, subscription, actors, usd, chain):
    _, license_id = subscription
    expires = licenses.expiresAt(license_id)
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    fund(usd, licenses, actors.buyer, 1_000_000, actors.deployer)
    chain.pending_timestamp = expires
    with reverts(licenses.Licensing_SubscriptionLapsed, licenseId=license_id, expiresAt=expires):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    assert usd.balanceOf(actors.buyer) == 1_000_000


def test_renewal_failures_name_their_reason(market, licenses, registry, subscription, model, actors, usd, chain):
    _offer, license_id = subscription
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    chain.pending_timestamp = licenses.expiresAt(license_id) - 10
    with reverts(licenses.Licensing_RenewalAllowanceTooLow, licenseId=license_id, allowance=0, cost=1_000_000):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    usd.approve(licenses, 10**9, sender=actors.buyer)
    with reverts(licenses.Licensing_RenewalBalanceTooLow, licenseId=license_id, balance=0, cost=1_000_000):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    usd.mint(actors.buyer, 10**9, sender=actors.deployer)
    receipt = licenses.cancelSubscription(license_id, sender=actors.buyer)
    assert not receipt.events.filter(licenses.AutoRenewSet)[0].autoRenew
    with reverts(licenses.Licensing_AutoRenewOff, licenseId=license_id):
        licenses.renewSubscription(license_id, WEEK, sender=actors.keeper)
    assert licenses.isRenewable(license_id)  # by its holder
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.renewSubscription(license_id, WEEK, sender=actors.buyer)
    assert not licenses.isRenewable(license_id)
    registry.unfreeze(model, sender=actors.arbiter)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        licenses.renewSubscription(license_id, WEEK, sender=actors.buyer)
    assert not licenses.isRenewable(license_id)
    assert usd.balanceOf(actors.buyer) == 10**9


def test_holder_renews_early_by_several_periods_within_the_notice(market, licenses, subscription, actors, usd, chain):
    _, license_id = subscription
    expires = licenses.expiresAt(license_id)
    fund(usd, licenses, actors.buyer, 3_000_000, actors.deployer)
    chain.pending_timestamp = start = market.now
    # Six weeks ahead would end past now + the 45-day notice.
    with reverts(licenses.Licensing_BeyondNotice, end=expires + 6 * WEEK, latest=start + NOTICE):
        licenses.renewSubscription(license_id, 6 * WEEK, sender=actors.buyer)
    licenses.renewSubscription(license_id, 3 * WEEK, sender=actors.buyer)
    assert licenses.expiresAt(license_id) == expires + 3 * WEEK
    assert usd.balanceOf(actors.buyer) == 0
    assert not licenses.license(license_id).autoRenew  # renewing is not agreeing to keeper renewals
    with reverts(licenses.Licensing_BadDuration, duration=WEEK + 1, period=WEEK):
        licenses.renewSubscription(license_id, WEEK + 1, sender=actors.buyer)
    with reverts(licenses.Licensing_BadDuration, duration=0, period=WEEK):
        licenses.renewSubscription(license_id, 0, sender=actors.buyer)


def test_an_approved_account_renews_only_as_a_keeper(market, licenses, subscription, actors, usd, chain):
    """An account approved on the licence token is not its holder: it may renew one due period, and
    only when the holder agreed; it cannot agree for them."""
    _, license_id = subscription
    licenses.approve(actors.other, license_id, sender=actors.buyer)
    fund(usd, licenses, actors.buyer, 2_000_000, actors.deployer)
    expires = licenses.expiresAt(license_id)
    with reverts(licenses.Licensing_AutoRenewOff, licenseId=license_id):
        licenses.renewSubscription(license_id, 2 * WEEK, sender=actors.other)
    with reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        licenses.setAutoRenew(license_id, True, sender=actors.other)
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    with reverts(licenses.Licensing_BadDuration, duration=2 * WEEK, period=WEEK):
        licenses.renewSubscription(license_id, 2 * WEEK, sender=actors.other)
    with reverts(licenses.Licensing_RenewalNotDue, licenseId=license_id, dueAt=expires - DAY):
        licenses.renewSubscription(license_id, WEEK, sender=actors.other)
    chain.pending_timestamp = expires - 1
    licenses.renewSubscription(license_id, WEEK, sender=actors.other)
    assert licenses.expiresAt(license_id) == expires + WEEK
    assert usd.balanceOf(actors.buyer) == 1_000_000


def test_a_lapsed_subscription_restarts_with_a_fresh_quota(market, licenses, subscription, model, actors, usd, chain):
    _, license_id = subscription
    chain.pending_timestamp = licenses.expiresAt(license_id) + 5 * DAY
    chain.mine()
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (False, 0)
    fund(usd, licenses, actors.buyer, 1_000_000, actors.deployer)
    receipt = licenses.renewSubscription(license_id, WEEK, sender=actors.buyer)
    lic = licenses.license(license_id)
    assert lic.anchor == receipt.timestamp and lic.expiresAt == receipt.timestamp + WEEK
    assert lic.used == 0 and lic.periodStart == 0
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 2)


def test_renewal_in_eth_is_paid_by_the_caller(market, licenses, model, actors, chain):
    offer = market.publish(model, Tier.SUBSCRIPTION, price=10**15)
    license_id = market.buy(offer)
    chain.pending_timestamp = licenses.expiresAt(license_id) - 10 * DAY
    with reverts(licenses.Licensing_WrongPayment, expected=10**15, sent=0):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    licenses.renewSubscription(license_id, MONTH, value=10**15, sender=actors.buyer)
    assert licenses.potOf(model, ETH) == (16 * 10**14, 4 * 10**14)
    # A keeper's ETH renewal is paid by the keeper (never from the holder).
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    chain.pending_timestamp = licenses.expiresAt(license_id) - DAY
    with reverts(licenses.Licensing_WrongPayment, expected=10**15, sent=0):
        licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    licenses.renewSubscription(license_id, MONTH, value=10**15, sender=actors.keeper)
    assert licenses.potOf(model, ETH) == (24 * 10**14, 6 * 10**14)


def test_subscription_calls_on_other_tiers_and_unknown_tokens(market, licenses, model, actors):
    license_id = market.buy(market.publish(model))
    with reverts(licenses.Licensing_NotSubscription, licenseId=license_id):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    with reverts(licenses.Licensing_NotSubscription, licenseId=license_id):
        licenses.cancelSubscription(license_id, sender=actors.buyer)
    with reverts(licenses.Licensing_NotSubscription, licenseId=license_id):
        licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    with reverts(licenses.Licensing_UnknownLicense, licenseId=404):
        licenses.renewSubscription(404, MONTH, sender=actors.buyer)
    with reverts(licenses.Licensing_UnknownLicense, licenseId=404):
        licenses.cancelSubscription(404, sender=actors.buyer)
    with reverts(licenses.Licensing_UnknownLicense, licenseId=404):
        licenses.setAutoRenew(404, True, sender=actors.buyer)
    view_reverts(licenses.ERC721NonexistentToken, licenses.expiresAt, 404, tokenId=404)
    assert licenses.expiresAt(license_id) == 0 and not licenses.isRenewable(license_id)


def test_the_holder_or_an_approved_account_cancels_without_eth(market, licenses, subscription, actors):
    _, license_id = subscription
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    with reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        licenses.cancelSubscription(license_id, sender=actors.other)
    with reverts(licenses.Licensing_WrongPayment, expected=0, sent=1):
        licenses.cancelSubscription(license_id, value=1, sender=actors.buyer)
    receipt = licenses.cancelSubscription(license_id, sender=actors.buyer)
    assert receipt.events.filter(licenses.SubscriptionCancelled)[0].expiresAt == licenses.expiresAt(license_id)
    assert not licenses.license(license_id).autoRenew
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    licenses.approve(actors.other, license_id, sender=actors.buyer)
    receipt = licenses.cancelSubscription(license_id, sender=actors.other)
    assert not receipt.events.filter(licenses.AutoRenewSet)[0].autoRenew
    assert not licenses.license(license_id).autoRenew


def test_renewals_stop_while_paused(licenses, subscription, actors):
    _, license_id = subscription
    licenses.pause(sender=actors.deployer)
    with reverts(licenses.EnforcedPause):
        licenses.renewSubscription(license_id, WEEK, sender=actors.buyer)


# ---------------------------------------------------------------- the licence view and the router hooks


def test_is_licensed_follows_expiry_uses_freeze_and_retirement(market, licenses, registry, model, actors, chain):
    sub = market.buy(market.publish(model, Tier.SUBSCRIPTION, max_uses=3))
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (True, 3)
    assert licenses.isLicensed(sub, actors.other, model, TTS) == (False, 0)
    assert licenses.isLicensed(sub, actors.buyer, model, int(Action.DERIVATION)) == (False, 0)
    assert licenses.isLicensed(sub, actors.buyer, model + 1, TTS) == (False, 0)
    assert licenses.isLicensed(999, actors.buyer, model, TTS) == (False, 0)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (False, 0)
    registry.unfreeze(model, sender=actors.arbiter)
    buyout = market.buy(market.publish(model))
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    assert ends >= licenses.expiresAt(sub)  # the notice covers every subscription sold
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (True, 3)  # the notice period runs
    chain.pending_timestamp = ends - 1
    chain.mine()
    assert licenses.isLicensed(buyout, actors.buyer, model, TTS) == (True, 2**256 - 1)
    chain.pending_timestamp = ends
    chain.mine()
    assert licenses.isLicensed(buyout, actors.buyer, model, TTS) == (False, 0)


def test_license_stops_when_its_offer_is_past_valid_until(market, licenses, model, actors, chain):
    until = market.now + 1000
    license_id = market.buy(market.publish(model, valid_until=until))
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS)[0]
    chain.pending_timestamp = until + 1
    chain.mine()
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (False, 0)


def test_only_the_router_consumes_and_restores_uses(licenses, actors):
    with reverts(licenses.Licensing_NotRouter, caller=actors.buyer.address):
        licenses.consumeUse(1, actors.buyer, 1, TTS, sender=actors.buyer)
    with reverts(licenses.Licensing_NotRouter, caller=actors.buyer.address):
        licenses.restoreUse(1, 0, sender=actors.buyer)


def test_router_hooks_check_and_count_uses(market, licenses, registry, model, actors, router, chain):
    """Drives consumeUse/restoreUse as the router (impersonated) to reach every refusal."""
    hooks = ape.accounts[router.address]
    chain.set_balance(router.address, 10**18)
    license_id = market.buy(market.publish(model, max_uses=2))
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    with reverts(licenses.Licensing_UsesExhausted, licenseId=license_id, limit=2):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    licenses.restoreUse(license_id, 0, sender=hooks)
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 1)
    with reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        licenses.consumeUse(license_id, actors.other, model, TTS, sender=hooks)
    with reverts(licenses.Licensing_UnknownLicense, licenseId=999):
        licenses.consumeUse(999, actors.buyer, model, TTS, sender=hooks)
    with reverts(licenses.Licensing_WrongModel, licenseId=license_id, modelId=model + 1):
        licenses.consumeUse(license_id, actors.buyer, model + 1, TTS, sender=hooks)
    derive = int(Action.DERIVATION)
    with reverts(licenses.Licensing_ActionNotPermitted, licenseId=license_id, actions=derive):
        licenses.consumeUse(license_id, actors.buyer, model, derive, sender=hooks)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)


def test_subscription_quota_is_per_period(market, licenses, model, actors, router, chain):
    hooks = ape.accounts[router.address]
    chain.set_balance(router.address, 10**18)
    license_id = market.buy(market.publish(model, Tier.SUBSCRIPTION, max_uses=1, period=1000), quantity=3)
    chain.pending_timestamp = licenses.license(license_id).anchor + 10
    anchor = licenses.license(license_id).anchor
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    with reverts(licenses.Licensing_UsesExhausted, licenseId=license_id, limit=1):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    chain.pending_timestamp = anchor + 1000
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)  # a new period, a new quota
    assert licenses.license(license_id).periodStart == anchor + 1000
    licenses.restoreUse(license_id, anchor, sender=hooks)  # from the old period: not given back
    assert licenses.license(license_id).used == 1
    licenses.restoreUse(license_id, anchor + 1000, sender=hooks)
    assert licenses.license(license_id).used == 0
    chain.pending_timestamp = anchor + 3000
    with reverts(licenses.Licensing_LicenseExpired, licenseId=license_id, expiresAt=anchor + 3000):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)


# ---------------------------------------------------------------- revenue


def test_distribution_splits_exactly_with_dust_to_the_creator(market, licenses, actors):
    model = market.register(voice_owner_bps=3_333, co_creators=[(actors.co.address, 1_111)])
    offer = market.publish(model, price=1_000_003)
    market.buy(offer)
    assert licenses.potOf(model, ETH) == (800_003, 200_000)
    receipt = licenses.distribute(model, ETH, sender=actors.other)
    voice, co = 800_003 * 3_333 // 10_000, 800_003 * 1_111 // 10_000
    assert licenses.creditOf(actors.voice, ETH) == voice
    assert licenses.creditOf(actors.co, ETH) == co
    assert licenses.creditOf(actors.creator, ETH) == 800_003 - voice - co
    assert licenses.platformBalance(ETH) == 200_000
    assert receipt.events.filter(licenses.RevenueDistributed)[0].amount == 800_003
    with reverts(licenses.Ledger_NothingToDistribute, modelId=model, asset=ETH):
        licenses.distribute(model, ETH, sender=actors.other)


def test_withdraw_pays_exactly_the_credit_once(market, licenses, model, actors, usd):
    market.buy(market.publish(model, asset=usd.address, price=1_000_000))
    licenses.distribute(model, usd, sender=actors.other)
    licenses.withdraw(usd, sender=actors.voice)
    assert usd.balanceOf(actors.voice) == 160_000
    with reverts(licenses.Ledger_NothingToWithdraw, account=actors.voice.address, asset=usd.address):
        licenses.withdraw(usd, sender=actors.voice)


def test_platform_fees_are_the_treasurers(market, licenses, model, actors):
    market.buy(market.publish(model, price=10**16))
    licenses.distribute(model, ETH, sender=actors.other)
    role = licenses.TREASURER_ROLE()
    with reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address, neededRole=role):
        licenses.withdrawPlatformFees(ETH, actors.other, sender=actors.other)
    with reverts(licenses.Ledger_ZeroRecipient):
        licenses.withdrawPlatformFees(ETH, ETH, sender=actors.treasurer)
    before = actors.other.balance
    licenses.withdrawPlatformFees(ETH, actors.other, sender=actors.treasurer)
    assert actors.other.balance == before + 2 * 10**15
    with reverts(licenses.Ledger_NothingToWithdraw, account=licenses.address, asset=ETH):
        licenses.withdrawPlatformFees(ETH, actors.other, sender=actors.treasurer)


def test_platform_fee_is_capped_and_the_fee_managers(market, licenses, model, actors):
    role = licenses.FEE_MANAGER_ROLE()
    with reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address, neededRole=role):
        licenses.setPlatformFee(100, sender=actors.other)
    with reverts(licenses.Licensing_PlatformFeeTooHigh, bps=2_001, max=2_000):
        licenses.setPlatformFee(2_001, sender=actors.deployer)
    licenses.setPlatformFee(1_000, sender=actors.deployer)
    market.buy(market.publish(model, price=10**16))
    assert licenses.potOf(model, ETH) == (9 * 10**15, 10**15)


def test_administration_is_the_admins(licenses, actors, router, registry, usd):
    with reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address):
        licenses.setAssetAllowed(actors.other, True, sender=actors.other)
    with reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address):
        licenses.setRouter(router, sender=actors.other)
    assert licenses.router() == router.address and licenses.isAssetAllowed(ETH)
    assert licenses.registry() == registry.address and licenses.platformFeeBps() == 2_000
    assert licenses.RENEWAL_LEAD() == DAY and licenses.MAX_PLATFORM_FEE_BPS() == 2_000
    assert licenses.ROUTER_DELAY() == 2 * DAY and licenses.pendingRouter() == (ETH, 0)
    receipt = licenses.setAssetAllowed(usd, False, sender=actors.deployer)
    assert not receipt.events.filter(licenses.AssetAllowed)[0].allowed
    assert not licenses.isAssetAllowed(usd)


def test_router_replacement_is_announced_two_days_ahead(project, licenses, router, registry, actors, chain):
    """setRouter: a contract only; a replacement is proposed, then made by the same call at least
    ROUTER_DELAY later; proposing another router starts the delay again."""
    with reverts(licenses.Licensing_RouterNotContract, router=actors.other.address):
        licenses.setRouter(actors.other, sender=actors.deployer)
    new = actors.deployer.deploy(project.SynthesisRouter, actors.deployer, registry, licenses, 1, 1, 8 * DAY)
    newer = actors.deployer.deploy(project.SynthesisRouter, actors.deployer, registry, licenses, 1, 1, 8 * DAY)
    receipt = licenses.setRouter(new, sender=actors.deployer)
    at = receipt.timestamp + 2 * DAY
    event = receipt.events.filter(licenses.RouterProposed)[0]
    assert (event.router, event.at) == (new.address, at)
    assert licenses.pendingRouter() == (new.address, at) and licenses.router() == router.address
    assert not receipt.events.filter(licenses.RouterSet)
    chain.pending_timestamp = at - 1
    with reverts(licenses.Licensing_RouterNotYet, router=new.address, at=at):
        licenses.setRouter(new, sender=actors.deployer)
    # Another proposal replaces the pending one and restarts the delay.
    again = licenses.setRouter(newer, sender=actors.deployer)
    assert licenses.pendingRouter() == (newer.address, again.timestamp + 2 * DAY)
    chain.pending_timestamp = again.timestamp + 2 * DAY
    receipt = licenses.setRouter(newer, sender=actors.deployer)
    assert receipt.events.filter(licenses.RouterSet)[0].router == newer.address
    assert licenses.router() == newer.address and licenses.pendingRouter() == (ETH, 0)


def test_interfaces(licenses):
    for interface_id in ("0x80ac58cd", "0x8c65f84d", "0x7965db0b", "0x01ffc9a7"):
        assert licenses.supportsInterface(interface_id), interface_id

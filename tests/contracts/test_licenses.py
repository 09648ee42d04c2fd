"""LicenseManager: offers, the three tiers in ETH and ERC-20, subscriptions (ERC-5643), revenue."""

from __future__ import annotations

import ape
import pytest
from market_helpers import MONTH, offer_terms

from voicemarket import chain as vm

TTS = int(vm.Action.TEXT_TO_SPEECH)


@pytest.fixture
def model(market):
    return market.register()


# ---------------------------------------------------------------- offers


def test_publish_records_the_terms_and_emits_the_territories(market, licenses, model, actors, usd):
    terms = offer_terms(model, vm.Tier.SUBSCRIPTION, asset=usd.address, price=5_000_000, max_uses=30,
                        valid_until=market.now + 10 * MONTH, max_licenses=100, purposes=0b1001, transferable=True)
    receipt = licenses.publishOffer(terms, b"USGB", sender=actors.creator)
    event = receipt.events.filter(licenses.OfferPublished)[0]
    assert (event.modelId, event.publisher, event.territories) == (model, actors.creator, b"USGB")
    stored = licenses.offer(event.offerId)
    assert stored.active and stored.sold == 0
    assert {k: getattr(stored.terms, k) for k in terms} == {**terms, "asset": usd.address}


@pytest.mark.parametrize(
    ("change", "error", "args"),
    [
        ({"tier": 1, "period": 0}, "Licensing_BadPeriod", {"tier": 1, "period": 0}),
        ({"tier": 0, "period": 5}, "Licensing_BadPeriod", {"tier": 0, "period": 5}),
        ({"packSize": 5}, "Licensing_BadPackSize", {"tier": 0, "packSize": 5}),
        ({"permissions": 0x100}, "Licensing_UnknownBits", {"actions": 0x100 | int(vm.Action.SUBLICENSING)}),
        ({"purposes": 1 << 10}, "Licensing_UnknownBits", {"purposes": 1 << 10}),
        ({"prohibitions": TTS}, "Licensing_PermissionOverlap", {"overlap": TTS}),
        ({"validUntil": 1}, "Licensing_ValidUntilPassed", {"validUntil": 1}),
        ({"policyHash": bytes(32)}, "Licensing_EmptyPolicyHash", {}),
        ({"asset": "0x" + "42" * 20}, "Licensing_AssetNotAllowed", {"asset": "0x" + "42" * 20}),
    ],
)
def test_publish_refuses_terms_the_contract_cannot_honour(licenses, model, actors, change, error, args):
    terms = {**offer_terms(model), **change}
    with ape.reverts(getattr(licenses, error), **args):
        licenses.publishOffer(terms, b"", sender=actors.creator)


def test_publish_checks_territories_owner_and_model_state(market, licenses, registry, model, actors):
    with ape.reverts(licenses.Licensing_BadTerritories, index=3):
        licenses.publishOffer(offer_terms(model), b"USG", sender=actors.creator)
    with ape.reverts(licenses.Licensing_BadTerritories, index=1):
        licenses.publishOffer(offer_terms(model), b"Us", sender=actors.creator)
    with ape.reverts(licenses.Licensing_NotModelOwner, modelId=model, caller=actors.other.address):
        licenses.publishOffer(offer_terms(model), b"", sender=actors.other)
    with ape.reverts(licenses.Licensing_UnknownModel, modelId=77):
        licenses.publishOffer(offer_terms(77), b"", sender=actors.creator)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with ape.reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.publishOffer(offer_terms(model), b"", sender=actors.creator)
    registry.unfreeze(model, sender=actors.arbiter)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with ape.reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        licenses.publishOffer(offer_terms(model), b"", sender=actors.creator)


def test_deactivation_stops_sales_but_not_sold_licences(market, licenses, model, actors):
    offer = market.publish(model)
    license_id = market.buy(offer)
    with ape.reverts(licenses.Licensing_NotModelOwner, modelId=model, caller=actors.other.address):
        licenses.deactivateOffer(offer, sender=actors.other)
    licenses.deactivateOffer(offer, sender=actors.creator)
    assert not licenses.offer(offer).active
    with ape.reverts(licenses.Licensing_OfferInactive, offerId=offer):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_OfferInactive, offerId=offer):
        licenses.deactivateOffer(offer, sender=actors.creator)
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 2**256 - 1)
    other = market.publish(model)
    licenses.deactivateOffer(other, sender=actors.deployer)  # the admin may too
    with ape.reverts(licenses.Licensing_UnknownOffer, offerId=99):
        licenses.deactivateOffer(99, sender=actors.creator)


# ---------------------------------------------------------------- buying


def test_buyout_in_eth_mints_a_licence_and_fills_the_pot(market, licenses, model, actors):
    offer = market.publish(model, price=10**16)
    receipt = licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    license_id = receipt.events.filter(licenses.LicensePurchased)[0].licenseId
    assert licenses.ownerOf(license_id) == actors.buyer
    assert licenses.offerOf(license_id) == offer and licenses.offer(offer).sold == 1
    assert licenses.potOf(model, vm.ETH) == (8 * 10**15, 2 * 10**15)  # the 20% platform fee
    assert licenses.expiresAt(license_id) == 0 and not licenses.isRenewable(license_id)


def test_subscription_in_erc20_runs_for_the_periods_bought(market, licenses, model, actors, usd):
    offer = market.publish(model, vm.Tier.SUBSCRIPTION, asset=usd.address, price=3_000_000)
    license_id = market.buy(offer, quantity=2)
    lic = licenses.license(license_id)
    assert lic.expiresAt == lic.anchor + 2 * MONTH == licenses.expiresAt(license_id)
    assert licenses.isRenewable(license_id)
    assert usd.balanceOf(licenses) == 6_000_000
    assert licenses.potOf(model, usd) == (4_800_000, 1_200_000)


def test_credit_packs_buy_uses(market, licenses, model, actors):
    offer = market.publish(model, vm.Tier.PAY_PER_USE, price=10**14, pack_size=10, max_uses=40)
    license_id = market.buy(offer, quantity=3)
    assert licenses.license(license_id).limit == 30
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 30)
    with ape.reverts(licenses.Licensing_TooManyUses, uses=50, maxUses=40):
        licenses.buy(offer, 5 * 10**15, 5, value=5 * 10**15, sender=actors.buyer)


def test_pay_per_use_without_packs_is_free_to_acquire(market, licenses, model, actors):
    offer = market.publish(model, vm.Tier.PAY_PER_USE, price=10**14)
    receipt = licenses.buy(offer, 0, 1, sender=actors.buyer)
    license_id = receipt.events.filter(licenses.LicensePurchased)[0].licenseId
    assert receipt.events.filter(licenses.LicensePurchased)[0].paid == 0
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 2**256 - 1)
    assert licenses.potOf(model, vm.ETH) == (0, 0)


def test_buy_refuses_to_charge_more_than_agreed(market, licenses, model, actors):
    offer = market.publish(model, price=10**16)
    with ape.reverts(licenses.Licensing_PriceAboveMax, cost=10**16, maxPrice=10**16 - 1):
        licenses.buy(offer, 10**16 - 1, 1, value=10**16, sender=actors.buyer)


@pytest.mark.parametrize(
    ("tier", "extra", "quantity"),
    [(vm.Tier.BUYOUT, {}, 2), (vm.Tier.BUYOUT, {}, 0), (vm.Tier.SUBSCRIPTION, {}, 0),
     (vm.Tier.PAY_PER_USE, {}, 2), (vm.Tier.PAY_PER_USE, {"pack_size": 5}, 0)],
)
def test_bad_quantities(market, licenses, model, actors, tier, extra, quantity):
    offer = market.publish(model, tier, **extra)
    with ape.reverts(licenses.Licensing_BadQuantity, tier=int(tier), quantity=quantity):
        licenses.buy(offer, 10**30, quantity, value=0, sender=actors.buyer)


def test_payment_must_be_exact(market, licenses, model, actors, usd):
    offer = market.publish(model, price=10**16)
    with ape.reverts(licenses.Licensing_WrongPayment, expected=10**16, sent=10**16 + 1):
        licenses.buy(offer, 10**17, 1, value=10**16 + 1, sender=actors.buyer)
    token_offer = market.publish(model, asset=usd.address, price=100)
    usd.mint(actors.buyer, 100, sender=actors.deployer)
    usd.approve(licenses, 100, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_WrongPayment, expected=0, sent=1):
        licenses.buy(token_offer, 100, 1, value=1, sender=actors.buyer)
    with ape.reverts(usd.ERC20InsufficientAllowance):
        licenses.buy(token_offer, 200, 1, sender=actors.other)


def test_sold_out_expired_delisted_and_unknown_offers_sell_nothing(market, licenses, model, actors, usd, chain):
    offer = market.publish(model, max_licenses=1)
    market.buy(offer)
    with ape.reverts(licenses.Licensing_SoldOut, offerId=offer, maxLicenses=1):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    until = market.now + 100
    timed = market.publish(model, valid_until=until)
    chain.pending_timestamp += 200
    with ape.reverts(licenses.Licensing_OfferExpired, offerId=timed, validUntil=until):
        licenses.buy(timed, 10**16, 1, value=10**16, sender=actors.buyer)
    token_offer = market.publish(model, asset=usd.address, price=1)
    licenses.setAssetAllowed(usd, False, sender=actors.deployer)
    with ape.reverts(licenses.Licensing_AssetNotAllowed, asset=usd.address):
        licenses.buy(token_offer, 1, 1, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_UnknownOffer, offerId=999):
        licenses.buy(999, 1, 1, sender=actors.buyer)


def test_frozen_or_retired_models_sell_nothing(market, licenses, registry, model, actors):
    offer = market.publish(model)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with ape.reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    registry.unfreeze(model, sender=actors.arbiter)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with ape.reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)


def test_pause_stops_sales_but_not_withdrawals(market, licenses, model, actors):
    offer = market.publish(model)
    market.buy(offer)
    licenses.distribute(model, vm.ETH, sender=actors.other)
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address):
        licenses.pause(sender=actors.other)
    licenses.pause(sender=actors.deployer)
    with ape.reverts(licenses.EnforcedPause):
        licenses.buy(offer, 10**16, 1, value=10**16, sender=actors.buyer)
    before = actors.creator.balance
    receipt = licenses.withdraw(vm.ETH, sender=actors.creator)
    assert actors.creator.balance == before + 64 * 10**14 - receipt.total_fees_paid
    licenses.unpause(sender=actors.deployer)
    market.buy(offer)


def test_licences_move_only_when_transferable(market, licenses, model, actors):
    locked = market.buy(market.publish(model, transferable=False))
    with ape.reverts(licenses.Licensing_NotTransferable, licenseId=locked):
        licenses.transferFrom(actors.buyer, actors.other, locked, sender=actors.buyer)
    free = market.buy(market.publish(model, transferable=True))
    licenses.transferFrom(actors.buyer, actors.other, free, sender=actors.buyer)
    assert licenses.isLicensed(free, actors.other, model, TTS)[0]
    assert not licenses.isLicensed(free, actors.buyer, model, TTS)[0]


# ---------------------------------------------------------------- subscriptions (ERC-5643)


@pytest.fixture
def subscription(market, model, usd):
    offer = market.publish(model, vm.Tier.SUBSCRIPTION, asset=usd.address, price=1_000_000, max_uses=2)
    return offer, market.buy(offer)


def test_keeper_renews_a_due_subscription_from_the_holders_allowance(market, licenses, subscription, actors, usd,
                                                                    chain):
    _, license_id = subscription
    expires = licenses.expiresAt(license_id)
    with ape.reverts(licenses.Licensing_RenewalNotDue, licenseId=license_id, dueAt=expires - 86_400):
        licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    usd.mint(actors.buyer, 1_000_000, sender=actors.deployer)
    usd.approve(licenses, 1_000_000, sender=actors.buyer)
    chain.pending_timestamp = expires - 3600
    receipt = licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    assert receipt.events.filter(licenses.SubscriptionUpdate)[0].expiration == expires + MONTH
    assert licenses.expiresAt(license_id) == expires + MONTH
    assert usd.balanceOf(actors.buyer) == 0 and usd.balanceOf(actors.keeper) == 0
    with ape.reverts(licenses.Licensing_BadDuration, duration=2 * MONTH, period=MONTH):
        licenses.renewSubscription(license_id, 2 * MONTH, sender=actors.keeper)


def test_renewal_failures_name_their_reason(market, licenses, registry, subscription, model, actors, usd, chain):
    offer, license_id = subscription
    chain.pending_timestamp = licenses.expiresAt(license_id) - 10
    with ape.reverts(licenses.Licensing_RenewalAllowanceTooLow, licenseId=license_id, allowance=0, cost=1_000_000):
        licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    usd.approve(licenses, 10**9, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_RenewalBalanceTooLow, licenseId=license_id, balance=0, cost=1_000_000):
        licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    usd.mint(actors.buyer, 10**9, sender=actors.deployer)
    licenses.cancelSubscription(license_id, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_SubscriptionCancelled, licenseId=license_id):
        licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    assert not licenses.isRenewable(license_id)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with ape.reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    registry.unfreeze(model, sender=actors.arbiter)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with ape.reverts(licenses.Licensing_ModelRetired, modelId=model, serviceEndsAt=ends):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    assert not licenses.isRenewable(license_id)


def test_holder_renews_early_by_several_periods_and_lifts_a_cancellation(market, licenses, subscription, actors, usd):
    _, license_id = subscription
    expires = licenses.expiresAt(license_id)
    licenses.cancelSubscription(license_id, sender=actors.buyer)
    assert licenses.license(license_id).cancelled
    usd.mint(actors.buyer, 3_000_000, sender=actors.deployer)
    usd.approve(licenses, 3_000_000, sender=actors.buyer)
    licenses.renewSubscription(license_id, 3 * MONTH, sender=actors.buyer)
    assert licenses.expiresAt(license_id) == expires + 3 * MONTH
    assert not licenses.license(license_id).cancelled and licenses.isRenewable(license_id)
    with ape.reverts(licenses.Licensing_BadDuration, duration=MONTH + 1, period=MONTH):
        licenses.renewSubscription(license_id, MONTH + 1, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_BadDuration, duration=0, period=MONTH):
        licenses.renewSubscription(license_id, 0, sender=actors.buyer)


def test_an_approved_account_may_renew_like_the_holder(market, licenses, subscription, actors, usd):
    _, license_id = subscription
    licenses.approve(actors.other, license_id, sender=actors.buyer)
    usd.mint(actors.buyer, 2_000_000, sender=actors.deployer)
    usd.approve(licenses, 2_000_000, sender=actors.buyer)
    expires = licenses.expiresAt(license_id)
    licenses.renewSubscription(license_id, 2 * MONTH, sender=actors.other)  # early, two periods
    assert licenses.expiresAt(license_id) == expires + 2 * MONTH


def test_a_lapsed_subscription_restarts_with_a_fresh_quota(market, licenses, subscription, model, actors, usd, chain):
    _, license_id = subscription
    chain.pending_timestamp = licenses.expiresAt(license_id) + 5 * 86_400
    chain.mine()
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (False, 0)
    usd.mint(actors.buyer, 1_000_000, sender=actors.deployer)
    usd.approve(licenses, 1_000_000, sender=actors.buyer)
    receipt = licenses.renewSubscription(license_id, MONTH, sender=actors.keeper)
    lic = licenses.license(license_id)
    assert lic.anchor == receipt.timestamp and lic.expiresAt == receipt.timestamp + MONTH
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 2)


def test_renewal_in_eth_is_paid_by_the_caller(market, licenses, model, actors, chain):
    offer = market.publish(model, vm.Tier.SUBSCRIPTION, price=10**15)
    license_id = market.buy(offer)
    with ape.reverts(licenses.Licensing_WrongPayment, expected=10**15, sent=0):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    licenses.renewSubscription(license_id, MONTH, value=10**15, sender=actors.buyer)
    assert licenses.potOf(model, vm.ETH) == (16 * 10**14, 4 * 10**14)


def test_subscription_calls_on_other_tiers_and_unknown_tokens(market, licenses, model, actors):
    license_id = market.buy(market.publish(model))
    with ape.reverts(licenses.Licensing_NotSubscription, licenseId=license_id):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_NotSubscription, licenseId=license_id):
        licenses.cancelSubscription(license_id, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_UnknownLicense, licenseId=404):
        licenses.renewSubscription(404, MONTH, sender=actors.buyer)
    with ape.reverts(licenses.Licensing_UnknownLicense, licenseId=404):
        licenses.cancelSubscription(404, sender=actors.buyer)
    with ape.reverts(licenses.ERC721NonexistentToken, tokenId=404):
        licenses.expiresAt(404)


def test_only_the_holder_cancels_and_without_eth(market, licenses, subscription, actors):
    _, license_id = subscription
    with ape.reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        licenses.cancelSubscription(license_id, sender=actors.other)
    with ape.reverts(licenses.Licensing_WrongPayment, expected=0, sent=1):
        licenses.cancelSubscription(license_id, value=1, sender=actors.buyer)
    receipt = licenses.cancelSubscription(license_id, sender=actors.buyer)
    assert receipt.events.filter(licenses.SubscriptionCancelled)[0].expiresAt == licenses.expiresAt(license_id)


def test_renewals_stop_while_paused(licenses, subscription, actors):
    _, license_id = subscription
    licenses.pause(sender=actors.deployer)
    with ape.reverts(licenses.EnforcedPause):
        licenses.renewSubscription(license_id, MONTH, sender=actors.buyer)


# ---------------------------------------------------------------- the licence view and the router hooks


def test_is_licensed_follows_expiry_uses_freeze_and_retirement(market, licenses, registry, model, actors, chain):
    sub = market.buy(market.publish(model, vm.Tier.SUBSCRIPTION, max_uses=3))
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (True, 3)
    assert licenses.isLicensed(sub, actors.other, model, TTS) == (False, 0)
    assert licenses.isLicensed(sub, actors.buyer, model, int(vm.Action.DERIVATION)) == (False, 0)
    assert licenses.isLicensed(sub, actors.buyer, model + 1, TTS) == (False, 0)
    assert licenses.isLicensed(999, actors.buyer, model, TTS) == (False, 0)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (False, 0)
    registry.unfreeze(model, sender=actors.arbiter)
    registry.setRetirementNotice(86_400, sender=actors.deployer)
    registry.retire(model, sender=actors.creator)
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (True, 3)  # the notice period runs
    chain.pending_timestamp += 86_400 + 1
    chain.mine()
    assert licenses.isLicensed(sub, actors.buyer, model, TTS) == (False, 0)


def test_licence_stops_when_its_offer_is_past_valid_until(market, licenses, model, actors, chain):
    until = market.now + 1000
    license_id = market.buy(market.publish(model, valid_until=until))
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS)[0]
    chain.pending_timestamp = until + 1
    chain.mine()
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (False, 0)


def test_only_the_router_consumes_and_restores_uses(licenses, actors):
    role = licenses.ROUTER_ROLE()
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.buyer.address, neededRole=role):
        licenses.consumeUse(1, actors.buyer, 1, TTS, sender=actors.buyer)
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.buyer.address, neededRole=role):
        licenses.restoreUse(1, 0, sender=actors.buyer)


def test_router_hooks_check_and_count_uses(market, licenses, registry, model, actors, router, chain):
    """Drives consumeUse/restoreUse as the router (impersonated) to reach every refusal."""
    hooks = ape.accounts[router.address]
    chain.set_balance(router.address, 10**18)
    license_id = market.buy(market.publish(model, max_uses=2))
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    with ape.reverts(licenses.Licensing_UsesExhausted, licenseId=license_id, limit=2):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    licenses.restoreUse(license_id, 0, sender=hooks)
    assert licenses.isLicensed(license_id, actors.buyer, model, TTS) == (True, 1)
    with ape.reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        licenses.consumeUse(license_id, actors.other, model, TTS, sender=hooks)
    with ape.reverts(licenses.Licensing_UnknownLicense, licenseId=999):
        licenses.consumeUse(999, actors.buyer, model, TTS, sender=hooks)
    with ape.reverts(licenses.Licensing_WrongModel, licenseId=license_id, modelId=model + 1):
        licenses.consumeUse(license_id, actors.buyer, model + 1, TTS, sender=hooks)
    derive = int(vm.Action.DERIVATION)
    with ape.reverts(licenses.Licensing_ActionNotPermitted, licenseId=license_id, actions=derive):
        licenses.consumeUse(license_id, actors.buyer, model, derive, sender=hooks)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with ape.reverts(licenses.Licensing_ModelFrozen, modelId=model):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)


def test_subscription_quota_is_per_period(market, licenses, model, actors, router, chain):
    hooks = ape.accounts[router.address]
    chain.set_balance(router.address, 10**18)
    license_id = market.buy(market.publish(model, vm.Tier.SUBSCRIPTION, max_uses=1, period=1000), quantity=3)
    anchor = licenses.license(license_id).anchor
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    with ape.reverts(licenses.Licensing_UsesExhausted, licenseId=license_id, limit=1):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)
    chain.pending_timestamp = anchor + 1000
    licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)  # a new period, a new quota
    assert licenses.license(license_id).periodStart == anchor + 1000
    licenses.restoreUse(license_id, anchor, sender=hooks)  # from the old period: not given back
    assert licenses.license(license_id).used == 1
    licenses.restoreUse(license_id, anchor + 1000, sender=hooks)
    assert licenses.license(license_id).used == 0
    chain.pending_timestamp = anchor + 3000
    with ape.reverts(licenses.Licensing_LicenseExpired, licenseId=license_id, expiresAt=anchor + 3000):
        licenses.consumeUse(license_id, actors.buyer, model, TTS, sender=hooks)


# ---------------------------------------------------------------- revenue


def test_distribution_splits_exactly_with_dust_to_the_creator(market, licenses, actors):
    model = market.register(voice_owner_bps=3_333, co_creators=[(actors.co.address, 1_111)])
    offer = market.publish(model, price=1_000_003)
    market.buy(offer)
    assert licenses.potOf(model, vm.ETH) == (800_003, 200_000)
    receipt = licenses.distribute(model, vm.ETH, sender=actors.other)
    voice, co = 800_003 * 3_333 // 10_000, 800_003 * 1_111 // 10_000
    assert licenses.creditOf(actors.voice, vm.ETH) == voice
    assert licenses.creditOf(actors.co, vm.ETH) == co
    assert licenses.creditOf(actors.creator, vm.ETH) == 800_003 - voice - co
    assert licenses.platformBalance(vm.ETH) == 200_000
    assert receipt.events.filter(licenses.RevenueDistributed)[0].amount == 800_003
    with ape.reverts(licenses.Ledger_NothingToDistribute, modelId=model, asset=vm.ETH):
        licenses.distribute(model, vm.ETH, sender=actors.other)


def test_withdraw_pays_exactly_the_credit_once(market, licenses, model, actors, usd):
    market.buy(market.publish(model, asset=usd.address, price=1_000_000))
    licenses.distribute(model, usd, sender=actors.other)
    licenses.withdraw(usd, sender=actors.voice)
    assert usd.balanceOf(actors.voice) == 160_000
    with ape.reverts(licenses.Ledger_NothingToWithdraw, account=actors.voice.address, asset=usd.address):
        licenses.withdraw(usd, sender=actors.voice)


def test_platform_fees_are_the_treasurers(market, licenses, model, actors):
    market.buy(market.publish(model, price=10**16))
    licenses.distribute(model, vm.ETH, sender=actors.other)
    role = licenses.TREASURER_ROLE()
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address, neededRole=role):
        licenses.withdrawPlatformFees(vm.ETH, actors.other, sender=actors.other)
    with ape.reverts(licenses.Ledger_ZeroRecipient):
        licenses.withdrawPlatformFees(vm.ETH, vm.ETH, sender=actors.treasurer)
    before = actors.other.balance
    licenses.withdrawPlatformFees(vm.ETH, actors.other, sender=actors.treasurer)
    assert actors.other.balance == before + 2 * 10**15
    with ape.reverts(licenses.Ledger_NothingToWithdraw, account=licenses.address, asset=vm.ETH):
        licenses.withdrawPlatformFees(vm.ETH, actors.other, sender=actors.treasurer)


def test_platform_fee_is_capped_and_the_fee_managers(market, licenses, model, actors):
    role = licenses.FEE_MANAGER_ROLE()
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address, neededRole=role):
        licenses.setPlatformFee(100, sender=actors.other)
    with ape.reverts(licenses.Licensing_PlatformFeeTooHigh, bps=2_001, max=2_000):
        licenses.setPlatformFee(2_001, sender=actors.deployer)
    licenses.setPlatformFee(1_000, sender=actors.deployer)
    market.buy(market.publish(model, price=10**16))
    assert licenses.potOf(model, vm.ETH) == (9 * 10**15, 10**15)


def test_administration_is_the_admins(licenses, actors, router, registry):
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address):
        licenses.setAssetAllowed(actors.other, True, sender=actors.other)
    with ape.reverts(licenses.AccessControlUnauthorizedAccount, account=actors.other.address):
        licenses.setRouter(actors.other, sender=actors.other)
    assert licenses.router() == router.address and licenses.isAssetAllowed(vm.ETH)
    assert licenses.registry() == registry.address and licenses.platformFeeBps() == 2_000
    assert licenses.RENEWAL_LEAD() == 86_400 and licenses.MAX_PLATFORM_FEE_BPS() == 2_000
    licenses.setRouter(actors.other, sender=actors.deployer)
    assert not licenses.hasRole(licenses.ROUTER_ROLE(), router)
    assert licenses.hasRole(licenses.ROUTER_ROLE(), actors.other)


def test_interfaces(licenses):
    for interface_id in ("0x80ac58cd", "0x8c65f84d", "0x7965db0b", "0x01ffc9a7"):
        assert licenses.supportsInterface(interface_id), interface_id

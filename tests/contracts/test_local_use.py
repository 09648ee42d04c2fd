"""Local-use licences (KeyDelivery): attacks first, then the plain paths.

Each test names who is hostile and what they try; every money test checks each party's balance
or credit before and after. See docs/local-use.md and the threat model in docs/contracts.md.
"""

from __future__ import annotations

import ape
import pytest
from eth_utils import keccak

from market_helpers import digest_of, public_key, reverts
from voicemarket.content.multiformats import DAG_PB, RAW
from voicemarket.market.local_use import UsageReport, sign_usage_report
from voicemarket.protocol import DAY, ETH, Tier

PRICE = 3 * 10**16
KEY_DIGEST = digest_of("wrapped key")
PENDING, DELIVERED, REFUNDED = 1, 2, 3
REENTRANT_CALL = keccak(text="ReentrancyGuardReentrantCall()")[:4]


@pytest.fixture(scope="module")
def kd(deployment):
    return deployment.key_delivery


@pytest.fixture(scope="module", autouse=True)
def _contracts_first(kd, licenses, registry, offers, usd) -> None:
    """Every shared fixture before the first test's snapshot (Ape rebases them otherwise)."""


@pytest.fixture
def sale(market, kd, actors):
    """A model with a non-transferable ETH buyout offering local use at PRICE, and a buyer's licence."""
    model = market.register()
    offer = market.publish(model, Tier.BUYOUT)
    kd.offerLocalUse(offer, PRICE, sender=actors.creator)
    licence = market.buy(offer)
    return model, offer, licence


def buy_local(kd, licence, buyer, *, price=PRICE, value=None, key=None):
    key = public_key(buyer) if key is None else key
    return kd.buyLocalUse(licence, key, price, value=price if value is None else value, sender=buyer)


def report(licence, start, end, sentences=3, seconds=7):
    return UsageReport(licence, start, end, sentences, seconds).as_struct()


def sign_report(kd, chain, signer, r) -> bytes:
    return sign_usage_report(signer, kd.address, chain.chain_id, UsageReport(*r.values()))


# ---------------------------------------------------------------- the happy path


def test_buy_deliver_pays_the_split_and_records_the_key_once(market, kd, actors, chain, sale):
    model, _offer, licence = sale
    balance = chain.provider.get_balance(kd.address)
    receipt = buy_local(kd, licence, actors.buyer)
    event = receipt.events.filter(kd.LocalUsePurchased)[0]
    assert (event.licenseId, event.modelId, event.buyer) == (licence, model, actors.buyer.address)
    assert bytes(event.publicKey) == public_key(actors.buyer)
    assert event.deadline == kd.localUse(licence).deadline
    assert chain.provider.get_balance(kd.address) == balance + PRICE
    assert kd.localUse(licence).status == PENDING
    assert kd.keyCid(licence) == b""

    receipt = kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    delivered = receipt.events.filter(kd.KeyDelivered)[0]
    assert bytes(delivered.keyCid) == bytes([1, RAW, 0x12, 0x20]) + KEY_DIGEST
    assert kd.keyCid(licence) == bytes(delivered.keyCid)
    assert kd.localUse(licence).status == DELIVERED
    fee = PRICE * 2_000 // 10_000
    assert kd.potOf(model, ETH) == (PRICE - fee, fee)
    kd.distribute(model, ETH, sender=actors.other)
    voice = (PRICE - fee) * 2_000 // 10_000
    assert kd.creditOf(actors.voice, ETH) == voice
    assert kd.creditOf(actors.creator, ETH) == PRICE - fee - voice
    assert kd.platformBalance(ETH) == fee
    # Exactly once: neither the creator nor anyone refunds or delivers again.
    with reverts(kd.KeyDelivery_NotPending, licenseId=licence, status=DELIVERED):
        kd.recordDelivery(licence, RAW, digest_of("another key"), sender=actors.creator)
    chain.pending_timestamp = market.now + DAY
    with reverts(kd.KeyDelivery_NotPending, licenseId=licence, status=DELIVERED):
        kd.refund(licence, sender=actors.buyer)


def test_no_delivery_refunds_the_buyer_after_the_deadline_also_while_paused(market, kd, licenses, actors, chain, sale):
    model, _offer, licence = sale
    buy_local(kd, licence, actors.buyer)
    deadline = kd.localUse(licence).deadline
    with reverts(kd.KeyDelivery_DeadlineNotReached, licenseId=licence, deadline=deadline):
        kd.refund(licence, sender=actors.other)
    chain.pending_timestamp = deadline
    licenses.pause(sender=actors.deployer)
    # The creator cannot deliver late to take the money the buyer is owed.
    with reverts(kd.KeyDelivery_DeadlinePassed, licenseId=licence, deadline=deadline):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    receipt = kd.refund(licence, sender=actors.other)  # anyone, while paused
    assert receipt.events.filter(kd.LocalUseRefunded)[0].amount == PRICE
    assert kd.creditOf(actors.buyer, ETH) == PRICE
    with reverts(kd.KeyDelivery_NotPending, licenseId=licence, status=REFUNDED):
        kd.refund(licence, sender=actors.buyer)
    before = actors.buyer.balance
    receipt = kd.withdraw(ETH, sender=actors.buyer)
    assert actors.buyer.balance == before + PRICE - receipt.total_fees_paid
    assert kd.potOf(model, ETH) == (0, 0)
    licenses.unpause(sender=actors.deployer)


def test_delivery_works_while_paused(kd, licenses, actors, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    licenses.pause(sender=actors.deployer)
    with reverts(kd.KeyDelivery_Paused):
        buy_local(kd, licence, actors.buyer)
    kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    licenses.unpause(sender=actors.deployer)


# ---------------------------------------------------------------- a hostile buyer


def test_buyer_cannot_buy_local_use_of_someone_elses_licence(kd, actors, sale):
    _, _, licence = sale
    with reverts(kd.KeyDelivery_NotLicensed, licenseId=licence, account=actors.other.address):
        buy_local(kd, licence, actors.other)


def test_buyer_cannot_buy_twice_nor_refund_early_nor_underpay(kd, actors, sale):
    _, _, licence = sale
    with reverts(kd.KeyDelivery_WrongPayment, expected=PRICE, sent=PRICE - 1):
        buy_local(kd, licence, actors.buyer, value=PRICE - 1)
    with reverts(kd.KeyDelivery_PriceAboveMax, price=PRICE, maxPrice=PRICE - 1):
        buy_local(kd, licence, actors.buyer, price=PRICE - 1, value=PRICE)
    with reverts(kd.KeyDelivery_BadPublicKey, length=33):
        buy_local(kd, licence, actors.buyer, key=b"\x02" * 33)
    buy_local(kd, licence, actors.buyer)
    with reverts(kd.KeyDelivery_AlreadyBought, licenseId=licence):
        buy_local(kd, licence, actors.buyer)


def test_an_expired_subscription_cannot_buy_local_use(market, kd, actors, chain):
    model = market.register()
    offer = market.publish(model, Tier.SUBSCRIPTION, period=2 * DAY)
    kd.offerLocalUse(offer, PRICE, sender=actors.creator)
    licence = market.buy(offer)
    chain.pending_timestamp = market.now + 2 * DAY
    with reverts(kd.KeyDelivery_NotLicensed, licenseId=licence, account=actors.buyer.address):
        buy_local(kd, licence, actors.buyer)


def test_a_refund_goes_to_the_buyer_whoever_triggers_it_and_cannot_be_taken_twice(market, kd, actors, chain, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    chain.pending_timestamp = kd.localUse(licence).deadline
    kd.refund(licence, sender=actors.other)
    assert kd.creditOf(actors.other, ETH) == 0
    with reverts(kd.Ledger_NothingToWithdraw, account=actors.other.address, asset=ETH):
        kd.withdraw(ETH, sender=actors.other)


# ---------------------------------------------------------------- a hostile creator / key holder


def test_creator_cannot_change_the_price_nor_offer_on_transferable_or_pay_per_use_offers(market, kd, actors, sale):
    _, offer, _ = sale
    with reverts(kd.KeyDelivery_OptionExists, offerId=offer):
        kd.offerLocalUse(offer, 1, sender=actors.creator)
    model = market.register()
    transferable = market.publish(model, Tier.BUYOUT, transferable=True)
    with reverts(kd.KeyDelivery_OfferNotEligible, offerId=transferable):
        kd.offerLocalUse(transferable, PRICE, sender=actors.creator)
    per_use = market.publish(model, Tier.PAY_PER_USE)
    with reverts(kd.KeyDelivery_OfferNotEligible, offerId=per_use):
        kd.offerLocalUse(per_use, PRICE, sender=actors.creator)
    other = market.publish(model, Tier.BUYOUT)
    with reverts(kd.KeyDelivery_NotModelOwner, modelId=model, caller=actors.other.address):
        kd.offerLocalUse(other, PRICE, sender=actors.other)


def test_only_the_key_holder_delivers_and_a_former_owners_naming_lapses(market, kd, registry, actors, sale):
    model, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    with reverts(kd.KeyDelivery_NotKeyHolder, modelId=model, caller=actors.operator.address):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.operator)
    with reverts(kd.KeyDelivery_NotModelOwner, modelId=model, caller=actors.operator.address):
        kd.setKeyHolder(model, actors.operator, sender=actors.operator)
    kd.setKeyHolder(model, actors.operator, sender=actors.creator)
    assert kd.keyHolderOf(model) == actors.operator.address
    # The model changes hands: the old owner's operator may no longer deliver.
    registry.transferFrom(actors.creator, actors.co, model, sender=actors.creator)
    assert kd.keyHolderOf(model) == ape.utils.ZERO_ADDRESS
    with reverts(kd.KeyDelivery_NotKeyHolder, modelId=model, caller=actors.operator.address):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.operator)
    with reverts(kd.KeyDelivery_NotKeyHolder, modelId=model, caller=actors.creator.address):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    with reverts(kd.KeyDelivery_BadCodec, codec=0x71):
        kd.recordDelivery(licence, 0x71, KEY_DIGEST, sender=actors.co)
    kd.recordDelivery(licence, DAG_PB, KEY_DIGEST, sender=actors.co)


def test_key_holder_of_one_model_cannot_deliver_for_another(market, kd, actors, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    theirs = market.register(creator=actors.other, voice_owner=actors.other)
    with reverts(kd.KeyDelivery_NotKeyHolder):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.other)
    kd.setKeyHolder(theirs, actors.operator, sender=actors.other)
    with reverts(kd.KeyDelivery_NotKeyHolder):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.operator)


def test_closing_the_option_stops_sales_but_not_pending_deliveries(market, kd, licenses, actors, sale):
    _model, offer, licence = sale
    buy_local(kd, licence, actors.buyer)
    second = market.buy(offer)
    kd.closeLocalUse(offer, sender=actors.creator)
    with reverts(kd.KeyDelivery_OptionClosed, offerId=offer):
        buy_local(kd, second, actors.buyer)
    kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    with reverts(kd.KeyDelivery_OptionClosed, offerId=offer):
        kd.closeLocalUse(offer, sender=actors.deployer)  # the licence manager's admin may close too


def test_a_deactivated_offer_sells_no_local_use(market, kd, actors, offers, sale):
    _, offer, _ = sale
    second = market.buy(offer)
    offers.deactivateOffer(offer, sender=actors.creator)
    with reverts(kd.KeyDelivery_OfferInactive, offerId=offer):
        buy_local(kd, second, actors.buyer)


# ---------------------------------------------------------------- frozen and retired models


def test_frozen_model_sells_nothing_delivers_no_key_and_refunds(market, kd, registry, actors, chain, sale):
    model, offer, licence = sale
    second = market.buy(offer)
    buy_local(kd, licence, actors.buyer)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with reverts(kd.KeyDelivery_NotLicensed):  # a frozen model's licences do not work
        buy_local(kd, second, actors.buyer)
    with reverts(kd.KeyDelivery_ModelFrozen, modelId=model):
        kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    chain.pending_timestamp = kd.localUse(licence).deadline
    kd.refund(licence, sender=actors.other)
    assert kd.creditOf(actors.buyer, ETH) == PRICE


def test_retired_model_sells_no_local_use_but_delivers_what_was_paid(market, kd, registry, actors, sale):
    model, offer, licence = sale
    second = market.buy(offer)
    buy_local(kd, licence, actors.buyer)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with reverts(kd.KeyDelivery_ModelRetired, modelId=model, serviceEndsAt=ends):
        buy_local(kd, second, actors.buyer)
    assert kd.localUse(licence).deadline <= ends  # the window always fits in the retirement notice
    kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)


# ---------------------------------------------------------------- the admin and the treasurer


def test_admin_and_treasurer_cannot_take_escrow(kd, actors, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    for account in (actors.deployer, actors.treasurer):
        with reverts(kd.Ledger_NothingToWithdraw):
            kd.withdrawPlatformFees(ETH, account, sender=actors.treasurer)
        with reverts(kd.Ledger_NothingToWithdraw, account=account.address, asset=ETH):
            kd.withdraw(ETH, sender=account)
    with reverts(kd.AccessControlUnauthorizedAccount):
        kd.withdrawPlatformFees(ETH, actors.deployer, sender=actors.deployer)
    kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    fee = PRICE * 2_000 // 10_000
    kd.distribute(sale[0], ETH, sender=actors.other)
    receipt = kd.withdrawPlatformFees(ETH, actors.treasurer, sender=actors.treasurer)
    assert receipt.events.filter(kd.PlatformFeesWithdrawn)[0].amount == fee


# ---------------------------------------------------------------- ERC-20


def test_erc20_option_escrows_tokens_and_refunds_them(market, kd, usd, actors, chain):
    model = market.register()
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=10**6)
    kd.offerLocalUse(offer, 5 * 10**6, sender=actors.creator)
    licence = market.buy(offer)
    usd.mint(actors.buyer, 5 * 10**6, sender=actors.deployer)
    usd.approve(kd, 5 * 10**6, sender=actors.buyer)
    with reverts(kd.KeyDelivery_WrongPayment, expected=0, sent=1):
        kd.buyLocalUse(licence, public_key(actors.buyer), 5 * 10**6, value=1, sender=actors.buyer)
    before = usd.balanceOf(actors.buyer)
    kd.buyLocalUse(licence, public_key(actors.buyer), 5 * 10**6, sender=actors.buyer)
    assert usd.balanceOf(kd) == 5 * 10**6
    chain.pending_timestamp = kd.localUse(licence).deadline
    kd.refund(licence, sender=actors.other)
    kd.withdraw(usd, sender=actors.buyer)
    assert usd.balanceOf(actors.buyer) == before
    assert usd.balanceOf(kd) == 0


# ---------------------------------------------------------------- usage reports


def test_usage_reports_signed_by_the_buyer_in_order_once(market, kd, actors, chain, sale):
    _, _, licence = sale
    start = market.now - 100
    first = report(licence, start, start + 50)
    signature = sign_report(kd, chain, actors.buyer, first)
    with reverts(kd.KeyDelivery_NotDelivered, licenseId=licence):
        kd.reportUsage([first], [signature], sender=actors.other)
    buy_local(kd, licence, actors.buyer)
    kd.recordDelivery(licence, RAW, KEY_DIGEST, sender=actors.creator)
    assert kd.usageReportDigest(first) != b"\x00" * 32
    # Forged by someone else, or altered after signing:
    with reverts(kd.KeyDelivery_BadSignature, index=0):
        kd.reportUsage([first], [sign_report(kd, chain, actors.other, first)], sender=actors.other)
    inflated = {**first, "sentences": 10**6}
    with reverts(kd.KeyDelivery_BadSignature, index=0):
        kd.reportUsage([inflated], [signature], sender=actors.other)
    second = report(licence, start + 50, start + 90, sentences=1, seconds=2)
    receipt = kd.reportUsage(
        [first, second], [signature, sign_report(kd, chain, actors.buyer, second)], sender=actors.other
    )
    reported = receipt.events.filter(kd.UsageReported)
    assert [(e.periodStart, e.periodEnd, e.sentences, e.audioSeconds) for e in reported] == [
        (start, start + 50, 3, 7),
        (start + 50, start + 90, 1, 2),
    ]
    # Replayed, overlapping, or in the future:
    with reverts(kd.KeyDelivery_BadPeriod, licenseId=licence, reportedUntil=start + 90):
        kd.reportUsage([first], [signature], sender=actors.other)
    future = report(licence, start + 90, market.now + 3600)
    with reverts(kd.KeyDelivery_BadPeriod):
        kd.reportUsage([future], [sign_report(kd, chain, actors.buyer, future)], sender=actors.buyer)
    with reverts(kd.KeyDelivery_LengthMismatch, reports=1, signatures=0):
        kd.reportUsage([future], [], sender=actors.buyer)


# ---------------------------------------------------------------- a hostile token


def test_a_reentrant_token_cannot_reenter_a_purchase_or_a_withdrawal(market, kd, licenses, project, actors, chain):
    token = actors.deployer.deploy(project.ReentrantToken)
    licenses.setAssetAllowed(token, True, sender=actors.deployer)
    model = market.register()
    offer = market.publish(model, Tier.BUYOUT, asset=token.address, price=1_000)
    kd.offerLocalUse(offer, 5_000, sender=actors.creator)
    token.mint(actors.buyer, 6_000, sender=actors.deployer)
    token.approve(licenses, 1_000, sender=actors.buyer)
    licence = licenses.buy(offer, 1_000, 1, sender=actors.buyer).events.filter(licenses.LicensePurchased)[0].licenseId
    token.approve(kd, 5_000, sender=actors.buyer)
    reentry = kd.refund.as_transaction(licence).data
    token.arm(kd, reentry, sender=actors.deployer)
    kd.buyLocalUse(licence, public_key(actors.buyer), 5_000, sender=actors.buyer)
    assert token.attempts() == 1 and not token.lastAttemptSucceeded()
    assert bytes(token.lastAttemptResult())[:4] == REENTRANT_CALL
    chain.pending_timestamp = kd.localUse(licence).deadline
    token.disarm(sender=actors.deployer)
    kd.refund(licence, sender=actors.other)
    token.arm(kd, kd.withdraw.as_transaction(token.address).data, sender=actors.deployer)
    kd.withdraw(token, sender=actors.buyer)  # the token re-enters as itself: it has no credit either way
    assert not token.lastAttemptSucceeded()
    assert bytes(token.lastAttemptResult())[:4] == REENTRANT_CALL
    assert token.balanceOf(actors.buyer) == 5_000 and token.balanceOf(kd) == 0

"""Local-use licences (KeyDelivery): attacks first, then the plain paths.

Each test names who is hostile and what they try; every money test checks each party's balance
or credit before and after. See docs/local-use.md and the threat model in docs/contracts.md.
"""

from __future__ import annotations

import hashlib

import ape
import pytest
from eth_utils import keccak

from market_helpers import public_key, reverts
from voicemarket.content.multiformats import RAW
from voicemarket.content.sealing import key_id
from voicemarket.market.local_use import UsageReport, purchased_public_key, sign_usage_report, wrap_license_key
from voicemarket.protocol import DAY, ETH, LocalUseStatus, Tier

PRICE = 3 * 10**16
DATA_KEY = bytes(range(32))  # the model's data key in these tests; options commit to its id
KEY_ID = key_id(DATA_KEY)
PENDING, DELIVERED, REFUNDED = LocalUseStatus.PENDING, LocalUseStatus.DELIVERED, LocalUseStatus.REFUNDED
SETTLED, DISPROVED = LocalUseStatus.SETTLED, LocalUseStatus.DISPROVED
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
    kd.offerLocalUse(offer, PRICE, KEY_ID, sender=actors.creator)
    licence = market.buy(offer)
    return model, offer, licence


def buy_local(kd, licence, buyer, *, price=PRICE, value=None, key=None):
    key = public_key(buyer) if key is None else key
    return kd.buyLocalUse(licence, key, price, value=price if value is None else value, sender=buyer)


def wrapped(kd, chain, licence, data_key=DATA_KEY, to=None) -> bytes:
    """``data_key`` wrapped as the key service wraps it, to the purchase's public key (or ``to``)."""
    to = purchased_public_key(kd, licence) if to is None else to
    return wrap_license_key(data_key, to, licence, chain.chain_id, kd.address)


def deliver(kd, chain, licence, sender, **kwargs):
    return kd.recordDelivery(licence, wrapped(kd, chain, licence, **kwargs), sender=sender)


def license_key(account) -> int:
    """The licence key of a purchase made with ``public_key(account)``: the test account's own key."""
    return int(account.private_key, 16)


def report(licence, start, end, sentences=3, seconds=7):
    return UsageReport(licence, start, end, sentences, seconds).as_struct()


def sign_report(kd, chain, signer, r) -> bytes:
    return sign_usage_report(signer, kd.address, chain.chain_id, UsageReport(*r.values()))


# ---------------------------------------------------------------- the happy path


def test_buy_deliver_settle_pays_the_split_and_records_the_key_once(market, kd, actors, chain, sale):
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

    receipt = deliver(kd, chain, licence, actors.creator)
    delivered = receipt.events.filter(kd.KeyDelivered)[0]
    key = bytes(delivered.wrappedKey)
    assert bytes(delivered.keyCid) == bytes([1, RAW, 0x12, 0x20]) + hashlib.sha256(key).digest()
    assert kd.keyCid(licence) == bytes(delivered.keyCid)
    record = kd.localUse(licence)
    assert record.status == DELIVERED
    assert record.deadline == chain.blocks.head.timestamp + kd.DISPUTE_WINDOW()
    # The payment waits out the dispute window; then anyone settles it into the model's pot.
    assert kd.potOf(model, ETH) == (0, 0)
    with reverts(kd.KeyDelivery_DisputeWindowOpen, licenseId=licence, disputeEnd=record.deadline):
        kd.settle(licence, sender=actors.creator)
    chain.pending_timestamp = record.deadline
    settled = kd.settle(licence, sender=actors.other).events.filter(kd.LocalUseSettled)[0]
    assert (settled.licenseId, settled.modelId, settled.amount) == (licence, model, PRICE)
    assert kd.localUse(licence).status == SETTLED
    fee = PRICE * 2_000 // 10_000
    assert kd.potOf(model, ETH) == (PRICE - fee, fee)
    kd.distribute(model, ETH, sender=actors.other)
    voice = (PRICE - fee) * 2_000 // 10_000
    assert kd.creditOf(actors.voice, ETH) == voice
    assert kd.creditOf(actors.creator, ETH) == PRICE - fee - voice
    assert kd.platformBalance(ETH) == fee
    # Exactly once: neither the creator nor anyone refunds or delivers again.
    with reverts(kd.KeyDelivery_NotPending, licenseId=licence, status=SETTLED):
        deliver(kd, chain, licence, actors.creator)
    with reverts(kd.KeyDelivery_NotPending, licenseId=licence, status=SETTLED):
        kd.refund(licence, sender=actors.buyer)
    with reverts(kd.KeyDelivery_NotDelivered, licenseId=licence):
        kd.settle(licence, sender=actors.other)


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
        deliver(kd, chain, licence, actors.creator)
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


def test_delivery_works_while_paused(kd, licenses, actors, chain, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    licenses.pause(sender=actors.deployer)
    with reverts(kd.KeyDelivery_Paused):
        buy_local(kd, licence, actors.buyer)
    deliver(kd, chain, licence, actors.creator)
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
    kd.offerLocalUse(offer, PRICE, KEY_ID, sender=actors.creator)
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


# ---------------------------------------------------------------- disputes: a key that opens nothing


def test_a_hostile_key_holder_delivering_garbage_is_disproved_and_the_buyer_refunded(
    market, kd, licenses, actors, chain, sale
):
    """The key holder records a wrapped key that unwraps to another key (here: random bytes), hoping
    to be paid. The buyer reveals the licence key; the contract unwraps and sees the wrong key id."""
    model, _offer, licence = sale
    buy_local(kd, licence, actors.buyer)
    garbage = wrapped(kd, chain, licence, data_key=hashlib.sha256(b"not the model's key").digest())
    kd.recordDelivery(licence, garbage, sender=actors.creator)
    licenses.pause(sender=actors.deployer)  # a pause stops sales, not disputes
    receipt = kd.disputeDelivery(licence, garbage, license_key(actors.buyer), sender=actors.buyer)
    licenses.unpause(sender=actors.deployer)
    event = receipt.events.filter(kd.DeliveryDisproved)[0]
    assert (event.licenseId, event.buyer, event.amount) == (licence, actors.buyer.address, PRICE)
    assert kd.localUse(licence).status == DISPROVED
    assert kd.creditOf(actors.buyer, ETH) == PRICE
    assert kd.potOf(model, ETH) == (0, 0)  # the holder is paid nothing
    chain.pending_timestamp = kd.localUse(licence).deadline
    with reverts(kd.KeyDelivery_NotDelivered, licenseId=licence):
        kd.settle(licence, sender=actors.creator)
    with reverts(kd.KeyDelivery_NotPending, licenseId=licence, status=DISPROVED):
        kd.refund(licence, sender=actors.buyer)
    with reverts(kd.KeyDelivery_NotDelivered, licenseId=licence):
        kd.disputeDelivery(licence, garbage, license_key(actors.buyer), sender=actors.buyer)


def test_a_key_wrapped_to_another_key_or_around_an_invalid_point_is_disproved(market, kd, actors, chain, sale):
    """The right data key wrapped to someone else's public key opens nothing for the buyer; so does a
    wrapped key whose ephemeral point is not on the curve. Both are disproved; the dispute credits the
    buyer whoever sends it (a front-runner copying the licence key gains nothing)."""
    _model, offer, licence = sale
    second = market.buy(offer)
    buy_local(kd, licence, actors.buyer)
    buy_local(kd, second, actors.buyer)
    misaddressed = wrapped(kd, chain, licence, to=public_key(actors.creator))
    kd.recordDelivery(licence, misaddressed, sender=actors.creator)
    off_curve = b"\x01\x02" + (5).to_bytes(32) + bytes(32)  # x = 5: 5³ + 7 = 132 has no square root mod p
    kd.recordDelivery(second, off_curve, sender=actors.creator)
    kd.disputeDelivery(licence, misaddressed, license_key(actors.buyer), sender=actors.other)
    kd.disputeDelivery(second, off_curve, license_key(actors.buyer), sender=actors.other)
    assert kd.creditOf(actors.other, ETH) == 0
    assert kd.creditOf(actors.buyer, ETH) == 2 * PRICE


def test_a_hostile_buyer_cannot_dispute_a_good_key_away(market, kd, actors, chain, sale):
    """The buyer got the model's key and wants the money back too (a free model): a dispute of a key
    that opens reverts; other bytes, another licence key, or a dispute after the window are refused;
    the key holder is paid once the window passes."""
    model, _offer, licence = sale
    buy_local(kd, licence, actors.buyer)
    good = wrapped(kd, chain, licence)
    kd.recordDelivery(licence, good, sender=actors.creator)
    with reverts(kd.KeyDelivery_KeyOpens, licenseId=licence):
        kd.disputeDelivery(licence, good, license_key(actors.buyer), sender=actors.buyer)
    other_bytes = wrapped(kd, chain, licence, data_key=bytes(32))  # bytes never recorded
    with reverts(kd.KeyDelivery_NotTheDeliveredKey, licenseId=licence):
        kd.disputeDelivery(licence, other_bytes, license_key(actors.buyer), sender=actors.buyer)
    with reverts(kd.KeyDelivery_WrongLicenseKey, licenseId=licence):
        kd.disputeDelivery(licence, good, license_key(actors.other), sender=actors.buyer)
    with reverts(kd.KeyDelivery_WrongLicenseKey, licenseId=licence):
        kd.disputeDelivery(licence, good, 0, sender=actors.buyer)
    disputes_end = kd.localUse(licence).deadline
    chain.pending_timestamp = disputes_end
    with reverts(kd.KeyDelivery_DisputeWindowOver, licenseId=licence, disputeEnd=disputes_end):
        kd.disputeDelivery(licence, good, license_key(actors.buyer), sender=actors.buyer)
    kd.settle(licence, sender=actors.buyer)
    fee = PRICE * 2_000 // 10_000
    assert kd.potOf(model, ETH) == (PRICE - fee, fee)
    assert kd.creditOf(actors.buyer, ETH) == 0


def test_a_creator_committing_another_key_id_loses_the_sale_it_delivers(market, kd, actors, chain):
    """A creator who commits the option to a key id that is not the delivered key's cannot keep the
    money: every delivery of the real key is disproved (the residual case, a commitment to a key that
    is not the sealed bundle's with garbage delivered to match, is caught off-chain: docs/local-use.md)."""
    model = market.register()
    offer = market.publish(model, Tier.BUYOUT)
    kd.offerLocalUse(offer, PRICE, key_id(bytes(32)), sender=actors.creator)
    licence = market.buy(offer)
    buy_local(kd, licence, actors.buyer)
    good = wrapped(kd, chain, licence)
    kd.recordDelivery(licence, good, sender=actors.creator)
    kd.disputeDelivery(licence, good, license_key(actors.buyer), sender=actors.buyer)
    assert kd.localUse(licence).status == DISPROVED
    assert kd.localUseOption(offer).keyId == key_id(bytes(32))


# ---------------------------------------------------------------- a hostile creator / key holder


def test_creator_cannot_change_the_price_nor_offer_on_transferable_or_pay_per_use_offers(market, kd, actors, sale):
    _, offer, _ = sale
    with reverts(kd.KeyDelivery_OptionExists, offerId=offer):
        kd.offerLocalUse(offer, 1, KEY_ID, sender=actors.creator)
    model = market.register()
    transferable = market.publish(model, Tier.BUYOUT, transferable=True)
    with reverts(kd.KeyDelivery_OfferNotEligible, offerId=transferable):
        kd.offerLocalUse(transferable, PRICE, KEY_ID, sender=actors.creator)
    per_use = market.publish(model, Tier.PAY_PER_USE)
    with reverts(kd.KeyDelivery_OfferNotEligible, offerId=per_use):
        kd.offerLocalUse(per_use, PRICE, KEY_ID, sender=actors.creator)
    other = market.publish(model, Tier.BUYOUT)
    with reverts(kd.KeyDelivery_NotModelOwner, modelId=model, caller=actors.other.address):
        kd.offerLocalUse(other, PRICE, KEY_ID, sender=actors.other)


def test_only_the_key_holder_delivers_and_a_former_owners_naming_lapses(market, kd, registry, actors, chain, sale):
    model, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    with reverts(kd.KeyDelivery_NotKeyHolder, modelId=model, caller=actors.operator.address):
        deliver(kd, chain, licence, actors.operator)
    with reverts(kd.KeyDelivery_NotModelOwner, modelId=model, caller=actors.operator.address):
        kd.setKeyHolder(model, actors.operator, sender=actors.operator)
    kd.setKeyHolder(model, actors.operator, sender=actors.creator)
    assert kd.keyHolderOf(model) == actors.operator.address
    # The model changes hands: the old owner's operator may no longer deliver.
    registry.transferFrom(actors.creator, actors.co, model, sender=actors.creator)
    assert kd.keyHolderOf(model) == ape.utils.ZERO_ADDRESS
    with reverts(kd.KeyDelivery_NotKeyHolder, modelId=model, caller=actors.operator.address):
        deliver(kd, chain, licence, actors.operator)
    with reverts(kd.KeyDelivery_NotKeyHolder, modelId=model, caller=actors.creator.address):
        deliver(kd, chain, licence, actors.creator)
    good = wrapped(kd, chain, licence)
    for malformed in (good[:65], good + b"\0", b"\x02" + good[1:], good[:1] + b"\x04" + good[2:]):
        with reverts(kd.KeyDelivery_BadWrappedKey, length=len(malformed)):
            kd.recordDelivery(licence, malformed, sender=actors.co)
    kd.recordDelivery(licence, good, sender=actors.co)


def test_key_holder_of_one_model_cannot_deliver_for_another(market, kd, actors, chain, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    theirs = market.register(creator=actors.other, voice_owner=actors.other)
    with reverts(kd.KeyDelivery_NotKeyHolder):
        deliver(kd, chain, licence, actors.other)
    kd.setKeyHolder(theirs, actors.operator, sender=actors.other)
    with reverts(kd.KeyDelivery_NotKeyHolder):
        deliver(kd, chain, licence, actors.operator)


def test_closing_the_option_stops_sales_but_not_pending_deliveries(market, kd, licenses, actors, chain, sale):
    _model, offer, licence = sale
    buy_local(kd, licence, actors.buyer)
    second = market.buy(offer)
    kd.closeLocalUse(offer, sender=actors.creator)
    with reverts(kd.KeyDelivery_OptionClosed, offerId=offer):
        buy_local(kd, second, actors.buyer)
    deliver(kd, chain, licence, actors.creator)
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
        deliver(kd, chain, licence, actors.creator)
    chain.pending_timestamp = kd.localUse(licence).deadline
    kd.refund(licence, sender=actors.other)
    assert kd.creditOf(actors.buyer, ETH) == PRICE


def test_retired_model_sells_no_local_use_but_delivers_what_was_paid(market, kd, registry, actors, chain, sale):
    model, offer, licence = sale
    second = market.buy(offer)
    buy_local(kd, licence, actors.buyer)
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    with reverts(kd.KeyDelivery_ModelRetired, modelId=model, serviceEndsAt=ends):
        buy_local(kd, second, actors.buyer)
    assert kd.localUse(licence).deadline <= ends  # the window always fits in the retirement notice
    deliver(kd, chain, licence, actors.creator)


# ---------------------------------------------------------------- the admin and the treasurer


def test_admin_and_treasurer_cannot_take_escrow(kd, actors, chain, sale):
    _, _, licence = sale
    buy_local(kd, licence, actors.buyer)
    for account in (actors.deployer, actors.treasurer):
        with reverts(kd.Ledger_NothingToWithdraw):
            kd.withdrawPlatformFees(ETH, account, sender=actors.treasurer)
        with reverts(kd.Ledger_NothingToWithdraw, account=account.address, asset=ETH):
            kd.withdraw(ETH, sender=account)
    with reverts(kd.AccessControlUnauthorizedAccount):
        kd.withdrawPlatformFees(ETH, actors.deployer, sender=actors.deployer)
    deliver(kd, chain, licence, actors.creator)
    fee = PRICE * 2_000 // 10_000
    chain.pending_timestamp = kd.localUse(licence).deadline
    kd.settle(licence, sender=actors.other)
    kd.distribute(sale[0], ETH, sender=actors.other)
    receipt = kd.withdrawPlatformFees(ETH, actors.treasurer, sender=actors.treasurer)
    assert receipt.events.filter(kd.PlatformFeesWithdrawn)[0].amount == fee


# ---------------------------------------------------------------- ERC-20


def test_erc20_option_escrows_tokens_and_refunds_them(market, kd, usd, actors, chain):
    model = market.register()
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=10**6)
    kd.offerLocalUse(offer, 5 * 10**6, KEY_ID, sender=actors.creator)
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
    deliver(kd, chain, licence, actors.creator)
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
    kd.offerLocalUse(offer, 5_000, KEY_ID, sender=actors.creator)
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

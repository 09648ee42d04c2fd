"""Payment channels (contracts/PaymentChannels.sol) tried as their attackers would try them.

Parties: ``actors.buyer`` deposits and signs vouchers, ``actors.operator`` redeems them,
``actors.other`` is Mallory (a second operator, a stranger, a forger). Every test checks the money
of each party: a redemption moves exactly what the buyer signed, once; a voucher that must not
count moves nothing (``VoucherSkipped`` names why).
"""

from __future__ import annotations

import pytest

from market_helpers import OPERATOR_FEE, error_data, reverts
from voicemarket import protocol
from voicemarket.market.channels import Voucher, channel_id, domain_separator, key_signer
from voicemarket.protocol import DAY, ETH, Tier

USE_PRICE = 10**15
FEE = OPERATOR_FEE
DEPOSIT = 10**17
SKIP = {"Stale": 0, "BadSignature": 1, "Underfunded": 2, "NotAllowed": 3, "LicenseRefused": 4}


@pytest.fixture
def channels(deployment, project):
    return project.PaymentChannels.at(deployment.licenses.paymentChannels())


@pytest.fixture
def lane(market, channels, actors, chain):
    """A pay-per-use model (voice owner 20%, a co-creator 10%), the buyer's free licence, the operator
    allowed for it, and the buyer's ETH channel with the operator holding DEPOSIT."""
    model = market.register(voice_owner=actors.voice, co_creators=[(actors.co.address, 1_000)])
    offer = market.publish(model, Tier.PAY_PER_USE, price=USE_PRICE)
    license_id = market.buy(offer, actors.buyer)
    market.operator(actors.operator, models=[model])
    channels.deposit(actors.operator, ETH, DEPOSIT, value=DEPOSIT, sender=actors.buyer)
    domain = domain_separator(channels.address, chain.chain_id)
    return Lane(model, license_id, domain, actors)


class Lane:
    def __init__(self, model, license_id, domain, actors) -> None:
        self.model, self.license_id, self.domain, self.a = model, license_id, domain, actors

    def voucher(self, uses, amount=None, *, signer=None, operator=None, license_id=None, domain=None):
        amount = uses * (USE_PRICE + FEE) if amount is None else amount
        v = Voucher(
            buyer=self.a.buyer.address,
            operator=(operator or self.a.operator).address,
            asset=ETH,
            license_id=self.license_id if license_id is None else license_id,
            model_id=self.model,
            amount=amount,
            uses=uses,
        )
        return v.signed(domain or self.domain, key_signer((signer or self.a.buyer).private_key))


def skipped(receipt, channels) -> list[int]:
    return [int(e.reason) for e in receipt.events.filter(channels.VoucherSkipped)]


def books(channels, licenses, lane) -> tuple:
    """Everything a redemption may move: channel balance, lane totals, operator credit, pot, uses."""
    cid = channel_id(lane.a.buyer.address, lane.a.operator.address, ETH)
    return (
        tuple(channels.channel(cid)),
        tuple(channels.redeemed(cid, lane.license_id)),
        channels.creditOf(lane.a.operator, ETH),
        tuple(channels.potOf(lane.model, ETH)),
        licenses.license(lane.license_id).used,
    )


def test_a_batch_pays_the_model_split_and_the_operator_exactly(channels, licenses, lane, actors, chain):
    """Three uses: 3 x use price into the model's pot (20% platform), split exactly as a router use
    (voice owner 20%, co-creator 10%, the creator the rest); 3 x fee to the operator; the licence
    counts three uses; the buyer withdraws exactly the rest after the delay."""
    a = actors
    receipt = channels.redeem([lane.voucher(3).as_call()], sender=a.operator)
    assert skipped(receipt, channels) == []
    cid = channel_id(a.buyer.address, a.operator.address, ETH)
    price = 3 * USE_PRICE
    assert tuple(channels.channel(cid)) == (DEPOSIT - 3 * (USE_PRICE + FEE), 0)
    assert tuple(channels.potOf(lane.model, ETH)) == (price - price // 5, price // 5)
    assert channels.creditOf(a.operator, ETH) == 3 * FEE
    assert licenses.license(lane.license_id).used == 3
    channels.distribute(lane.model, ETH, sender=a.other)
    split = protocol.split_revenue(
        price - price // 5, a.creator.address, [(a.voice.address, 2_000), (a.co.address, 1_000)]
    )
    for who, amount in split.items():
        assert channels.creditOf(who, ETH) == amount
    assert channels.platformBalance(ETH) == price // 5
    before = a.operator.balance
    channels.withdraw(ETH, sender=a.operator)
    assert a.operator.balance > before + 3 * FEE - 10**15  # the fee, less gas
    with reverts(channels.Channels_NotTreasurer, caller=a.other.address):
        channels.withdrawPlatformFees(ETH, a.other, sender=a.other)
    channels.withdrawPlatformFees(ETH, a.treasurer, sender=a.treasurer)  # the licence manager's treasurer

    # The rest goes back to the buyer, only after the delay; the operator redeems meanwhile.
    channels.startWithdrawal(a.operator, ETH, sender=a.buyer)
    with reverts(channels.Channels_WithdrawalLocked):
        channels.withdrawChannel(a.operator, ETH, sender=a.buyer)
    receipt = channels.redeem([lane.voucher(4).as_call()], sender=a.operator)
    assert skipped(receipt, channels) == []
    chain.pending_timestamp += channels.WITHDRAWAL_DELAY()
    rest = DEPOSIT - 4 * (USE_PRICE + FEE)
    assert channels.withdrawChannel(a.operator, ETH, sender=a.buyer).return_value == rest
    assert tuple(channels.channel(cid)) == (0, 0)
    # Nothing more can be taken: a later voucher finds the channel empty.
    assert skipped(channels.redeem([lane.voucher(5).as_call()], sender=a.operator), channels) == [SKIP["Underfunded"]]


def test_replayed_older_forged_and_overspent_vouchers_move_nothing(channels, licenses, lane, actors):
    a = actors
    newest = lane.voucher(2)
    channels.redeem([newest.as_call()], sender=a.operator)
    start = books(channels, licenses, lane)
    attempts = [
        newest,  # replayed
        lane.voucher(1),  # older
        lane.voucher(3, signer=a.other),  # forged: signed by someone else
        Voucher(**{**newest.__dict__, "amount": newest.amount + 10**16}),  # altered after signing
        lane.voucher(3, amount=DEPOSIT + 1),  # more than the channel holds
        lane.voucher(2, amount=newest.amount - 1),  # fewer money, same uses: older
    ]
    receipt = channels.redeem([v.as_call() for v in attempts], sender=a.operator)
    assert skipped(receipt, channels) == [
        SKIP["Stale"],
        SKIP["Stale"],
        SKIP["BadSignature"],
        SKIP["BadSignature"],
        SKIP["Underfunded"],
        SKIP["Stale"],
    ]
    assert books(channels, licenses, lane) == start
    # The same voucher twice in one batch counts once.
    nxt = lane.voucher(4)
    receipt = channels.redeem([nxt.as_call(), nxt.as_call()], sender=a.operator)
    assert skipped(receipt, channels) == [SKIP["Stale"]]
    assert licenses.license(lane.license_id).used == 4


def test_cross_channel_cross_licence_and_cross_chain_vouchers_are_refused(
    market, channels, licenses, lane, actors, chain
):
    """Mallory, another operator the model allows, hands in the buyer's voucher to the operator; the
    voucher names another licence than signed; one signed for another chain or contract."""
    a = actors
    market.operator(a.other, models=[lane.model])
    channels.deposit(a.other, ETH, DEPOSIT, value=DEPOSIT, sender=a.buyer)  # the buyer has a channel with her too
    start = books(channels, licenses, lane)
    stolen = lane.voucher(2)
    receipt = channels.redeem([stolen.as_call()], sender=a.other)
    assert skipped(receipt, channels) == [SKIP["BadSignature"]]
    assert channels.creditOf(a.other, ETH) == 0
    other_license = market.buy(licenses.offerOf(lane.license_id), a.buyer)
    moved = Voucher(**{**stolen.__dict__, "license_id": other_license})
    other_chain = lane.voucher(2, domain=domain_separator(channels.address, chain.chain_id + 1))
    other_contract = lane.voucher(2, domain=domain_separator(licenses.address, chain.chain_id))
    receipt = channels.redeem([v.as_call() for v in (moved, other_chain, other_contract)], sender=a.operator)
    assert skipped(receipt, channels) == [SKIP["BadSignature"]] * 3
    assert books(channels, licenses, lane) == start


def test_no_redemption_once_the_licence_stops_permitting_the_use(market, channels, licenses, lane, actors, registry):
    """A frozen model, a licence moved to another holder, a quota used up, an operator the model's
    owner removed: the licence manager refuses and the voucher is skipped, with its reason."""
    a = actors
    start = books(channels, licenses, lane)
    registry.freeze(lane.model, b"takedown".ljust(32, b"\0"), sender=a.arbiter)
    receipt = channels.redeem([lane.voucher(1).as_call()], sender=a.operator)
    assert skipped(receipt, channels) == [SKIP["LicenseRefused"]]
    data = receipt.events.filter(channels.VoucherSkipped)[0].data
    assert bytes(data) == error_data(licenses.Licensing_ModelFrozen, lane.model)
    registry.unfreeze(lane.model, sender=a.arbiter)

    capped = market.publish(lane.model, Tier.PAY_PER_USE, price=USE_PRICE, max_uses=2)
    capped_license = market.buy(capped, a.buyer)
    over = lane.voucher(3, license_id=capped_license)
    receipt = channels.redeem([over.as_call()], sender=a.operator)
    assert skipped(receipt, channels) == [SKIP["LicenseRefused"]]
    assert bytes(receipt.events.filter(channels.VoucherSkipped)[0].data) == error_data(
        licenses.Licensing_UsesExhausted, capped_license, 2
    )
    # A subscription that lapsed.
    sub = market.publish(lane.model, Tier.SUBSCRIPTION, price=USE_PRICE, period=DAY)
    sub_license = market.buy(sub, a.buyer)
    market.chain.pending_timestamp += DAY + 1
    receipt = channels.redeem([lane.voucher(1, license_id=sub_license).as_call()], sender=a.operator)
    assert skipped(receipt, channels) == [SKIP["LicenseRefused"]]
    # The model's owner removed the operator (after the notice).
    market.d.router.setOperatorAllowed(lane.model, a.operator, False, sender=a.creator)
    market.chain.pending_timestamp += market.d.registry.retirementNotice() + 1
    receipt = channels.redeem([lane.voucher(1).as_call()], sender=a.operator)
    assert skipped(receipt, channels) == [SKIP["NotAllowed"]]
    assert books(channels, licenses, lane)[:4] == start[:4]


def test_a_voucher_that_underpays_the_model_or_names_another_asset_fails_the_batch(
    market, channels, licenses, lane, actors, usd
):
    """The use price is the offer's (immutable); a voucher paying less than it for its uses would take
    the difference from the operator's fee: the batch reverts (the operator's API must refuse it)."""
    a = actors
    cheap = lane.voucher(2, amount=2 * USE_PRICE - 1)
    with reverts(channels.Channels_PriceAboveAmount, price=2 * USE_PRICE, added=2 * USE_PRICE - 1):
        channels.redeem([cheap.as_call()], sender=a.operator)
    in_usd = market.publish(lane.model, Tier.PAY_PER_USE, price=1_000, asset=usd.address)
    usd_license = market.buy(in_usd, a.buyer)
    with reverts(channels.Channels_AssetMismatch, licenseAsset=usd.address):
        channels.redeem([lane.voucher(1, license_id=usd_license).as_call()], sender=a.operator)
    assert licenses.license(usd_license).used == 0


def test_an_erc20_channel_and_a_subscription_licence(market, channels, licenses, actors, usd, chain):
    """A stablecoin channel; a subscription's uses are counted and all the money is the operator's fee."""
    a = actors
    model = market.register(voice_owner=a.voice)
    sub = market.publish(model, Tier.SUBSCRIPTION, asset=usd.address, price=5_000_000, max_uses=10)
    license_id = market.buy(sub, a.buyer)
    market.operator(a.operator, models=[model], asset=usd.address, fee=1_000)
    usd.mint(a.buyer, 50_000, sender=a.deployer)
    usd.approve(channels, 50_000, sender=a.buyer)
    with reverts(channels.Channels_WrongPayment, expected=0, sent=1):
        channels.deposit(a.operator, usd, 50_000, value=1, sender=a.buyer)
    channels.deposit(a.operator, usd, 50_000, sender=a.buyer)
    domain = domain_separator(channels.address, chain.chain_id)
    v = Voucher(a.buyer.address, a.operator.address, usd.address, license_id, model, 7_000, 7)
    v = v.signed(domain, key_signer(a.buyer.private_key))
    assert skipped(channels.redeem([v.as_call()], sender=a.operator), channels) == []
    assert channels.creditOf(a.operator, usd) == 7_000
    assert tuple(channels.potOf(model, usd)) == (0, 0)
    assert licenses.license(license_id).used == 7
    assert usd.balanceOf(channels) == 50_000


def test_deposits_and_withdrawals_refuse_what_they_must(channels, lane, actors, project, chain):
    a = actors
    with reverts(channels.Channels_WrongPayment, expected=5, sent=4):
        channels.deposit(a.operator, ETH, 5, value=4, sender=a.buyer)
    with reverts(channels.Channels_ZeroAmount):
        channels.deposit(a.operator, ETH, 0, sender=a.buyer)
    stray = a.deployer.deploy(project.MockStablecoin)
    with reverts(channels.Channels_AssetNotAllowed, asset=stray.address):
        channels.deposit(a.operator, stray, 5, sender=a.buyer)
    cid = channel_id(a.buyer.address, a.operator.address, ETH)
    with reverts(channels.Channels_NotWithdrawing, channel=cid):
        channels.withdrawChannel(a.operator, ETH, sender=a.buyer)
    with reverts(channels.Channels_NothingDeposited):
        channels.startWithdrawal(a.operator, ETH, sender=a.other)  # Mallory has no channel
    channels.startWithdrawal(a.operator, ETH, sender=a.buyer)
    # Mallory cannot take the buyer's channel: hers is another id, with nothing in it.
    with reverts(channels.Channels_NotWithdrawing):
        channels.withdrawChannel(a.operator, ETH, sender=a.other)
    channels.deposit(a.operator, ETH, 1, value=1, sender=a.buyer)  # a top-up reopens the channel
    assert channels.channel(cid).withdrawableAt == 0
    with reverts(channels.Channels_EmptyBatch):
        channels.redeem([], sender=a.operator)


def test_nobody_but_the_channels_consumes_uses_in_numbers(licenses, lane, actors, deployment):
    """The licence manager's admin (and the router's) cannot burn a holder's uses through the hook."""
    for caller in (actors.deployer, actors.operator):
        with reverts(licenses.Licensing_NotRouter, caller=caller.address):
            licenses.consumeUses(lane.license_id, actors.buyer, lane.model, 5, sender=caller)
    assert licenses.paymentChannels() != deployment.router.address


def test_gas_per_voucher_in_a_batch(market, channels, licenses, actors, chain, accounts):
    """Ten channels' vouchers in one transaction: the per-voucher gas stays bounded (the full
    figure, 100 vouchers, is make bench-api's)."""
    a = actors
    model = market.register(voice_owner=a.voice)
    offer = market.publish(model, Tier.PAY_PER_USE, price=USE_PRICE)
    market.operator(a.operator, models=[model])
    domain = domain_separator(channels.address, chain.chain_id)
    vouchers = []
    for _ in range(10):
        buyer = accounts.generate_test_account()
        chain.set_balance(buyer, 10**19)
        license_id = market.buy(offer, buyer)
        channels.deposit(a.operator, ETH, DEPOSIT, value=DEPOSIT, sender=buyer)
        v = Voucher(buyer.address, a.operator.address, ETH, license_id, model, 10 * (USE_PRICE + FEE), 10)
        vouchers.append(v.signed(domain, key_signer(buyer.private_key)).as_call())
    receipt = channels.redeem(vouchers, sender=a.operator)
    assert len(receipt.events.filter(channels.VoucherRedeemed)) == 10
    per_voucher = receipt.gas_used / 10
    assert per_voucher < 80_000, f"{per_voucher:.0f} gas per voucher"
    print(f"\nredeem: {per_voucher:.0f} gas per voucher of 10 uses ({per_voucher / 10:.0f} per use), 10 vouchers")

"""SynthesisRouter: requests with escrow, operators, fulfil / batch / fail / expiry, disputes."""

from __future__ import annotations

import hashlib

import ape
import pytest
from market_helpers import MIN_STAKE, OPERATOR_FEE, SLASH, TEXT, public_key

from voicemarket import chain as vm
from voicemarket.multiformats import CID, RAW

OUT_CID = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
OUT_DIGEST = hashlib.sha256(b"wav bytes").digest()
Status = vm.RequestStatus


@pytest.fixture
def served(market, actors):
    """A model served by the operator, and the buyer's ETH buyout licence on it."""
    model = market.register(dispute_window=0)
    market.operator(models=[model])
    license_id = market.buy(market.publish(model))
    return model, license_id


@pytest.fixture
def ppu(market, actors):
    """A model with a one-hour dispute window, served by the operator; a pay-per-use licence at 10^15 a use."""
    model = market.register(dispute_window=3600)
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, vm.Tier.PAY_PER_USE, price=10**15))
    return model, license_id


# ---------------------------------------------------------------- requesting


def test_request_escrows_and_emits_everything_an_operator_needs(market, router, served, actors):
    model, license_id = served
    req, receipt = market.request(model, license_id, value=OPERATOR_FEE + 5)
    event = receipt.events.filter(router.SynthesisRequested)[0]
    assert (event.requestId, event.modelId, event.requester) == (req[0], model, actors.buyer)
    assert event.input == vm.inline_input(TEXT)
    r = dict(zip(vm.REQUEST_FIELDS, req))
    assert r["operator"] == actors.operator and r["fee"] == OPERATOR_FEE and r["usePrice"] == 0
    assert r["inputHash"] == vm.input_hash(TEXT) and r["platformFeeBps"] == 2_000
    assert vm.SynthesisParams.unpack(r["params"]).language == vm.Language.EN
    status, settle_after, commitment = router.requestState(req[0])
    assert status == Status.PENDING and settle_after == 0
    assert commitment[:26] == router.hashRequest(req)[:26]
    assert router.balance == MIN_STAKE + OPERATOR_FEE + 5
    assert router.creditOf(actors.buyer, vm.ETH) == 5  # the excess is credited back


def test_pay_per_use_escrows_the_use_price_too(market, router, ppu, actors):
    model, license_id = ppu
    with ape.reverts(router.Router_WrongPayment, expected=10**15 + OPERATOR_FEE, sent=OPERATOR_FEE):
        market.request(model, license_id, value=OPERATOR_FEE)
    req, _ = market.request(model, license_id)
    assert dict(zip(vm.REQUEST_FIELDS, req))["usePrice"] == 10**15


def test_request_in_erc20_pulls_the_escrow(market, router, licenses, actors, usd):
    model = market.register()
    market.operator(models=[model], fee=250, asset=usd.address)
    license_id = market.buy(market.publish(model, vm.Tier.PAY_PER_USE, asset=usd.address, price=1_000))
    usd.mint(actors.buyer, 1_250, sender=actors.deployer)
    usd.approve(router, 1_250, sender=actors.buyer)
    with ape.reverts(router.Router_WrongPayment, expected=0, sent=1):
        market.request(model, license_id, max_fee=250, value=1)
    req, _ = market.request(model, license_id, max_fee=250, value=0)
    assert usd.balanceOf(router) == 1_250 and usd.balanceOf(actors.buyer) == 0
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    assert router.creditOf(actors.operator, usd) == 250
    assert router.potOf(model, usd) == (800, 200)


@pytest.mark.parametrize(
    ("change", "error", "args"),
    [
        ({"deadline": 0}, "Router_DeadlineOutOfRange", {"deadline": 0}),
        ({"input": b""}, "Router_EmptyInput", {}),
        ({"input": b"\x00" + b"a" * 512}, "Router_InputTooLong", {"length": 513, "max": 512}),
        ({"params": 1 << 88}, "Router_NonZeroReservedParams", {"params": 1 << 88}),
        ({"params": int(vm.Language.JA)}, "Router_LanguageNotSupported", {"language": 2}),
        ({"params": 9}, "Router_LanguageNotSupported", {"language": 9}),
        ({"maxFee": OPERATOR_FEE - 1}, "Router_FeeAboveMax", {"fee": OPERATOR_FEE, "maxFee": OPERATOR_FEE - 1}),
    ],
)
def test_malformed_requests_revert(market, router, served, actors, change, error, args):
    model, license_id = served
    p = {**market.request_params(model, license_id), **change}
    with ape.reverts(getattr(router, error), **args):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)


def test_deadline_must_be_within_a_day(market, router, served, actors):
    model, license_id = served
    p = market.request_params(model, license_id, deadline_in=86_400 + 10)
    with ape.reverts(router.Router_DeadlineOutOfRange, deadline=p["deadline"]):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)


def test_requests_need_a_licence_for_text_to_speech(market, router, licenses, served, actors):
    model, license_id = served
    p = market.request_params(model, license_id)
    with ape.reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.other)
    no_tts = market.buy(market.publish(model, permissions=int(vm.Action.DERIVATION), prohibitions=0))
    with ape.reverts(licenses.Licensing_ActionNotPermitted, licenseId=no_tts, actions=1):
        router.requestSynthesis(market.request_params(model, no_tts), value=OPERATOR_FEE, sender=actors.buyer)


def test_requests_name_a_serving_operator(market, router, served, actors):
    model, license_id = served
    p = market.request_params(model, license_id, operator=actors.other)
    with ape.reverts(router.Router_OperatorNotRegistered, operator=actors.other.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)
    market.operator(actors.other)  # registered but not allowed for this model
    with ape.reverts(router.Router_OperatorNotAllowed, modelId=model, operator=actors.other.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)
    router.startUnbonding(sender=actors.operator)
    p = market.request_params(model, license_id)
    with ape.reverts(router.Router_OperatorUnbonding, operator=actors.operator.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)


def test_pause_stops_requests_only(market, router, served, actors, chain):
    model, license_id = served
    pending, _ = market.request(model, license_id, deadline_in=100)
    router.pause(sender=actors.deployer)
    with ape.reverts(router.EnforcedPause):
        market.request(model, license_id)
    chain.pending_timestamp += 200
    router.cancelExpired(pending, sender=actors.keeper)  # refunds work while paused
    router.withdraw(vm.ETH, sender=actors.buyer)  # so do withdrawals
    with ape.reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
        router.unpause(sender=actors.other)
    router.unpause(sender=actors.deployer)
    market.request(model, license_id)


# ---------------------------------------------------------------- fulfilling


def test_fulfil_pays_out_at_once_with_a_zero_window(market, router, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    receipt = router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    event = receipt.events.filter(router.SynthesisFulfilled)[0]
    assert (event.requestId, event.operator, event.outputDigest, event.outputCid) == (req[0], actors.operator,
                                                                                     OUT_DIGEST, OUT_CID)
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, vm.ETH) == OPERATOR_FEE
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.SETTLED)):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)


def test_fulfil_is_for_the_assigned_operator_with_the_committed_request(market, router, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    market.operator(actors.other, models=[model])
    with ape.reverts(router.Router_NotAssignedOperator, requestId=req[0], caller=actors.other.address):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.other)
    forged = list(req)
    forged[vm.REQUEST_FIELDS.index("fee")] = OPERATOR_FEE * 10
    with ape.reverts(router.Router_CommitmentMismatch, requestId=req[0]):
        router.fulfil(tuple(forged), OUT_DIGEST, OUT_CID, sender=actors.operator)
    unknown = list(req)
    unknown[0] = 999
    with ape.reverts(router.Router_UnknownRequest, requestId=999):
        router.fulfil(tuple(unknown), OUT_DIGEST, OUT_CID, sender=actors.operator)
    with ape.reverts(router.Router_EmptyOutput):
        router.fulfil(req, OUT_DIGEST, b"", sender=actors.operator)
    with ape.reverts(router.Router_EmptyOutput):
        router.fulfil(req, bytes(32), OUT_CID, sender=actors.operator)
    with ape.reverts(router.Router_OperatorNotRegistered, operator=actors.keeper.address):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.keeper)


def test_fulfil_after_the_deadline_reverts(market, router, served, actors, chain):
    model, license_id = served
    req, _ = market.request(model, license_id, deadline_in=100)
    deadline = dict(zip(vm.REQUEST_FIELDS, req))["deadline"]
    chain.pending_timestamp = deadline + 1
    with ape.reverts(router.Router_RequestExpired, requestId=req[0], deadline=deadline):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)


def test_disallowed_operator_or_frozen_model_cannot_deliver(market, router, registry, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with ape.reverts(router.Router_ModelFrozen, modelId=model):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    registry.unfreeze(model, sender=actors.arbiter)
    router.setOperatorAllowed(model, actors.operator, False, sender=actors.creator)
    with ape.reverts(router.Router_OperatorNotAllowed, modelId=model, operator=actors.operator.address):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.fail(req, int(vm.FailReason.MODEL_UNAVAILABLE), sender=actors.operator)  # it may still refund


def test_batch_fulfils_and_skips_what_is_no_longer_pending(market, router, served, actors, chain):
    model, license_id = served
    reqs = [market.request(model, license_id)[0] for _ in range(3)]
    late, _ = market.request(model, license_id, deadline_in=50)
    router.fulfil(reqs[1], OUT_DIGEST, OUT_CID, sender=actors.operator)
    chain.pending_timestamp += 100
    items = [(r, OUT_DIGEST, OUT_CID) for r in (*reqs, late)]
    receipt = router.fulfilBatch(items, sender=actors.operator)
    assert len(receipt.events.filter(router.SynthesisFulfilled)) == 2
    skipped = [(e.requestId, e.status) for e in receipt.events.filter(router.FulfilmentSkipped)]
    assert skipped == [(reqs[1][0], Status.SETTLED), (late[0], Status.PENDING)]
    assert [router.requestStatus(r[0]) for r in reqs] == [Status.SETTLED] * 3
    assert router.requestStatus(late[0]) == Status.PENDING
    assert router.creditOf(actors.operator, vm.ETH) == 3 * OPERATOR_FEE
    with ape.reverts(router.Router_EmptyBatch):
        router.fulfilBatch([], sender=actors.operator)


def test_batch_with_a_foreign_request_reverts_whole(market, router, served, actors):
    model, license_id = served
    market.operator(actors.other, models=[model])
    mine, _ = market.request(model, license_id)
    theirs, _ = market.request(model, license_id, operator=actors.other)
    with ape.reverts(router.Router_NotAssignedOperator, requestId=theirs[0], caller=actors.operator.address):
        router.fulfilBatch([(mine, OUT_DIGEST, OUT_CID), (theirs, OUT_DIGEST, OUT_CID)], sender=actors.operator)
    assert router.requestStatus(mine[0]) == Status.PENDING


# ---------------------------------------------------------------- failures, expiry, refunds


def test_fail_refunds_in_full_and_gives_the_use_back(market, router, licenses, actors):
    model = market.register()
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, vm.Tier.PAY_PER_USE, price=10**15, max_uses=1))
    req, _ = market.request(model, license_id)
    assert licenses.isLicensed(license_id, actors.buyer, model, 1) == (False, 0)
    with ape.reverts(router.Router_NotAssignedOperator, requestId=req[0], caller=actors.other.address):
        router.fail(req, int(vm.FailReason.BAD_INPUT), sender=actors.other)
    receipt = router.fail(req, int(vm.FailReason.TEXT_TOO_LONG), sender=actors.operator)
    assert receipt.events.filter(router.SynthesisFailed)[0].reason == int(vm.FailReason.TEXT_TOO_LONG)
    assert router.creditOf(actors.buyer, vm.ETH) == 10**15 + OPERATOR_FEE
    assert licenses.isLicensed(license_id, actors.buyer, model, 1) == (True, 1)
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.FAILED)):
        router.fail(req, 0, sender=actors.operator)
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.FAILED)):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)


def test_fail_after_the_deadline_leaves_it_to_expiry(market, router, served, actors, chain):
    model, license_id = served
    req, _ = market.request(model, license_id, deadline_in=100)
    chain.pending_timestamp += 200
    with ape.reverts(router.Router_RequestExpired, requestId=req[0]):
        router.fail(req, 0, sender=actors.operator)


def test_anyone_cancels_after_the_deadline_and_the_buyer_gets_everything_back(market, router, ppu, actors, chain):
    model, license_id = ppu
    req, _ = market.request(model, license_id, deadline_in=100)
    deadline = dict(zip(vm.REQUEST_FIELDS, req))["deadline"]
    with ape.reverts(router.Router_NotExpired, requestId=req[0], deadline=deadline):
        router.cancelExpired(req, sender=actors.keeper)
    chain.pending_timestamp = deadline + 1
    receipt = router.cancelExpired(req, sender=actors.keeper)
    assert receipt.events.filter(router.SynthesisExpired)[0].caller == actors.keeper
    assert router.creditOf(actors.buyer, vm.ETH) == 10**15 + OPERATOR_FEE
    before = actors.buyer.balance
    fees = router.withdraw(vm.ETH, sender=actors.buyer).total_fees_paid
    assert actors.buyer.balance == before + 10**15 + OPERATOR_FEE - fees
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.EXPIRED)):
        router.cancelExpired(req, sender=actors.keeper)


# ---------------------------------------------------------------- disputes and settlement


def test_payout_waits_for_the_dispute_window(market, router, ppu, actors, chain):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    receipt = router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    settle_after = receipt.events.filter(router.SynthesisFulfilled)[0].settleAfter
    assert settle_after == receipt.timestamp + 3600
    assert router.requestState(req[0])[:2] == (Status.FULFILLED, settle_after)
    assert router.creditOf(actors.operator, vm.ETH) == 0
    with ape.reverts(router.Router_DisputeWindowOpen, requestId=req[0], settleAfter=settle_after):
        router.settle([req], sender=actors.keeper)
    chain.pending_timestamp = settle_after
    with ape.reverts(router.Router_DisputeWindowClosed, requestId=req[0], settleAfter=settle_after):
        router.dispute(req, sender=actors.buyer)
    router.settle([req], sender=actors.keeper)
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, vm.ETH) == OPERATOR_FEE
    assert router.potOf(model, vm.ETH) == (8 * 10**14, 2 * 10**14)
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.SETTLED)):
        router.settle([req], sender=actors.keeper)
    with ape.reverts(router.Router_EmptyBatch):
        router.settle([], sender=actors.keeper)


def test_upheld_dispute_refunds_and_slashes_to_the_buyer(market, router, licenses, ppu, actors):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    with ape.reverts(router.Router_NotRequester, requestId=req[0], caller=actors.other.address):
        router.dispute(req, sender=actors.other)
    router.dispute(req, sender=actors.buyer)
    assert router.operatorInfo(actors.operator).openDisputes == 1
    role = router.ARBITER_ROLE()
    with ape.reverts(router.AccessControlUnauthorizedAccount, account=actors.buyer.address, neededRole=role):
        router.resolveDispute(req, True, sender=actors.buyer)
    receipt = router.resolveDispute(req, True, sender=actors.arbiter)
    assert receipt.events.filter(router.DisputeResolved)[0].slashed == SLASH
    assert router.requestStatus(req[0]) == Status.REVERSED
    assert router.creditOf(actors.buyer, vm.ETH) == 10**15 + OPERATOR_FEE + SLASH
    info = router.operatorInfo(actors.operator)
    assert info.stake == MIN_STAKE - SLASH and info.openDisputes == 0
    # Below the minimum stake, the operator can deliver nothing until it adds stake.
    with ape.reverts(router.Router_StakeBelowMinimum, operator=actors.operator.address):
        market.request(model, license_id)
    router.addStake(value=SLASH, sender=actors.operator)
    market.request(model, license_id)


def test_rejected_dispute_pays_out(market, router, ppu, actors):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.DISPUTED)):
        router.settle([req], sender=actors.keeper)
    router.resolveDispute(req, False, sender=actors.arbiter)
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, vm.ETH) == OPERATOR_FEE
    with ape.reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.SETTLED)):
        router.resolveDispute(req, True, sender=actors.arbiter)


def test_slash_never_exceeds_the_stake(market, router, ppu, actors):
    model, license_id = ppu
    router.setSlashAmount(10**30, sender=actors.deployer)
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    router.resolveDispute(req, True, sender=actors.arbiter)
    assert router.operatorInfo(actors.operator).stake == 0
    assert router.creditOf(actors.buyer, vm.ETH) == 10**15 + OPERATOR_FEE + MIN_STAKE


# ---------------------------------------------------------------- operators


def test_registration_checks_the_public_key_and_stake(router, actors):
    key = public_key(actors.operator)
    with ape.reverts(router.Router_BadPublicKeyLength, length=65):
        router.registerOperator(b"\x04" + key, value=MIN_STAKE, sender=actors.operator)
    with ape.reverts(router.Router_PublicKeyMismatch, caller=actors.other.address):
        router.registerOperator(key, value=MIN_STAKE, sender=actors.other)
    with ape.reverts(router.Router_StakeTooLow, sent=MIN_STAKE - 1, minStake=MIN_STAKE):
        router.registerOperator(key, value=MIN_STAKE - 1, sender=actors.operator)
    receipt = router.registerOperator(key, value=MIN_STAKE, sender=actors.operator)
    assert receipt.events.filter(router.OperatorRegistered)[0].publicKey == key
    assert router.operatorPublicKey(actors.operator) == key
    assert router.operatorInfo(actors.operator) == (MIN_STAKE, 0, 0, True)
    with ape.reverts(router.Router_OperatorAlreadyRegistered, operator=actors.operator.address):
        router.registerOperator(key, value=MIN_STAKE, sender=actors.operator)
    assert router.operatorPublicKey(actors.other) == b""


def test_unbonding_then_withdrawing_the_stake(market, router, ppu, actors, chain):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    with ape.reverts(router.Router_OperatorNotUnbonding, operator=actors.operator.address):
        router.withdrawStake(sender=actors.operator)
    ends = router.startUnbonding(sender=actors.operator).events.filter(router.UnbondingStarted)[0].unbondingEndsAt
    assert not router.canServe(model, actors.operator)
    with ape.reverts(router.Router_OperatorUnbonding, operator=actors.operator.address, unbondingEndsAt=ends):
        router.startUnbonding(sender=actors.operator)
    with ape.reverts(router.Router_StakeLocked, operator=actors.operator.address, unbondingEndsAt=ends):
        router.withdrawStake(sender=actors.operator)
    chain.pending_timestamp = ends
    with ape.reverts(router.Router_OpenDisputes, operator=actors.operator.address, openDisputes=1):
        router.withdrawStake(sender=actors.operator)
    router.resolveDispute(req, False, sender=actors.arbiter)
    before = actors.operator.balance
    receipt = router.withdrawStake(sender=actors.operator)
    assert actors.operator.balance == before + MIN_STAKE - receipt.total_fees_paid
    assert not router.operatorInfo(actors.operator).registered
    with ape.reverts(router.Router_OperatorNotRegistered, operator=actors.operator.address):
        router.withdrawStake(sender=actors.operator)


def test_an_unbonding_operator_still_delivers_what_it_was_given(market, router, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    router.startUnbonding(sender=actors.operator)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    assert router.requestStatus(req[0]) == Status.SETTLED


def test_operator_settings(market, router, actors, usd):
    model = market.register()
    with ape.reverts(router.Router_OperatorNotRegistered, operator=actors.other.address):
        router.setFee(vm.ETH, 1, sender=actors.other)
    with ape.reverts(router.Router_OperatorNotRegistered, operator=actors.other.address):
        router.addStake(value=1, sender=actors.other)
    market.operator(fee=0)
    router.setFee(usd, 77, sender=actors.operator)
    assert router.operatorFee(actors.operator, usd) == 77 and router.operatorFee(actors.operator, vm.ETH) == 0
    with ape.reverts(router.Router_ZeroAmount):
        router.addStake(sender=actors.operator)
    with ape.reverts(router.Router_NotModelOwner, modelId=model, caller=actors.other.address):
        router.setOperatorAllowed(model, actors.operator, True, sender=actors.other)
    router.setOperatorAllowed(model, actors.operator, True, sender=actors.creator)
    assert router.isOperatorAllowed(model, actors.operator) and router.canServe(model, actors.operator)


def test_administration(router, registry, licenses, actors):
    with ape.reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
        router.setMinStake(1, sender=actors.other)
    with ape.reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
        router.setSlashAmount(1, sender=actors.other)
    with ape.reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
        router.pause(sender=actors.other)
    router.setMinStake(5, sender=actors.deployer)
    router.setSlashAmount(6, sender=actors.deployer)
    assert (router.minStake(), router.slashAmount()) == (5, 6)
    assert router.unbondingDelay() == 8 * 86_400
    assert router.MAX_INPUT_BYTES() == 512 and router.MAX_TTL() == 86_400
    assert router.registry() == registry.address and router.licenseManager() == licenses.address


def test_unbonding_delay_must_cover_requests_and_disputes(project, actors, registry, licenses, router):
    with ape.reverts(router.Router_UnbondingDelayTooShort, delay=86_400, shortest=8 * 86_400):
        actors.deployer.deploy(project.SynthesisRouter, actors.deployer, registry, licenses, 1, 1, 86_400)


def test_platform_fees_and_the_ledger_on_the_router(market, router, ppu, actors):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    router.resolveDispute(req, False, sender=actors.arbiter)
    router.distribute(model, vm.ETH, sender=actors.other)
    assert router.platformBalance(vm.ETH) == 2 * 10**14
    router.withdrawPlatformFees(vm.ETH, actors.treasurer, sender=actors.treasurer)
    assert router.platformBalance(vm.ETH) == 0

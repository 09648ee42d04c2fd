"""SynthesisRouter: requests with escrow, operators, fulfil / batch / fail / expiry, disputes."""

from __future__ import annotations

import hashlib

import pytest

from market_helpers import MIN_STAKE, OPERATOR_FEE, SLASH, TEXT, public_key, reverts
from voicemarket.content.multiformats import CID, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import DAY, ETH, Action, FailReason, Language, RequestStatus, Tier

OUT_CID = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
OUT_DIGEST = hashlib.sha256(b"wav bytes").digest()
Status = RequestStatus
NOTICE = 45 * DAY  # vm.deploy's default retirement notice


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
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, price=10**15))
    return model, license_id


# ---------------------------------------------------------------- requesting


def test_request_escrows_and_emits_everything_an_operator_needs(market, router, served, actors):
    model, license_id = served
    req, receipt = market.request(model, license_id, value=OPERATOR_FEE + 5)
    event = receipt.events.filter(router.SynthesisRequested)[0]
    assert (event.requestId, event.modelId, event.requester) == (req[0], model, actors.buyer)
    assert event.input == vm.inline_input(TEXT)
    r = dict(zip(vm.REQUEST_FIELDS, req, strict=False))
    assert r["operator"] == actors.operator and r["fee"] == OPERATOR_FEE and r["usePrice"] == 0
    assert r["inputHash"] == vm.input_hash(TEXT) and r["platformFeeBps"] == 2_000
    assert vm.SynthesisParams.unpack(r["params"]).language == Language.EN
    status, settle_after, commitment = router.requestState(req[0])
    assert status == Status.PENDING and settle_after == 0
    assert commitment[:26] == router.hashRequest(req)[:26]
    assert router.balance == MIN_STAKE + OPERATOR_FEE + 5
    assert router.creditOf(actors.buyer, ETH) == 5  # the excess is credited back


def test_pay_per_use_escrows_the_use_price_too(market, router, ppu, actors):
    model, license_id = ppu
    with reverts(router.Router_WrongPayment, expected=10**15 + OPERATOR_FEE, sent=OPERATOR_FEE):
        market.request(model, license_id, value=OPERATOR_FEE)
    req, _ = market.request(model, license_id)
    assert dict(zip(vm.REQUEST_FIELDS, req, strict=False))["usePrice"] == 10**15


def test_request_in_erc20_pulls_the_escrow(market, router, licenses, actors, usd):
    model = market.register()
    market.operator(models=[model], fee=250, asset=usd.address)
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, asset=usd.address, price=1_000))
    usd.mint(actors.buyer, 1_250, sender=actors.deployer)
    usd.approve(router, 1_250, sender=actors.buyer)
    with reverts(router.Router_WrongPayment, expected=0, sent=1):
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
        ({"params": 1 << 112}, "Router_NonZeroReservedParams", {"params": 1 << 112}),
        ({"params": 1 | 1 << 88}, "Router_DisputeWindowTooShort", {"window": 0, "minWindow": 1}),
        ({"params": int(Language.JA)}, "Router_LanguageNotSupported", {"language": 2}),
        ({"params": 9}, "Router_LanguageNotSupported", {"language": 9}),
        ({"maxFee": OPERATOR_FEE - 1}, "Router_FeeAboveMax", {"fee": OPERATOR_FEE, "maxFee": OPERATOR_FEE - 1}),
    ],
)
def test_malformed_requests_revert(market, router, served, actors, change, error, args):
    model, license_id = served
    p = {**market.request_params(model, license_id), **change}
    with reverts(getattr(router, error), **args):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)


def test_deadline_must_be_within_a_day(market, router, served, actors):
    model, license_id = served
    p = market.request_params(model, license_id, deadline_in=86_400 + 10)
    with reverts(router.Router_DeadlineOutOfRange, deadline=p["deadline"]):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)


def test_requests_need_a_license_for_text_to_speech(market, router, licenses, served, actors):
    model, license_id = served
    p = market.request_params(model, license_id)
    with reverts(licenses.Licensing_NotLicenseHolder, licenseId=license_id, account=actors.other.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.other)
    no_tts = market.buy(market.publish(model, permissions=int(Action.DERIVATION), prohibitions=0))
    with reverts(licenses.Licensing_ActionNotPermitted, licenseId=no_tts, actions=1):
        router.requestSynthesis(market.request_params(model, no_tts), value=OPERATOR_FEE, sender=actors.buyer)


def test_requests_name_a_serving_operator(market, router, served, actors):
    model, license_id = served
    p = market.request_params(model, license_id, operator=actors.other)
    with reverts(router.Router_OperatorNotRegistered, operator=actors.other.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)
    market.operator(actors.other)  # registered but not allowed for this model
    with reverts(router.Router_OperatorNotAllowed, modelId=model, operator=actors.other.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)
    router.startUnbonding(sender=actors.operator)
    p = market.request_params(model, license_id)
    with reverts(router.Router_OperatorUnbonding, operator=actors.operator.address):
        router.requestSynthesis(p, value=OPERATOR_FEE, sender=actors.buyer)


def test_the_buyer_sets_a_floor_on_the_dispute_window(market, router, registry, ppu, actors):
    """params bits 88..111: the shortest window the buyer accepts; the request records the model's."""
    model, license_id = ppu
    with reverts(router.Router_DisputeWindowTooShort, window=3600, minWindow=3601):
        market.request(model, license_id, min_dispute_window=3601)
    req, _ = market.request(model, license_id, min_dispute_window=3600)
    assert dict(zip(vm.REQUEST_FIELDS, req, strict=False))["disputeWindow"] == 3600
    fields = dict(zip(vm.REQUEST_FIELDS, req, strict=True))
    assert vm.SynthesisParams.unpack(fields["params"]).min_dispute_window == 3600


def test_pause_stops_requests_only(market, router, served, actors, chain):
    model, license_id = served
    pending, _ = market.request(model, license_id, deadline_in=100)
    router.pause(sender=actors.deployer)
    with reverts(router.EnforcedPause):
        market.request(model, license_id)
    chain.pending_timestamp += 200
    router.cancelExpired(pending, sender=actors.keeper)  # refunds work while paused
    router.withdraw(ETH, sender=actors.buyer)  # so do withdrawals
    with reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
        router.unpause(sender=actors.other)
    router.unpause(sender=actors.deployer)
    market.request(model, license_id)


def test_a_paused_license_manager_stops_requests_but_not_refunds(market, router, licenses, served, actors, chain):
    model, license_id = served
    pending, _ = market.request(model, license_id, deadline_in=100)
    licenses.pause(sender=actors.deployer)
    with reverts(router.EnforcedPause):
        market.request(model, license_id)
    router.fail(pending, int(FailReason.SYNTHESIS_ERROR), sender=actors.operator)
    assert router.creditOf(actors.buyer, ETH) == OPERATOR_FEE


# ---------------------------------------------------------------- fulfilling


def test_fulfil_pays_out_at_once_with_a_zero_window(market, router, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    receipt = router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    event = receipt.events.filter(router.SynthesisFulfilled)[0]
    assert (event.requestId, event.operator, event.outputDigest, event.outputCid) == (
        req[0],
        actors.operator,
        OUT_DIGEST,
        OUT_CID,
    )
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE
    with reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.SETTLED)):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)


def test_fulfil_is_for_the_assigned_operator_with_the_committed_request(market, router, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    market.operator(actors.other, models=[model])
    with reverts(router.Router_NotAssignedOperator, requestId=req[0], caller=actors.other.address):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.other)
    forged = list(req)
    forged[vm.REQUEST_FIELDS.index("fee")] = OPERATOR_FEE * 10
    with reverts(router.Router_CommitmentMismatch, requestId=req[0]):
        router.fulfil(tuple(forged), OUT_DIGEST, OUT_CID, sender=actors.operator)
    unknown = list(req)
    unknown[0] = 999
    with reverts(router.Router_UnknownRequest, requestId=999):
        router.fulfil(tuple(unknown), OUT_DIGEST, OUT_CID, sender=actors.operator)
    with reverts(router.Router_EmptyOutput):
        router.fulfil(req, OUT_DIGEST, b"", sender=actors.operator)
    with reverts(router.Router_EmptyOutput):
        router.fulfil(req, bytes(32), OUT_CID, sender=actors.operator)
    with reverts(router.Router_OperatorNotRegistered, operator=actors.keeper.address):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.keeper)


def test_fulfil_after_the_deadline_reverts(market, router, served, actors, chain):
    model, license_id = served
    req, _ = market.request(model, license_id, deadline_in=100)
    deadline = dict(zip(vm.REQUEST_FIELDS, req, strict=False))["deadline"]
    chain.pending_timestamp = deadline + 1
    with reverts(router.Router_RequestExpired, requestId=req[0], deadline=deadline):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)


def test_a_frozen_model_cannot_be_delivered(market, router, registry, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    registry.freeze(model, b"\x00" * 32, sender=actors.arbiter)
    with reverts(router.Router_ModelFrozen, modelId=model):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    with reverts(router.Router_ModelFrozen, modelId=model):
        router.fulfilBatch([(req, OUT_DIGEST, OUT_CID)], sender=actors.operator)
    router.fail(req, int(FailReason.MODEL_UNAVAILABLE), sender=actors.operator)  # it may still refund
    assert router.creditOf(actors.buyer, ETH) == OPERATOR_FEE


def test_a_retired_model_is_not_delivered_after_its_service_ends(market, router, registry, served, actors, chain):
    """Delivery re-checks the end of service: after it the operator fails (or the request expires)."""
    model, license_id = served
    ends = registry.retire(model, sender=actors.creator).events.filter(registry.ModelRetired)[0].serviceEndsAt
    chain.pending_timestamp = ends - 100
    req, _ = market.request(model, license_id, deadline_in=1000)
    chain.pending_timestamp = ends
    with reverts(router.Router_ServiceEnded, modelId=model, serviceEndsAt=ends):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    with reverts(router.Router_ServiceEnded, modelId=model, serviceEndsAt=ends):
        router.fulfilBatch([(req, OUT_DIGEST, OUT_CID)], sender=actors.operator)
    router.fail(req, int(FailReason.MODEL_UNAVAILABLE), sender=actors.operator)
    assert router.creditOf(actors.buyer, ETH) == OPERATOR_FEE


def test_disallowing_an_operator_takes_the_retirement_notice(market, router, served, actors, chain):
    """setOperatorAllowed(false): requests may still name the operator with a deadline up to
    now + notice; deliveries are not re-checked; allowing again lifts the removal."""
    model, license_id = served
    req, _ = market.request(model, license_id)
    receipt = router.setOperatorAllowed(model, actors.operator, False, sender=actors.creator)
    until = receipt.timestamp + NOTICE
    event = receipt.events.filter(router.ModelOperatorSet)[0]
    assert (event.modelId, event.operator, event.allowed, event.allowedUntil) == (model, actors.operator, False, until)
    assert not router.isOperatorAllowed(model, actors.operator)
    assert router.operatorAllowedUntil(model, actors.operator) == until and router.canServe(model, actors.operator)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    # Disallowing again never pushes the end further out.
    chain.pending_timestamp += DAY
    router.setOperatorAllowed(model, actors.operator, False, sender=actors.creator)
    assert router.operatorAllowedUntil(model, actors.operator) == until
    chain.pending_timestamp = until - DAY
    late, _ = market.request(model, license_id, deadline_in=DAY)  # deadline == until: still allowed
    router.fulfil(late, OUT_DIGEST, OUT_CID, sender=actors.operator)
    chain.pending_timestamp = until - DAY + 10
    with reverts(router.Router_OperatorNotAllowed, modelId=model, operator=actors.operator.address):
        market.request(model, license_id, deadline_in=DAY)
    chain.mine()
    assert not router.canServe(model, actors.operator)  # a full request lifetime no longer fits
    receipt = router.setOperatorAllowed(model, actors.operator, True, sender=actors.creator)
    assert receipt.events.filter(router.ModelOperatorSet)[0].allowedUntil == 2**40 - 1
    assert router.isOperatorAllowed(model, actors.operator) and router.canServe(model, actors.operator)
    market.request(model, license_id, deadline_in=DAY)
    assert router.operatorAllowedUntil(model, actors.other) == 0


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
    assert router.creditOf(actors.operator, ETH) == 3 * OPERATOR_FEE
    with reverts(router.Router_EmptyBatch):
        router.fulfilBatch([], sender=actors.operator)


def test_batch_with_a_foreign_request_reverts_whole(market, router, served, actors):
    model, license_id = served
    market.operator(actors.other, models=[model])
    mine, _ = market.request(model, license_id)
    theirs, _ = market.request(model, license_id, operator=actors.other)
    with reverts(router.Router_NotAssignedOperator, requestId=theirs[0], caller=actors.operator.address):
        router.fulfilBatch([(mine, OUT_DIGEST, OUT_CID), (theirs, OUT_DIGEST, OUT_CID)], sender=actors.operator)
    assert router.requestStatus(mine[0]) == Status.PENDING


# ---------------------------------------------------------------- failures, expiry, refunds


def test_fail_refunds_in_full_and_gives_the_use_back(market, router, licenses, actors):
    model = market.register()
    market.operator(models=[model])
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, price=10**15, max_uses=1))
    req, _ = market.request(model, license_id)
    assert licenses.isLicensed(license_id, actors.buyer, model, 1) == (False, 0)
    with reverts(router.Router_NotAssignedOperator, requestId=req[0], caller=actors.other.address):
        router.fail(req, int(FailReason.BAD_INPUT), sender=actors.other)
    receipt = router.fail(req, int(FailReason.TEXT_TOO_LONG), sender=actors.operator)
    assert receipt.events.filter(router.SynthesisFailed)[0].reason == int(FailReason.TEXT_TOO_LONG)
    assert router.creditOf(actors.buyer, ETH) == 10**15 + OPERATOR_FEE
    assert licenses.isLicensed(license_id, actors.buyer, model, 1) == (True, 1)
    with reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.FAILED)):
        router.fail(req, 0, sender=actors.operator)
    with reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.FAILED)):
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)


def test_fail_after_the_deadline_leaves_it_to_expiry(market, router, served, actors, chain):
    model, license_id = served
    req, _ = market.request(model, license_id, deadline_in=100)
    chain.pending_timestamp += 200
    with reverts(router.Router_RequestExpired, requestId=req[0]):
        router.fail(req, 0, sender=actors.operator)


def test_anyone_cancels_after_the_deadline_and_the_buyer_gets_everything_back(market, router, ppu, actors, chain):
    model, license_id = ppu
    req, _ = market.request(model, license_id, deadline_in=100)
    deadline = dict(zip(vm.REQUEST_FIELDS, req, strict=False))["deadline"]
    with reverts(router.Router_NotExpired, requestId=req[0], deadline=deadline):
        router.cancelExpired(req, sender=actors.keeper)
    chain.pending_timestamp = deadline + 1
    receipt = router.cancelExpired(req, sender=actors.keeper)
    assert receipt.events.filter(router.SynthesisExpired)[0].caller == actors.keeper
    assert router.creditOf(actors.buyer, ETH) == 10**15 + OPERATOR_FEE
    before = actors.buyer.balance
    fees = router.withdraw(ETH, sender=actors.buyer).total_fees_paid
    assert actors.buyer.balance == before + 10**15 + OPERATOR_FEE - fees
    with reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.EXPIRED)):
        router.cancelExpired(req, sender=actors.keeper)


# ---------------------------------------------------------------- disputes and settlement


def skipped(router, receipt) -> list[tuple[int, int]]:
    return [(e.requestId, e.status) for e in receipt.events.filter(router.SettlementSkipped)]


def test_payout_waits_for_the_dispute_window(market, router, ppu, actors, chain):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    receipt = router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    settle_after = receipt.events.filter(router.SynthesisFulfilled)[0].settleAfter
    assert settle_after == receipt.timestamp + 3600
    assert router.requestState(req[0])[:2] == (Status.FULFILLED, settle_after)
    assert router.creditOf(actors.operator, ETH) == 0
    # In its window, a settlement skips it.
    assert router.settle.call([req], sender=actors.keeper) == 0
    receipt = router.settle([req], sender=actors.keeper)
    assert skipped(router, receipt) == [(req[0], Status.FULFILLED)]
    assert not receipt.events.filter(router.SynthesisSettled)
    assert router.requestStatus(req[0]) == Status.FULFILLED and router.creditOf(actors.operator, ETH) == 0
    chain.pending_timestamp = settle_after
    with reverts(router.Router_DisputeWindowClosed, requestId=req[0], settleAfter=settle_after):
        router.dispute(req, sender=actors.buyer)
    assert router.settle.call([req], sender=actors.keeper) == 1
    receipt = router.settle([req], sender=actors.keeper)
    assert receipt.events.filter(router.SynthesisSettled)[0].requestId == req[0] and not skipped(router, receipt)
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE
    assert router.potOf(model, ETH) == (8 * 10**14, 2 * 10**14)
    receipt = router.settle([req], sender=actors.keeper)  # settled already: skipped, paid once
    assert skipped(router, receipt) == [(req[0], Status.SETTLED)]
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE
    with reverts(router.Router_EmptyBatch):
        router.settle([], sender=actors.keeper)


def test_settle_still_refuses_unknown_or_forged_requests(market, router, ppu, actors):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    forged = list(req)
    forged[vm.REQUEST_FIELDS.index("fee")] = 1
    with reverts(router.Router_CommitmentMismatch, requestId=req[0]):
        router.settle([tuple(forged)], sender=actors.keeper)
    unknown = list(req)
    unknown[0] = 999
    with reverts(router.Router_UnknownRequest, requestId=999):
        router.settle([req, tuple(unknown)], sender=actors.keeper)


BOND = 10**15


def test_a_dispute_posts_the_bond(market, router, ppu, actors):
    model, license_id = ppu
    router.setDisputeBond(BOND, sender=actors.deployer)
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    with reverts(router.Router_WrongPayment, expected=BOND, sent=0):
        router.dispute(req, sender=actors.buyer)
    with reverts(router.Router_WrongPayment, expected=BOND, sent=BOND + 1):
        router.dispute(req, value=BOND + 1, sender=actors.buyer)
    balance = router.balance
    receipt = router.dispute(req, value=BOND, sender=actors.buyer)
    event = receipt.events.filter(router.SynthesisDisputed)[0]
    decide_by = receipt.timestamp + 7 * DAY
    assert (event.requestId, event.requester, event.bond, event.decideBy) == (req[0], actors.buyer, BOND, decide_by)
    assert router.requestState(req[0])[:2] == (Status.DISPUTED, decide_by)
    assert router.disputeBondOf(req[0]) == BOND and router.balance == balance + BOND
    # A later change of the bond does not change this dispute's.
    router.setDisputeBond(0, sender=actors.deployer)
    router.resolveDispute(req, True, sender=actors.arbiter)
    assert router.disputeBondOf(req[0]) == 0
    assert router.creditOf(actors.buyer, ETH) == 10**15 + OPERATOR_FEE + SLASH + BOND


def test_upheld_dispute_refunds_and_slashes_to_the_buyer(market, router, licenses, ppu, actors):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    with reverts(router.Router_NotRequester, requestId=req[0], caller=actors.other.address):
        router.dispute(req, sender=actors.other)
    router.dispute(req, sender=actors.buyer)  # the deployment's bond is 0
    assert router.operatorInfo(actors.operator).openDisputes == 1
    role = router.ARBITER_ROLE()
    with reverts(router.AccessControlUnauthorizedAccount, account=actors.buyer.address, neededRole=role):
        router.resolveDispute(req, True, sender=actors.buyer)
    receipt = router.resolveDispute(req, True, sender=actors.arbiter)
    event = receipt.events.filter(router.DisputeResolved)[0]
    assert (event.requestId, event.arbiter, event.upheld, event.slashed) == (req[0], actors.arbiter, True, SLASH)
    assert router.requestStatus(req[0]) == Status.REVERSED
    assert router.creditOf(actors.buyer, ETH) == 10**15 + OPERATOR_FEE + SLASH
    info = router.operatorInfo(actors.operator)
    assert info.stake == MIN_STAKE - SLASH and info.openDisputes == 0
    # Below the minimum stake, the operator can deliver nothing until it adds stake.
    with reverts(router.Router_StakeBelowMinimum, operator=actors.operator.address):
        market.request(model, license_id)
    router.addStake(value=SLASH, sender=actors.operator)
    market.request(model, license_id)


def test_rejected_dispute_pays_out_and_its_bond_goes_to_the_operator(market, router, ppu, actors):
    model, license_id = ppu
    router.setDisputeBond(BOND, sender=actors.deployer)
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, value=BOND, sender=actors.buyer)
    receipt = router.settle([req], sender=actors.keeper)  # the arbiter's time is not over: skipped
    assert skipped(router, receipt) == [(req[0], Status.DISPUTED)]
    router.resolveDispute(req, False, sender=actors.arbiter)
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE + BOND
    assert router.creditOf(actors.buyer, ETH) == 0 and router.disputeBondOf(req[0]) == 0
    assert router.operatorInfo(actors.operator).openDisputes == 0
    with reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.SETTLED)):
        router.resolveDispute(req, True, sender=actors.arbiter)


def test_an_undecided_dispute_lapses_after_the_arbitration_period(market, router, ppu, actors, chain):
    model, license_id = ppu
    router.setDisputeBond(BOND, sender=actors.deployer)
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    decide_by = router.dispute(req, value=BOND, sender=actors.buyer).events.filter(router.SynthesisDisputed)[0].decideBy
    chain.pending_timestamp = decide_by - 1
    assert skipped(router, router.settle([req], sender=actors.keeper)) == [(req[0], Status.DISPUTED)]
    chain.pending_timestamp = decide_by
    receipt = router.settle([req], sender=actors.keeper)
    assert receipt.events.filter(router.DisputeLapsed)[0].requestId == req[0]
    assert router.requestStatus(req[0]) == Status.SETTLED
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE
    assert router.creditOf(actors.buyer, ETH) == BOND  # the bond back
    assert router.potOf(model, ETH) == (8 * 10**14, 2 * 10**14)
    assert router.operatorInfo(actors.operator).openDisputes == 0 and router.disputeBondOf(req[0]) == 0
    with reverts(router.Router_WrongStatus, requestId=req[0], status=int(Status.SETTLED)):
        router.resolveDispute(req, True, sender=actors.arbiter)


def test_slash_never_exceeds_the_stake(market, router, ppu, actors):
    """The slash is at most minStake; an operator whose stake is below it (the minimum was raised
    after its delivery) loses at most its stake."""
    model, license_id = ppu
    with reverts(router.Router_SlashTooHigh, slashAmount=MIN_STAKE + 1, minStake=MIN_STAKE):
        router.setSlashAmount(MIN_STAKE + 1, sender=actors.deployer)
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    router.setMinStake(10 * MIN_STAKE, sender=actors.deployer)
    router.setSlashAmount(10 * MIN_STAKE, sender=actors.deployer)
    router.resolveDispute(req, True, sender=actors.arbiter)
    assert router.operatorInfo(actors.operator).stake == 0
    assert router.creditOf(actors.buyer, ETH) == 10**15 + OPERATOR_FEE + MIN_STAKE


# ---------------------------------------------------------------- operators


def test_registration_checks_the_public_key_and_stake(router, actors):
    key = public_key(actors.operator)
    with reverts(router.Router_BadPublicKeyLength, length=65):
        router.registerOperator(b"\x04" + key, value=MIN_STAKE, sender=actors.operator)
    with reverts(router.Router_PublicKeyMismatch, caller=actors.other.address):
        router.registerOperator(key, value=MIN_STAKE, sender=actors.other)
    with reverts(router.Router_StakeTooLow, sent=MIN_STAKE - 1, minStake=MIN_STAKE):
        router.registerOperator(key, value=MIN_STAKE - 1, sender=actors.operator)
    receipt = router.registerOperator(key, value=MIN_STAKE, sender=actors.operator)
    assert receipt.events.filter(router.OperatorRegistered)[0].publicKey == key
    assert router.operatorPublicKey(actors.operator) == key
    assert router.operatorInfo(actors.operator) == (MIN_STAKE, 0, 0, True)
    with reverts(router.Router_OperatorAlreadyRegistered, operator=actors.operator.address):
        router.registerOperator(key, value=MIN_STAKE, sender=actors.operator)
    assert router.operatorPublicKey(actors.other) == b""


def test_unbonding_then_withdrawing_the_stake(market, router, ppu, actors, chain):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    with reverts(router.Router_OperatorNotUnbonding, operator=actors.operator.address):
        router.withdrawStake(sender=actors.operator)
    ends = router.startUnbonding(sender=actors.operator).events.filter(router.UnbondingStarted)[0].unbondingEndsAt
    assert not router.canServe(model, actors.operator)
    with reverts(router.Router_OperatorUnbonding, operator=actors.operator.address, unbondingEndsAt=ends):
        router.startUnbonding(sender=actors.operator)
    with reverts(router.Router_StakeLocked, operator=actors.operator.address, unbondingEndsAt=ends):
        router.withdrawStake(sender=actors.operator)
    chain.pending_timestamp = ends
    with reverts(router.Router_OpenDisputes, operator=actors.operator.address, openDisputes=1):
        router.withdrawStake(sender=actors.operator)
    router.resolveDispute(req, False, sender=actors.arbiter)
    assert router.creditOf(actors.operator, ETH) == OPERATOR_FEE
    before = actors.operator.balance
    receipt = router.withdrawStake(sender=actors.operator)
    assert actors.operator.balance == before + MIN_STAKE - receipt.total_fees_paid
    assert not router.operatorInfo(actors.operator).registered
    with reverts(router.Router_OperatorNotRegistered, operator=actors.operator.address):
        router.withdrawStake(sender=actors.operator)


def test_an_unbonding_operator_still_delivers_what_it_was_given(market, router, served, actors):
    model, license_id = served
    req, _ = market.request(model, license_id)
    router.startUnbonding(sender=actors.operator)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    assert router.requestStatus(req[0]) == Status.SETTLED


def test_operator_settings(market, router, actors, usd):
    model = market.register()
    with reverts(router.Router_OperatorNotRegistered, operator=actors.other.address):
        router.setFee(ETH, 1, sender=actors.other)
    with reverts(router.Router_OperatorNotRegistered, operator=actors.other.address):
        router.addStake(value=1, sender=actors.other)
    market.operator(fee=0)
    router.setFee(usd, 77, sender=actors.operator)
    assert router.operatorFee(actors.operator, usd) == 77 and router.operatorFee(actors.operator, ETH) == 0
    with reverts(router.Router_ZeroAmount):
        router.addStake(sender=actors.operator)
    with reverts(router.Router_NotModelOwner, modelId=model, caller=actors.other.address):
        router.setOperatorAllowed(model, actors.operator, True, sender=actors.other)
    router.setOperatorAllowed(model, actors.operator, True, sender=actors.creator)
    assert router.isOperatorAllowed(model, actors.operator) and router.canServe(model, actors.operator)


def test_administration(router, registry, licenses, actors):
    for call in (router.setMinStake, router.setSlashAmount, router.setDisputeBond):
        with reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
            call(1, sender=actors.other)
    with reverts(router.AccessControlUnauthorizedAccount, account=actors.other.address):
        router.pause(sender=actors.other)
    max_stake, max_bond = 1_000 * 10**18, 10**18
    assert (router.MAX_MIN_STAKE(), router.MAX_DISPUTE_BOND(), router.ARBITRATION_PERIOD()) == (
        max_stake,
        max_bond,
        7 * DAY,
    )
    with reverts(router.Router_MinStakeTooHigh, minStake=max_stake + 1, max=max_stake):
        router.setMinStake(max_stake + 1, sender=actors.deployer)
    with reverts(router.Router_DisputeBondTooHigh, bond=max_bond + 1, max=max_bond):
        router.setDisputeBond(max_bond + 1, sender=actors.deployer)
    receipt = router.setDisputeBond(max_bond, sender=actors.deployer)
    assert receipt.events.filter(router.DisputeBondSet)[0].bond == max_bond and router.disputeBond() == max_bond
    # Lowering the minimum stake below the slash lowers the slash with it.
    receipt = router.setMinStake(5, sender=actors.deployer)
    assert [e.slashAmount for e in receipt.events.filter(router.SlashAmountSet)] == [5]
    assert (router.minStake(), router.slashAmount()) == (5, 5)
    with reverts(router.Router_SlashTooHigh, slashAmount=6, minStake=5):
        router.setSlashAmount(6, sender=actors.deployer)
    router.setSlashAmount(4, sender=actors.deployer)
    assert router.slashAmount() == 4
    assert router.unbondingDelay() == 8 * 86_400
    assert router.MAX_INPUT_BYTES() == 512 and router.MAX_TTL() == 86_400
    assert router.registry() == registry.address and router.licenseManager() == licenses.address


def test_unbonding_delay_must_cover_requests_and_disputes(project, actors, registry, licenses, router):
    with reverts(router.Router_UnbondingDelayTooShort, delay=86_400, shortest=8 * 86_400):
        actors.deployer.deploy(project.SynthesisRouter, actors.deployer, registry, licenses, 1, 1, 86_400)


def test_the_constructor_bounds_stake_and_slash(project, actors, registry, licenses, router):
    with reverts(router.Router_MinStakeTooHigh, minStake=1_001 * 10**18, max=1_000 * 10**18):
        actors.deployer.deploy(project.SynthesisRouter, actors.deployer, registry, licenses, 1_001 * 10**18, 0, 8 * DAY)
    with reverts(router.Router_SlashTooHigh, slashAmount=2, minStake=1):
        actors.deployer.deploy(project.SynthesisRouter, actors.deployer, registry, licenses, 1, 2, 8 * DAY)


def test_platform_fees_and_the_ledger_on_the_router(market, router, ppu, actors):
    model, license_id = ppu
    req, _ = market.request(model, license_id)
    router.fulfil(req, OUT_DIGEST, OUT_CID, sender=actors.operator)
    router.dispute(req, sender=actors.buyer)
    router.resolveDispute(req, False, sender=actors.arbiter)
    router.distribute(model, ETH, sender=actors.other)
    assert router.platformBalance(ETH) == 2 * 10**14
    router.withdrawPlatformFees(ETH, actors.treasurer, sender=actors.treasurer)
    assert router.platformBalance(ETH) == 0

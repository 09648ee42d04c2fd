"""Keeping the market moving: the rules a keeper follows, and the commands built on them.

A keeper (``python -m oracle keeper``, see oracle/keeper.py and docs/oracle.md) does three things
that would otherwise wait for someone to care: it renews subscriptions whose holders agreed to
it, settles deliveries whose dispute window closed (and lets disputes the arbiter left undecided
lapse), and cancels requests past their deadline so that their buyers are refunded. The rules
are plain functions of what the chain says, the very checks the contracts make
(``LicenseManager._extend`` and ``_checkPaidUntil``, ``SynthesisRouter.settle`` and
``cancelExpired``), so that a keeper sends nothing the chain would refuse and a command can say
*why* something is not due:

- :func:`renewal_refusal`: why a keeper may not (or will not) renew a subscription now; None if it may;
- :func:`settlement_due`, :func:`expiry_due`: whether ``settle`` / ``cancelExpired`` would act now;
- :func:`not_settleable`: the sentence for a request ``settle`` would skip.

``now`` is always the timestamp of the block that would carry the transaction (at least the
latest block's plus one).

Then the commands' logic, over Ape (``ape run dispute``, ``settle``, and what ``autorenew`` tells
a holder about keepers): each checks before sending and raises :class:`KeepingError`, which says
what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from voicemarket.errors import KeepingError, SpeechError
from voicemarket.market import chain as vm
from voicemarket.protocol import RequestStatus, Tier, renewal_lead
from voicemarket.units import ETH_ASSET, format_amount, format_time

SETTLE_BATCH = 50
"""Requests per ``settle`` transaction sent by the ``settle`` command."""


# ---------------------------------------------------------------- renewals


@dataclass(frozen=True)
class Subscription:
    """Everything a keeper renewal depends on, read from the chain at one block."""

    license_id: int
    holder: str
    auto_renew: bool
    expires_at: int
    offer_id: int
    tier: Tier
    period: int
    price: int
    asset: str
    offer_active: bool
    valid_until: int  # the offer's; 0: none
    asset_allowed: bool  # by the licence manager (always true for ETH)
    model_id: int
    model_exists: bool
    model_frozen: bool
    service_ends_at: int  # 0 unless the model was retired
    notice: int  # the registry's retirement notice in force
    allowance: int = 0  # ERC-20: what the holder lets the licence manager take
    balance: int = 0  # ERC-20: the holder's balance

    @property
    def is_eth(self) -> bool:
        return int(self.asset, 16) == 0

    @property
    def due_at(self) -> int:
        """From when a keeper may renew it: min(1 day, period) before it expires."""
        return self.expires_at - renewal_lead(self.period)


@dataclass(frozen=True)
class Refusal:
    """Why a subscription is not renewed by a keeper now: a short ``code`` (logs, metrics) and a sentence."""

    code: str
    detail: str

    def __str__(self) -> str:
        return self.detail


QUIET_REFUSALS = frozenset({"auto_renew_off", "not_due"})
"""Refusals that are the normal state of a subscription, not worth a warning in a keeper's log."""


def renewal_refusal(sub: Subscription, now: int) -> Refusal | None:
    """Why a keeper does not renew ``sub`` by one period in a block at time ``now``; None if it does.

    The contract's conditions for a renewal by anyone but the holder, in the order it checks them
    (``_extend``, ``_requireSellable``, ``_checkPaidUntil``, the payment), with this project's
    policy before the payment: an ETH subscription renewed by a keeper is paid by the keeper (the
    contract takes ETH from the caller), so keepers leave those to their holders; an ERC-20 one is
    paid from the holder's allowance and balance, which must cover the price.
    """

    lid = sub.license_id
    end = sub.expires_at + sub.period
    checks = (
        (sub.tier != Tier.SUBSCRIPTION, "not_subscription", f"licence {lid} is not a subscription"),
        (
            not sub.offer_active,
            "offer_inactive",
            f"licence {lid}'s offer {sub.offer_id} was withdrawn: it renews nothing",
        ),
        (
            not sub.asset_allowed,
            "asset_not_allowed",
            f"licence {lid} is paid in {sub.asset}, which the licence manager no longer accepts",
        ),
        (not sub.auto_renew, "auto_renew_off", f"licence {lid}'s holder {sub.holder} has not turned auto-renewal on"),
        (
            now >= sub.expires_at,
            "lapsed",
            f"licence {lid} lapsed at {format_time(sub.expires_at)}: keepers never revive a lapsed subscription; "
            "only its holder can restart it",
        ),
        (now < sub.due_at, "not_due", f"licence {lid} is not due before {format_time(sub.due_at)}"),
        (not sub.model_exists, "model_unavailable", f"licence {lid}'s model {sub.model_id:#x} does not exist"),
        (sub.model_frozen, "model_unavailable", f"licence {lid}'s model {sub.model_id:#x} is frozen by the arbiter"),
        (
            sub.service_ends_at != 0,
            "model_unavailable",
            f"licence {lid}'s model {sub.model_id:#x} was retired (service ends {format_time(sub.service_ends_at)})",
        ),
        (
            sub.valid_until != 0 and end > sub.valid_until,
            "beyond_valid_until",
            f"renewing licence {lid} would run until {format_time(end)}, past its offer's end "
            f"{format_time(sub.valid_until)}",
        ),
        (
            end > now + sub.notice,
            "beyond_notice",
            f"renewing licence {lid} would run until {format_time(end)}, further ahead than the retirement notice "
            f"allows ({format_time(now + sub.notice)})",
        ),
        (
            sub.is_eth,
            "paid_in_eth",
            f"licence {lid} is paid in ETH, which a keeper's renewal takes from the keeper, not the holder: its "
            "holder renews it",
        ),
        (
            not sub.is_eth and sub.allowance < sub.price,
            "allowance",
            f"licence {lid}'s holder {sub.holder} allows the licence manager {sub.allowance} of {sub.asset}, below "
            f"the price of a period ({sub.price})",
        ),
        (
            not sub.is_eth and sub.balance < sub.price,
            "balance",
            f"licence {lid}'s holder {sub.holder} holds {sub.balance} of {sub.asset}, below the price of a period "
            f"({sub.price})",
        ),
    )
    for failed, code, detail in checks:
        if failed:
            return Refusal(code, detail)
    return None


# ---------------------------------------------------------------- requests

SETTLEABLE = (RequestStatus.FULFILLED, RequestStatus.DISPUTED)


def settlement_due(status: int, settle_after: int, now: int) -> bool:
    """Would ``settle`` pay the request out at ``now``? Fulfilled with its dispute window closed, or
    disputed and left undecided past the arbiter's ``decideBy`` (``settle_after`` holds either)."""
    return RequestStatus(status) in SETTLEABLE and now >= settle_after


def expiry_due(status: int, deadline: int, now: int) -> bool:
    """Would ``cancelExpired`` refund the request at ``now``? Still pending past its deadline."""
    return RequestStatus(status) == RequestStatus.PENDING and now > deadline


def not_settleable(request_id: int, status: int, settle_after: int, deadline: int, now: int) -> str | None:
    """Why ``settle`` would skip the request at ``now`` (a sentence); None when it would settle it."""

    status = RequestStatus(status)
    if settlement_due(status, settle_after, now):
        return None
    if status == RequestStatus.NONE:
        return f"there is no request {request_id} on this router"
    if status == RequestStatus.PENDING and now > deadline:
        return (
            f"request {request_id} passed its deadline ({format_time(deadline)}) undelivered: it is refunded "
            "(cancelExpired), not settled"
        )
    if status == RequestStatus.PENDING:
        return (
            f"request {request_id} is not delivered yet (its deadline is {format_time(deadline)}; if it passes "
            "undelivered, the buyer is refunded instead)"
        )
    if status == RequestStatus.FULFILLED:
        return f"request {request_id} is in its dispute window until {format_time(settle_after)}"
    if status == RequestStatus.DISPUTED:
        return (
            f"request {request_id} is disputed: the arbiter decides by {format_time(settle_after)}; settling it "
            "after that lets the dispute lapse"
        )
    if status == RequestStatus.SETTLED:
        return f"request {request_id} is already settled"
    return f"request {request_id} was {status.label} (the buyer was refunded): there is nothing to settle"


# ---------------------------------------------------------------- the commands (over Ape)


@dataclass(frozen=True)
class RequestOnChain:
    """A request as the router holds it now, with its committed struct (which calls pass back)."""

    submitted: Any  # voicemarket.market.speech.SubmittedRequest: the struct, and where it was mined
    status: RequestStatus
    settle_after: int  # Fulfilled: end of the dispute window; Disputed: the arbiter's decideBy; else 0

    @property
    def request_id(self) -> int:
        return self.submitted.request_id

    @property
    def request(self) -> tuple:
        return self.submitted.request

    @property
    def requester(self) -> str:
        return to_checksum_address(str(self.submitted.fields["requester"]))

    def not_settleable(self, now: int) -> str | None:
        return not_settleable(self.request_id, self.status, self.settle_after, self.submitted.deadline, now)


def _now() -> int:
    from voicemarket.market.speech import chain_time

    return chain_time()


def request_on_chain(deployment: Any, request_id: int) -> RequestOnChain:
    """The request's committed struct (from its ``SynthesisRequested`` log) and its state now."""
    from voicemarket.market.speech import find_request

    try:
        found = find_request(deployment.router, request_id, int(getattr(deployment, "start_block", 0) or 0))
    except SpeechError:
        raise KeepingError(
            f"there is no request {request_id} on this deployment's router (`ape run say` printed yours)"
        ) from None
    status, settle_after, _ = deployment.router.requestState(request_id)
    return RequestOnChain(found, RequestStatus(int(status)), int(settle_after))


@dataclass(frozen=True)
class DisputeTerms:
    """What disputing a delivery takes, shown before it is sent."""

    state: RequestOnChain
    bond: int  # wei, posted with the dispute
    arbitration_period: int  # how long the arbiter then has before the dispute lapses (seconds)


def dispute_terms(deployment: Any, account: Any, request_id: int) -> DisputeTerms:
    """Check that ``account`` may dispute the request now, and say what it takes."""
    import ape

    state = request_on_chain(deployment, request_id)
    if state.requester != account.address:
        raise KeepingError(
            f"request {request_id} was made by {state.requester}, not {account.address}: only the "
            "buyer who made it disputes it (use their --account)"
        )
    status = state.status
    if status == RequestStatus.PENDING:
        raise KeepingError(
            f"request {request_id} is not delivered yet: there is nothing to dispute (undelivered by "
            f"{format_time(state.submitted.deadline)}, it is refunded instead)"
        )
    if status == RequestStatus.DISPUTED:
        raise KeepingError(
            f"request {request_id} is already disputed: the arbiter decides by {format_time(state.settle_after)}"
        )
    if status in (RequestStatus.FAILED, RequestStatus.EXPIRED, RequestStatus.REVERSED):
        raise KeepingError(f"request {request_id} was {status.label} and refunded: there is nothing to dispute")
    if status == RequestStatus.SETTLED or _now() >= state.settle_after:
        raise KeepingError(
            f"the dispute window of request {request_id} closed at {format_time(state.settle_after)}: "
            "the delivery can no longer be disputed"
        )
    bond = int(deployment.router.disputeBond())
    balance = int(ape.chain.provider.get_balance(account.address))
    if balance < bond:
        raise KeepingError(
            f"disputing request {request_id} posts a bond of {format_amount(bond, ETH_ASSET)} and "
            f"{account.address} holds {format_amount(balance, ETH_ASSET)}: fund the account first"
        )
    return DisputeTerms(state, bond, int(deployment.router.ARBITRATION_PERIOD()))


@dataclass(frozen=True)
class Dispute:
    request_id: int
    bond: int
    decide_by: int
    tx: str


def dispute(deployment: Any, account: Any, terms: DisputeTerms) -> Dispute:
    """Dispute a delivery on the :func:`dispute_terms` shown, posting the bond."""
    router = deployment.router
    receipt = router.dispute(terms.state.request, value=terms.bond, sender=account)
    log = receipt.events.filter(router.SynthesisDisputed)[0]
    return Dispute(terms.state.request_id, int(log.bond), int(log.decideBy), str(receipt.txn_hash))


@dataclass(frozen=True)
class Settled:
    """One request paid out by ``settle``: the operator's fee and the model's use price it released."""

    request_id: int
    was: RequestStatus
    fee: int
    use_price: int
    asset: str
    lapsed: bool  # a dispute the arbiter left undecided: the bond went back to the buyer
    tx: str


@dataclass(frozen=True)
class Settlement:
    settled: tuple[Settled, ...]
    skipped: tuple[tuple[int, str], ...]  # (request id, why) of what was not settled


def due_requests(deployment: Any, now: int) -> list[RequestOnChain]:
    """Every request of the deployment that ``settle`` would pay out at ``now``, oldest first."""
    from voicemarket.content.multiformats import CID
    from voicemarket.market.licensing import events
    from voicemarket.market.speech import SubmittedRequest

    router = deployment.router
    due = []
    for log in events(router.SynthesisRequested, deployment):
        request_id = int(log.requestId)
        status, settle_after, _ = router.requestState(request_id)
        if settlement_due(int(status), int(settle_after), now):
            data = bytes(log.input)
            submitted = SubmittedRequest(
                request_id,
                vm.request_from_log(log),
                int(log.block_number),
                str(log.transaction_hash),
                None if data[:1] == b"\x00" else CID.from_bytes(data),
            )
            due.append(RequestOnChain(submitted, RequestStatus(int(status)), int(settle_after)))
    return due


def settle(deployment: Any, account: Any, request_ids: Iterable[int] = (), *, all_due: bool = False) -> Settlement:
    """Settle the requests named (and, with ``all_due``, every one that is due), in batches.

    What is not due is reported in ``skipped`` with the reason; nothing is sent for it. Raises
    :class:`KeepingError` when requests were named and none of them can be settled now.
    """
    now = _now()
    named = list(dict.fromkeys(request_ids))
    ready: dict[int, RequestOnChain] = {}
    skipped: list[tuple[int, str]] = []
    for request_id in named:
        state = request_on_chain(deployment, request_id)
        why = state.not_settleable(now)
        if why is None:
            ready[request_id] = state
        else:
            skipped.append((request_id, why))
    if all_due:
        for state in due_requests(deployment, now):
            ready.setdefault(state.request_id, state)
    if not ready:
        if named:
            raise KeepingError("; ".join(why for _, why in skipped) + ": nothing to settle")
        return Settlement((), tuple(skipped))
    router = deployment.router
    settled: list[Settled] = []
    states = list(ready.values())
    for start in range(0, len(states), SETTLE_BATCH):
        batch = states[start : start + SETTLE_BATCH]
        receipt = router.settle([s.request for s in batch], sender=account)
        lapsed = {int(log.requestId) for log in receipt.events.filter(router.DisputeLapsed)}
        by_id = {s.request_id: s for s in batch}
        for log in receipt.events.filter(router.SynthesisSettled):
            state = by_id[int(log.requestId)]
            settled.append(
                Settled(
                    state.request_id,
                    state.status,
                    int(log.fee),
                    int(log.usePrice),
                    state.submitted.asset,
                    state.request_id in lapsed,
                    str(receipt.txn_hash),
                )
            )
        for log in receipt.events.filter(router.SettlementSkipped):  # settled by someone else meanwhile
            skipped.append((int(log.requestId), f"request {int(log.requestId)} was settled by someone else first"))
    return Settlement(tuple(settled), tuple(skipped))


def read_subscription(deployment: Any, license_id: int) -> Subscription:
    """A licence's :class:`Subscription` facts, read through Ape (what a keeper would read)."""
    import ape

    licenses, registry = deployment.licenses, deployment.registry
    if not 0 < license_id < int(licenses.nextLicenseId()):
        raise KeepingError(f"there is no licence {license_id} on this deployment (the buy command printed yours)")
    license = licenses.license(license_id)
    holder = str(licenses.ownerOf(license_id))
    offer = licenses.offer(int(license.offerId))
    terms = offer.terms
    asset = str(terms.asset)
    model = registry.modelTerms(int(terms.modelId))
    allowance = balance = 0
    if int(asset, 16):
        token = ape.project.MockStablecoin.at(asset)  # any ERC-20 answers these two calls
        allowance, balance = int(token.allowance(holder, licenses)), int(token.balanceOf(holder))
    return Subscription(
        license_id=license_id,
        holder=holder,
        auto_renew=bool(license.autoRenew),
        expires_at=int(license.expiresAt),
        offer_id=int(license.offerId),
        tier=Tier(int(terms.tier)),
        period=int(terms.period),
        price=int(terms.price),
        asset=asset,
        offer_active=bool(offer.active),
        valid_until=int(terms.validUntil),
        asset_allowed=not int(asset, 16) or bool(licenses.isAssetAllowed(asset)),
        model_id=int(terms.modelId),
        model_exists=bool(model.exists),
        model_frozen=bool(model.frozen),
        service_ends_at=int(model.serviceEndsAt),
        notice=int(registry.retirementNotice()),
        allowance=allowance,
        balance=balance,
    )


def renewal_outlook(deployment: Any, license_id: int) -> tuple[Subscription, Refusal | None]:
    """The subscription, and why a keeper would not renew it when it is next due (None: it would).

    Judged as if it were due now: what the holder can still change (auto-renewal, allowance,
    balance) and what they cannot (a lapse, the offer, the model, the notice)."""
    sub = read_subscription(deployment, license_id)
    if sub.tier != Tier.SUBSCRIPTION:
        raise KeepingError(f"licence {license_id} is not a subscription: nothing renews it")
    now = _now()
    when = now if now >= sub.expires_at else max(now, sub.due_at)
    return sub, renewal_refusal(sub, when)


def set_auto_renew(
    deployment: Any, holder: Any, license_id: int, on: bool, *, approve_periods: int | None = None
) -> tuple[Subscription, Refusal | None]:
    """The holder turns keeper renewals of ``license_id`` on or off
    (:func:`voicemarket.market.licensing.set_auto_renew`) and, with ``approve_periods``, lets the licence
    manager take that many periods' price for them.
    Returns the subscription and what would stop a keeper when it is next due (:func:`renewal_outlook`).

    Turning it on for a lapsed subscription is refused: keepers never restart one. Already on,
    ``approve_periods`` alone raises the allowance."""
    from voicemarket.market import licensing

    sub = read_subscription(deployment, license_id)
    if sub.tier != Tier.SUBSCRIPTION:
        raise KeepingError(f"licence {license_id} is not a subscription: nothing renews it")
    if approve_periods is not None:
        if not on:
            raise KeepingError("--approve-periods goes with `on`: it lets keepers take the renewals from you")
        _check_approval(sub, approve_periods)
    if on and _now() >= sub.expires_at:
        raise KeepingError(
            f"licence {license_id} lapsed at {format_time(sub.expires_at)}: keepers never restart a "
            f"lapsed subscription; renew it yourself first (`ape run renew {license_id}`), then turn "
            "auto-renewal on"
        )
    if approve_periods is not None and sub.holder != holder.address:
        raise KeepingError(
            f"licence {license_id} is held by {sub.holder}, not {holder.address}: only the holder "
            "turns auto-renewal on and approves its payments (use their --account)"
        )
    if not (on and sub.auto_renew and approve_periods):
        licensing.set_auto_renew(deployment, holder, license_id, on)
    if approve_periods:
        approve_renewals(deployment, holder, sub, approve_periods)
    return renewal_outlook(deployment, license_id)


def approve_renewals(deployment: Any, holder: Any, sub: Subscription, periods: int) -> int:
    """Let the licence manager take ``periods`` renewals of ``sub`` from ``holder``: sets (not adds)
    the holder's ERC-20 allowance to ``periods`` x the price. Returns the new allowance."""
    import ape

    _check_approval(sub, periods)
    amount = sub.price * periods
    ape.project.MockStablecoin.at(sub.asset).approve(deployment.licenses, amount, sender=holder)
    return amount


def _check_approval(sub: Subscription, periods: int) -> None:
    if sub.is_eth:
        raise KeepingError(f"licence {sub.license_id} is paid in ETH: there is no allowance to approve")
    if periods < 1:
        raise KeepingError("--approve-periods must be at least 1")

"""Buyers' side of the market: a model's offers, buying, renewing and cancelling licences.

Offers are published through the offer book (``deployment.offers``), so their ``OfferPublished``
logs come from it; the licences and their state are the licence manager's. A subscription renews
by its holder (any whole number of periods, any time) or, once its holder turned auto-renewal on
(:func:`set_auto_renew`, ``buy(..., auto_renew=True)``), by anyone (a keeper) one period at a
time in its last ``min(1 day, period)``; subscription time is never sold past the offer's
``validUntil`` nor further ahead than the registry's retirement notice.

Each function checks what it can before sending (so a mistake costs no gas and gets a
:class:`LicensingError` that says what to do), then sends the transaction; a revert the checks
did not foresee reaches the caller as Ape's custom-error exception
(:func:`voicemarket.cli.console.explain_revert` words it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicemarket.content.odrl import OfferTerms, PolicySubject, build_policy, policy_hash, terms_from_contract
from voicemarket.errors import LicensingError
from voicemarket.market import chain as vm
from voicemarket.market.assets import asset_info
from voicemarket.protocol import Action, Language, Purpose, Tier, renewal_lead
from voicemarket.units import AssetInfo, format_amount, format_duration, format_time


def events(event: Any, deployment: Any, **topics: Any) -> list[Any]:
    """The logs of ``event`` (an Ape ContractEvent) since the deployment, filtered by indexed ``topics``."""
    import ape

    head = ape.chain.blocks.head.number
    start = int(getattr(deployment, "start_block", 0) or 0)
    return list(event.range(start, head + 1, search_topics=topics or None))


# ---------------------------------------------------------------- offers


@dataclass(frozen=True)
class OfferView:
    """An offer as the ``offers`` table shows it."""

    offer_id: int
    model_id: int
    terms: OfferTerms
    asset: AssetInfo
    active: bool
    sold: int
    publisher: str
    policy_hash: bytes
    policy_matches: bool  # the ODRL document regenerated from the chain hashes to the stored policyHash

    @property
    def tier(self) -> str:
        return Tier(self.terms.tier).label

    @property
    def status(self) -> str:
        import time

        if not self.active:
            return "retired"
        if self.terms.valid_until and self.terms.valid_until < time.time():
            return "expired"
        if self.terms.max_licenses and self.sold >= self.terms.max_licenses:
            return "sold out"
        return "on sale"

    def price_text(self) -> str:
        """The price as the offers table shows it: per period, per use, or once."""
        price = format_amount(self.terms.price, self.asset)
        if self.terms.tier == Tier.SUBSCRIPTION:
            return f"{price} / {format_duration(self.terms.period)}"
        return f"{price} / use" if self.terms.tier == Tier.PAY_PER_USE else price

    def uses_text(self) -> str:
        if self.terms.pack_size:
            pack = format_amount(self.terms.price * self.terms.pack_size, self.asset)
            limit = f", at most {self.terms.max_uses}" if self.terms.max_uses else ""
            return f"packs of {self.terms.pack_size} ({pack}){limit}"
        if not self.terms.max_uses:
            return "unlimited"
        return f"{self.terms.max_uses}" + (" / period" if self.terms.tier == Tier.SUBSCRIPTION else "")

    def cost(self, quantity: int = 1) -> int:
        """What ``buy(offer, quantity)`` charges."""
        if self.terms.tier == Tier.PAY_PER_USE:
            return self.terms.price * self.terms.pack_size * quantity
        return self.terms.price * quantity


def action_names(bits: int) -> str:
    return ", ".join(action.label for action in Action.members_of(bits)) or "-"


def rights_text(terms: OfferTerms) -> str:
    """``+textToSpeech`` / ``+commercialize`` / ``-sublicense``, one a line: permitted and prohibited actions."""
    permitted = [f"+{name}" for name in action_names(terms.permissions).split(", ") if name != "-"]
    prohibited = [f"-{name}" for name in action_names(terms.prohibitions).split(", ") if name != "-"]
    return "\n".join(permitted + prohibited)


def purpose_names(bits: int) -> str:
    return ", ".join(purpose.label for purpose in Purpose.members_of(bits)) or "any"


def territory_names(territories: bytes) -> str:
    return " ".join(territories[i : i + 2].decode() for i in range(0, len(territories), 2)) or "worldwide"


def _view(deployment: Any, log: Any, asset_cache: dict[str, AssetInfo]) -> OfferView:
    import ape

    offer_id = int(log.offerId)
    stored = deployment.licenses.offer(offer_id)
    terms, model_id, stored_hash = terms_from_contract(stored.terms, bytes(log.territories))
    if terms.asset not in asset_cache:
        asset_cache[terms.asset] = asset_info(terms.asset, deployment)
    try:
        document = build_policy(
            terms, PolicySubject(int(ape.chain.chain_id), deployment.registry.address, str(log.publisher), model_id)
        )
        matches = policy_hash(document) == stored_hash
    except ValueError:  # PolicyError among them: terms no document can express do not match
        matches = False
    return OfferView(
        offer_id,
        model_id,
        terms,
        asset_cache[terms.asset],
        bool(stored.active),
        int(stored.sold),
        str(log.publisher),
        stored_hash,
        matches,
    )


def model_offers(deployment: Any, model_id: int) -> list[OfferView]:
    """Every offer published for ``model_id`` (oldest first), read from ``OfferPublished`` and the views."""
    if not deployment.registry.modelTerms(model_id).exists:
        raise LicensingError(
            f"there is no model {model_id:#x} on this deployment: check the id (the mint command printed it)"
        )
    cache: dict[str, AssetInfo] = {}
    return [
        _view(deployment, log, cache) for log in events(deployment.offers.OfferPublished, deployment, modelId=model_id)
    ]


def offer_view(deployment: Any, offer_id: int) -> OfferView:
    logs = events(deployment.offers.OfferPublished, deployment, offerId=offer_id)
    if not logs:
        raise LicensingError(
            f"there is no offer {offer_id} on this deployment: `ape run offers <model id>` lists a model's offers"
        )
    return _view(deployment, logs[0], {})


@dataclass(frozen=True)
class ModelSummary:
    model_id: int
    creator: str
    voice_owner: str
    languages: str
    frozen: bool
    service_ends_at: int
    name: str | None


def model_summary(deployment: Any, model_id: int, store: Any = None) -> ModelSummary:
    """Who made the model and its state; the name from its metadata when ``store`` holds it."""
    info = deployment.registry.modelInfo(model_id)
    languages = ", ".join(lang.label for lang in Language if int(info.languages) >> lang & 1)
    name = None
    if store is not None:
        import json

        try:
            cid = vm.cid_from_chain(deployment.registry.metadataCid(model_id))
            name = json.loads(store.get_bytes(cid, max_bytes=1 << 20)).get("name")
        except Exception:  # noqa: BLE001 - the name is a nicety; the store may not hold the metadata
            name = None
    return ModelSummary(
        model_id, str(info.creator), str(info.voiceOwner), languages, bool(info.frozen), int(info.serviceEndsAt), name
    )


# ---------------------------------------------------------------- buying


def _token(deployment: Any, asset: AssetInfo) -> Any:
    import ape

    if deployment.stablecoin is not None and asset.address == deployment.stablecoin.address:
        return deployment.stablecoin
    return ape.project.MockStablecoin.at(asset.address)  # any ERC-20 answers the calls used here


def check_payment(deployment: Any, payer: Any, asset: AssetInfo, cost: int, *, approve: bool, what: str) -> None:
    """Refuse (or, with ``approve``, fix) a payment that would fail: balance and allowance."""
    import ape

    if asset.is_eth:
        balance = int(ape.chain.provider.get_balance(payer.address))
        if balance < cost:
            raise LicensingError(
                f"{what} costs {format_amount(cost, asset)} and {payer.address} holds "
                f"{format_amount(balance, asset)}: fund the account first"
            )
        return
    token = _token(deployment, asset)
    balance = int(token.balanceOf(payer))
    if balance < cost:
        raise LicensingError(
            f"{what} costs {format_amount(cost, asset)} and {payer.address} holds "
            f"{format_amount(balance, asset)}: get more {asset.symbol} first"
        )
    allowance = int(token.allowance(payer, deployment.licenses))
    if allowance < cost:
        if not approve:
            raise LicensingError(
                f"{what} is paid in {asset.symbol}: the licence manager may take {format_amount(allowance, asset)} "
                f"from {payer.address} but needs {format_amount(cost, asset)}. Approve it: rerun with --approve "
                f"(approves exactly {format_amount(cost, asset)})"
            )
        token.approve(deployment.licenses, cost, sender=payer)


@dataclass(frozen=True)
class Purchase:
    license_id: int
    offer: OfferView
    quantity: int
    paid: int
    expires_at: int
    tx: str
    auto_renew: bool = False


def _now() -> int:
    import ape

    return int(ape.chain.pending_timestamp)


def _check_sellable(deployment: Any, model_id: int, what: str) -> None:
    """Refuse before sending when the model sells nothing (frozen or retired)."""
    terms = deployment.registry.modelTerms(model_id)
    if terms.frozen:
        raise LicensingError(f"model {model_id:#x} is frozen by the arbiter: {what} is not possible while it is")
    if int(terms.serviceEndsAt):
        raise LicensingError(
            f"model {model_id:#x} was retired by its owner (its licences work until "
            f"{format_time(int(terms.serviceEndsAt))}): {what} is not possible"
        )


def subscription_horizon(deployment: Any, offer: OfferView, now: int) -> tuple[int, str]:
    """The latest end a subscription may be paid until now, and what sets it: the offer's
    ``validUntil`` or ``now`` + the registry's retirement notice (time is never sold past either)."""

    notice = int(deployment.registry.retirementNotice())
    latest = now + notice
    why = f"subscription time is sold at most the retirement notice ({format_duration(notice)}) ahead"
    if offer.terms.valid_until and offer.terms.valid_until < latest:
        latest, why = offer.terms.valid_until, f"offer {offer.offer_id} ends then (its valid_until)"
    return latest, why


def _check_paid_until(deployment: Any, offer: OfferView, start: int, periods: int, now: int, what: str) -> None:
    """Refuse ``periods`` from ``start`` when they would end past :func:`subscription_horizon`."""

    latest, why = subscription_horizon(deployment, offer, now)
    end = start + periods * offer.terms.period
    if end <= latest:
        return
    fits = max(0, (latest - start) // offer.terms.period)
    advice = f"at most {fits} period(s) fit now" if fits else "no whole period fits now"
    raise LicensingError(f"{what} would run until {format_time(end)}, past {format_time(latest)}: {why}; {advice}")


def buy(
    deployment: Any,
    buyer: Any,
    offer_id: int,
    *,
    max_price: int,
    quantity: int = 1,
    approve: bool = False,
    auto_renew: bool = False,
) -> Purchase:
    """Buy ``quantity`` (periods or packs; 1 otherwise) of offer ``offer_id`` for at most ``max_price``.

    ``auto_renew`` (subscriptions only): then let keepers renew it, one period at a time when it is
    due, from the buyer's funds (``setAutoRenew``; a bought licence does not auto-renew otherwise).
    """
    offer = offer_view(deployment, offer_id)
    if offer.status != "on sale":
        hint = "`ape run offers " + f"{offer.model_id:#x}` shows the offers still on sale"
        raise LicensingError(f"offer {offer_id} is {offer.status}: it sells nothing; {hint}")
    if quantity < 1:
        raise LicensingError("--quantity must be at least 1")
    if quantity != 1 and not (offer.terms.tier == Tier.SUBSCRIPTION or offer.terms.pack_size):
        raise LicensingError(
            f"a {offer.tier} licence is bought once (quantity 1); quantities are for subscription "
            "periods and pay-per-use packs"
        )
    if auto_renew and offer.terms.tier != Tier.SUBSCRIPTION:
        raise LicensingError(
            f"offer {offer_id} sells a {offer.tier} licence: only subscriptions renew (drop --auto-renew)"
        )
    _check_sellable(deployment, offer.model_id, "buying")
    if offer.terms.tier == Tier.SUBSCRIPTION:
        now = _now()
        _check_paid_until(deployment, offer, now, quantity, now, f"{quantity} period(s) of offer {offer_id}")
    cost = offer.cost(quantity)
    if cost > max_price:
        raise LicensingError(
            f"offer {offer_id} costs {format_amount(cost, offer.asset)} for quantity {quantity}, more "
            f"than your --max-price {format_amount(max_price, offer.asset)}: raise --max-price if "
            "you accept"
        )
    check_payment(deployment, buyer, offer.asset, cost, approve=approve, what=f"offer {offer_id}")
    receipt = deployment.licenses.buy(
        offer_id, max_price, quantity, value=cost if offer.asset.is_eth else 0, sender=buyer
    )
    log = receipt.events.filter(deployment.licenses.LicensePurchased)[0]
    license_id = int(log.licenseId)
    if auto_renew:
        deployment.licenses.setAutoRenew(license_id, True, sender=buyer)
    expires = int(deployment.licenses.license(license_id).expiresAt)
    return Purchase(license_id, offer, quantity, int(log.paid), expires, str(receipt.txn_hash), auto_renew)


@dataclass(frozen=True)
class LicenseState:
    license_id: int
    holder: str
    offer: OfferView
    expires_at: int
    auto_renew: bool  # subscriptions: the holder lets keepers renew it from their funds
    licensed: bool
    uses_left: int


def license_state(deployment: Any, license_id: int) -> LicenseState:
    licenses = deployment.licenses
    if not 0 < license_id < int(licenses.nextLicenseId()):
        raise LicensingError(f"there is no licence {license_id} on this deployment (the buy command printed yours)")
    state = licenses.license(license_id)
    holder = str(licenses.ownerOf(license_id))
    offer = offer_view(deployment, int(state.offerId))
    licensed, uses_left = licenses.isLicensed(license_id, holder, offer.model_id, int(Action.TEXT_TO_SPEECH))
    return LicenseState(
        license_id, holder, offer, int(state.expiresAt), bool(state.autoRenew), bool(licensed), int(uses_left)
    )


def _subscription(deployment: Any, license_id: int) -> LicenseState:
    state = license_state(deployment, license_id)
    if state.offer.terms.tier != Tier.SUBSCRIPTION:
        raise LicensingError(
            f"licence {license_id} is a {state.offer.tier} licence, not a subscription: nothing to renew or cancel"
        )
    return state


def renew(
    deployment: Any,
    payer: Any,
    license_id: int,
    *,
    periods: int = 1,
    max_price: int | None = None,
    approve: bool = False,
) -> LicenseState:
    """Renew subscription ``license_id`` by ``periods`` periods at its offer's price.

    The holder renews any time (a lapsed subscription restarts now) and pays; anyone else (a
    keeper) renews one period, only when the holder turned auto-renewal on, not after it lapsed,
    and only in its last ``min(1 day, period)``.
    """

    state = _subscription(deployment, license_id)
    offer = state.offer
    if periods < 1:
        raise LicensingError("--periods must be at least 1")
    if offer.status in ("retired", "expired"):
        raise LicensingError(
            f"licence {license_id}'s offer {offer.offer_id} is {offer.status}: it renews nothing; "
            f"`ape run offers {offer.model_id:#x}` shows what is on sale"
        )
    _check_sellable(deployment, offer.model_id, f"renewing licence {license_id}")
    now = _now()
    holder = payer.address == state.holder
    if not holder:
        if not state.auto_renew:
            raise LicensingError(
                f"licence {license_id}'s holder {state.holder} has not turned auto-renewal on: only "
                f"the holder can renew it (as its --account), or let keepers renew it with "
                f"`ape run autorenew {license_id} on`"
            )
        if periods != 1:
            raise LicensingError("a keeper (not the holder) renews exactly one period")
        if now >= state.expires_at:
            raise LicensingError(
                f"licence {license_id} lapsed at {format_time(state.expires_at)}: keepers never "
                f"revive a lapsed subscription; only its holder {state.holder} can renew it now"
            )
        due = state.expires_at - renewal_lead(offer.terms.period)
        if now < due:
            raise LicensingError(
                f"licence {license_id} is not due for renewal until {format_time(due)}; only its "
                f"holder {state.holder} may renew earlier"
            )
    start = max(state.expires_at, now)
    _check_paid_until(deployment, offer, start, periods, now, f"renewing licence {license_id} by {periods} period(s)")
    cost = offer.terms.price * periods
    if max_price is not None and cost > max_price:
        raise LicensingError(
            f"renewing {periods} period(s) costs {format_amount(cost, offer.asset)}, more than your "
            f"--max-price {format_amount(max_price, offer.asset)}"
        )
    # An ERC-20 renewal is paid from the holder's allowance, whoever sends it.
    if offer.asset.is_eth or holder:
        check_payment(deployment, payer, offer.asset, cost, approve=approve, what=f"renewing licence {license_id}")
    deployment.licenses.renewSubscription(
        license_id, periods * offer.terms.period, value=cost if offer.asset.is_eth else 0, sender=payer
    )
    return license_state(deployment, license_id)


def _may_act_for(deployment: Any, account: str, license_id: int, holder: str) -> bool:
    """The holder, or an account the holder approved on this licence (or on all of theirs)."""
    licenses = deployment.licenses
    return (
        account == holder
        or str(licenses.getApproved(license_id)) == account
        or bool(licenses.isApprovedForAll(holder, account))
    )


def set_auto_renew(deployment: Any, holder: Any, license_id: int, on: bool = True) -> LicenseState:
    """The holder lets keepers renew subscription ``license_id`` from their funds (``on``), or stops them.

    Keepers then renew one period at a time in its last ``min(1 day, period)``, at the offer's
    price (an ERC-20 subscription from the holder's allowance). A transfer turns it off.
    """
    state = _subscription(deployment, license_id)
    if holder.address != state.holder:
        raise LicensingError(
            f"licence {license_id} is held by {state.holder}, not {holder.address}: only the holder "
            "turns auto-renewal on or off (use their --account)"
        )
    if state.auto_renew == on:
        raise LicensingError(f"licence {license_id} already {'auto-renews' if on else 'does not auto-renew'}")
    deployment.licenses.setAutoRenew(license_id, on, sender=holder)
    return license_state(deployment, license_id)


def cancel(deployment: Any, holder: Any, license_id: int) -> LicenseState:
    """Cancel subscription ``license_id``: auto-renewal off, so no keeper renews it; it works until it expires.

    The holder or an account approved on the licence may cancel."""
    state = _subscription(deployment, license_id)
    if not _may_act_for(deployment, holder.address, license_id, state.holder):
        raise LicensingError(
            f"licence {license_id} is held by {state.holder}, not {holder.address}: "
            "only the holder (or an account it approved) cancels (use their --account)"
        )
    if not state.auto_renew:
        raise LicensingError(
            f"licence {license_id} does not auto-renew (it was never turned on, or was already "
            "cancelled): no keeper renews it; it runs until it expires"
        )
    deployment.licenses.cancelSubscription(license_id, sender=holder)
    return license_state(deployment, license_id)

"""Who earned what: per model, uses by tier, revenue by asset and by party, withdrawable now.

Everything is read from the contracts' events and views (docs/contracts.md, "Money flows"):

- sales: ``RevenueAccrued`` of the licence manager (gross, platform fee) and its undistributed
  pots (``potOf``); per-use revenue: ``RevenueAccrued`` of the router;
- the parties' shares: each ``RevenueDistributed`` (and each pot not yet distributed) split as
  the contract splits it, ``floor(share * bps / 10000)`` per payee of ``revenueSplit`` and the
  rest to the creator, so the figures are exact;
- operator fees: ``SynthesisSettled`` (fee), attributed to a model through its ``SynthesisRequested``;
- uses by tier: ``SynthesisRequested`` per model, the licence's offer's tier, and each request's
  status (delivered, pending, refunded); licences sold by tier: ``LicensePurchased``;
- local use (``KeyDelivery``, issue 19): its ``RevenueAccrued`` / ``RevenueDistributed`` / pots
  count in the model's revenue like the others; apart, per model, local-use licences by status, the
  price still in escrow (pending and delivered, not yet settled) and the buyers' usage reports
  summed (self-reported: docs/local-use.md);
- withdrawable now: ``creditOf`` in each money-holding contract (plus what the account's share
  of the undistributed pots would add: ``withdraw`` distributes them first).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from voicemarket.content.odrl import terms_from_contract
from voicemarket.errors import LicensingError
from voicemarket.market import chain as vm
from voicemarket.market.assets import asset_info
from voicemarket.market.licensing import events
from voicemarket.protocol import ETH, LocalUseStatus, RequestStatus, Tier, split_revenue
from voicemarket.units import AssetInfo

PARTIES = ("creator", "voice owner", "co-creators", "platform", "operators")
REFUNDED = {RequestStatus.FAILED, RequestStatus.EXPIRED, RequestStatus.REVERSED}
DELIVERED = {RequestStatus.SETTLED, RequestStatus.FULFILLED, RequestStatus.DISPUTED}


@dataclass
class Split:
    """A model's revenue split, as ``registry.revenueSplit`` returns it."""

    creator: str
    voice_owner: str
    payees: list[tuple[str, int]]  # (account, bps): the voice owner first when not the creator

    def shares(self, amount: int) -> dict[str, int]:
        """``amount`` (a model share) split as ``RevenueLedger.distribute`` does, per account."""
        return split_revenue(amount, self.creator, self.payees)

    def party_of(self, account: str) -> str:
        if account == self.creator:
            return "creator"
        if account == self.voice_owner:
            return "voice owner"
        return "co-creators"


@dataclass
class LocalUseSummary:
    """A model's local-use licences: how many in each status, the price held in escrow (pending and
    delivered, not settled) per asset, and the usage reports of its licences summed (self-reported)."""

    licenses: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # status label -> count
    escrow: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reports: int = 0
    sentences: int = 0
    audio_seconds: int = 0


@dataclass
class ModelEarnings:
    model_id: int
    split: Split
    licenses_by_tier: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    uses_by_tier: dict[str, dict[str, int]] = field(default_factory=dict)  # tier -> delivered/pending/refunded
    # asset address -> party -> amount (gross and platform included); undistributed shown apart
    revenue: dict[str, dict[str, int]] = field(default_factory=dict)
    undistributed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_account: dict[str, dict[str, int]] = field(default_factory=dict)  # asset -> account -> amount
    local_use: LocalUseSummary | None = None  # None: the deployment has no KeyDelivery

    def add(self, asset: str, party: str, amount: int) -> None:
        row = self.revenue.setdefault(asset, defaultdict(int))
        row[party] += amount

    def add_account(self, asset: str, account: str, amount: int) -> None:
        row = self.by_account.setdefault(asset, defaultdict(int))
        row[account] += amount


@dataclass
class Earnings:
    """The whole report for ``account`` (or for every model when ``account`` is None)."""

    account: str | None
    models: list[ModelEarnings]
    assets: dict[str, AssetInfo]
    withdrawable: dict[str, dict[str, int]]  # asset -> {"sales": licences, "uses": router, "local use": KeyDelivery}
    distributable: dict[str, int]  # asset -> the account's share of undistributed pots
    operator_fees: dict[str, int]  # asset -> fees earned as an operator (settled)


def model_split(deployment: Any, model_id: int) -> Split:
    creator, payees = deployment.registry.revenueSplit(model_id)
    voice_owner, _ = deployment.registry.consentOf(model_id)
    return Split(str(creator), str(voice_owner), [(str(account), int(bps)) for account, bps in payees])


def models_of(deployment: Any, account: str | None) -> list[int]:
    """Models where ``account`` is creator, voice owner or co-creator (all models when None)."""
    registered = [int(log.modelId) for log in events(deployment.registry.ModelRegistered, deployment)]
    if account is None:
        return registered
    return [m for m in registered if account in _parties(model_split(deployment, m))]


def _parties(split: Split) -> set[str]:
    return {split.creator, split.voice_owner, *(a for a, _ in split.payees)}


def _asset(cache: dict[str, AssetInfo], deployment: Any, address: str) -> str:
    if address not in cache:
        cache[address] = asset_info(address, deployment)
    return address


def _ledgers(deployment: Any) -> tuple[Any, ...]:
    """The contracts that keep model revenue: licence manager, router, and KeyDelivery if deployed."""
    key_delivery = getattr(deployment, "key_delivery", None)
    base = (deployment.licenses, deployment.router)
    return base if key_delivery is None else (*base, key_delivery)


def local_use_summary(deployment: Any, model_id: int, assets: dict[str, AssetInfo]) -> LocalUseSummary:
    """``model_id``'s local-use licences, escrow and usage reports (:class:`LocalUseSummary`)."""
    key_delivery = deployment.key_delivery
    summary = LocalUseSummary()
    for log in events(key_delivery.LocalUsePurchased, deployment, modelId=model_id):
        license_id = int(log.licenseId)
        record = key_delivery.localUse(license_id)
        status = LocalUseStatus(int(record.status))
        summary.licenses[status.label] += 1
        if status in (LocalUseStatus.PENDING, LocalUseStatus.DELIVERED):
            asset = _asset(assets, deployment, str(key_delivery.localUseOption(int(record.offerId)).asset))
            summary.escrow[asset] += int(record.amount)
        for usage in events(key_delivery.UsageReported, deployment, licenseId=license_id):
            summary.reports += 1
            summary.sentences += int(usage.sentences)
            summary.audio_seconds += int(usage.audioSeconds)
    return summary


def model_earnings(deployment: Any, model_id: int, assets: dict[str, AssetInfo]) -> ModelEarnings:
    split = model_split(deployment, model_id)
    report = ModelEarnings(model_id, split)
    licenses, router = deployment.licenses, deployment.router

    offers = {
        int(log.offerId): int(terms_from_contract(log.terms)[0].tier)
        for log in events(deployment.offers.OfferPublished, deployment, modelId=model_id)
    }
    for offer_id, tier in offers.items():
        for _ in events(licenses.LicensePurchased, deployment, offerId=offer_id):
            report.licenses_by_tier[Tier(tier).label] += 1

    requests: dict[int, Any] = {}
    for log in events(router.SynthesisRequested, deployment, modelId=model_id):
        request = dict(zip(vm.REQUEST_FIELDS, vm.request_from_log(log), strict=True))
        request_id = int(log.requestId)
        requests[request_id] = request
        tier = Tier(offers.get(int(licenses.offerOf(int(request["licenseId"]))), 0)).label
        status = RequestStatus(int(router.requestStatus(request_id)))
        kind = "delivered" if status in DELIVERED else "refunded" if status in REFUNDED else "pending"
        counts = report.uses_by_tier.setdefault(tier, {"delivered": 0, "pending": 0, "refunded": 0})
        counts[kind] += 1

    for contract in _ledgers(deployment):
        for log in events(contract.RevenueDistributed, deployment, modelId=model_id):
            asset = _asset(assets, deployment, str(log.asset))
            report.add(asset, "platform", int(log.platformFee))
            for account, amount in split.shares(int(log.amount)).items():
                report.add(asset, split.party_of(account), amount)
                report.add_account(asset, account, amount)
        for address in list(assets):
            model_share, platform_share = contract.potOf(model_id, address)
            if model_share or platform_share:
                report.undistributed[address] += int(model_share) + int(platform_share)
                report.add(address, "platform", int(platform_share))
                for account, amount in split.shares(int(model_share)).items():
                    report.add(address, split.party_of(account), amount)
                    report.add_account(address, account, amount)
        for log in events(contract.RevenueAccrued, deployment, modelId=model_id):
            report.add(_asset(assets, deployment, str(log.asset)), "gross", int(log.amount))

    for request_id, request in requests.items():
        for log in events(router.SynthesisSettled, deployment, requestId=request_id):
            asset = _asset(assets, deployment, str(request["asset"]))
            report.add(asset, "operators", int(log.fee))
            report.add_account(asset, str(log.operator), int(log.fee))
    if getattr(deployment, "key_delivery", None) is not None:
        report.local_use = local_use_summary(deployment, model_id, assets)
    return report


def earnings(deployment: Any, account: str | None = None, model_ids: list[int] | None = None) -> Earnings:
    """The report for ``account``'s models (or ``model_ids``), with its withdrawable credits."""
    assets: dict[str, AssetInfo] = {ETH: asset_info(ETH, deployment)}
    if deployment.stablecoin is not None:
        assets[deployment.stablecoin.address] = asset_info(deployment.stablecoin.address, deployment)
    if model_ids:
        for model_id in model_ids:
            if not deployment.registry.modelTerms(model_id).exists:
                raise LicensingError(f"there is no model {model_id:#x} on this deployment")
    ids = model_ids or models_of(deployment, account)
    models = [model_earnings(deployment, m, assets) for m in ids]

    withdrawable: dict[str, dict[str, int]] = {}
    distributable: dict[str, int] = defaultdict(int)
    operator_fees: dict[str, int] = defaultdict(int)
    if account is not None:
        for address in assets:
            credits = dict(zip(("sales", "uses", "local use"), _ledgers(deployment), strict=False))
            amounts = {source: int(contract.creditOf(account, address)) for source, contract in credits.items()}
            if any(amounts.values()):
                withdrawable[address] = amounts
        for model in models:
            for address in assets:
                for contract in _ledgers(deployment):
                    model_share, _ = contract.potOf(model.model_id, address)
                    if model_share:
                        distributable[address] += model.split.shares(int(model_share)).get(account, 0)
        for log in events(deployment.router.SynthesisSettled, deployment, operator=account):
            request_logs = events(deployment.router.SynthesisRequested, deployment, requestId=int(log.requestId))
            asset = str(vm.request_from_log(request_logs[0])[5]) if request_logs else ETH
            operator_fees[_asset(assets, deployment, asset)] += int(log.fee)
    return Earnings(account, models, assets, withdrawable, dict(distributable), dict(operator_fees))


@dataclass(frozen=True)
class Withdrawal:
    asset: AssetInfo
    source: str  # "sales" (licence manager), "uses" (router) or "local use" (KeyDelivery)
    amount: int
    tx: str


def withdraw(
    deployment: Any,
    account: Any,
    *,
    assets: list[AssetInfo] | None = None,
    distribute: bool = True,
) -> tuple[list[tuple[int, str]], list[Withdrawal]]:
    """Distribute the pots of ``account``'s models (unless ``distribute`` is False), then withdraw
    every credit of ``account`` in ``assets`` (default: ETH and the stablecoin) from both contracts.

    Returns (the (model id, asset) pots distributed, the withdrawals made).
    """
    if assets is None:
        assets = [asset_info(ETH, deployment)]
        if deployment.stablecoin is not None:
            assets.append(asset_info(deployment.stablecoin.address, deployment))
    contracts = (("sales", deployment.licenses), ("uses", deployment.router))
    if getattr(deployment, "key_delivery", None) is not None:  # local-use revenue and refunds
        contracts += (("local use", deployment.key_delivery),)
    distributed: list[tuple[int, str]] = []
    if distribute:
        for model_id in models_of(deployment, account.address):
            for asset in assets:
                for _, contract in contracts:
                    if any(int(x) for x in contract.potOf(model_id, asset.address)):
                        contract.distribute(model_id, asset.address, sender=account)
                        distributed.append((model_id, asset.symbol))
    made = []
    for asset in assets:
        for source, contract in contracts:
            credit = int(contract.creditOf(account.address, asset.address))
            if credit:
                receipt = contract.withdraw(asset.address, sender=account)
                made.append(Withdrawal(asset, source, credit, str(receipt.txn_hash)))
    if not made:
        raise LicensingError(
            f"{account.address} has nothing to withdraw (no credit in "
            f"{', '.join(a.symbol for a in assets)}): `ape run earnings` shows what is earned and "
            "what is still pending"
        )
    return distributed, made

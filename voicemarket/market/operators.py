"""Operators' side of the market: register with stake and public key, fees, unbonding, stake back.

Each function checks the router's state first and raises :class:`OperatorError` saying what to
do instead, so a mistake costs no gas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicemarket.errors import OperatorError
from voicemarket.market.minting import account_public_key
from voicemarket.units import ETH_ASSET, AssetInfo, format_amount, format_time


@dataclass(frozen=True)
class OperatorStatus:
    address: str
    registered: bool
    stake: int
    min_stake: int
    unbonding_ends_at: int
    open_disputes: int
    fees: dict[str, int]  # asset symbol -> fee per request (smallest unit)
    public_key: bytes

    @property
    def state(self) -> str:
        if not self.registered:
            return "not registered"
        if self.unbonding_ends_at:
            return "unbonding"
        if self.stake < self.min_stake:
            return "stake below minimum"
        return "active"


def status(deployment: Any, address: str, assets: list[AssetInfo]) -> OperatorStatus:
    router = deployment.router
    info = router.operatorInfo(address)
    fees = {asset.symbol: int(router.operatorFee(address, asset.address)) for asset in assets}
    return OperatorStatus(
        address,
        bool(info.registered),
        int(info.stake),
        int(router.minStake()),
        int(info.unbondingEndsAt),
        int(info.openDisputes),
        fees,
        bytes(router.operatorPublicKey(address)),
    )


def register(deployment: Any, operator: Any, stake: int | None = None) -> int:
    """Register ``operator`` with its public key and ``stake`` wei (default: the minimum); returns the stake."""
    router = deployment.router
    minimum = int(router.minStake())
    if router.operatorInfo(operator.address).registered:
        raise OperatorError(
            f"{operator.address} is already registered: `ape run operator status` shows it; "
            "`ape run operator add-stake` adds stake"
        )
    stake = minimum if stake is None else stake
    if stake < minimum:
        raise OperatorError(
            f"the stake must be at least {format_amount(minimum, ETH_ASSET)} on this deployment, "
            f"got {format_amount(stake, ETH_ASSET)}: raise --stake"
        )
    router.registerOperator(account_public_key(operator), value=stake, sender=operator)
    return stake


def _registered(deployment: Any, operator: Any) -> Any:
    info = deployment.router.operatorInfo(operator.address)
    if not info.registered:
        raise OperatorError(
            f"{operator.address} is not a registered operator on this deployment: `ape run operator register` first"
        )
    return info


def set_fee(deployment: Any, operator: Any, asset: AssetInfo, fee: int) -> None:
    _registered(deployment, operator)
    if fee >= 1 << 128:
        raise OperatorError("the fee does not fit in 128 bits")
    deployment.router.setFee(asset.address, fee, sender=operator)


def add_stake(deployment: Any, operator: Any, amount: int) -> int:
    _registered(deployment, operator)
    if amount <= 0:
        raise OperatorError("--amount must be more than zero")
    deployment.router.addStake(value=amount, sender=operator)
    return int(deployment.router.operatorInfo(operator.address).stake)


def unbond(deployment: Any, operator: Any) -> int:
    """Start unbonding; returns when the stake becomes withdrawable (unix time)."""
    info = _registered(deployment, operator)
    if info.unbondingEndsAt:
        raise OperatorError(
            f"{operator.address} is already unbonding; the stake is withdrawable from "
            f"{format_time(int(info.unbondingEndsAt))} (`ape run operator withdraw-stake`)"
        )
    deployment.router.startUnbonding(sender=operator)
    return int(deployment.router.operatorInfo(operator.address).unbondingEndsAt)


def withdraw_stake(deployment: Any, operator: Any) -> int:
    import ape

    info = _registered(deployment, operator)
    if not info.unbondingEndsAt:
        raise OperatorError(
            "start unbonding first (`ape run operator unbond`); the stake is withdrawable after the unbonding delay"
        )
    if int(ape.chain.pending_timestamp) < int(info.unbondingEndsAt):
        raise OperatorError(
            f"the stake stays slashable until {format_time(int(info.unbondingEndsAt))}: withdraw it after that"
        )
    if info.openDisputes:
        raise OperatorError(f"{info.openDisputes} dispute(s) on your deliveries are open: wait for the arbiter")
    stake = int(info.stake)
    deployment.router.withdrawStake(sender=operator)
    return stake

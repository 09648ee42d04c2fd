"""`ape run operator ...`: for oracle operators.

register --stake 0.1ether [--fee 0.0001ether]   register with your account's public key and a stake
fee --amount 0.0001ether [--asset ETH]          your fee per request in an asset
add-stake --amount 0.05ether                    top the stake up (after a slash)
status                                          registration, stake, fees, unbonding
unbond                                          stop taking new requests; the stake unlocks after the delay
withdraw-stake                                  take the stake back after unbonding
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import amount_in, assets_of, console, deployment, table, user_errors
from voicemarket.market import operators
from voicemarket.market.assets import asset_info
from voicemarket.units import ETH_ASSET, format_amount, format_time


@click.group(short_help="Register as an operator, set fees, unbond, withdraw stake")
def cli() -> None:
    """Commands for oracle operators (each takes --network and --account)."""


def _print_status(account) -> None:  # noqa: ANN001
    market = deployment()
    state = operators.status(market, account.address, assets_of(market))
    grid = table(f"Operator {state.address}", header=False)
    grid.add_row("state", state.state)
    minimum = format_amount(state.min_stake, ETH_ASSET)
    grid.add_row("stake", f"{format_amount(state.stake, ETH_ASSET)} (minimum {minimum})")
    for symbol, fee in state.fees.items():
        asset = next(a for a in assets_of(market) if a.symbol == symbol)
        grid.add_row(f"fee per request ({symbol})", format_amount(fee, asset))
    if state.unbonding_ends_at:
        grid.add_row("stake withdrawable from", format_time(state.unbonding_ends_at))
    grid.add_row("open disputes", str(state.open_disputes))
    if state.public_key:
        grid.add_row("public key", "0x" + state.public_key.hex())
    console().print(grid)


@cli.command(cls=ConnectedProviderCommand, short_help="Register with a stake (and a fee)")
@network_option()
@account_option()
@click.option("--stake", default=None, help="ETH to stake, e.g. '0.1 ether' (default: the minimum)")
@click.option("--fee", default=None, help="fee per request in --fee-asset, e.g. '0.0001 ether'")
@click.option("--fee-asset", default="ETH", show_default=True, help="ETH, stablecoin or a token address")
def register(account, stake: str | None, fee: str | None, fee_asset: str) -> None:  # noqa: ANN001
    with user_errors():
        market = deployment()
        staked = operators.register(market, account, amount_in(stake, ETH_ASSET, "--stake") if stake else None)
        if fee:
            asset = asset_info(fee_asset, market)
            operators.set_fee(market, account, asset, amount_in(fee, asset, "--fee"))
        console().print(f"Registered {account.address} with {format_amount(staked, ETH_ASSET)} staked.")
        _print_status(account)


@cli.command(cls=ConnectedProviderCommand, short_help="Set your fee per request in an asset")
@network_option()
@account_option()
@click.option("--amount", required=True, help="fee per request, e.g. '0.0001 ether' or '0.01 mUSD'")
@click.option("--asset", default="ETH", show_default=True, help="ETH, stablecoin or a token address")
def fee(account, amount: str, asset: str) -> None:  # noqa: ANN001
    with user_errors():
        market = deployment()
        info = asset_info(asset, market)
        operators.set_fee(market, account, info, amount_in(amount, info, "--amount"))
        console().print(f"Fee set: {format_amount(amount_in(amount, info, '--amount'), info)} per request.")


@cli.command("add-stake", cls=ConnectedProviderCommand, short_help="Add ETH to your stake")
@network_option()
@account_option()
@click.option("--amount", required=True, help="ETH to add, e.g. '0.05 ether'")
def add_stake(account, amount: str) -> None:  # noqa: ANN001
    with user_errors():
        total = operators.add_stake(deployment(), account, amount_in(amount, ETH_ASSET, "--amount"))
        console().print(f"Stake is now {format_amount(total, ETH_ASSET)}.")


@cli.command(cls=ConnectedProviderCommand, short_help="Show your registration, stake and fees")
@network_option()
@account_option()
def status(account) -> None:  # noqa: ANN001
    with user_errors():
        _print_status(account)


@cli.command(cls=ConnectedProviderCommand, short_help="Start unbonding (no new requests)")
@network_option()
@account_option()
def unbond(account) -> None:  # noqa: ANN001
    with user_errors():
        ends = operators.unbond(deployment(), account)
        out = console()
        out.print("Unbonding: no new request can name you; deliver or fail what you were given.")
        out.print(f"The stake is withdrawable from {format_time(ends)}: ape run operator withdraw-stake")


@cli.command("withdraw-stake", cls=ConnectedProviderCommand, short_help="Take your stake back after unbonding")
@network_option()
@account_option()
def withdraw_stake(account) -> None:  # noqa: ANN001
    with user_errors():
        amount = operators.withdraw_stake(deployment(), account)
        console().print(
            f"Withdrew {format_amount(amount, ETH_ASSET)} of stake; {account.address} is no longer an operator."
        )

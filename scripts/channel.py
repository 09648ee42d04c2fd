"""`ape run channel open|top-up|close|status`: your payment channel with an operator's speech API.

A channel holds what you prepay an operator's API (ETH or an allow-listed token); each request
there is paid by a voucher your account signs (`ape run say --api URL`). `close` asks for the
unspent rest and, run again after the withdrawal delay, takes it (docs/api.md).
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import amount_in, console, deployment, user_errors
from voicemarket.market import channels
from voicemarket.market.assets import asset_info
from voicemarket.units import format_amount, format_time


def _contract(market):  # noqa: ANN001, ANN202
    return channels.channels_contract(market)


def _show(state: channels.ChannelState, asset) -> None:  # noqa: ANN001
    closing = f", withdrawable from {format_time(state.withdrawable_at)}" if state.withdrawable_at else ""
    console().print(
        f"channel 0x{state.channel.hex()[:16]}… with {state.operator}: {format_amount(state.balance, asset)}{closing}"
    )


@click.group(short_help="Open, top up, close or show your payment channel with an operator's speech API")
def cli() -> None:
    """Payment channels for the operators' speech APIs (docs/api.md)."""


def _deposit(account, operator: str, amount: str, asset_name: str) -> None:  # noqa: ANN001
    with user_errors():
        market = deployment()
        asset = asset_info(asset_name, market)
        contract = _contract(market)
        channels.deposit(contract, account, operator, asset.address, amount_in(amount, asset, "AMOUNT"))
        _show(channels.channel_state(contract, account.address, operator, asset.address), asset)


@cli.command("open", cls=ConnectedProviderCommand, short_help="Open a channel with a deposit")
@network_option()
@account_option()
@click.argument("operator")
@click.argument("amount")
@click.option("--asset", default="ETH", show_default=True, help="ETH, stablecoin or a token address")
def open_(account, operator: str, amount: str, asset: str) -> None:  # noqa: ANN001
    """Deposit AMOUNT (e.g. '0.1 ether', '20 mUSD') into your channel with OPERATOR."""
    _deposit(account, operator, amount, asset)


@cli.command("top-up", cls=ConnectedProviderCommand, short_help="Add to a channel (also reopens a closing one)")
@network_option()
@account_option()
@click.argument("operator")
@click.argument("amount")
@click.option("--asset", default="ETH", show_default=True, help="ETH, stablecoin or a token address")
def top_up(account, operator: str, amount: str, asset: str) -> None:  # noqa: ANN001
    """Add AMOUNT to your channel with OPERATOR (a withdrawal asked for is cancelled)."""
    _deposit(account, operator, amount, asset)


@cli.command(cls=ConnectedProviderCommand, short_help="Ask for the unspent rest; run again after the delay to take it")
@network_option()
@account_option()
@click.argument("operator")
@click.option("--asset", default="ETH", show_default=True, help="ETH, stablecoin or a token address")
def close(account, operator: str, asset: str) -> None:  # noqa: ANN001
    """Close your channel with OPERATOR: the first run asks, a run after the delay withdraws."""
    import ape

    with user_errors():
        market = deployment()
        info = asset_info(asset, market)
        contract = _contract(market)
        state, receipt = channels.close(contract, account, operator, info.address, ape.chain.pending_timestamp)
        after = channels.channel_state(contract, account.address, operator, info.address)
    if state == "asked":
        click.echo(
            f"withdrawal asked: run `ape run channel close {operator}` after {format_time(after.withdrawable_at)}"
        )
    elif state == "waiting":
        click.echo(f"not yet: the rest is withdrawable from {format_time(after.withdrawable_at)}")
    else:
        click.echo(f"withdrawn: {format_amount(int(receipt.return_value), info)}")


@cli.command(cls=ConnectedProviderCommand, short_help="Show your channel with an operator")
@network_option()
@account_option()
@click.argument("operator")
@click.option("--asset", default="ETH", show_default=True, help="ETH, stablecoin or a token address")
def status(account, operator: str, asset: str) -> None:  # noqa: ANN001
    """Your channel with OPERATOR: balance and withdrawal."""
    with user_errors():
        market = deployment()
        info = asset_info(asset, market)
        _show(channels.channel_state(_contract(market), account.address, operator, info.address), info)

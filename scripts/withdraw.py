"""`ape run withdraw`: collect everything you earned.

Distributes the revenue pots of your models (unless `--no-distribute`), then withdraws your
credit in each asset from the licence manager (sales) and the router (per-use revenue,
operator fees, refunds).
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, table, user_errors
from voicemarket.market import earnings
from voicemarket.market.assets import asset_info
from voicemarket.units import format_amount


@click.command(cls=ConnectedProviderCommand, short_help="Withdraw your revenue, fees and refunds")
@network_option()
@account_option()
@click.option(
    "--asset", "assets", multiple=True, help="ETH, stablecoin or a token address (default: ETH and the stablecoin)"
)
@click.option("--no-distribute", is_flag=True, help="only withdraw credits; do not distribute your models' pots first")
def cli(account, assets: tuple[str, ...], no_distribute: bool) -> None:  # noqa: ANN001
    """Withdraw all of your credits (after distributing your models' revenue pots)."""
    with user_errors():
        market = deployment()
        chosen = [asset_info(a, market) for a in assets] or None
        distributed, made = earnings.withdraw(market, account, assets=chosen, distribute=not no_distribute)
    out = console()
    for model_id, symbol in distributed:
        out.print(f"Distributed the {symbol} pot of model {model_id:#x}")
    grid = table(f"Withdrawn to {account.address}", "asset", "from", "amount", "transaction")
    for item in made:
        grid.add_row(
            item.asset.symbol,
            {"sales": "licence sales", "local use": "local use (keys, refunds)"}.get(
                item.source, "router (uses, fees, refunds)"
            ),
            format_amount(item.amount, item.asset),
            item.tx,
        )
    out.print(grid)

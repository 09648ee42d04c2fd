"""`ape run renew LICENCE`: renew a subscription by whole periods at its offer's price.

The holder renews any time, by several periods (a lapsed subscription restarts now); anyone else
(a keeper) renews one period, only if the holder turned auto-renewal on (`ape run buy
--auto-renew`), in its last min(1 day, period), before it lapses. Time is never sold past the
offer's end nor further ahead than the retirement notice. A token subscription is paid from the
holder's allowance: `--approve` (as the holder) approves the cost first.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import amount_in, console, deployment, parse_id, user_errors
from voicemarket.market import licensing
from voicemarket.units import format_time


@click.command(cls=ConnectedProviderCommand, short_help="Renew a subscription")
@network_option()
@account_option()
@click.argument("license_id")
@click.option("--periods", default=1, show_default=True, help="how many periods to add")
@click.option("--max-price", default=None, help="the most you pay, e.g. '0.02 ether' (default: the offer's price)")
@click.option("--approve", is_flag=True, help="approve the token payment first (token subscriptions)")
def cli(account, license_id: str, periods: int, max_price: str | None, approve: bool) -> None:  # noqa: ANN001
    """Renew subscription LICENCE_ID."""
    license = parse_id(license_id, "LICENCE_ID")
    with user_errors():
        market = deployment()
        before = licensing.license_state(market, license)
        cap = amount_in(max_price, before.offer.asset, "--max-price") if max_price else None
        after = licensing.renew(market, account, license, periods=periods, max_price=cap, approve=approve)
    console().print(
        f"Licence {license} renewed by {periods} period(s): it now runs until "
        f"{format_time(after.expires_at)} "
        f"(was {format_time(before.expires_at)})."
    )

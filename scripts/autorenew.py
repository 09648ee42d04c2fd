"""`ape run autorenew LICENCE on|off`: let keepers renew your subscription, or stop them.

With it on, anyone (a keeper) may renew the subscription one period at a time in its last
min(1 day, period) before it expires, at its offer's price, paid from your allowance for the
licence manager (a token subscription; `--approve-periods N` sets that allowance to N periods).
A transfer of the licence turns it off. Keepers never restart a subscription that lapsed.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors
from voicemarket.market import keeping
from voicemarket.market.assets import asset_info
from voicemarket.units import format_amount, format_duration, format_time


@click.command(cls=ConnectedProviderCommand, short_help="Turn keeper renewals of a subscription on or off")
@network_option()
@account_option()
@click.argument("license_id")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option(
    "--approve-periods",
    type=int,
    default=None,
    help="(token subscriptions) set your allowance for the licence manager to this many periods",
)
def cli(account, license_id: str, state: str, approve_periods: int | None) -> None:  # noqa: ANN001
    """Turn auto-renewal of subscription LICENCE_ID on or off (you must hold it)."""
    license = parse_id(license_id, "LICENCE_ID")
    out = console()
    with user_errors():
        market = deployment()
        sub, refusal = keeping.set_auto_renew(market, account, license, state == "on", approve_periods=approve_periods)
        asset = asset_info(sub.asset, market)
    if state == "off":
        out.print(
            f"Licence {license} no longer auto-renews: it works until {format_time(sub.expires_at)}; "
            f"`ape run renew {license}` renews it (as its holder)."
        )
        return
    price = format_amount(sub.price, asset)
    out.print(
        f"Licence {license} auto-renews: keepers may renew it one period ({format_duration(sub.period)}, "
        f"{price}) at a time, from {format_time(sub.due_at)} (it expires {format_time(sub.expires_at)}). "
        f"A transfer of the licence, or `ape run autorenew {license} off`, stops them."
    )
    if not sub.is_eth:
        out.print(
            f"Your {asset.symbol} allowance for the licence manager: {format_amount(sub.allowance, asset)} "
            f"({sub.allowance // sub.price} period(s)); balance {format_amount(sub.balance, asset)}."
        )
    if refusal is None:
        return
    if refusal.code == "allowance":
        out.print(
            f"Warning: when it is due, a keeper cannot renew it: your allowance is below the price ({price}). "
            f"Rerun with --approve-periods N."
        )
    elif refusal.code == "balance":
        out.print(f"Warning: when it is due, a keeper cannot renew it: your balance is below the price ({price}).")
    else:
        out.print(f"Warning: when it is due, a keeper will not renew it: {refusal.detail}.")

"""`ape run buy OFFER --max-price PRICE`: buy a licence from an offer, never paying more than PRICE.

`--quantity` buys several subscription periods or pay-per-use packs. An offer in a token needs
an allowance: `--approve` approves exactly the cost first. `--auto-renew` (subscriptions) lets
keepers renew it, one period at a time when it is due, from your funds; without it only you renew.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import amount_in, console, deployment, parse_id, table, user_errors
from voicemarket.market import licensing
from voicemarket.units import format_amount, format_time


@click.command(cls=ConnectedProviderCommand, short_help="Buy a licence from an offer, with a price cap")
@network_option()
@account_option()
@click.argument("offer_id")
@click.option("--max-price", required=True, help="the most you pay in all, e.g. '0.01 ether' or '5 mUSD'")
@click.option("--quantity", default=1, show_default=True, help="subscription periods or pay-per-use packs")
@click.option("--approve", is_flag=True, help="approve the token payment first (offers in a token)")
@click.option(
    "--auto-renew",
    is_flag=True,
    help="subscriptions: let keepers renew it from your funds, one period at a time when it is due",
)
def cli(account, offer_id: str, max_price: str, quantity: int, approve: bool, auto_renew: bool) -> None:  # noqa: ANN001
    """Buy a licence from OFFER_ID (see `ape run offers MODEL_ID`)."""
    offer = parse_id(offer_id, "OFFER_ID")
    with user_errors():
        market = deployment()
        view = licensing.offer_view(market, offer)
        cap = amount_in(max_price, view.asset, "--max-price")
        purchase = licensing.buy(
            market, account, offer, max_price=cap, quantity=quantity, approve=approve, auto_renew=auto_renew
        )
    out = console()
    grid = table(f"Licence {purchase.license_id}", header=False)
    grid.add_row("model", f"{view.model_id:#x}")
    grid.add_row("offer", f"{offer} ({view.tier}, {view.price_text()})")
    grid.add_row("paid", format_amount(purchase.paid, view.asset))
    if purchase.expires_at:
        grid.add_row("expires", format_time(purchase.expires_at))
        grid.add_row(
            "auto-renew",
            "on: keepers renew it from your funds when it is due"
            if purchase.auto_renew
            else "off: only you renew it (`ape run renew`)",
        )
    grid.add_row("uses", view.uses_text() if not view.terms.pack_size else str(view.terms.pack_size * quantity))
    grid.add_row("holder", account.address)
    grid.add_row("transaction", purchase.tx)
    out.print(grid)
    out.print(f"Ask for speech under licence {purchase.license_id} with `ape run say` (as {account.address}).")

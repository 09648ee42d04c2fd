"""`ape run settle REQUEST_ID... [--all-due]`: pay out deliveries whose dispute window has closed.

Settling credits the operator's fee and releases the use price to the model's parties; a
dispute the arbiter left undecided past its decision date lapses (the delivery stands, the bond
goes back to the buyer). Anyone may settle; requests that are not due are named with the reason
and left alone. `--all-due` settles every due request of the deployment.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, table, user_errors
from voicemarket.market import keeping
from voicemarket.market.assets import asset_info
from voicemarket.units import format_amount


@click.command(cls=ConnectedProviderCommand, short_help="Settle delivered requests past their dispute window")
@network_option()
@account_option()
@click.argument("request_ids", nargs=-1)
@click.option("--all-due", is_flag=True, help="every request of this deployment that is due")
def cli(account, request_ids: tuple[str, ...], all_due: bool) -> None:  # noqa: ANN001
    """Settle REQUEST_IDS (and, with --all-due, every request that is due)."""
    if not request_ids and not all_due:
        raise click.UsageError("name the requests to settle (REQUEST_ID...) or pass --all-due")
    ids = [parse_id(text, "REQUEST_ID") for text in request_ids]
    out = console()
    with user_errors():
        market = deployment()
        result = keeping.settle(market, account, ids, all_due=all_due)
        if result.settled:
            grid = table("Settled", "request", "was", "operator fee", "use price", "note")
            for item in result.settled:
                asset = asset_info(item.asset, market)
                grid.add_row(
                    str(item.request_id),
                    item.was.label,
                    format_amount(item.fee, asset),
                    format_amount(item.use_price, asset),
                    "dispute lapsed: bond back to the buyer" if item.lapsed else "",
                )
            out.print(grid)
    if not result.settled:
        out.print(
            "Nothing to settle: no delivered request is past its dispute window, nor any dispute past its "
            "decision date."
        )
    for _, why in result.skipped:
        out.print(f"Skipped: {why}.")

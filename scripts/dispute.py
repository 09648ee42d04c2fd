"""`ape run dispute REQUEST_ID`: the buyer disputes a delivery within its dispute window.

The bond the router asks for is shown first, then posted with the dispute. The arbiter decides:
upheld, the buyer is refunded and gets the bond back with part of the operator's stake;
rejected, the bond goes to the operator. Undecided in the arbitration period, the dispute
lapses (`ape run settle`): the delivery stands and the bond goes back to the buyer.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors
from voicemarket.market import keeping
from voicemarket.units import ETH_ASSET, format_amount, format_duration, format_time


@click.command(cls=ConnectedProviderCommand, short_help="Dispute a delivery (posting the dispute bond)")
@network_option()
@account_option()
@click.argument("request_id")
def cli(account, request_id: str) -> None:  # noqa: ANN001
    """Dispute the delivery of REQUEST_ID (you must have made the request)."""
    request = parse_id(request_id, "REQUEST_ID")
    out = console()
    with user_errors():
        market = deployment()
        terms = keeping.dispute_terms(market, account, request)
        bond = format_amount(terms.bond, ETH_ASSET)
        out.print(
            f"Disputing request {request} posts a bond of {bond}. Upheld by the arbiter: you are refunded and "
            f"the bond comes back; rejected: the bond goes to the operator; undecided within "
            f"{format_duration(terms.arbitration_period)}: the delivery stands and the bond comes back."
        )
        done = keeping.dispute(market, account, terms)
    out.print(
        f"Request {request} disputed with a bond of {format_amount(done.bond, ETH_ASSET)}: the arbiter decides "
        f"by {format_time(done.decide_by)}; after that, `ape run settle {request}` lets an undecided dispute "
        "lapse."
    )

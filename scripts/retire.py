"""`ape run retire MODEL_ID`: retire a voice model you own.

Sales stop at once; licences already sold keep working until the service end date it prints
(now + the registry's retirement notice; no subscription was ever sold past it).
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors
from voicemarket.market import governance
from voicemarket.units import format_duration, format_time


@click.command(cls=ConnectedProviderCommand, short_help="Retire a model: no more sales, service until the notice ends")
@network_option()
@account_option()
@click.argument("model_id")
def cli(account, model_id: str) -> None:  # noqa: ANN001
    """Retire MODEL_ID (you must own it)."""
    model = parse_id(model_id, "MODEL_ID")
    with user_errors():
        done = governance.retire(deployment(), account, model)
    console().print(
        f"Model {model:#x} retired: nothing more is sold or renewed. Licences already sold keep working "
        f"until {format_time(done.service_ends_at)} (the retirement notice of "
        f"{format_duration(done.notice)}); no subscription runs past that date."
    )

"""`ape run unfreeze MODEL_ID`: the arbiter lifts a model's freeze (it sells and serves again)."""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors
from voicemarket.market import governance


@click.command(cls=ConnectedProviderCommand, short_help="Lift a model's freeze (the arbiter)")
@network_option()
@account_option()
@click.argument("model_id")
def cli(account, model_id: str) -> None:  # noqa: ANN001
    """Unfreeze MODEL_ID (the registry's arbiter only)."""
    model = parse_id(model_id, "MODEL_ID")
    with user_errors():
        done = governance.unfreeze(deployment(), account, model)
    console().print(f"Model {model:#x} unfrozen by {done.arbiter}: its offers sell and it is served again.")

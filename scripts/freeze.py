"""`ape run freeze MODEL_ID --reason TEXT`: the arbiter freezes a voice model.

A frozen model sells and renews nothing and no new speech is delivered with it (disputed
consent, infringement) until `ape run unfreeze`; escrowed fees stay refundable and credits
withdrawable. Only an account with the registry's arbiter role may freeze.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors
from voicemarket.market import governance


@click.command(cls=ConnectedProviderCommand, short_help="Freeze a model (the arbiter)")
@network_option()
@account_option()
@click.argument("model_id")
@click.option("--reason", required=True, help="why, recorded on-chain: at most 32 bytes (e.g. 'disputed consent')")
def cli(account, model_id: str, reason: str) -> None:  # noqa: ANN001
    """Freeze MODEL_ID (the registry's arbiter only)."""
    model = parse_id(model_id, "MODEL_ID")
    with user_errors():
        done = governance.freeze(deployment(), account, model, reason)
    console().print(
        f"Model {model:#x} frozen by {done.arbiter} (reason: {done.reason!r}): it sells, renews and "
        f"delivers nothing until `ape run unfreeze {model:#x}`; escrowed fees stay refundable."
    )

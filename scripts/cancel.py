"""`ape run cancel LICENCE`: cancel a subscription's auto-renewal (no keeper renews it; it works until it expires)."""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors
from voicemarket.market import licensing
from voicemarket.units import format_time


@click.command(cls=ConnectedProviderCommand, short_help="Cancel a subscription's renewals")
@network_option()
@account_option()
@click.argument("license_id")
def cli(account, license_id: str) -> None:  # noqa: ANN001
    """Cancel subscription LICENCE_ID's auto-renewal: it keeps working until it expires, and nobody
    renews it but its holder."""
    license = parse_id(license_id, "LICENCE_ID")
    with user_errors():
        state = licensing.cancel(deployment(), account, license)
    console().print(
        f"Licence {license} cancelled: no keeper renews it now; it works until "
        f"{format_time(state.expires_at)} (its holder may still renew it: `ape run renew {license}`)."
    )

"""`ape run deploy`: deploy and wire the voicemarket contracts on a network; save their addresses.

Constructor parameters come from `deploy/<network>.yaml` (`deploy/local.yaml` documents every
key; a local chain without a file uses its defaults). The addresses are saved in
`.voicemarket/deployments/<ecosystem>_<network>.json`, where every other command finds them.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, table, user_errors
from voicemarket.errors import DeploymentError
from voicemarket.market import chain as vm
from voicemarket.market import deployments
from voicemarket.units import ETH_ASSET, format_amount, format_duration


@click.command(cls=ConnectedProviderCommand, short_help="Deploy the voicemarket contracts and save their addresses")
@network_option()
@account_option()
@click.option(
    "--parameters",
    "parameters_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="constructor parameters (default: deploy/<network>.yaml)",
)
@click.option("--replace", is_flag=True, help="deploy a new set even if a working one is saved for this network")
def cli(provider, account, parameters_path: Path | None, replace: bool) -> None:  # noqa: ANN001
    """Deploy the registry, licence manager (with its offer book) and router (and the test stablecoin
    on a local chain), grant the roles, and save the addresses for the other commands."""
    import ape

    with user_errors():
        key = deployments.network_key(provider)
        if not replace:
            try:
                existing = deployments.load(provider)
            except DeploymentError:
                existing = None
            if existing is not None:
                raise click.ClickException(
                    f"a working deployment is already saved for {deployments.choice_of(key)} (registry "
                    f"{existing.registry.address}, in {existing.path}); pass --replace to deploy a new one"
                )
        params = deployments.load_parameters(provider, parameters_path)
        start = ape.chain.blocks.head.number
        out = console()
        out.print(
            f"Deploying voicemarket on {deployments.choice_of(key)} (chain id {ape.chain.chain_id}) "
            f"from {account.address} ..."
        )
        deployment = vm.deploy(account, **params)
        path = deployments.save(provider, deployment, start_block=start, parameters=params)

    contracts = table("Contracts", "contract", "address")
    for name, address in deployment.addresses.items():
        contracts.add_row(name, address)
    settings = table("Parameters", "parameter", "value")
    settings.add_row("platform fee", f"{params['platform_fee_bps'] / 100:g}%")
    settings.add_row("retirement notice", format_duration(params["retirement_notice"]))
    settings.add_row("operator minimum stake", format_amount(params["min_stake"], ETH_ASSET))
    settings.add_row("slash per upheld dispute", format_amount(params["slash_amount"], ETH_ASSET))
    settings.add_row("unbonding delay", format_duration(params["unbonding_delay"]))
    settings.add_row("dispute bond", format_amount(params.get("dispute_bond", 0), ETH_ASSET))
    for role, holder in deployment.roles.items():
        settings.add_row(f"{role.replace('_', ' ')} role", holder)
    out.print(contracts)
    out.print(settings)
    out.print(f"Saved to {path}")

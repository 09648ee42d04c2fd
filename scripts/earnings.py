"""`ape run earnings`: what your voice models earned, and what you can withdraw now.

Per model: licences sold and uses by tier (delivered, pending, refunded), revenue by asset and
by party (gross, platform, creator, voice owner, co-creators, operators; distributed and
pending pots together, split exactly as the contracts split them). Then your withdrawable
credits per asset (sales: licence manager; uses: router) and your share of the pots that
`ape run withdraw` distributes first.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, network_option

from voicemarket.cli.console import console, deployment, parse_id, resolve_account, table, user_errors
from voicemarket.market import earnings as report
from voicemarket.market.earnings import PARTIES
from voicemarket.units import format_amount


@click.command(cls=ConnectedProviderCommand, short_help="Show revenue per model, party and asset; what is withdrawable")
@network_option()
@click.option("--account", "alias", default=None, help="your account (alias or TEST::n): its models and credits")
@click.option("--address", default=None, help="an address to report on instead of an account")
@click.option("--model", "models", multiple=True, help="only this model id (repeatable)")
def cli(alias: str | None, address: str | None, models: tuple[str, ...]) -> None:
    """Report earnings for --account / --address (its models), or for --model ids."""
    from eth_utils import is_address, to_checksum_address

    if alias and address:
        raise click.UsageError("give --account or --address, not both")
    if address and not is_address(address):
        raise click.BadParameter(f"--address must be an address, got {address!r}")
    who = to_checksum_address(address) if address else resolve_account(alias).address if alias else None
    if who is None and not models:
        raise click.UsageError("say whose earnings: --account YOU, --address 0x..., or --model ID")
    with user_errors():
        market = deployment()
        result = report.earnings(market, who, [parse_id(m, "--model") for m in models] or None)
    out = console()
    if not result.models:
        out.print(f"{who} is not a party to any voice model on this deployment.")
    for model in result.models:
        out.print(f"[bold]Model {model.model_id:#x}[/bold]")
        uses = table(None, "tier", "licences sold", "uses delivered", "pending", "refunded")
        tiers = sorted(set(model.licenses_by_tier) | set(model.uses_by_tier))
        for tier in tiers:
            counts = model.uses_by_tier.get(tier, {})
            uses.add_row(
                tier,
                str(model.licenses_by_tier.get(tier, 0)),
                str(counts.get("delivered", 0)),
                str(counts.get("pending", 0)),
                str(counts.get("refunded", 0)),
            )
        if tiers:
            out.print(uses)
        revenue = table(None, "asset", "model revenue", *PARTIES, "undistributed")
        for asset_address, parties in model.revenue.items():
            asset = result.assets[asset_address]
            revenue.add_row(
                asset.symbol,
                *(format_amount(parties.get(p, 0), asset) for p in ("gross", *PARTIES)),
                format_amount(model.undistributed.get(asset_address, 0), asset),
            )
        out.print(revenue if model.revenue else "  no revenue yet")
        if model.local_use is not None and model.local_use.licenses:
            lu = model.local_use
            held = ", ".join(format_amount(v, result.assets[a]) for a, v in lu.escrow.items() if v) or "nothing"
            states = ", ".join(f"{count} {label}" for label, count in sorted(lu.licenses.items()))
            out.print(f"  local use: {states}; in escrow {held}")
            out.print(
                f"  usage reported (self-reported): {lu.reports} reports, {lu.sentences} sentences, "
                f"{lu.audio_seconds} s of audio"
            )
    if who is None:
        return
    mine = table(
        f"Withdrawable by {who}",
        "asset",
        "sales credit",
        "per-use credit",
        "local-use credit",
        "after distributing pots",
        "operator fees earned",
    )
    for asset_address, asset in result.assets.items():
        credits = result.withdrawable.get(asset_address, {})
        mine.add_row(
            asset.symbol,
            format_amount(credits.get("sales", 0), asset),
            format_amount(credits.get("uses", 0), asset),
            format_amount(credits.get("local use", 0), asset),
            "+" + format_amount(result.distributable.get(asset_address, 0), asset),
            format_amount(result.operator_fees.get(asset_address, 0), asset),
        )
    out.print(mine)
    out.print("Model revenue is split among creator, voice owner, co-creators and platform; operator fees come on top.")
    out.print("Withdraw with: ape run withdraw --account YOU")

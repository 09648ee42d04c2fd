"""`ape run version PARENT_ID FOLDER --offers OFFERS.yaml --operator ADDRESS`: a new version of a model.

Mints the model in FOLDER (as `ape run mint` does: pack, seal, store, register, allow the
operators, publish the offers) as a new version of PARENT_ID, which you must own and which must
not be frozen. The version keeps the parent's voice owner, who consents to it again: pass their
account as --voice-owner (they sign) unless the voice is your own. The voice owner's share, the
royalty and the dispute window default to the parent's.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import (
    announce_preview,
    co_creator_in,
    console,
    deployment,
    duration_in,
    mint_progress,
    parse_id,
    preview_options,
    publishing_options,
    resolve_account,
    share_in,
    table,
    user_errors,
)
from voicemarket.market import deployments, governance, minting
from voicemarket.protocol import Tier
from voicemarket.units import format_amount


def _bps(text: str | None) -> int | None:
    """'10%' or '1000' (basis points); None: the parent's."""
    return None if text is None else share_in(text)


@click.command(cls=ConnectedProviderCommand, short_help="Mint a new version of a model you own")
@network_option()
@account_option()
@click.argument("parent_id")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@publishing_options("YAML file of the version's offers")
@click.option(
    "--voice-owner",
    "voice_owner_alias",
    default=None,
    help="account of the parent's voice owner, who signs the consent again (not needed for your own voice)",
)
@click.option("--voice-owner-share", default=None, help="bps or % (default: the parent's)")
@click.option("--co-creator", "co_creators", multiple=True, help="ADDRESS:SHARE of a co-creator (repeatable)")
@click.option("--royalty", default=None, help="ERC-2981 royalty, bps or % (default: the parent's)")
@click.option("--dispute-window", default=None, help="e.g. '1 day' (default: the parent's)")
@click.option("--store", "store_spec", default=None, help="local:PATH or kubo:http://host:5001")
@preview_options
def cli(
    account,
    parent_id: str,
    folder: Path,
    offers_path: Path,
    operators: tuple[str, ...],  # noqa: ANN001
    voice_owner_alias: str | None,
    voice_owner_share: str | None,
    co_creators: tuple[str, ...],
    royalty: str | None,
    dispute_window: str | None,
    store_spec: str | None,
    hubert_dir: str | None,
    bert_dir: str | None,
) -> None:
    """Mint FOLDER as a new version of PARENT_ID."""
    parent = parse_id(parent_id, "PARENT_ID")
    splits = [co_creator_in(text) for text in co_creators]
    window = None if dispute_window is None else duration_in(dispute_window, "--dispute-window")
    out = console()
    with user_errors():
        market = deployment()
        model = minting.read_model_folder(folder)
        announce_preview(model)
        offers = minting.read_offers(offers_path, market)
        voice_owner = resolve_account(voice_owner_alias) if voice_owner_alias else None
        out.print(f"Minting {model.name!r} as a new version of {parent:#x} with {len(offers)} offer(s)")
        with mint_progress(model.size) as on_progress:
            result = governance.register_version(
                account,
                market,
                parent,
                model,
                offers=offers,
                operators=list(operators),
                store=minting.open_store(store_spec),
                voice_owner=voice_owner,
                voice_owner_bps=_bps(voice_owner_share),
                co_creators=splits,
                royalty_bps=_bps(royalty),
                dispute_window=window,
                hubert_dir=hubert_dir,
                bert_dir=bert_dir,
                on_progress=on_progress,
            )
        record = minting.save_mint_record(result, deployments.network_key())
        voice, share = market.registry.consentOf(result.model_id)
        summary = table(f"Model {model.name}, version of {parent:#x}", header=False)
        summary.add_row("model id", result.model_hex)
        summary.add_row("parent", f"{int(market.registry.parentOf(result.model_id)):#066x}")
        summary.add_row("voice owner", f"{voice} ({int(share) / 100:g}%)")
        summary.add_row("consented policy", "0x" + result.consent_policy_hash.hex())
        summary.add_row("keyring CID", result.keyring_cid)
        out.print(summary)
        for offer in result.offers:
            price = format_amount(offer.terms.price, minting.asset_info(offer.terms.asset, market))
            out.print(f"offer {offer.offer_id}: {Tier(offer.terms.tier).label}, {price}")
    out.print(f"Saved to {record}. Operators serve it with its keyring CID {result.keyring_cid}.")

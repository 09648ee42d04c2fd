"""`ape run mint FOLDER --offers OFFERS.yaml --operator ADDRESS`: publish a voice model in one command.

Packs the model folder into a bundle, seals it for the chosen operators (their public keys come
from their on-chain registration) and for the creator, stores it (`.voicemarket/store`, or
`--store kubo:http://127.0.0.1:5001`), registers the model with the voice owner's consent
signature, allows the operators to serve it, and publishes one offer per tier of the offers
file with its ODRL document and policy hash. The public preview is spoken by the model itself
(`--hubert`, `--bert`: GPT-SoVITS's shared pretrained folders) unless voice.yaml names a clip,
and is never the reference clip or a recording. The formats of the folder and of the offers file:
voicemarket/market/minting.py and docs/commands.md.
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
    preview_options,
    publishing_options,
    resolve_account,
    share_in,
    table,
    user_errors,
)
from voicemarket.market import deployments, minting
from voicemarket.market.licensing import action_names, territory_names
from voicemarket.protocol import Tier
from voicemarket.units import format_amount


@click.command(cls=ConnectedProviderCommand, short_help="Pack, seal, store, register and offer a voice model")
@network_option()
@account_option()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@publishing_options("YAML file of the offers (tiers) to publish")
@click.option(
    "--voice-owner",
    "voice_owner_alias",
    default=None,
    help="account of the person whose voice it is, who signs the consent (default: you, the creator)",
)
@click.option("--voice-owner-share", default="0", help="the voice owner's share: basis points or a percentage")
@click.option("--co-creator", "co_creators", multiple=True, help="ADDRESS:SHARE of a co-creator (repeatable)")
@click.option("--royalty", default="0", help="ERC-2981 royalty on resales of the model token (bps or %)")
@click.option("--dispute-window", default="0", help="how long buyers may dispute a delivery (e.g. '1 day'; 0 = none)")
@click.option(
    "--store", "store_spec", default=None, help="local:PATH or kubo:http://host:5001 (default .voicemarket/store)"
)
@preview_options
def cli(
    account,
    folder: Path,
    offers_path: Path,
    operators: tuple[str, ...],  # noqa: ANN001
    voice_owner_alias: str | None,
    voice_owner_share: str,
    co_creators: tuple[str, ...],
    royalty: str,
    dispute_window: str,
    store_spec: str | None,
    hubert_dir: str | None,
    bert_dir: str | None,
) -> None:
    """Mint the voice model in FOLDER (voice.yaml, *.ckpt, *.pth, reference clip) with the offers of --offers."""
    out = console()
    with user_errors():
        market = deployment()
        model = minting.read_model_folder(folder)
        offers = minting.read_offers(offers_path, market)
        voice_owner = resolve_account(voice_owner_alias) if voice_owner_alias else None
        window = duration_in(dispute_window, "--dispute-window")
        store = minting.open_store(store_spec)
        announce_preview(model)
        out.print(
            f"Minting {model.name!r} ({model.size / 1e6:.1f} MB) for {len(operators)} operator(s) "
            f"with {len(offers)} offer(s)"
        )
        with mint_progress(model.size) as on_progress:
            result = minting.mint_voice(
                account,
                market,
                model,
                offers=offers,
                operators=list(operators),
                store=store,
                voice_owner=voice_owner,
                voice_owner_bps=share_in(voice_owner_share),
                co_creators=[co_creator_in(c) for c in co_creators],
                royalty_bps=share_in(royalty),
                dispute_window=window,
                hubert_dir=hubert_dir,
                bert_dir=bert_dir,
                on_progress=on_progress,
            )
        record = minting.save_mint_record(result, deployments.network_key())

    summary = table(f"Model {model.name}", header=False)
    summary.add_row("model id", result.model_hex)
    summary.add_row("bundle CID (sealed)", result.bundle_cid)
    summary.add_row("keyring CID", result.keyring_cid)
    summary.add_row("metadata", f"ipfs://{result.metadata_cid}")
    summary.add_row("preview (public)", f"ipfs://{result.preview_cid}")
    summary.add_row("consented policy", "0x" + result.consent_policy_hash.hex())
    summary.add_row("operators", "\n".join(result.operators))
    out.print(summary)
    offers_table = table("Offers", "offer", "tier", "price", "permits", "territories", "policy hash")
    for offer in result.offers:
        asset = minting.asset_info(offer.terms.asset, market)
        offers_table.add_row(
            str(offer.offer_id),
            Tier(offer.terms.tier).label,
            format_amount(offer.terms.price, asset),
            action_names(offer.terms.permissions),
            territory_names(offer.terms.territories),
            "0x" + offer.policy_hash.hex()[:16] + "…",
        )
    out.print(offers_table)
    out.print(f"Saved (with the ODRL documents' CIDs) to {record}")
    out.print(f"Operators serve the model with its keyring CID {result.keyring_cid}.")
    out.print(f"Buyers see the offers with: ape run offers {result.model_hex}")

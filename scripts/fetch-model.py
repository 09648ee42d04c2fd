"""`ape run fetch-model LICENSE_ID --out DIR`: the voice of a local-use licence, on your own machine.

Reads the key holder's delivery from the chain, fetches the sealed bundle and the wrapped key by
CID, unwraps the key with your encryption key (your wallet signs the fixed key message once),
decrypts, checks the bundle's SHA-256 against the model id, and extracts the voice folder into DIR
(a new folder: it appears complete or not at all). It then prints the `python -m synth say`
command that speaks with it. See docs/local-use.md.
"""

from __future__ import annotations

from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, table, user_errors


@click.command(cls=ConnectedProviderCommand, short_help="Fetch and decrypt the voice of a local-use licence")
@network_option()
@account_option()
@click.argument("license_id")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="a new folder for the voice")
@click.option(
    "--store",
    "store_spec",
    help="where the bundle and the key are: local:PATH or kubo:URL "
    "(default: $VOICEMARKET_STORE or local:.voicemarket/store)",
)
def cli(account, license_id: str, out: Path, store_spec: str | None) -> None:  # noqa: ANN001
    """Fetch licence LICENSE_ID's voice into the new folder --out."""
    import shlex

    import ape

    from voicemarket.market.buyer_key import BuyerKey
    from voicemarket.market.local_use import fetch_model, synth_command
    from voicemarket.market.minting import open_store

    licence = parse_id(license_id, "LICENSE_ID")
    with user_errors():
        market = deployment()
        store = open_store(store_spec)
        key = BuyerKey.derive(account, int(ape.chain.chain_id))
        voice = fetch_model(market, store, licence, key.private_key, out)
    grid = table(f"Licence {licence}: {voice.manifest.name}", header=False)
    grid.add_row("folder", str(voice.directory))
    grid.add_row("languages", ", ".join(voice.manifest.languages))
    grid.add_row("GPT weights", voice.gpt_checkpoint.name)
    grid.add_row("SoVITS weights", voice.sovits_checkpoint.name)
    grid.add_row("reference", f"{voice.reference_audio.name}: {voice.manifest.reference_text!r}")
    grid.add_row("checked", "SHA-256 of the bundle = the one the model id commits to")
    out_console = console()
    out_console.print(grid)
    command = synth_command(voice) + ["--text", "Hello.", "--lang", voice.manifest.languages[0], "-o", "hello.wav"]
    out_console.print("Speak with it (HUBERT_DIR: GPT-SoVITS's chinese-hubert-base folder):")
    out_console.print("  " + shlex.join(command), soft_wrap=True, markup=False)

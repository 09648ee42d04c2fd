"""`ape run cid FILE...`: the IPFS content ids of files, as Kubo's `ipfs add` would give them.

Prints one line per file: `<CIDv0> <CIDv1> <path>` (CIDv0: `ipfs add FILE`; CIDv1:
`ipfs add --cid-version 1 FILE`, raw leaves, base32). Nothing is uploaded or stored.
"""

from __future__ import annotations

from pathlib import Path

import click

from voicemarket.content.cid import cids_of_file


@click.command(short_help="Print the Kubo-identical CIDv0 and CIDv1 of files")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def cli(files: tuple[Path, ...]) -> None:
    """Print `<CIDv0> <CIDv1> <path>` for each FILE (one read per file; nothing is uploaded)."""
    for path in files:
        cids = cids_of_file(path)
        click.echo(f"{cids[0]} {cids[1]} {path}")

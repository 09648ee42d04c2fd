"""Shared helpers for the packages tests: the independent JavaScript UnixFS importer."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS_IMPORTER = Path(__file__).resolve().parent / "js" / "unixfs_cids.mjs"


def js_unixfs_cids(files: Sequence[dict], *, blocks: bool = False) -> list[dict]:
    """CIDs from ipfs-unixfs-importer (npm) with Kubo's options, one dict per input file.

    ``files``: dicts with ``path`` and optionally ``chunkSize`` and ``maxLinks``.
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the CID cross-check needs Node 20 (see README, `make setup`)")
    if not (ROOT / "node_modules" / "ipfs-unixfs-importer").is_dir():
        pytest.fail("node_modules/ipfs-unixfs-importer is missing: run `make setup` (npm ci) first")
    argv = [node, str(JS_IMPORTER)] + (["--blocks"] if blocks else [])
    result = subprocess.run(argv, input=json.dumps([{**f, "path": str(f["path"])} for f in files]),
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"the JavaScript importer failed:\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="session")
def js_importer():
    """The independent JavaScript computation of CIDs (see :func:`js_unixfs_cids`)."""
    return js_unixfs_cids

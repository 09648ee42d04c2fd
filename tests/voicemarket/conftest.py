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
    result = subprocess.run(
        argv,
        input=json.dumps([{**f, "path": str(f["path"])} for f in files]),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    if result.returncode != 0:
        pytest.fail(f"the JavaScript importer failed:\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture(scope="session")
def js_importer():
    """The independent JavaScript computation of CIDs (see :func:`js_unixfs_cids`)."""
    return js_unixfs_cids


def write_wav(path: Path, seconds: float = 1.0, rate: int = 32000, seed: int = 0) -> Path:
    """A small mono 16-bit WAV of noise (the packages tests treat audio as opaque bytes)."""
    import random
    import wave

    frames = random.Random(seed).randbytes(int(seconds * rate) * 2)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return path


@pytest.fixture
def make_model(tmp_path):
    """Factory: a VoiceModelFiles with random checkpoint bytes of the given sizes."""
    import random

    from voicemarket.content.bundle import VoiceModelFiles

    def make(gpt: bytes | int = 3000, sovits: bytes | int = 5000, *, seed: int = 0, folder: str = "model", **fields):
        rng = random.Random(seed)
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        (root / "voice.ckpt").write_bytes(gpt if isinstance(gpt, bytes) else rng.randbytes(gpt))
        (root / "voice.pth").write_bytes(sovits if isinstance(sovits, bytes) else rng.randbytes(sovits))
        defaults = dict(
            name="Ada",
            description="A calm narrator voice.",
            languages=("en", "zh"),
            gpt_checkpoint=root / "voice.ckpt",
            sovits_checkpoint=root / "voice.pth",
            reference_audio=write_wav(root / "ref.wav", 0.2, seed=seed),
            reference_text="Hello there.",
            reference_language="en",
            preview_audio=write_wav(root / "preview.wav", 0.1, seed=seed + 1),
            creator="0x" + "11" * 20,
            voice_owner="0x" + "22" * 20,
            consent={
                "voiceOwner": "0x" + "22" * 20,
                "statement": "I consent to this voice model.",
                "date": "2025-01-01",
            },
        )
        defaults.update(fields)
        return VoiceModelFiles(**defaults)

    return make

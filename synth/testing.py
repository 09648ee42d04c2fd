"""Reference speech made on the spot (espeak-ng + sox), for tests, benchmarks and demos."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home again."


def make_reference_wav(
    path: str | os.PathLike[str], text: str = DEFAULT_TEXT, seconds: float = 5.0, rate: int = 32000, voice: str = "en"
) -> Path:
    """Speak ``text`` with espeak-ng, then resample to ``rate`` mono 16-bit and pad or trim to
    exactly ``seconds`` with sox. Raises RuntimeError naming the missing tool."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed; run `make setup` (Debian packages espeak-ng and sox)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True, capture_output=True, timeout=60
        )
        out = Path(tmp) / "ref.wav"
        subprocess.run(
            [
                "sox",
                str(raw),
                "-r",
                str(rate),
                "-c",
                "1",
                "-b",
                "16",
                str(out),
                "pad",
                "0",
                str(seconds),
                "trim",
                "0",
                str(seconds),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        shutil.move(str(out), path)
    return path

"""Speech made on the spot (espeak-ng + sox): reference clips and training sets for tests, benchmarks and demos."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back home again."


def make_reference_wav(
    path: str | os.PathLike[str], text: str = DEFAULT_TEXT, seconds: float = 5.0, rate: int = 32000, voice: str = "en"
) -> Path:
    """Speak ``text`` with espeak-ng, then resample to ``rate`` mono 16-bit and pad or trim to
    exactly ``seconds`` with sox. Raises RuntimeError naming the missing tool."""
    return make_speech_wav(path, text, "pad", "0", str(seconds), "trim", "0", str(seconds), rate=rate, voice=voice)


TRAINING_SENTENCES = (
    "The quick brown fox jumps over the lazy dog, and then it runs back home.",
    "She sells sea shells by the sea shore, every single day of the summer.",
    "Please call me back when you have a free moment later this afternoon.",
    "Every morning I walk to the station and buy a newspaper and a coffee.",
    "A minute of clear speech is enough to teach a model a new voice.",
    "The weather will be sunny tomorrow, with a light breeze from the west.",
    "We planted tomatoes, beans and a row of sunflowers behind the house.",
    "My grandfather told long stories about the ships he sailed as a boy.",
    "The library opens at nine and closes early on Saturdays and holidays.",
    "Turn left at the bakery, then walk straight on until you see the park.",
)


def make_speech_wav(
    path: str | os.PathLike[str], text: str, *sox_effects: str, rate: int = 32000, voice: str = "en"
) -> Path:
    """``text`` spoken by espeak-ng, resampled by sox to ``rate`` mono 16-bit with ``sox_effects`` applied
    (e.g. ``"vol", "0.01"``, ``"pad", "0", "1"``). Raises RuntimeError naming a missing tool."""
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
        out = Path(tmp) / "out.wav"
        command = ["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out), *sox_effects]
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        shutil.move(str(out), path)
    return path


def make_training_set(
    folder: str | os.PathLike[str],
    count: int = len(TRAINING_SENTENCES),
    sentences: tuple[str, ...] = TRAINING_SENTENCES,
) -> tuple[Path, Path]:
    """``count`` espeak-ng clips (cycling through ``sentences``, a little faster each round: about 4 s each
    for :data:`TRAINING_SENTENCES`) and their ``.list`` transcripts -> (recordings folder, transcripts file)."""
    folder = Path(folder)
    recordings = folder / "recordings"
    rows = []
    for i in range(count):
        text = sentences[i % len(sentences)]
        name = f"take{i:03d}.wav"
        if not (recordings / name).is_file():
            make_speech_wav(recordings / name, text, "speed", f"{1 + 0.02 * (i // len(sentences)):.2f}")
        rows.append(f"{name}|creator|en|{text}")
    transcripts = folder / "transcripts.list"
    transcripts.write_text("\n".join(rows) + "\n")
    return recordings, transcripts


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch threads. Training tests use one: on the shared 2-core
    machine, two threads made a SoVITS training step about 50 times slower (0.6 s -> 30 s)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)

"""A tiny trial of ``python -m synth train``, in seconds: the tiny random voice laid out as a
``pretrained_models`` folder, three espeak-ng recordings (about 4 s each) with their ``.list``, and a
``--settings`` file that shrinks what the tiny model does not need full-size (the discriminator's
widths, the generator's training slice, the data set's repetition). The voice it writes is barely
trained (random base weights, two epochs), but it is written by the real command, in the real
formats. For tests, benchmarks and demos; needs espeak-ng and sox (``make setup``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

TINY_SETTINGS = {
    "s2": {"batch_size": 3, "segment_size": 6400, "discriminator_width_divisor": 16, "min_items": 1},
    "s1": {"batch_size": 2, "min_items": 1},
    "preview_max_tokens": 40,
}
"""The ``--settings`` of a tiny trial: SoVITS batches of 3, 0.2 s training slices, a discriminator of
1/16 the widths (from random weights: the tiny base has no ``s2D`` file), no repetition of the data."""
EPOCHS = 2
MIN_SECONDS = 5.0
NAME = "ada"


@dataclass(frozen=True)
class TinyTraining:
    """The inputs of a tiny trial, and what ``python -m synth train`` made of them."""

    base: Path
    recordings: Path
    transcripts: Path
    settings_file: Path
    voice: Path  # the voice folder the command wrote
    returncode: int
    output: str  # what the command printed (stdout and stderr)

    def command(self, out: Path | None = None) -> list[str]:
        return train_command(self.recordings, self.transcripts, out or self.voice, self.base, self.settings_file)

    def given(self) -> dict:
        """The options :func:`train_command` gives, as :func:`synth.train.pipeline.command_settings` takes them."""
        return {"s2_epochs": EPOCHS, "s1_epochs": EPOCHS, "min_seconds": MIN_SECONDS}


@dataclass(frozen=True)
class TinyModel:
    """The tiny random voice's files (``synth.random_model.write_random_model(..., "tiny")``)."""

    gpt: Path
    sovits: Path
    hubert_dir: Path
    bert_dir: Path


def tiny_base(folder: Path, model: TinyModel | None = None, seed: int = 0) -> Path:
    """GPT-SoVITS's ``pretrained_models`` layout holding the tiny random voice ``model`` (None: one written
    beside ``folder``, which takes a while: tests pass the one their session already wrote). Once per folder."""
    folder = Path(folder)
    if (folder / "chinese-hubert-base" / "config.json").is_file():
        return folder
    if model is None:
        from synth.random_model import write_random_model

        files = write_random_model(folder.with_name(folder.name + "-model"), "tiny", seed=seed)
        model = TinyModel(files.gpt_path, files.sovits_path, files.hubert_dir, files.bert_dir)
    (folder / "gsv-v2final-pretrained").mkdir(parents=True, exist_ok=True)
    shutil.copy(model.gpt, folder / "gsv-v2final-pretrained" / "s1bert25hz-tiny.ckpt")
    shutil.copy(model.sovits, folder / "gsv-v2final-pretrained" / "s2G-tiny.pth")
    shutil.copytree(model.bert_dir, folder / "chinese-roberta-wwm-ext-large", dirs_exist_ok=True)
    shutil.copytree(model.hubert_dir, folder / "chinese-hubert-base", dirs_exist_ok=True)  # last: the marker
    return folder


def train_command(recordings: Path, transcripts: Path, out: Path, base: Path, settings_file: Path) -> list[str]:
    """``python -m synth train`` for a tiny trial (one torch thread)."""
    return [
        sys.executable,
        "-m",
        "synth",
        "train",
        str(recordings),
        "--transcripts",
        str(transcripts),
        "--out",
        str(out),
        "--base",
        str(base),
        "--s2-epochs",
        str(EPOCHS),
        "--s1-epochs",
        str(EPOCHS),
        "--min-seconds",
        f"{MIN_SECONDS:g}",
        "--threads",
        "1",
        "--settings",
        str(settings_file),
    ]


def train_tiny_voice(
    folder: str | os.PathLike[str], model: TinyModel | None = None, timeout_s: float = 600
) -> TinyTraining:
    """Run ``python -m synth train`` on a tiny trial under ``folder``, fine-tuning ``model`` (see
    :func:`tiny_base`), once: a later call with the same folder returns the first run's voice and output.
    Raises RuntimeError with the output when it fails."""
    from synth.testing import make_training_set

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = tiny_base(folder / "pretrained_models", model)
    recordings, transcripts = make_training_set(folder / "data", count=3)
    settings_file = folder / "tiny-settings.yaml"
    settings_file.write_text(yaml.safe_dump(TINY_SETTINGS, sort_keys=False))
    voice, record = folder / NAME, folder / "run.json"
    if record.is_file():
        run = json.loads(record.read_text())
    else:
        done = subprocess.run(
            train_command(recordings, transcripts, voice, base, settings_file),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={k: v for k, v in os.environ.items() if k != "VOICEMARKET_WEIGHTS"},
        )
        run = {"returncode": done.returncode, "output": done.stdout + done.stderr}
        if done.returncode != 0:
            raise RuntimeError(f"python -m synth train failed (status {done.returncode}):\n{run['output']}")
        record.write_text(json.dumps(run))
    return TinyTraining(base, recordings, transcripts, settings_file, voice, run["returncode"], run["output"])


def _byte_symbols() -> list[str]:
    """The 256 symbols byte-level BPE tokenizers (GPT-2's, Whisper's) write bytes as, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[b] for b in range(256)]


def write_tiny_whisper(folder: str | os.PathLike[str], seed: int = 0) -> Path:
    """A Whisper model folder in Hugging Face's format with random, tiny weights (one layer of width 16) and a
    byte-level tokenizer without merges: what ``--asr-model`` loads, for tests of the plumbing (it transcribes
    nothing meaningful)."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    folder = Path(folder)
    if (folder / "config.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({s: i for i, s in enumerate(_byte_symbols())}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    end = "<|endoftext|>"
    languages = ["en", "zh", "ja", "ko", "yue"]
    specials = ["<|startoftranscript|>", *[f"<|{x}|>" for x in languages], "<|translate|>", "<|transcribe|>"]
    specials += ["<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
    tokenizer = WhisperTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), unk_token=end, bos_token=end, eos_token=end
    )
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in [end, *specials]}
    # 10 s windows (a real Whisper's are 30 s): clips are at most 10 s, and the tiny model is 3x faster.
    WhisperProcessor(WhisperFeatureExtractor(feature_size=80, chunk_length=10), tokenizer).save_pretrained(folder)
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_source_positions=500,
        max_target_positions=64,
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids[end],
        pad_token_id=ids[end],
        bos_token_id=ids[end],
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids[end],
        pad_token_id=ids[end],
        max_length=12,
        is_multilingual=True,
        lang_to_id={f"<|{x}|>": ids[f"<|{x}|>"] for x in languages},
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        no_timestamps_token_id=ids["<|notimestamps|>"],
        suppress_tokens=sorted(ids.values()),  # byte tokens only, to max_length: every clip gets (meaningless) text
    )
    model.save_pretrained(folder)
    return folder

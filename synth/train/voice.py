"""Writing the trained voice: the folder ``ape run mint`` packs.

::

    VOICE_DIR/
      voice.yaml                  name, languages, reference {audio, text, language}, preview {text, language},
                                  gpt, sovits, sample_rate, architecture_version
      NAME-e15.ckpt               the GPT, as the original's trainer writes it: weights under ``model.``
                                  in float16, the training config (``s1longer-v2.yaml`` as the web UI
                                  fills it), info ``GPT-e15``
      NAME_e8_s200.pth            the SoVITS generator, as the original's ``savee``: float16 weights
                                  without ``enc_q``, the config pickled as ``utils.HParams`` (``s2.json``
                                  as the web UI fills it), info ``8epoch_200iteration``
      reference.wav               the reference clip chosen from the training data (3-10 s)
      training/                   data report, loss curves (CSV, PNG), the preview the trainer heard

The preview is the model speaking ``preview.text`` (minting speaks it again and checks it);
the reference clip and the recordings are never public (docs/privacy.md).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import yaml

from synth.checkpoints import save_gpt, save_sovits
from synth.errors import TrainingDataError
from synth.train.prepare import Clip

PREVIEW_LINES = {
    "en": "Hello! This is my new voice, trained from a minute of my own recordings.",
    "zh": "你好！这是用我自己一分钟的录音训练出来的新声音。",
    "ja": "こんにちは。これは私自身の録音から学習した新しい声です。",
    "ko": "안녕하세요. 제 녹음으로 학습한 새로운 목소리입니다.",
    "yue": "你好！呢把係用我自己一分鐘錄音訓練出嚟嘅新聲。",
}
REFERENCE_TARGET_S = 6.0


def choose_reference(clips: list[Clip]) -> Clip:
    """The clip of 3-10 s closest to 6 s (ties: the louder), as the voice's reference."""
    usable = [c for c in clips if 3.0 <= c.seconds <= 10.0]
    if not usable:
        raise TrainingDataError(
            "no clip is 3 to 10 s long, and the voice needs one as its reference clip; add a recording of a "
            "sentence or two (3-10 s) to the transcripts"
        )
    return min(usable, key=lambda c: (abs(c.seconds - REFERENCE_TARGET_S), -c.speech_dbfs))


def gpt_config(base_config: dict, name: str, epochs: int, batch_size: int, base_path: Path) -> dict:
    """The config the original's s1 trainer stores: its yaml as the web UI fills it (fp32 on a CPU)."""
    config = copy.deepcopy(base_config)
    train = config.setdefault("train", {})
    train.update(
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "precision": "32",
            "save_every_n_epoch": epochs,
            "if_save_latest": True,
            "if_save_every_weights": True,
            "if_dpo": False,
            "half_weights_save_dir": "GPT_weights_v2",
            "exp_name": name,
        }
    )
    config["pretrained_s1"] = str(base_path)
    config["train_semantic_path"] = f"logs/{name}/6-name2semantic.tsv"
    config["train_phoneme_path"] = f"logs/{name}/2-name2text.txt"
    config["output_dir"] = f"logs/{name}/logs_s1_v2"
    return config


def sovits_config(
    cfg_dict: dict, name: str, epochs: int, batch_size: int, text_low_lr_rate: float, base_g: Path, base_d: Path | None
) -> dict:
    """The ``hps`` the original's s2 trainer pickles into the ``.pth`` (``s2.json`` as the web UI fills it)."""
    config = copy.deepcopy(cfg_dict)
    config["train"].update(
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "fp16_run": False,
            "text_low_lr_rate": text_low_lr_rate,
            "pretrained_s2G": str(base_g),
            "pretrained_s2D": str(base_d) if base_d else "",
            "if_save_latest": True,
            "if_save_every_weights": True,
            "save_every_epoch": epochs,
            "gpu_numbers": "0",
            "grad_ckpt": False,
            "lora_rank": "32",
        }
    )
    config["model"]["version"] = "v2"
    config["data"]["exp_dir"] = f"logs/{name}"
    config["s2_ckpt_dir"] = f"logs/{name}"
    config["save_weight_dir"] = "SoVITS_weights_v2"
    config["name"] = name
    config["version"] = "v2"
    return config


def write_voice_folder(
    folder: Path,
    name: str,
    gpt_weights: dict,
    gpt_cfg: dict,
    s1_epochs: int,
    sovits_weights: dict,
    sovits_cfg: dict,
    s2_epochs: int,
    s2_steps: int,
    reference: Clip,
    languages: list[str],
    preview_text: str,
    preview_language: str,
) -> tuple[Path, Path]:
    """Write the checkpoints, the reference clip and voice.yaml into ``folder`` (a fresh folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    gpt_path = save_gpt(folder / f"{name}-e{s1_epochs}.ckpt", gpt_weights, gpt_cfg, info=f"GPT-e{s1_epochs}")
    sovits_path = save_sovits(
        folder / f"{name}_e{s2_epochs}_s{s2_steps}.pth",
        sovits_weights,
        sovits_cfg,
        info=f"{s2_epochs}epoch_{s2_steps}iteration",
    )
    shutil.copyfile(reference.path, folder / "reference.wav")
    spec = {
        "name": name,
        "description": f"{reference.speaker}'s voice, fine-tuned from their recordings (python -m synth train).",
        "languages": languages,
        "reference": {"audio": "reference.wav", "text": reference.text, "language": reference.language},
        "preview": {"text": preview_text, "language": preview_language},
        "gpt": gpt_path.name,
        "sovits": sovits_path.name,
        "sample_rate": 32000,
        "architecture_version": "v2",
    }
    (folder / "voice.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return gpt_path, sovits_path

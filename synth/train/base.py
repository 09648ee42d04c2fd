"""The pretrained v2 folder a voice is fine-tuned from (``--base``, the folder ``VOICEMARKET_WEIGHTS`` names).

Layout (GPT-SoVITS's ``GPT_SoVITS/pretrained_models``)::

    chinese-hubert-base/                 HuBERT (transformers folder)
    chinese-roberta-wwm-ext-large/       BERT, for Mandarin transcripts (optional otherwise)
    gsv-v2final-pretrained/              (or the folder itself)
        s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt    the GPT
        s2G2333k.pth                                       the SoVITS generator
        s2D2333k.pth                                       its discriminator (optional)

A ``.pth`` whose name holds ``s2D`` (or whose weights start with ``discriminators.``) is the
discriminator; the other ``.pth`` is the generator. Without a discriminator file (as in a folder
of published voices) the discriminator starts from random weights, which the original also does
when ``pretrained_s2D`` is empty; the posterior encoder ``enc_q``, which published ``.pth`` files
leave out, likewise.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.checkpoints import read_checkpoint
from synth.errors import BaseModelError

V2_SUBFOLDER = "gsv-v2final-pretrained"


@dataclass(frozen=True)
class BaseModel:
    """Where the pretrained parts are."""

    gpt: Path
    sovits: Path
    discriminator: Path | None
    hubert_dir: Path
    bert_dir: Path | None


def _is_discriminator(path: Path) -> bool:
    if "s2d" in path.name.lower():
        return True
    payload = read_checkpoint(path).payload
    weights = payload.get("weight") if isinstance(payload, dict) else None
    return isinstance(weights, dict) and any(str(k).startswith("discriminators.") for k in weights)


def find_base(folder: str | os.PathLike[str]) -> BaseModel:
    """Find the pretrained GPT, SoVITS generator (and discriminator) and encoders in ``folder``."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BaseModelError(
            f"base folder {folder} does not exist; pass --base with GPT-SoVITS's pretrained_models folder "
            "(chinese-hubert-base/, gsv-v2final-pretrained/*.ckpt and *.pth)"
        )
    hubert = folder / "chinese-hubert-base"
    if not (hubert / "config.json").is_file():
        raise BaseModelError(f"{folder} has no chinese-hubert-base/ folder with its config.json")
    bert = folder / "chinese-roberta-wwm-ext-large"
    place = folder / V2_SUBFOLDER if (folder / V2_SUBFOLDER).is_dir() else folder
    ckpts = sorted(place.glob("*.ckpt"))
    if len(ckpts) != 1:
        raise BaseModelError(f"{place} must hold exactly one GPT .ckpt (found {[p.name for p in ckpts]})")
    pths = sorted(place.glob("*.pth"))
    discriminators = [p for p in pths if _is_discriminator(p)]
    generators = [p for p in pths if p not in discriminators]
    if len(generators) != 1 or len(discriminators) > 1:
        raise BaseModelError(
            f"{place} must hold one SoVITS generator .pth and at most one discriminator .pth (s2D...); "
            f"found {[p.name for p in pths]}"
        )
    return BaseModel(
        gpt=ckpts[0],
        sovits=generators[0],
        discriminator=discriminators[0] if discriminators else None,
        hubert_dir=hubert,
        bert_dir=bert if (bert / "config.json").is_file() else None,
    )


def discriminator_weights(path: Path) -> dict[str, torch.Tensor]:
    """The ``weight`` dict of a discriminator file (``s2D*.pth``), as float32."""
    payload = read_checkpoint(path).payload
    if not isinstance(payload, dict) or not isinstance(payload.get("weight"), dict):
        raise BaseModelError(f"{path}: not a GPT-SoVITS discriminator file (no 'weight' dict)")
    return {k: v.float() for k, v in payload["weight"].items()}

"""The original's three preparation steps, on the clips :mod:`synth.train.prepare` accepted.

1. text (``1-get-text.py``): each transcript -> phone ids, and for Mandarin the phone-level BERT
   features ([1024, phones]; other languages get none, and zeros at training time);
2. HuBERT (``2-get-hubert-wav32k.py``): the clip at 32 kHz is mixed with its peak-normalised self,
   ``x / peak * 0.95 * 0.5 + 0.5 * x`` (the waveform SoVITS trains on), and the same mix at
   GPT-SoVITS's scale 1145.14 resampled to 16 kHz goes through HuBERT -> [768, T50];
3. semantic tokens (``3-get-semantic.py``): the base SoVITS model's ``ssl_proj`` and quantizer ->
   [T25] codes, what the GPT learns to produce.

The result is one file (:data:`FEATURES_FILE`) of plain tensors, read back with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from synth.audio import read_wav, resample
from synth.features import BertFeatures, SSLEncoder
from synth.files import atomic_write_bytes
from synth.sovits import SynthesizerTrn
from synth.text.frontend import phones_and_bert
from synth.train.prepare import PreparedData

FEATURES_FILE = "features.pt"
PEAK_MIX, MIX_ALPHA = 0.95, 0.5
HUBERT_SCALE = 1145.14  # the amplitude GPT-SoVITS feeds HuBERT at training time


@dataclass
class ClipFeatures:
    """Everything training needs of one clip."""

    name: str
    phone_ids: torch.Tensor  # [N] int64
    ssl: torch.Tensor  # [768, T50] float32
    semantic: torch.Tensor  # [T25] int64
    audio: torch.Tensor  # [samples] float32 at 32 kHz: the mixed waveform
    bert: torch.Tensor | None = None  # [1024, N], Mandarin only

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def text_features(text: str, language: str, bert: BertFeatures | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(phone ids [N], BERT [1024, N] or None) of a whole transcript, as ``1-get-text.py`` (no sentence split)."""
    provider = bert.phone_features if bert is not None else None
    seq = phones_and_bert(text, language, provider, _retry=False)
    mandarin = language in ("zh", "all_zh") and bert is not None
    return torch.tensor(seq.ids, dtype=torch.long), (seq.bert.float() if mandarin else None)


def count_phones(text: str, language: str) -> int:
    """Phones of a transcript (what :func:`synth.train.prepare.prepare` checks against the clip's length)."""
    return len(phones_and_bert(text, language, None, _retry=False).ids)


def mixed_waveforms(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """32 kHz clip -> (the waveform SoVITS trains on, in [-1, 1]; HuBERT's 16 kHz input)."""
    peak = float(np.abs(audio).max()) or 1.0
    mixed = audio / peak * (PEAK_MIX * MIX_ALPHA) + (1 - MIX_ALPHA) * audio
    # The original writes the mix as int16 and reads it back: keep that rounding.
    mixed = np.trunc(mixed * 32768).clip(-32768, 32767) / 32768
    hubert_in = audio / peak * (PEAK_MIX * MIX_ALPHA * HUBERT_SCALE) + ((1 - MIX_ALPHA) * HUBERT_SCALE) * audio
    return mixed.astype(np.float32), resample(hubert_in.astype(np.float32), 32000, 16000)


@torch.no_grad()
def extract(
    data: PreparedData,
    sovits: SynthesizerTrn,
    hubert_dir: str | os.PathLike[str],
    bert_dir: str | os.PathLike[str] | None,
    device: torch.device,
    on_clip: Callable[[], None] | None = None,
) -> list[ClipFeatures]:
    """Phones (+BERT), HuBERT features and semantic tokens of every clip."""
    ssl_model = SSLEncoder(hubert_dir, device)
    needs_bert = any(c.language == "zh" for c in data.clips)
    bert = BertFeatures(bert_dir, device) if needs_bert and bert_dir is not None else None
    sovits = sovits.to(device).eval()
    out = []
    for clip in data.clips:
        phone_ids, bert_feat = text_features(clip.text, clip.language, bert)
        rate, audio = read_wav(clip.path)
        mixed, audio16 = mixed_waveforms(resample(audio, rate, 32000))
        wav = torch.from_numpy(audio16).to(device).unsqueeze(0)
        ssl = ssl_model.model(wav)["last_hidden_state"].transpose(1, 2)
        semantic = sovits.extract_latent(ssl)[0]
        out.append(
            ClipFeatures(
                name=clip.name,
                phone_ids=phone_ids,
                ssl=ssl[0].float().cpu(),
                semantic=semantic.cpu().long(),
                audio=torch.from_numpy(mixed),
                bert=bert_feat,
            )
        )
        if on_clip is not None:
            on_clip()
    return out


def save_features(features: list[ClipFeatures], path: Path) -> None:
    buffer = io.BytesIO()
    torch.save([f.to_dict() for f in features], buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_features(path: Path) -> list[ClipFeatures]:
    return [ClipFeatures(**row) for row in torch.load(path, weights_only=True)]

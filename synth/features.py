"""The two pretrained encoders GPT-SoVITS leans on, loaded with transformers from local folders.

* HuBERT (``chinese-hubert-base`` layout): 16 kHz speech -> 768-d features at 50 Hz, the
  input of the SoVITS quantizer that yields the reference's semantic tokens.
* BERT (``chinese-roberta-wwm-ext-large`` layout): one 1024-d vector per Chinese character,
  the third-from-last hidden layer, repeated for each of the character's phones.

Nothing is downloaded: ``local_files_only=True``; a missing folder is a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from synth.errors import CheckpointError


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _folder(path: str | os.PathLike[str], what: str) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(
            f"{what} folder {path} has no config.json; point it at a local copy of the model "
            "(a folder saved by transformers' save_pretrained)"
        )
    return path


class SSLEncoder:
    """HuBERT features of the reference clip."""

    def __init__(
        self, folder: str | os.PathLike[str], device: torch.device, dtype: torch.dtype = torch.float32
    ) -> None:
        from transformers import HubertModel

        _quiet_transformers()
        self.model = HubertModel.from_pretrained(str(_folder(folder, "HuBERT")), local_files_only=True)
        self.model.eval().to(device=device, dtype=dtype)
        self.device, self.dtype = device, dtype

    @torch.no_grad()
    def features(self, audio_16k: np.ndarray, tail_zeros: int) -> torch.Tensor:
        """[T] float32 at 16 kHz -> [1, 768, frames]. ``tail_zeros`` zeros are appended first
        (GPT-SoVITS appends 0.3 s worth at the *model* rate, i.e. 9,600 samples)."""
        wav = torch.from_numpy(np.concatenate([audio_16k, np.zeros(tail_zeros, dtype=np.float32)]))
        wav = wav.to(self.device, self.dtype).unsqueeze(0)
        return self.model(wav)["last_hidden_state"].transpose(1, 2)


class BertFeatures:
    """Character-level BERT features for Chinese text."""

    def __init__(
        self, folder: str | os.PathLike[str], device: torch.device, dtype: torch.dtype = torch.float32
    ) -> None:
        from transformers import AutoConfig, AutoTokenizer, BertModel

        _quiet_transformers()
        folder = _folder(folder, "BERT")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        # GPT-SoVITS reads hidden_states[-3]: the output of layer L-2. The last two layers are not needed.
        config.num_hidden_layers = max(config.num_hidden_layers - 2, 0)
        self.model = BertModel.from_pretrained(
            str(folder), config=config, add_pooling_layer=False, local_files_only=True
        )
        self.model.eval().to(device=device, dtype=dtype)
        self.device = device

    @torch.no_grad()
    def phone_features(self, text: str, word2ph: list[int]) -> torch.Tensor:
        """Normalised Chinese text (one token per character) -> [1024, sum(word2ph)]."""
        inputs = self.tokenizer(text, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        hidden = self.model(**inputs)["last_hidden_state"][0, 1:-1].float().cpu()
        if hidden.shape[0] != len(word2ph):
            raise ValueError(f"BERT tokenised {text!r} into {hidden.shape[0]} pieces, expected {len(word2ph)}")
        counts = torch.tensor(word2ph)
        return torch.repeat_interleave(hidden, counts, dim=0).T

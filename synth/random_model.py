"""Randomly initialised GPT-SoVITS v2 voices in the real file formats, for tests, benchmarks and demos.

No weights can be downloaded, so everything that needs a model makes one: a GPT ``.ckpt``
and a SoVITS ``.pth`` written as GPT-SoVITS writes them, plus HuBERT and BERT folders that
transformers loads from disk.

* ``size="tiny"``: same architecture, small widths and depths where the architecture allows
  (the interfaces between parts are fixed: 768-d HuBERT, 1024-d BERT, 192/512 in MRTE).
  Loads and speaks a short sentence in well under a second on a CPU.
* ``size="full"``: the published v2 sizes (GPT 24x512, SoVITS s2.json, hubert-base,
  roberta-large) with random weights, for benchmarks.

Random weights babble; the GPT's EOS row is zeroed so that a random voice never stops by
itself and every run lasts exactly ``max_semantic_tokens`` per sentence (bounded, repeatable).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from synth.checkpoints import save_gpt, save_sovits
from synth.gpt import GPTConfig, Text2SemanticDecoder
from synth.sovits import SoVITSConfig, SynthesizerTrn

SIZES = ("tiny", "full")


@dataclass(frozen=True)
class ModelFiles:
    """Where a voice's four parts are."""

    gpt_path: Path
    sovits_path: Path
    hubert_dir: Path
    bert_dir: Path
    size: str

    def load(self, **kwargs):
        """``Synthesizer.from_files`` on these files."""
        from synth.engine import Synthesizer

        return Synthesizer.from_files(
            self.gpt_path, self.sovits_path, hubert_dir=self.hubert_dir, bert_dir=self.bert_dir, **kwargs
        )


def gpt_config(size: str) -> GPTConfig:
    return GPTConfig() if size == "full" else GPTConfig(embedding_dim=64, hidden_dim=64, heads=2, layers=2)


def sovits_config(size: str) -> SoVITSConfig:
    if size == "full":
        return SoVITSConfig()
    return SoVITSConfig(
        inter_channels=32,
        filter_channels=64,
        n_heads=2,
        n_layers=2,
        kernel_size=3,
        resblock_kernel_sizes=(3,),
        resblock_dilation_sizes=((1, 3, 5),),
        upsample_initial_channel=64,
    )


def _randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Fill every parameter with small random values (deterministic for a seed)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):
                p.fill_(1.0)
            elif "norm" in name and name.endswith(("weight", "gamma")):
                p.fill_(1.0)
            elif name.endswith("alpha"):
                p.fill_(1.0)
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.numel()
                p.copy_(torch.randn(p.shape, generator=generator) / max(fan_in, 1) ** 0.5)


def _vocab() -> list[str]:
    specials = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    ascii_tokens = [chr(c) for c in range(33, 127)]
    punctuation = list("，。！？、；：“”‘’（）《》…—·")
    han = [chr(c) for c in range(0x4E00, 0x9FA6)]
    return specials + ascii_tokens + punctuation + han


def _write_hubert(folder: Path, size: str, seed: int) -> None:
    from transformers import HubertConfig, HubertModel, Wav2Vec2FeatureExtractor

    from synth.features import _quiet_transformers

    _quiet_transformers()

    torch.manual_seed(seed)
    if size == "full":
        config = HubertConfig()
    else:
        config = HubertConfig(
            hidden_size=768,
            num_hidden_layers=1,
            num_attention_heads=12,
            intermediate_size=256,
            conv_dim=(32,) * 7,
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=16,
        )
    model = HubertModel(config).eval()
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=False
    ).save_pretrained(folder)


def _write_bert(folder: Path, size: str, seed: int) -> None:
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    if size == "full":
        config = BertConfig(
            vocab_size=len(vocab),
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
        )
    else:
        config = BertConfig(
            vocab_size=len(vocab), hidden_size=1024, num_hidden_layers=3, num_attention_heads=16, intermediate_size=128
        )
    BertForMaskedLM(config).eval().save_pretrained(folder)


def write_random_model(directory: str | os.PathLike[str], size: str = "tiny", seed: int = 0) -> ModelFiles:
    """Write a random voice into ``directory`` (reused if one of the same size and seed is there)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    directory = Path(directory)
    files = ModelFiles(
        gpt_path=directory / f"random-{size}-e1.ckpt",
        sovits_path=directory / f"random-{size}_e1_s1.pth",
        hubert_dir=directory / "chinese-hubert-base",
        bert_dir=directory / "chinese-roberta-wwm-ext-large",
        size=size,
    )
    marker = directory / "random-model.json"
    stamp = {"size": size, "seed": seed, "format": 2}
    if marker.is_file() and json.loads(marker.read_text()) == stamp and files.gpt_path.is_file():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    gen = torch.Generator().manual_seed(seed)

    gcfg = gpt_config(size)
    gpt = Text2SemanticDecoder(gcfg)
    _randomise(gpt, gen)
    with torch.no_grad():
        # A zero EOS row gives EOS the logit 0, below the top few hundred of the other random logits:
        # a random voice never stops by itself, so its length is max_semantic_tokens, the same every run.
        gpt.ar_predict_layer.weight[gcfg.eos].zero_()
    save_gpt(files.gpt_path, gpt.state_dict(), gcfg.to_checkpoint_config(), info=f"random-{size}-seed{seed}")
    del gpt

    scfg = sovits_config(size)
    sovits = SynthesizerTrn(scfg)
    _randomise(sovits, gen)
    with torch.no_grad():
        sovits.quantizer.vq.layers[0]._codebook.embed.copy_(torch.randn(1024, 768, generator=gen))
    save_sovits(files.sovits_path, sovits.state_dict(), scfg.to_checkpoint_config(), info=f"random-{size}-seed{seed}")
    del sovits

    _write_hubert(files.hubert_dir, size, seed)
    _write_bert(files.bert_dir, size, seed)
    marker.write_text(json.dumps(stamp))
    return files

"""Fine-tuning the GPT stage (the original's ``s1_train.py`` with ``forward_old``), from the base GPT.

The loss (in training mode with the original's dropout 0.1 after the positional embeddings and in
every layer; without it in eval mode): phones (+BERT) then the clip's semantic tokens go through the decoder in one pass
(text attends to all text; tokens to the text and earlier tokens; pads hidden); from the last
text position on, each position predicts the next token, the last one EOS; cross-entropy summed
over the batch (padded token positions are trained to predict EOS, as the original's
``pad_y_eos`` makes them). The original masks text pads as if the batch were left-padded while
its collate pads on the right; this reproduces that (it only matters for rows shorter than the
longest text of their batch).

Schedule, as the original for v2 (``s1longer-v2.yaml`` and the web UI): ScaledAdam (lr 0.01, betas
0.9/0.95, clipping scale 2, clipping period 1000); gradients accumulate over batches and the
optimiser steps at batch index 4, 8, 12 ... of each epoch (so the first step sums five batches);
the rate is 0.01 for the first optimiser step, then 0.002 (:func:`~synth.train.optim.fine_tune_lr`);
15 epochs; batch size the web UI's default (memory / 4 GB, halved without fp16), at most a quarter
of the (repeated) data set; clips outside 3..25 phones a second or over 54 s are left out and a
set of under 100 clips is repeated to reach 100.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from synth.checkpoints import load_gpt
from synth.errors import TrainingDataError
from synth.gpt import GPTConfig, Text2SemanticDecoder
from synth.train.common import EpochHook, StepHook, read_state, repeat_small, write_state
from synth.train.features import ClipFeatures
from synth.train.optim import ScaledAdam, fine_tune_lr

ACCUMULATE = 4
# The original's dropout after the positional embeddings and in every layer (its config's
# "dropout: 0" applies to the token embeddings only).
P_DROPOUT = 0.1
LOSS_COLUMNS = ("loss", "top3_acc", "lr")


@dataclass(frozen=True)
class S1Settings:
    """The web UI's GPT settings (15 epochs) and the s1 data set's filters."""

    epochs: int = 15
    batch_size: int = 4
    seed: int = 1234
    # The data set keeps clips of at most max_sec seconds with min_ps_ratio..max_ps_ratio phones a second,
    max_sec: int = 54
    min_ps_ratio: float = 3.0
    max_ps_ratio: float = 25.0
    # and repeats a smaller set up to min_items items (the original: 100).
    min_items: int = 100


def pad_mask_left(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """True where a left-padded row of ``lengths`` would hold padding: [B, max_len]."""
    positions = torch.arange(max_len, device=lengths.device).unsqueeze(0) - (max_len - lengths).unsqueeze(1)
    return positions < 0


def training_loss(
    model: Text2SemanticDecoder,
    phones: torch.Tensor,
    phone_lengths: torch.Tensor,
    semantic: torch.Tensor,
    semantic_lengths: torch.Tensor,
    bert: torch.Tensor,
) -> tuple[torch.Tensor, float]:
    """phones [B, N], semantic [B, T] (padded with EOS), bert [B, 1024, N] -> (summed CE loss, top-3 accuracy)."""
    cfg = model.config
    p = P_DROPOUT if model.training else 0.0
    x = model.ar_text_embedding(phones)
    x = x + model.bert_proj(bert.transpose(1, 2))
    x = F.dropout(model.ar_text_position(x), p)
    x_len, y_len = int(phone_lengths.max()), int(semantic_lengths.max())
    x_pad = pad_mask_left(phone_lengths, x_len)
    y_pad = torch.arange(y_len, device=phones.device).unsqueeze(0) >= semantic_lengths.unsqueeze(1)
    codes = semantic.long() * (~y_pad).long()
    targets = F.pad(codes, (0, 1), value=0) + cfg.eos * F.pad(y_pad.long(), (0, 1), value=1)
    y_in = targets[:, :-1]
    y = F.dropout(model.ar_audio_position(model.ar_audio_embedding(y_in)), p)
    b, src = x.shape[0], x_len + y_len
    blocked = torch.zeros(src, src, dtype=torch.bool, device=x.device)
    blocked[:x_len, x_len:] = True  # text does not see tokens
    blocked[x_len:, x_len:] = torch.ones(y_len, y_len, dtype=torch.bool, device=x.device).triu(1)
    blocked = blocked.unsqueeze(0) | torch.cat([x_pad, y_pad], 1).unsqueeze(1)  # [B, S, S]
    mask = torch.zeros(b, 1, src, src, dtype=x.dtype, device=x.device).masked_fill(blocked.unsqueeze(1), float("-inf"))
    h = torch.cat([x, y], dim=1)
    for layer in model.h.layers:
        h = _layer(layer, h, mask, p)
    logits = model.ar_predict_layer(h[:, x_len - 1 :]).permute(0, 2, 1)  # [B, V, T + 1]
    loss = F.cross_entropy(logits, targets, reduction="sum")
    with torch.no_grad():
        top3 = logits.topk(3, dim=1).indices  # [B, 3, T + 1]
        keep = targets != cfg.eos
        hit = (top3 == targets.unsqueeze(1)).any(dim=1) & keep
        acc = float(hit.sum() / keep.sum().clamp(min=1))
    return loss, acc


def _layer(layer, x: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
    """A post-norm decoder layer with the original's training dropout (p on the attention weights,
    on the attention's and the feed-forward's outputs, and inside the feed-forward)."""
    b, s, d = x.shape
    a = layer.self_attn
    q, k, v = (
        F.linear(x, a.in_proj_weight, a.in_proj_bias).view(b, s, 3, layer.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    )
    attn = F.scaled_dot_product_attention(q, k, v, mask, dropout_p=p).transpose(1, 2).reshape(b, s, d)
    x = F.layer_norm(x + F.dropout(a.out_proj(attn), p), [d], layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    h = F.dropout(F.relu(layer.linear1(x)), p)
    return F.layer_norm(x + F.dropout(layer.linear2(h), p), [d], layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)


@dataclass
class S1Item:
    phones: torch.Tensor
    semantic: torch.Tensor
    bert: torch.Tensor | None


def make_items(features: list[ClipFeatures], s: S1Settings) -> list[S1Item]:
    items = []
    for f in features:
        seconds = f.semantic.numel() / 25
        if f.semantic.numel() > s.max_sec * 25 or f.phone_ids.numel() > s.max_sec * 25 / 2.5:
            continue
        if not s.min_ps_ratio <= f.phone_ids.numel() / seconds <= s.max_ps_ratio:
            continue
        items.append(S1Item(f.phone_ids, f.semantic, f.bert))
    return repeat_small(items, s.min_items)


def collate(items: list[S1Item], eos: int):
    b = len(items)
    n = max(x.phones.numel() for x in items)
    t = max(x.semantic.numel() for x in items)
    phones = torch.zeros(b, n, dtype=torch.long)
    semantic = torch.full((b, t), eos, dtype=torch.long)
    bert = torch.zeros(b, 1024, n)
    for i, x in enumerate(items):
        phones[i, : x.phones.numel()] = x.phones
        semantic[i, : x.semantic.numel()] = x.semantic
        if x.bert is not None:
            bert[i, :, : x.bert.shape[1]] = x.bert
    lengths = torch.tensor([x.phones.numel() for x in items]), torch.tensor([x.semantic.numel() for x in items])
    return phones, lengths[0], semantic, lengths[1], bert


def epoch_batches(count: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded shuffle per epoch, cut into batches of ``batch_size`` (the last may be smaller)."""
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
    return [order[k : k + batch_size] for k in range(0, count, batch_size)]


class S1Trainer:
    def __init__(self, base_gpt: Path, settings: S1Settings, device: torch.device) -> None:
        ckpt = load_gpt(base_gpt)
        self.base_config = ckpt.config
        self.cfg = GPTConfig.from_checkpoint_config(ckpt.config)
        self.model = Text2SemanticDecoder(self.cfg)
        self.model.load_state_dict({k: v.float() for k, v in ckpt.weights.items()})
        self.model.to(device).train()
        self.settings, self.device = settings, device
        self.optimizer = ScaledAdam(
            self.model.parameters(), lr=0.01, betas=(0.9, 0.95), clipping_scale=2.0, clipping_update_period=1000
        )
        self.epoch = 0
        self.optimizer_steps = 0

    def batch_loss(self, batch) -> tuple[float, float]:
        phones, phone_lengths, semantic, semantic_lengths, bert = (t.to(self.device) for t in batch)
        loss, acc = training_loss(self.model, phones, phone_lengths, semantic, semantic_lengths, bert)
        loss.backward()
        return float(loss.detach()), acc

    def optimizer_step(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = fine_tune_lr(self.optimizer_steps)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.optimizer_steps += 1

    def state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "optimizer_steps": self.optimizer_steps,
            "grads": {n: p.grad for n, p in self.model.named_parameters() if p.grad is not None},
        }

    def load_state(self, path: Path) -> None:
        state = read_state(path, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.optimizer_steps = int(state["epoch"]), int(state["optimizer_steps"])
        for name, p in self.model.named_parameters():
            p.grad = state["grads"].get(name)


def train_s1(
    trainer: S1Trainer,
    features: list[ClipFeatures],
    state_path: Path,
    on_step: StepHook = None,
    on_epoch_end: EpochHook = None,
) -> S1Trainer:
    """Run the epochs after ``trainer.epoch`` (resume: :meth:`S1Trainer.load_state` first), saving the
    state to ``state_path`` after each."""
    s = trainer.settings
    items = make_items(features, s)
    if not items:
        raise TrainingDataError("no clip passes the GPT's filter (3..25 phones a second, at most 54 s)")
    batch_size = max(min(s.batch_size, len(items) // 4), 1)
    while trainer.epoch < s.epochs:
        epoch = trainer.epoch + 1
        for k, ids in enumerate(epoch_batches(len(items), batch_size, s.seed, epoch)):
            loss, acc = trainer.batch_loss(collate([items[i] for i in ids], trainer.cfg.eos))
            if k > 0 and k % ACCUMULATE == 0:
                trainer.optimizer_step()
            if on_step is not None:
                on_step(
                    epoch, k, {"loss": loss, "top3_acc": acc, "lr": fine_tune_lr(max(trainer.optimizer_steps - 1, 0))}
                )
        trainer.epoch = epoch
        write_state(state_path, trainer.state())
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return trainer


def steps_per_epoch(features: list[ClipFeatures], settings: S1Settings) -> int:
    n = len(make_items(features, settings))
    return -(-n // max(min(settings.batch_size, n // 4), 1)) if n else 0

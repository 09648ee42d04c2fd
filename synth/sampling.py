"""Choosing the next semantic token, in GPT-SoVITS's order.

The original (``AR/models/utils.py: logits_to_probs`` and ``sample``) applies, in this order:
repetition penalty over every token seen so far (prompt included), top-p, temperature,
top-k, softmax, then draws with the exponential-race trick ``argmax(p / Exp(1))``. The same
order and the same random draws (one ``exponential_`` over the row per step) are kept here,
so a seed gives the original's tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    """GPT-SoVITS's sampling knobs; the defaults are its web UI's."""

    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.temperature <= 0.0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.repetition_penalty <= 0.0:
            raise ValueError(f"repetition_penalty must be positive, got {self.repetition_penalty}")


def next_token_probs(logits: torch.Tensor, previous: torch.Tensor | None, params: SamplingParams) -> torch.Tensor:
    """logits: [B, V] (modified in place by the penalty); previous: [B, N] -> probabilities [B, V]."""
    if previous is not None and params.repetition_penalty != 1.0:
        previous = previous.long()
        seen = torch.gather(logits, dim=1, index=previous)
        seen = torch.where(seen < 0, seen * params.repetition_penalty, seen / params.repetition_penalty)
        logits.scatter_(dim=1, index=previous, src=seen)
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
        drop_sorted = cumulative > params.top_p
        drop_sorted[:, 0] = False
        drop = drop_sorted.scatter(dim=1, index=order, src=drop_sorted)
        logits = logits.masked_fill(drop, -float("Inf"))
    logits = logits / max(params.temperature, 1e-5)
    kth = torch.topk(logits, min(params.top_k, logits.size(-1)))[0][:, -1].unsqueeze(-1)
    logits = torch.where(logits < kth, -float("Inf"), logits)
    return torch.softmax(logits, dim=-1)


def sample_next(
    logits: torch.Tensor,
    previous: torch.Tensor | None,
    params: SamplingParams,
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """Draw one token per row -> [B, 1] int64. Row i draws from ``generators[i]``.

    A batch of one with a generator seeded ``s`` draws exactly what the original draws after
    ``torch.manual_seed(s)``; each row of a batch draws what it would draw alone.
    """
    probs = next_token_probs(logits, previous, params)
    race = torch.empty_like(probs)
    for row, gen in enumerate(generators):
        race[row : row + 1].exponential_(1, generator=gen)
    return torch.argmax(probs / race, dim=-1, keepdim=True).long()

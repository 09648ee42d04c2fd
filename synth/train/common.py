"""What the two training stages share: the small-data repetition, the epoch hooks, the state files."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import torch

from synth.files import atomic_write_bytes

StepHook = Callable[[int, int, dict[str, float]], None] | None
"""Called after each batch with (epoch, batch index, losses)."""
EpochHook = Callable[[int], None] | None
"""Called after each epoch, once its state is on disk."""


def repeat_small(items: list, minimum: int = 100) -> list:
    """The original repeats a data set of fewer than 100 items max(2, 100 // n) times (both stages)."""
    if len(items) >= minimum or not items:
        return list(items)
    return list(items) * max(2, minimum // len(items))


def write_state(path: Path, state: dict) -> None:
    """``torch.save`` a stage's state (plain tensors and numbers) atomically: a crash leaves the last epoch's."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_state(path: Path, device: torch.device) -> dict:
    return torch.load(path, map_location=device, weights_only=True)

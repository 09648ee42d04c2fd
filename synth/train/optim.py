"""ScaledAdam, the optimiser GPT-SoVITS trains its GPT with (from icefall, via SoundStorm).

Written here from its published description and update rule; per parameter tensor:

* the update is Adam's direction times the tensor's own RMS (``param_rms``, clamped to at least
  ``param_min_rms``), with momentum ``beta1`` kept in ``delta``; so each tensor moves by a fixed
  fraction of its size, whatever its scale;
* every ``size_update_period`` steps the tensor's RMS is re-measured and its overall scale learnt
  in log space (Adam on the sum of ``p * grad``, learning rate ``lr * scalar_lr_scale``), held
  within ``[param_min_rms, param_max_rms]``;
* scalars (``numel == 1``) take plain Adam at ``lr * scalar_lr_scale`` and are clamped to
  ``±scalar_max``;
* gradients are clipped to ``clipping_scale`` times the median gradient norm (each tensor's
  gradient weighted by its RMS) over the last ``clipping_update_period`` steps, once that many
  steps have been seen (never, in a fine-tuning of a few hundred steps) — and, as the original
  computes it, the clipped gradient feeds only the scale update: the Adam direction and the
  scalars' update read the unclipped gradient.

The original stacks tensors of one shape to update them in batches; the arithmetic per tensor is
the same, so this updates them one by one. The step count that drives clipping is shared, as there.
Checked against the original's ``AR/modules/optim.py`` outside this repository: 30 steps of random
gradients over matrices, vectors and scalars, clipping period 5 with a gradient spike, the same
parameters within 1e-6.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class ScaledAdam(Optimizer):
    def __init__(
        self,
        params,
        lr: float = 3e-2,
        clipping_scale: float | None = None,
        betas: tuple[float, float] = (0.9, 0.98),
        scalar_lr_scale: float = 0.1,
        eps: float = 1e-8,
        param_min_rms: float = 1e-5,
        param_max_rms: float = 3.0,
        scalar_max: float = 10.0,
        size_update_period: int = 4,
        clipping_update_period: int = 100,
    ) -> None:
        defaults = dict(
            lr=lr,
            clipping_scale=clipping_scale,
            betas=betas,
            scalar_lr_scale=scalar_lr_scale,
            eps=eps,
            param_min_rms=param_min_rms,
            param_max_rms=param_max_rms,
            scalar_max=scalar_max,
            size_update_period=size_update_period,
            clipping_update_period=clipping_update_period,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = list(group["params"])
            first = self.state[params[0]]
            scale = 1.0 if len(first) == 0 else self._clipping_scale(group, params)
            for p in params:
                state = self.state[p]
                if len(state) == 0:
                    self._init_state(group, p, state)
                self._step_one(group, p, state, scale)
        return loss

    def _init_state(self, group: dict, p: torch.Tensor, state: dict) -> None:
        state["step"] = 0
        state["delta"] = torch.zeros_like(p)
        if p.numel() > 1:
            rms = (p**2).mean().sqrt().reshape(1)
            state["param_rms"] = rms
            state["scale_exp_avg_sq"] = torch.zeros_like(rms)
            state["scale_grads"] = torch.zeros(group["size_update_period"], 1, dtype=p.dtype, device=p.device)
        state["exp_avg_sq"] = torch.zeros_like(p)

    def _clipping_scale(self, group: dict, params: list[torch.Tensor]) -> float:
        clipping_scale = group["clipping_scale"]
        first = self.state[params[0]]
        step = first["step"]
        if clipping_scale is None or step == 0:
            return 1.0
        period = group["clipping_update_period"]
        total = torch.zeros((), device=params[0].device)
        for p in params:
            grad = _grad(p)
            if p.numel() == 1:
                total += (grad**2).sum()
            else:
                total += ((grad * self.state[p]["param_rms"]) ** 2).sum()
        norm = total.sqrt()
        if "model_norms" not in first:
            first["model_norms"] = torch.zeros(period, device=norm.device)
        first["model_norms"][step % period] = norm
        if step % period == 0:
            median = first["model_norms"].sort()[0][min(period - 1, (period // 4) * 2)].item()
            first["model_norm_threshold"] = clipping_scale * median
        if step < period or "model_norm_threshold" not in first:
            return 1.0
        return min(1.0, (first["model_norm_threshold"] / (norm + 1e-20)).item())

    def _step_one(self, group: dict, p: torch.Tensor, state: dict, clipping_scale: float) -> None:
        # As in the original, the clipping scale reaches only the gradients of the size (scale)
        # update; Adam's direction and the scalar update read the unscaled gradient.
        grad = _grad(p)
        beta1, beta2 = group["betas"]
        step = state["step"]
        delta = state["delta"]
        delta.mul_(beta1)
        if p.numel() == 1:
            lr = group["lr"] * group["scalar_lr_scale"]
            exp_avg_sq = state["exp_avg_sq"]
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (exp_avg_sq / (1 - beta2 ** (step + 1))).sqrt() + group["eps"]
            delta.add_(grad / denom, alpha=-lr * (1 - beta1))
            p.clamp_(min=-group["scalar_max"], max=group["scalar_max"])
            p.add_(delta)
            state["step"] = step + 1
            return
        period = group["size_update_period"]
        scale_grads = state["scale_grads"]
        scale_grads[step % period] = (p * grad * clipping_scale).sum() if clipping_scale != 1.0 else (p * grad).sum()
        if step % period == period - 1:
            state["param_rms"].copy_((p**2).mean().sqrt())
            if step > 0:
                self._size_update(group, p, state)
        exp_avg_sq = state["exp_avg_sq"]
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        correction = 1 - beta2 ** (step + 1)
        if correction < 0.99:
            exp_avg_sq = exp_avg_sq * (1.0 / correction)
        direction = grad / (exp_avg_sq.sqrt() + group["eps"])
        alpha = -group["lr"] * (1 - beta1) * state["param_rms"].clamp(min=group["param_min_rms"])
        delta.add_(direction * alpha)
        p.add_(delta)
        state["step"] = step + 1

    def _size_update(self, group: dict, p: torch.Tensor, state: dict) -> None:
        beta1, beta2 = group["betas"]
        size_lr = group["lr"] * group["scalar_lr_scale"]
        scale_grads = state["scale_grads"]
        period = scale_grads.shape[0]
        beta2_corr = beta2**period
        avg = state["scale_exp_avg_sq"]
        avg.mul_(beta2_corr).add_((scale_grads**2).mean(dim=0), alpha=1 - beta2_corr)
        size_step = (state["step"] + 1) // period
        correction = 1 - beta2_corr**size_step
        scale_step = -size_lr * (correction**0.5) * scale_grads.sum(dim=0) / (avg.sqrt() + group["eps"])
        rms = state["param_rms"]
        scale_step = torch.where(rms < group["param_min_rms"], torch.zeros_like(scale_step), scale_step)
        scale_step = torch.where(
            rms > group["param_max_rms"], torch.full_like(scale_step, -size_lr * period), scale_step
        )
        state["delta"].add_(p * scale_step, alpha=1 - beta1)


def _grad(p: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(p) if p.grad is None else p.grad


def fine_tune_lr(optimizer_steps_taken: int, peak_lr: float = 0.01, locked_lr: float = 0.002) -> float:
    """The GPT's learning rate in GPT-SoVITS: the optimiser's own 0.01 for its first step, then 0.002.

    Its ``WarmupCosineLRSchedule`` computes a warm-up and cosine decay, then overrides the
    result with a fixed 0.002 ("locked"); being stepped only after each optimiser step, it leaves
    the first step at the optimiser's ``lr=0.01``."""
    return peak_lr if optimizer_steps_taken == 0 else locked_lr

"""The training-only parts of GPT-SoVITS v2's SoVITS stage, under the original's parameter names.

* :class:`PosteriorEncoder` (``enc_q``): the linear spectrogram -> the latent ``z`` (WaveNet stack
  of 16 layers, kernel 5), which the published ``.pth`` files leave out.
* :class:`SoVITSTrainModel`: :class:`~synth.sovits.SynthesizerTrn` plus ``enc_q`` and the
  training forward (``SynthesizerTrn.forward`` of the original): the style vector from the
  whole spectrogram, the frozen quantizer, the prior from ``enc_p``, the posterior from
  ``enc_q``, the flow run forwards (``z -> z_p``), and the generator on a random slice of ``z``.
* :class:`MultiPeriodDiscriminator`: one scale discriminator and five period discriminators
  (2, 3, 5, 7, 11) under weight normalisation (``discriminators.N.convs.M.weight_g`` ...), so
  that ``s2D2333k.pth`` loads. ``width_divisor`` shrinks every width for tests; 1 is the original.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synth.sovits import LRELU_SLOPE, WN, CouplingLayer, Flip, SoVITSConfig, SynthesizerTrn, sequence_mask


class PosteriorEncoder(nn.Module):
    """``enc_q``: spectrogram [B, 1025, T] -> z, m, logs [B, C, T] (style vector detached, as the original)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, gin_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.pre = nn.Conv1d(in_channels, hidden, 1)
        self.enc = WN(hidden, 5, 1, 16, gin_channels)
        self.proj = nn.Conv1d(hidden, out_channels * 2, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor):
        x = self.pre(x) * mask
        x = self.enc(x, mask, g.detach())
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.out_channels, dim=1)
        z = (m + torch.randn_like(m) * torch.exp(logs)) * mask
        return z, m, logs


def flow_forward(flows: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The flow in the training direction (z -> z_p): each mean-only coupling adds its mean."""
    for flow in flows:
        if isinstance(flow, Flip):
            x = torch.flip(x, [1])
            continue
        assert isinstance(flow, CouplingLayer)
        x0, x1 = torch.split(x, [flow.half] * 2, 1)
        h = flow.pre(x0) * mask
        h = flow.enc(h, mask, g)
        m = flow.post(h) * mask
        x = torch.cat([x0, m + x1 * mask], 1)  # exp(logs) = 1 for a mean-only coupling
    return x


def slice_segments(x: torch.Tensor, starts: torch.Tensor, size: int) -> torch.Tensor:
    """Rows of x [B, C, T] from starts[b] for ``size`` steps -> [B, C, size]."""
    return torch.stack([x[i, :, int(s) : int(s) + size] for i, s in enumerate(starts)])


@dataclass
class TrainOutput:
    """What one training forward gives (the original's tuple, named)."""

    audio: torch.Tensor  # [B, 1, segment samples]
    commit_loss: torch.Tensor
    slice_starts: torch.Tensor  # [B] frame where each row's slice starts
    mask: torch.Tensor  # [B, 1, T]
    z_p: torch.Tensor
    m_p: torch.Tensor
    logs_p: torch.Tensor
    logs_q: torch.Tensor


class SoVITSTrainModel(SynthesizerTrn):
    """SynthesizerTrn with ``enc_q`` and the training forward; its state dict is the original's ``net_g``."""

    def __init__(self, cfg: SoVITSConfig, segment_frames: int = 32, freeze_quantizer: bool = True) -> None:
        super().__init__(cfg)
        self.enc_q = PosteriorEncoder(
            cfg.filter_length // 2 + 1, cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels
        )
        self.segment_frames = segment_frames
        self.freeze_quantizer = freeze_quantizer

    def quantize(self, ssl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ssl [B, 768, T50] -> (quantized [B, 768, T25], commitment loss).

        With the frozen quantizer (v2's ``freeze_quantizer: true``) the original runs the VQ in eval
        mode: the output is the nearest codebook entry (no straight-through gradient) and the
        commitment loss is 0. Unfrozen: straight-through, loss = MSE(quantized, projected)."""
        projected = self.ssl_proj(ssl)
        codes = self.quantizer.encode(projected)
        quantized = self.quantizer.decode(codes)
        if self.freeze_quantizer:
            return quantized, torch.zeros((), device=ssl.device)
        commit = F.mse_loss(quantized.detach(), projected)
        return projected + (quantized - projected).detach(), commit

    def forward_train(
        self,
        ssl: torch.Tensor,
        spec: torch.Tensor,
        spec_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
    ) -> TrainOutput:
        """ssl [B, 768, T], spec [B, 1025, T], text [B, N] -> :class:`TrainOutput`."""
        y_mask = sequence_mask(spec_lengths, spec.size(2)).to(spec.dtype)
        ge = self.ref_enc(spec[:, :704] * y_mask, y_mask)
        quantized, commit = self.quantize(ssl)
        quantized = F.interpolate(quantized, size=int(quantized.shape[-1] * 2), mode="nearest")
        text_mask = sequence_mask(text_lengths, text.size(1)).to(spec.dtype)
        # enc_p runs over the spectrogram's frame count, as the original's y_lengths mask says.
        x_mask = sequence_mask(spec_lengths, quantized.size(2)).to(spec.dtype)
        hidden = self.enc_p(quantized, x_mask, text, text_mask, ge)
        stats = self.enc_p.proj(hidden) * x_mask
        m_p, logs_p = torch.split(stats, self.cfg.inter_channels, dim=1)
        z, _m_q, logs_q = self.enc_q(spec, y_mask, ge)
        z_p = flow_forward(self.flow.flows, z, y_mask, ge)
        starts_max = spec_lengths - self.segment_frames + 1
        starts = (torch.rand([z.size(0)], device=z.device) * starts_max).to(dtype=torch.long)
        audio = self.dec(slice_segments(z, starts, self.segment_frames), ge)
        return TrainOutput(audio, commit, starts, y_mask, z_p, m_p, logs_p, logs_q)


class NormConv(nn.Module):
    """A weight-normalised Conv1d/Conv2d with groups (``weight_g``/``weight_v``/``bias``)."""

    def __init__(self, dims: int, cin: int, cout: int, kernel, stride=1, padding=0, groups: int = 1) -> None:
        super().__init__()
        kernel = (kernel,) if dims == 1 else tuple(kernel)
        self.dims, self.stride, self.padding, self.groups = dims, stride, padding, groups
        v = torch.empty(cout, cin // groups, *kernel)
        nn.init.kaiming_uniform_(v, a=5**0.5)
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.flatten(1).norm(dim=1).view(cout, *([1] * (v.dim() - 1))).clone())
        fan_in = v[0].numel()
        self.bias = nn.Parameter(torch.empty(cout).uniform_(-(fan_in**-0.5), fan_in**-0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch._weight_norm(self.weight_v, self.weight_g, 0)
        conv = F.conv1d if self.dims == 1 else F.conv2d
        return conv(x, w, self.bias, self.stride, self.padding, 1, self.groups)


def _score(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Convolutions with leaky ReLU, then the scoring convolution -> (flattened scores, every feature map)."""
    fmap = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        fmap.append(x)
    x = post(x)
    fmap.append(x)
    return torch.flatten(x, 1, -1), fmap


class DiscriminatorP(nn.Module):
    """Period discriminator: the waveform folded into [T / p, p] columns, 2-d convs along time."""

    def __init__(self, period: int, divisor: int = 1) -> None:
        super().__init__()
        self.period = period
        widths = [1] + [w // divisor for w in (32, 128, 512, 1024, 1024)]
        self.convs = nn.ModuleList(
            NormConv(2, widths[i], widths[i + 1], (5, 1), (3 if i < 4 else 1, 1), (2, 0)) for i in range(5)
        )
        self.conv_post = NormConv(2, widths[-1], 1, (3, 1), 1, (1, 0))

    def forward(self, x: torch.Tensor):
        b, c, t = x.shape
        if t % self.period:
            pad = self.period - t % self.period
            x = F.pad(x, (0, pad), "reflect")
            t += pad
        return _score(self.convs, self.conv_post, x.view(b, c, t // self.period, self.period))


class DiscriminatorS(nn.Module):
    """Scale discriminator on the raw waveform (grouped strided 1-d convs)."""

    def __init__(self, divisor: int = 1) -> None:
        super().__init__()
        layers = [  # (cin, cout, kernel, stride, groups, padding) of the original
            (1, 16, 15, 1, 1, 7),
            (16, 64, 41, 4, 4, 20),
            (64, 256, 41, 4, 16, 20),
            (256, 1024, 41, 4, 64, 20),
            (1024, 1024, 41, 4, 256, 20),
            (1024, 1024, 5, 1, 1, 2),
        ]
        self.convs = nn.ModuleList(
            NormConv(
                1,
                1 if cin == 1 else cin // divisor,
                cout // divisor,
                k,
                s,
                p,
                max(1, g // divisor) if cin > 1 else 1,
            )
            for cin, cout, k, s, g, p in layers
        )
        self.conv_post = NormConv(1, 1024 // divisor, 1, 3, 1, 1)

    def forward(self, x: torch.Tensor):
        return _score(self.convs, self.conv_post, x)


class MultiPeriodDiscriminator(nn.Module):
    """``net_d``: DiscriminatorS, then DiscriminatorP for periods 2, 3, 5, 7, 11."""

    PERIODS = (2, 3, 5, 7, 11)

    def __init__(self, width_divisor: int = 1) -> None:
        super().__init__()
        self.width_divisor = width_divisor
        self.discriminators = nn.ModuleList(
            [DiscriminatorS(width_divisor)] + [DiscriminatorP(p, width_divisor) for p in self.PERIODS]
        )

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor):
        """Real and generated waveforms [B, 1, T] -> (real scores, fake scores, real fmaps, fake fmaps)."""
        real, fake, fmap_r, fmap_g = [], [], [], []
        for d in self.discriminators:
            r, fr = d(y)
            g, fg = d(y_hat)
            real.append(r)
            fake.append(g)
            fmap_r.append(fr)
            fmap_g.append(fg)
        return real, fake, fmap_r, fmap_g

"""The SoVITS stage: GPT-SoVITS v2's SynthesizerTrn, decode path only.

semantic tokens (25 Hz) + phones + the reference's spectrogram -> 32 kHz waveform:
quantizer decode, x2 upsampling to 50 Hz, the text/SSL encoders joined by MRTE
(multi-reference timbre encoder), a normalising flow run in reverse, and a HiFi-GAN
generator (10*8*2*2*2 = 640 samples per frame). Also the encode path used on the
reference: HuBERT features -> ``ssl_proj`` -> nearest codebook entry = prompt tokens.

Module and parameter names follow the published ``.pth`` files (``enc_p.encoder_text.
attn_layers.0.conv_q.weight``, ``dec.ups.0.weight_g`` ...). Weight-normalised
convolutions keep ``weight_g``/``weight_v`` as stored and fold them into one weight once
after loading (:meth:`SynthesizerTrn.fold_weight_norm`), with the same function the
original calls on every forward.

On a CPU the generator's wider residual-block convolutions (kernels of 7 and 11 taps, 32 to 64
channels or more) run through FFTs (:func:`synth.native.fft_conv`): the same convolutions with a third
(7 taps) to a fifth (11 taps) of the multiply-adds, within float rounding of the direct ones
(``SYNTH_FFT_CONV=0`` turns it off).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from synth import native

LRELU_SLOPE = 0.1
P_DROPOUT = 0.1  # s2.json's p_dropout: the text encoder's dropout, active only while training


@dataclass(frozen=True)
class SoVITSConfig:
    """Hyper-parameters of a v2 SynthesizerTrn (``s2.json`` defaults) and its audio front end."""

    inter_channels: int = 192
    hidden_channels: int = 192
    filter_channels: int = 768
    n_heads: int = 2
    n_layers: int = 6
    kernel_size: int = 3
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    upsample_rates: tuple[int, ...] = (10, 8, 2, 2, 2)
    upsample_initial_channel: int = 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 2, 2)
    gin_channels: int = 512
    phone_symbols: int = 732
    sampling_rate: int = 32000
    filter_length: int = 2048
    hop_length: int = 640
    win_length: int = 2048
    extra_model: dict = field(default_factory=dict, compare=False)

    @classmethod
    def from_checkpoint_config(cls, config: dict) -> SoVITSConfig:
        m, d = config["model"], config["data"]
        if m.get("resblock", "1") != "1":
            raise ValueError("only HiFi-GAN resblock type '1' is used by GPT-SoVITS v2")
        return cls(
            inter_channels=int(m["inter_channels"]),
            hidden_channels=int(m["hidden_channels"]),
            filter_channels=int(m["filter_channels"]),
            n_heads=int(m["n_heads"]),
            n_layers=int(m["n_layers"]),
            kernel_size=int(m["kernel_size"]),
            resblock_kernel_sizes=tuple(int(k) for k in m["resblock_kernel_sizes"]),
            resblock_dilation_sizes=tuple(tuple(int(x) for x in d_) for d_ in m["resblock_dilation_sizes"]),
            upsample_rates=tuple(int(u) for u in m["upsample_rates"]),
            upsample_initial_channel=int(m["upsample_initial_channel"]),
            upsample_kernel_sizes=tuple(int(k) for k in m["upsample_kernel_sizes"]),
            gin_channels=int(m["gin_channels"]),
            sampling_rate=int(d["sampling_rate"]),
            filter_length=int(d["filter_length"]),
            hop_length=int(d["hop_length"]),
            win_length=int(d["win_length"]),
        )

    def to_checkpoint_config(self) -> dict:
        """The ``hps`` layout GPT-SoVITS's trainer saves (``s2.json``)."""
        return {
            "train": {
                "log_interval": 100,
                "eval_interval": 500,
                "seed": 1234,
                "epochs": 100,
                "learning_rate": 0.0001,
                "betas": [0.8, 0.99],
                "eps": 1e-09,
                "batch_size": 32,
                "fp16_run": True,
                "lr_decay": 0.999875,
                "segment_size": 20480,
                "init_lr_ratio": 1,
                "warmup_epochs": 0,
                "c_mel": 45,
                "c_kl": 1.0,
                "text_low_lr_rate": 0.4,
            },
            "data": {
                "max_wav_value": 32768.0,
                "sampling_rate": self.sampling_rate,
                "filter_length": self.filter_length,
                "hop_length": self.hop_length,
                "win_length": self.win_length,
                "n_mel_channels": 128,
                "mel_fmin": 0.0,
                "mel_fmax": None,
                "add_blank": True,
                "n_speakers": 300,
                "cleaned_text": True,
            },
            "model": {
                "inter_channels": self.inter_channels,
                "hidden_channels": self.hidden_channels,
                "filter_channels": self.filter_channels,
                "n_heads": self.n_heads,
                "n_layers": self.n_layers,
                "kernel_size": self.kernel_size,
                "p_dropout": 0.1,
                "resblock": "1",
                "resblock_kernel_sizes": list(self.resblock_kernel_sizes),
                "resblock_dilation_sizes": [list(d) for d in self.resblock_dilation_sizes],
                "upsample_rates": list(self.upsample_rates),
                "upsample_initial_channel": self.upsample_initial_channel,
                "upsample_kernel_sizes": list(self.upsample_kernel_sizes),
                "n_layers_q": 3,
                "use_spectral_norm": False,
                "gin_channels": self.gin_channels,
                "semantic_frame_rate": "25hz",
                "freeze_quantizer": True,
                "version": "v2",
            },
            "s2_ckpt_dir": "logs/s2",
            "content_module": "cnhubert",
            "save_weight_dir": "SoVITS_weights_v2",
            "name": "voice",
            "version": "v2",
        }

    @property
    def samples_per_frame(self) -> int:
        """Waveform samples per 50 Hz latent frame (640 for v2)."""
        return math.prod(self.upsample_rates)


# ----------------------------------------------------------------------------- building blocks


class WNConv(nn.Module):
    """A (transposed) convolution under weight normalisation, stored as ``weight_g``/``weight_v``."""

    def __init__(self, kind: str, cin: int, cout: int, kernel, stride=1, padding=0, dilation=1, bias=True) -> None:
        super().__init__()
        self.kind = kind
        self.stride, self.padding, self.dilation = stride, padding, dilation
        if kind == "conv1d":
            shape = (cout, cin, kernel)
        elif kind == "convT1d":
            shape = (cin, cout, kernel)
        else:
            shape = (cout, cin, *kernel)
        self.weight_v = nn.Parameter(torch.randn(shape) * 0.01)
        self.weight_g = nn.Parameter(torch.ones(shape[0], *([1] * (len(shape) - 1))))
        self.bias = nn.Parameter(torch.zeros(shape[1] if kind == "convT1d" else cout)) if bias else None
        self._folded: torch.Tensor | None = None

    def weight(self) -> torch.Tensor:
        if self._folded is not None:
            return self._folded
        return torch._weight_norm(self.weight_v, self.weight_g, 0)

    def fold(self) -> None:
        self._folded = torch._weight_norm(self.weight_v, self.weight_g, 0).detach().contiguous()

    def unfold(self) -> None:
        self._folded = None

    def through_fft(self) -> bool:
        """Whether :meth:`rows` runs this convolution through FFTs on a CPU: a folded 1-d convolution that
        keeps the length, with channel counts native_conv.c takes, wide enough that the FFTs pay (measured
        on an AVX-512 CPU: kernels of 7 taps from 64 channels, of 11 from 32; never 3 taps), on a CPU with
        AVX2 or AVX-512."""
        w = self._folded
        if w is None or self.kind != "conv1d" or self.stride != 1 or self.bias is None or w.device.type != "cpu":
            return False
        cout, cin, k = w.shape
        if cin % native.FFT_CHANNELS or cout % native.FFT_CHANNELS or 2 * self.padding != (k - 1) * self.dilation:
            return False
        if not ((k >= 11 and min(cin, cout) >= 32) or (k >= 7 and min(cin, cout) >= 64)):
            return False
        if os.environ.get("SYNTH_FFT_CONV", "1") == "0":
            return False
        lib = native.library()
        # Plain C (no AVX2: other architectures) computes the products a lane at a time, 17x slower than oneDNN.
        return lib is not None and native.isa(lib) != "portable"

    def rows(
        self,
        x: torch.Tensor,
        *,
        activated: torch.Tensor | None = None,
        own_input: bool = False,
        residual: torch.Tensor | None = None,
        into_residual: bool = False,
        scratch: native.ConvScratch | None = None,
    ) -> torch.Tensor:
        """``self(leaky_relu(x)) (+ residual)`` on the generator's rows ([1, C, 1, T], time-major on a CPU).

        activated: ``leaky_relu(x)`` when the caller has it; own_input: x may be overwritten;
        into_residual: the sum is written into ``residual``; scratch: lets the convolution run
        through FFTs (:meth:`through_fft`; without a gradient, one row), else it runs directly."""
        if (
            scratch is not None
            and x.shape[0] == 1
            and not torch.is_grad_enabled()
            and x.is_contiguous(memory_format=torch.channels_last)
            and self.through_fft()
        ):
            w = self._folded
            length = x.shape[3]
            if into_residual:
                out = residual
            else:
                out = torch.empty(1, w.shape[0], 1, length, memory_format=torch.channels_last)
            # [1, C, 1, T] stored channels-last is [T, C] row-major
            done = native.fft_conv(
                native.library(),
                x[0, :, 0, :].t(),
                w,
                self.bias.detach(),
                self.dilation,
                self.padding,
                out[0, :, 0, :].t(),
                scratch,
                activate=LRELU_SLOPE,
                residual=None if residual is None else residual[0, :, 0, :].t(),
            )
            if done:
                return out
        if activated is None:
            activated = F.leaky_relu_(x, LRELU_SLOPE) if own_input else F.leaky_relu(x, LRELU_SLOPE)
        y = self(activated)
        if residual is None:
            return y
        return residual.add_(y) if into_residual else y + residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T], or for the 1-d kinds [B, C, 1, T] (the generator's rows, see :func:`as_rows`)."""
        w = self.weight()
        if self.kind == "conv2d":
            return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation)
        if x.dim() == 4:
            w = w.unsqueeze(2)
            if self.kind == "conv1d":
                return F.conv2d(x, w, self.bias, (1, self.stride), (0, self.padding), (1, self.dilation))
            return F.conv_transpose2d(x, w, self.bias, (1, self.stride), (0, self.padding))
        if self.kind == "conv1d":
            return F.conv1d(x, w, self.bias, self.stride, self.padding, self.dilation)
        return F.conv_transpose1d(x, w, self.bias, self.stride, self.padding)


class RowConv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters) that also takes the generator's ``[B, C, 1, T]`` rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            return super().forward(x)
        return F.conv2d(
            x, self.weight.unsqueeze(2), self.bias, (1, self.stride[0]), (0, self.padding[0]), (1, self.dilation[0])
        )


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T] -> [B, C, 1, T], stored time-major (channels last) on a CPU.

    The same convolutions as on [B, C, T], through the 2-d kernels: on a CPU, oneDNN runs a
    channels-last convolution with its direct (brgemm) kernels, where a [B, C, T] one goes
    through im2col and a GEMM; the HiFi-GAN generator runs about 1.5x as fast (BENCHMARKS.md).
    The sums are ordered differently: outputs differ by float rounding (about 1e-7)."""
    x = x.unsqueeze(2)
    return x.contiguous(memory_format=torch.channels_last) if x.device.type == "cpu" else x.contiguous()


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] (``gamma``/``beta``)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.eps = channels, eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, -1)
        x = F.layer_norm(x, (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class RelativeAttention(nn.Module):
    """VITS multi-head attention over [B, C, T], optionally with relative positions (window 4)."""

    def __init__(
        self, channels: int, out_channels: int, heads: int, window_size: int | None = None, p_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.heads, self.window_size = heads, window_size
        self.p_dropout = p_dropout  # on the attention weights, in training only (synth.train)
        self.k_channels = channels // heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, out_channels, 1)
        if window_size is not None:
            std = self.k_channels**-0.5
            self.emb_rel_k = nn.Parameter(torch.randn(1, window_size * 2 + 1, self.k_channels) * std)
            self.emb_rel_v = nn.Parameter(torch.randn(1, window_size * 2 + 1, self.k_channels) * std)

    def forward(self, x: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.conv_q(x), self.conv_k(c), self.conv_v(c)
        b, d, t_s = k.shape
        t_t = q.size(2)
        q = q.view(b, self.heads, self.k_channels, t_t).transpose(2, 3)
        k = k.view(b, self.heads, self.k_channels, t_s).transpose(2, 3)
        v = v.view(b, self.heads, self.k_channels, t_s).transpose(2, 3)
        q_scaled = q / math.sqrt(self.k_channels)
        scores = torch.matmul(q_scaled, k.transpose(-2, -1))
        if self.window_size is not None:
            rel_k = self._window(self.emb_rel_k, t_s)
            rel_logits = torch.matmul(q_scaled, rel_k.unsqueeze(0).transpose(-2, -1))
            scores = scores + _relative_to_absolute(rel_logits)
        if mask is not None:
            scores = scores.masked_fill(mask == 0, -1e4)
        p = F.dropout(F.softmax(scores, dim=-1), self.p_dropout, self.training)
        out = torch.matmul(p, v)
        if self.window_size is not None:
            rel_v = self._window(self.emb_rel_v, t_s)
            out = out + torch.matmul(_absolute_to_relative(p), rel_v.unsqueeze(0))
        out = out.transpose(2, 3).contiguous().view(b, d, t_t)
        return self.conv_o(out)

    def _window(self, emb: torch.Tensor, length: int) -> torch.Tensor:
        w = self.window_size
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad > 0:
            emb = F.pad(emb, (0, 0, pad, pad))
        return emb[:, start : start + 2 * length - 1]


def _relative_to_absolute(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, 2l-1] -> [b, h, l, l]."""
    b, h, length, _ = x.size()
    x = F.pad(x, (0, 1))
    x = F.pad(x.view(b, h, length * 2 * length), (0, length - 1))
    return x.view(b, h, length + 1, 2 * length - 1)[:, :, :length, length - 1 :]


def _absolute_to_relative(x: torch.Tensor) -> torch.Tensor:
    """[b, h, l, l] -> [b, h, l, 2l-1]."""
    b, h, length, _ = x.size()
    x = F.pad(x, (0, length - 1))
    x = F.pad(x.view(b, h, length**2 + length * (length - 1)), (length, 0))
    return x.view(b, h, length, 2 * length)[:, :, :, 1:]


class FFN(nn.Module):
    def __init__(self, channels: int, filter_channels: int, kernel_size: int, p_dropout: float = 0.0) -> None:
        super().__init__()
        self.kernel_size, self.p_dropout = kernel_size, p_dropout
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == 1:
            return x
        return F.pad(x, ((self.kernel_size - 1) // 2, self.kernel_size // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = F.dropout(torch.relu(self.conv_1(self._pad(x * mask))), self.p_dropout, self.training)
        return self.conv_2(self._pad(x * mask)) * mask


class Encoder(nn.Module):
    """Transformer encoder over [B, C, T] with relative attention (``attentions.Encoder``).

    ``p_dropout`` (0.1 in ``enc_p``, as ``s2.json``) acts only in training mode (``synth.train``)."""

    def __init__(
        self, channels: int, filter_channels: int, heads: int, layers: int, kernel_size: int, p_dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.p_dropout = p_dropout
        self.attn_layers = nn.ModuleList(
            RelativeAttention(channels, channels, heads, 4, p_dropout) for _ in range(layers)
        )
        self.norm_layers_1 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        self.ffn_layers = nn.ModuleList(FFN(channels, filter_channels, kernel_size, p_dropout) for _ in range(layers))
        self.norm_layers_2 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, n1, ffn, n2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = n1(x + F.dropout(attn(x, x, attn_mask), self.p_dropout, self.training))
            x = n2(x + F.dropout(ffn(x, mask), self.p_dropout, self.training))
        return x * mask


class MRTE(nn.Module):
    """Multi-reference timbre encoder: SSL frames attend to the text, plus the style vector."""

    def __init__(self, content_channels: int = 192, hidden: int = 512, out_channels: int = 192, heads: int = 4) -> None:
        super().__init__()
        self.cross_attention = RelativeAttention(hidden, hidden, heads)
        self.c_pre = nn.Conv1d(content_channels, hidden, 1)
        self.text_pre = nn.Conv1d(content_channels, hidden, 1)
        self.c_post = nn.Conv1d(hidden, out_channels, 1)

    def forward(self, ssl, ssl_mask, text, text_mask, ge):
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)
        ssl = self.c_pre(ssl * ssl_mask)
        text = self.text_pre(text * text_mask)
        x = self.cross_attention(ssl * ssl_mask, text * text_mask, attn_mask) + ssl + ge
        return self.c_post(x * ssl_mask)


class TextEncoder(nn.Module):
    """``enc_p``: SSL encoder, phone encoder, MRTE, a second encoder, and the prior's projection."""

    def __init__(self, cfg: SoVITSConfig) -> None:
        super().__init__()
        h, f, nh, nl, k = cfg.hidden_channels, cfg.filter_channels, cfg.n_heads, cfg.n_layers, cfg.kernel_size
        self.out_channels = cfg.inter_channels
        self.ssl_proj = nn.Conv1d(768, h, 1)
        self.encoder_ssl = Encoder(h, f, nh, nl // 2, k, P_DROPOUT)
        self.encoder_text = Encoder(h, f, nh, nl, k, P_DROPOUT)
        self.text_embedding = nn.Embedding(cfg.phone_symbols, h)
        self.mrte = MRTE()
        self.encoder2 = Encoder(h, f, nh, nl // 2, k, P_DROPOUT)
        self.proj = nn.Conv1d(h, cfg.inter_channels * 2, 1)

    def forward(self, y, y_mask, text, text_mask, ge):
        """y: [B, 768, T] quantized SSL at 50 Hz; text: [B, N] -> hidden [B, C, T] (before ``proj``)."""
        y = self.ssl_proj(y * y_mask) * y_mask
        y = self.encoder_ssl(y * y_mask, y_mask)
        t = self.text_embedding(text).transpose(1, 2)
        t = self.encoder_text(t * text_mask, text_mask)
        y = self.mrte(y, y_mask, t, text_mask, ge)
        return self.encoder2(y * y_mask, y_mask)


class WN(nn.Module):
    """WaveNet-style gated residual stack conditioned on the style vector."""

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, layers: int, gin_channels: int) -> None:
        super().__init__()
        self.hidden, self.layers = hidden, layers
        self.cond_layer = WNConv("conv1d", gin_channels, 2 * hidden * layers, 1)
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(layers):
            dilation = dilation_rate**i
            padding = int((kernel_size * dilation - dilation) / 2)
            self.in_layers.append(WNConv("conv1d", hidden, 2 * hidden, kernel_size, dilation=dilation, padding=padding))
            out = 2 * hidden if i < layers - 1 else hidden
            self.res_skip_layers.append(WNConv("conv1d", hidden, out, 1))

    def forward(self, x, mask, g):
        output = torch.zeros_like(x)
        g = self.cond_layer(g)
        h = self.hidden
        for i in range(self.layers):
            x_in = self.in_layers[i](x)
            acts = x_in + g[:, i * 2 * h : (i + 1) * 2 * h, :]
            acts = torch.tanh(acts[:, :h, :]) * torch.sigmoid(acts[:, h:, :])
            res_skip = self.res_skip_layers[i](acts)
            if i < self.layers - 1:
                x = (x + res_skip[:, :h, :]) * mask
                output = output + res_skip[:, h:, :]
            else:
                output = output + res_skip
        return output * mask


class Flip(nn.Module):
    def forward(self, x, *_args, **_kwargs):
        return torch.flip(x, [1])


class CouplingLayer(nn.Module):
    """Mean-only affine coupling (``modules.ResidualCouplingLayer``), reverse direction."""

    def __init__(self, channels: int, hidden: int, kernel_size: int, dilation_rate: int, layers: int, gin: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel_size, dilation_rate, layers, gin)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def forward(self, x, mask, g):
        x0, x1 = torch.split(x, [self.half] * 2, 1)
        h = self.pre(x0) * mask
        h = self.enc(h, mask, g)
        m = self.post(h) * mask
        # The original also multiplies by exp(-logs) with logs = 0: exactly 1, so left out.
        x1 = (x1 - m) * mask
        return torch.cat([x0, x1], 1)


class ResidualCouplingBlock(nn.Module):
    def __init__(self, channels: int, hidden: int, gin: int, flows: int = 4) -> None:
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(flows):
            self.flows.append(CouplingLayer(channels, hidden, 5, 1, 4, gin))
            self.flows.append(Flip())

    def reverse(self, x, mask, g):
        for flow in reversed(self.flows):
            x = flow(x, mask, g)
        return x


class ResBlock1(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            WNConv("conv1d", channels, channels, kernel_size, dilation=d, padding=(kernel_size * d - d) // 2)
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            WNConv("conv1d", channels, channels, kernel_size, dilation=1, padding=(kernel_size - 1) // 2)
            for _ in dilations
        )

    def forward(self, x, activated: torch.Tensor | None = None, scratch: native.ConvScratch | None = None):
        """x: [B, C, 1, T] rows (not modified: the generator feeds the same x to every block) -> the same shape.

        ``activated``: ``leaky_relu(x)`` when the caller has it (the generator computes it once for the
        three blocks of a stage, where each block would compute the same tensor again); ``scratch``: lets
        the convolutions run through FFTs (:meth:`WNConv.rows`)."""
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2, strict=True)):
            xt = c1.rows(x, activated=activated if i == 0 else None, scratch=scratch)
            # The sum in place after the first (x is the caller's until then): these tensors are tens of MB at
            # the late stages, and every fresh one costs page faults; the sums are the same.
            # (Out of place while training: autograd keeps x for the next leaky_relu's gradient.)
            in_place = i > 0 and not torch.is_grad_enabled()
            x = c2.rows(xt, own_input=True, residual=x, into_residual=in_place, scratch=scratch)
        return x

    def first_direct(self) -> bool:
        """Whether the first convolution runs directly (and so takes ``activated`` from the caller)."""
        return not self.convs1[0].through_fft()


class Generator(nn.Module):
    """HiFi-GAN generator: latent frames [B, C, T] -> waveform [B, 1, T * 640]."""

    def __init__(self, cfg: SoVITSConfig) -> None:
        super().__init__()
        ch0 = cfg.upsample_initial_channel
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.conv_pre = RowConv1d(cfg.inter_channels, ch0, 7, 1, padding=3)
        self.ups = nn.ModuleList(
            WNConv("convT1d", ch0 // 2**i, ch0 // 2 ** (i + 1), k, stride=u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes, strict=True))
        )
        self.resblocks = nn.ModuleList()
        ch = ch0
        for i in range(len(self.ups)):
            ch = ch0 // 2 ** (i + 1)
            for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes, strict=True):
                self.resblocks.append(ResBlock1(ch, k, d))
        self.conv_post = RowConv1d(ch, 1, 7, 1, padding=3, bias=False)
        self.cond = RowConv1d(cfg.gin_channels, ch0, 1)

    def forward(self, x, g):
        """x: [B, C, T] latent frames; g: [B, gin, 1] style -> [B, 1, T * 640].

        Runs on :func:`as_rows` ([B, C, 1, T], time-major on a CPU)."""
        x = self.conv_pre(as_rows(x))
        x = x + self.cond(g.unsqueeze(2))
        scratch = native.ConvScratch() if x.device.type == "cpu" else None
        for i, up in enumerate(self.ups):
            # x is this loop's own tensor: activated in place when no gradient needs the original.
            x = up(F.leaky_relu(x, LRELU_SLOPE) if torch.is_grad_enabled() else F.leaky_relu_(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            # Every block's first input, computed once, not once a block (the FFT convolutions activate as they read)
            activated = F.leaky_relu(x, LRELU_SLOPE) if sum(b.first_direct() for b in blocks) > 1 else None
            xs = blocks[0](x, activated, scratch)
            for block in blocks[1:]:
                xs.add_(block(x, activated, scratch))
            del activated
            x = xs.div_(self.num_kernels)
            if x.device.type == "cpu":
                release_freed_memory()
        del scratch
        x = self.conv_post(F.leaky_relu_(x))
        return torch.tanh_(x).squeeze(2)


_libc: ctypes.CDLL | bool | None = False  # False: not looked up yet


def release_freed_memory() -> None:
    """Hand the memory freed so far back to the operating system (glibc's ``malloc_trim``).

    Each generator stage frees tens of MB of activations of one size and allocates the next
    stage's, twice as long; glibc keeps the freed pieces in a fragmented heap instead of
    reusing them, and a 10 s sentence peaked about 300 MB higher than the live tensors needed.
    Trimming once per stage keeps the peak at what is live (a few milliseconds at most).
    A no-op where the C library has no ``malloc_trim``."""
    global _libc
    if _libc is False:
        name = ctypes.util.find_library("c")
        try:
            lib = ctypes.CDLL(name) if name else None
        except OSError:
            lib = None
        _libc = lib if lib is not None and hasattr(lib, "malloc_trim") else None
    if _libc is not None:
        _libc.malloc_trim(0)


class LinearNorm(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.fc = nn.Linear(cin, cout)

    def forward(self, x):
        return self.fc(x)


class Mish(nn.Module):
    def forward(self, x):
        return x * torch.tanh(F.softplus(x))


class ConvNorm(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel_size, padding=(kernel_size - 1) // 2)

    def forward(self, x):
        return self.conv(x)


class Conv1dGLU(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv1 = ConvNorm(channels, 2 * channels, kernel_size)

    def forward(self, x):
        a, b = torch.split(self.conv1(x), self.channels, dim=1)
        return x + a * torch.sigmoid(b)


class StyleAttention(nn.Module):
    """``modules.MultiHeadAttention`` of the style encoder (w_qs/w_ks/w_vs/fc, residual)."""

    def __init__(self, heads: int, d_model: int) -> None:
        super().__init__()
        self.heads, self.d_k = heads, d_model // heads
        self.w_qs = nn.Linear(d_model, d_model)
        self.w_ks = nn.Linear(d_model, d_model)
        self.w_vs = nn.Linear(d_model, d_model)
        self.fc = nn.Linear(d_model, d_model)
        self.temperature = float(d_model) ** 0.5

    def forward(self, x, mask):
        b, t, _ = x.shape
        n, dk = self.heads, self.d_k
        q = self.w_qs(x).view(b, t, n, dk).permute(2, 0, 1, 3).contiguous().view(-1, t, dk)
        k = self.w_ks(x).view(b, t, n, dk).permute(2, 0, 1, 3).contiguous().view(-1, t, dk)
        v = self.w_vs(x).view(b, t, n, dk).permute(2, 0, 1, 3).contiguous().view(-1, t, dk)
        attn = torch.bmm(q, k.transpose(1, 2)) / self.temperature
        attn = attn.masked_fill(mask.repeat(n, 1, 1), -float("inf"))
        out = torch.bmm(torch.softmax(attn, dim=2), v)
        out = out.view(n, b, t, dk).permute(1, 2, 0, 3).contiguous().view(b, t, -1)
        return self.fc(out) + x


class MelStyleEncoder(nn.Module):
    """``ref_enc``: the first 704 spectrogram bins of the reference -> style vector [B, gin, 1]."""

    def __init__(self, n_in: int = 704, hidden: int = 128, out: int = 512, kernel: int = 5, heads: int = 2) -> None:
        super().__init__()
        self.spectral = nn.Sequential(
            LinearNorm(n_in, hidden), Mish(), nn.Dropout(0.0), LinearNorm(hidden, hidden), Mish(), nn.Dropout(0.0)
        )
        self.temporal = nn.Sequential(Conv1dGLU(hidden, kernel), Conv1dGLU(hidden, kernel))
        self.slf_attn = StyleAttention(heads, hidden)
        self.fc = LinearNorm(hidden, out)

    def forward(self, x, mask):
        """x: [B, 704, T]; mask: [B, 1, T] float (1 = frame)."""
        x = x.transpose(1, 2)
        pad = (mask.int() == 0).squeeze(1)
        attn_mask = pad.unsqueeze(1).expand(-1, x.shape[1], -1)
        x = self.spectral(x)
        x = self.temporal(x.transpose(1, 2)).transpose(1, 2)
        x = x.masked_fill(pad.unsqueeze(-1), 0)
        x = self.fc(self.slf_attn(x, attn_mask))
        length = (~pad).sum(dim=1).unsqueeze(1)
        x = x.masked_fill(pad.unsqueeze(-1), 0)
        dtype = x.dtype
        w = torch.div(x.float(), length.unsqueeze(1)).sum(dim=1).to(dtype)
        return w.unsqueeze(-1)


class Codebook(nn.Module):
    """``_codebook`` buffers of the single residual-VQ layer (1,024 x 768)."""

    def __init__(self, bins: int = 1024, dim: int = 768) -> None:
        super().__init__()
        self.register_buffer("inited", torch.ones(1))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.randn(bins, dim))
        self.register_buffer("embed_avg", self.embed.clone())


class VQLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._codebook = Codebook()


class VQStack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([VQLayer()])


class Quantizer(nn.Module):
    """``quantizer``: SSL features <-> semantic tokens through the nearest codebook entry."""

    def __init__(self) -> None:
        super().__init__()
        self.vq = VQStack()

    @property
    def embed(self) -> torch.Tensor:
        return self.vq.layers[0]._codebook.embed

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, 768, T] -> codes [B, T] (nearest entry by Euclidean distance)."""
        b, d, t = x.shape
        flat = x.transpose(1, 2).reshape(-1, d)
        embed = self.embed.t()
        dist = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed + embed.pow(2).sum(0, keepdim=True))
        return dist.max(dim=-1).indices.view(b, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes: [B, T] -> [B, 768, T]."""
        return F.embedding(codes, self.embed).transpose(1, 2)


# ----------------------------------------------------------------------------- the prior's noise


class PriorNoise:
    """The noise that samples the SoVITS prior, drawn frame by frame from its own generator.

    Frame ``t`` always gets the ``t``-th block of ``channels`` normals, whatever the sentence's
    length and however its frames are asked for (all at once, or chunk by chunk while
    streaming), so streamed audio can use exactly the noise that one-shot synthesis uses.
    (The original draws ``randn_like`` of the whole ``[C, T]`` prior, whose value at a frame
    depends on ``T``; a stream cannot know ``T`` before the sentence ends.)
    """

    BLOCK = 64  # frames drawn at a time

    def __init__(
        self, seed: int, channels: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> None:
        # A seed of its own, so that these draws are not the GPT sampler's (which uses ``seed``).
        digest = hashlib.sha256(f"sovits-prior-noise/{int(seed)}".encode()).digest()
        self._generator = torch.Generator(device=device).manual_seed(int.from_bytes(digest[:4], "little"))
        self.channels, self.device, self.dtype = channels, device, dtype
        self._frames = torch.empty(0, channels, dtype=dtype, device=device)  # [drawn, C]

    def take(self, frames: int) -> torch.Tensor:
        """The noise of frames 0..frames-1: [C, frames]."""
        while self._frames.shape[0] < frames:
            block = torch.randn(
                self.BLOCK, self.channels, generator=self._generator, device=self.device, dtype=self.dtype
            )
            self._frames = torch.cat([self._frames, block])
        return self._frames[:frames].t()


class OriginalPriorNoise:
    """The original's draw: ``randn`` over the whole ``[C, T]`` prior, from the sentence's generator.

    Taken after the GPT has sampled the sentence, this is exactly what the original draws after
    ``torch.manual_seed(seed)``. Its value at a frame depends on ``T``, so it can be taken once,
    for the whole sentence, and cannot serve a low-latency stream.
    """

    def __init__(
        self,
        generator: torch.Generator,
        channels: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self._generator, self.channels, self.device, self.dtype = generator, channels, device, dtype
        self._drawn: torch.Tensor | None = None

    def take(self, frames: int) -> torch.Tensor:
        """The noise of frames 0..frames-1: [C, frames]; always the same length."""
        if self._drawn is None:
            self._drawn = torch.randn(
                1, self.channels, frames, generator=self._generator, device=self.device, dtype=self.dtype
            )[0]
        if self._drawn.shape[1] != frames:
            raise ValueError(
                "the original's prior noise is drawn once for a whole sentence; "
                "use PriorNoise for a sentence decoded piece by piece"
            )
        return self._drawn


NoiseSource = PriorNoise | OriginalPriorNoise


# ----------------------------------------------------------------------------- the model


def sequence_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """lengths: [B] -> [B, 1, max_len] float mask."""
    return (torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1)


class SynthesizerTrn(nn.Module):
    """GPT-SoVITS v2 SoVITS model, without the training-only posterior encoder ``enc_q``."""

    def __init__(self, cfg: SoVITSConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.enc_p = TextEncoder(cfg)
        self.dec = Generator(cfg)
        self.flow = ResidualCouplingBlock(cfg.inter_channels, cfg.hidden_channels, cfg.gin_channels)
        self.ref_enc = MelStyleEncoder(704, out=cfg.gin_channels)
        self.ssl_proj = nn.Conv1d(768, 768, 2, stride=2)
        self.quantizer = Quantizer()

    def fold_weight_norm(self) -> None:
        for module in self.modules():
            if isinstance(module, WNConv):
                module.fold()

    @torch.no_grad()
    def extract_latent(self, ssl: torch.Tensor) -> torch.Tensor:
        """HuBERT features [B, 768, T50] -> semantic tokens [B, T50 // 2]."""
        return self.quantizer.encode(self.ssl_proj(ssl))

    @torch.no_grad()
    def style(self, refer: torch.Tensor) -> torch.Tensor:
        """Reference linear spectrogram [1, 1025, T] -> style vector [1, gin, 1]."""
        mask = torch.ones(refer.shape[0], 1, refer.shape[2], dtype=refer.dtype, device=refer.device)
        return self.ref_enc(refer[:, :704] * mask, mask)

    @torch.no_grad()
    def decode_latent(
        self,
        codes: torch.Tensor,
        code_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        ge: torch.Tensor,
        speed: float = 1.0,
    ):
        """Prior over latent frames for a batch.

        codes: [B, T25] (padded); text: [B, N] (padded); ge: [1 or B, gin, 1].
        Returns (m_p, logs_p, mask) at 50 Hz / ``speed``: [B, C, T'], [B, C, T'], [B, 1, T'] and
        the per-row frame counts.
        """
        quantized = self.quantizer.decode(codes)
        quantized = F.interpolate(quantized, size=int(quantized.shape[-1] * 2), mode="nearest")
        y_lengths = code_lengths * 2
        y_mask = sequence_mask(y_lengths, quantized.shape[-1]).to(quantized.dtype)
        text_mask = sequence_mask(text_lengths, text.shape[1]).to(quantized.dtype)
        y = self.enc_p(quantized, y_mask, text, text_mask, ge)
        if speed != 1:
            rows, lengths = [], []
            for i in range(y.shape[0]):
                n = int(y_lengths[i])
                row = F.interpolate(y[i : i + 1, :, :n], size=int(n / speed) + 1, mode="linear")
                rows.append(row)
                lengths.append(row.shape[-1])
            longest = max(lengths)
            y = torch.cat([F.pad(r, (0, longest - r.shape[-1])) for r in rows], 0)
            y_lengths = torch.tensor(lengths, device=y.device)
            y_mask = sequence_mask(y_lengths, longest).to(y.dtype)
        stats = self.enc_p.proj(y) * y_mask
        m, logs = torch.split(stats, self.cfg.inter_channels, dim=1)
        return m, logs, y_mask, [int(n) for n in y_lengths]

    @torch.no_grad()
    def flow_and_vocode(
        self, z_p: torch.Tensor, y_mask: torch.Tensor, ge: torch.Tensor, lengths: Sequence[int]
    ) -> list[torch.Tensor]:
        """Reverse flow on the batch, then the generator row by row -> waveforms [T_i * 640]."""
        z = self.flow.reverse(z_p, y_mask, ge)
        z = z * y_mask
        return [
            self.dec(z[i : i + 1, :, : lengths[i]], ge if ge.shape[0] == 1 else ge[i : i + 1])[0, 0]
            for i in range(z.shape[0])
        ]

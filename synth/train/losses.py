"""SoVITS's training losses and the mel spectrogram they compare, as GPT-SoVITS computes them.

* mel: ``log(clamp(mel_basis @ |STFT|, 1e-5))`` with 128 Slaney-scale, Slaney-normalised
  triangular filters over 0..16 kHz (librosa's default ``filters.mel``, rebuilt here from its
  formula so that librosa is not needed), the STFT of :func:`linear_spectrogram`;
* the reconstruction loss: L1 between the mels of the real and generated slices, times ``c_mel`` (45);
* KL between the posterior (through the flow) and the prior, times ``c_kl`` (1);
* least-squares GAN losses and feature matching (L1 over every discriminator feature map, times 2).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    mels = f / f_sp
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=4)
def mel_filters(sample_rate: int = 32000, n_fft: int = 2048, n_mels: int = 128, fmin: float = 0.0) -> np.ndarray:
    """[n_mels, n_fft/2+1] float32: Slaney mel scale and area normalisation (librosa's defaults)."""
    fmax = sample_rate / 2
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, 1 + n_fft // 2))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def linear_spectrogram(y: torch.Tensor, n_fft: int = 2048, hop: int = 640, win: int = 2048) -> torch.Tensor:
    """[B, T] waveform -> [B, n_fft/2+1, frames] magnitude (reflect-padded by (n_fft-hop)/2, not centred)."""
    pad = (n_fft - hop) // 2
    y = F.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(win, dtype=y.dtype, device=y.device)
    spec = torch.stft(y, n_fft, hop_length=hop, win_length=win, window=window, center=False, return_complex=True)
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + 1e-8)


def spec_to_mel(spec: torch.Tensor, sample_rate: int = 32000, n_fft: int = 2048, n_mels: int = 128) -> torch.Tensor:
    basis = torch.from_numpy(mel_filters(sample_rate, n_fft, n_mels)).to(spec.device, spec.dtype)
    return torch.log(torch.clamp(torch.matmul(basis, spec), min=1e-5))


def mel_spectrogram(y: torch.Tensor, sample_rate: int = 32000, n_fft: int = 2048, hop: int = 640) -> torch.Tensor:
    return spec_to_mel(linear_spectrogram(y, n_fft, hop, n_fft), sample_rate, n_fft)


def kl_loss(z_p, logs_q, m_p, logs_p, mask) -> torch.Tensor:
    """KL(q || p) per latent frame, summed over the mask and divided by its size."""
    kl = logs_p - logs_q - 0.5
    kl = kl + 0.5 * ((z_p - m_p) ** 2) * torch.exp(-2.0 * logs_p)
    return torch.sum(kl * mask) / torch.sum(mask)


def discriminator_loss(real, fake) -> torch.Tensor:
    return sum(torch.mean((1 - r.float()) ** 2) + torch.mean(g.float() ** 2) for r, g in zip(real, fake, strict=True))


def generator_loss(fake) -> torch.Tensor:
    return sum(torch.mean((1 - g.float()) ** 2) for g in fake)


def feature_loss(fmap_r, fmap_g) -> torch.Tensor:
    loss = 0
    for dr, dg in zip(fmap_r, fmap_g, strict=True):
        for r, g in zip(dr, dg, strict=True):
            loss = loss + torch.mean(torch.abs(r.float().detach() - g.float()))
    return loss * 2

"""Audio in and out: WAV files, resampling, the reference clip's checks and spectrogram."""

from __future__ import annotations

import io
import os
import wave
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import torch
from scipy.io import wavfile
from scipy.signal import resample_poly

from synth.errors import ReferenceAudioError
from synth.files import atomic_write_bytes

MIN_REFERENCE_S = 3.0
MAX_REFERENCE_S = 10.0


def read_wav(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """Read a WAV file -> (sample rate, mono float32 in [-1, 1])."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceAudioError(f"reference audio {path} does not exist; pass a WAV file of 3 to 10 seconds")
    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise ReferenceAudioError(
            f"reference audio {path} is not a readable WAV file ({exc}); convert it to WAV"
        ) from None
    return rate, to_float_mono(data)


def to_float_mono(data: np.ndarray) -> np.ndarray:
    """Integer or float samples, mono or [T, channels] -> mono float32."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    else:
        data = data.astype(np.float32)
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.ndim != 1:
        raise ReferenceAudioError(f"reference audio must be mono or [samples, channels], got shape {data.shape}")
    return np.ascontiguousarray(data, dtype=np.float32)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (Kaiser window), float32."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    g = gcd(rate_in, rate_out)
    return resample_poly(audio, rate_out // g, rate_in // g, window=("kaiser", 5.0)).astype(np.float32)


def write_wav(path: str | os.PathLike[str], rate: int, audio: np.ndarray) -> Path:
    """Write 16-bit PCM mono, atomically (temp file, then rename)."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return atomic_write_bytes(path, buffer.getvalue())


@dataclass(frozen=True)
class Reference:
    """A reference clip at the two rates the model needs."""

    audio_16k: np.ndarray
    audio_model: np.ndarray
    model_rate: int

    @property
    def seconds(self) -> float:
        return self.audio_16k.shape[0] / 16000


def load_reference(reference, model_rate: int) -> Reference:
    """A path or ``(rate, samples)`` -> :class:`Reference`, checked to be 3 to 10 s long.

    GPT-SoVITS checks the length on the 16 kHz signal: 48,000 to 160,000 samples.
    """
    if isinstance(reference, (str, os.PathLike)):
        rate, audio = read_wav(reference)
    elif isinstance(reference, tuple) and len(reference) == 2:
        rate, audio = int(reference[0]), to_float_mono(reference[1])
    else:
        raise ReferenceAudioError("reference must be a WAV path or a (sample_rate, samples) tuple")
    if rate <= 0 or audio.size == 0:
        raise ReferenceAudioError("reference audio is empty; record 3 to 10 seconds of clean speech")
    if not np.all(np.isfinite(audio)):
        raise ReferenceAudioError("reference audio holds NaN or infinite samples")
    audio_16k = resample(audio, rate, 16000)
    n = audio_16k.shape[0]
    if n < 48000 or n > 160000:
        raise ReferenceAudioError(
            f"reference clip is {n / 16000:.2f} s long; GPT-SoVITS needs {MIN_REFERENCE_S:g} to "
            f"{MAX_REFERENCE_S:g} s of speech. Trim or choose another clip (e.g. sox in.wav out.wav trim 0 8)."
        )
    return Reference(audio_16k=audio_16k, audio_model=resample(audio, rate, model_rate), model_rate=model_rate)


def spectrogram(audio: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Linear magnitude spectrogram as GPT-SoVITS computes it: [1, T] -> [1, n_fft/2+1, frames]."""
    peak = audio.abs().max()
    if peak > 1:
        audio = audio / min(2, float(peak))
    pad = int((n_fft - hop) / 2)
    audio = torch.nn.functional.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(win, dtype=audio.dtype, device=audio.device)
    spec = torch.stft(
        audio,
        n_fft,
        hop_length=hop,
        win_length=win,
        window=window,
        center=False,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    spec = torch.view_as_real(spec)
    return torch.sqrt(spec.pow(2).sum(-1) + 1e-8)

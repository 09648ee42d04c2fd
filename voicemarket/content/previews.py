"""A model's public preview must not be its reference clip or any recording of the speaker.

The preview is stored unencrypted (the metadata's ``animation_url``) for anyone to hear. A few
seconds of the speaker's real voice with its transcript is exactly the prompt a zero-shot
GPT-SoVITS needs to clone that voice without the model at all, so the reference clip and the
creator's recordings stay inside the sealed bundle, and the preview is something the model
itself said (``ape run mint`` synthesises one) or another clip the creator chose.

:func:`check_preview` refuses a preview that is, or holds, a recording:

- the same bytes (the reference clip named as the preview: the old default);
- the same sound, however re-encoded: both are decoded to mono, resampled to 8 kHz, and every
  half second of the recording that is mostly sound (overlapping by a quarter) is looked for in
  the preview by normalised cross-correlation. A copy with other gain, sample rate, sample
  format or silence around it correlates above 0.99; different utterances stay below 0.7, even
  the same word from espeak-ng, whose output repeats sample for sample. The threshold is
  :data:`SAME_SOUND`. Any 0.75 s of continuous speech taken from a recording is found.

What it cannot see: a recording pitch-shifted, time-stretched, filtered hard or buried in
noise. This check catches mistakes, not a creator who wants to publish their own voice: it is
theirs to publish.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from math import gcd
from pathlib import Path

import numpy as np

from voicemarket.errors import PreviewError

MAX_PREVIEW_S = 15.0
"""The longest preview minting accepts: a preview shows the voice, it is not a sample pack."""
SAME_SOUND = 0.9
_RATE = 8000
_SEGMENT = _RATE // 2
_HOP = _RATE // 4
_SILENT_RMS = 1e-3
_FRAME = _RATE // 50
_QUIET = 0.01  # of the clip's peak: below is a pause, not speech


def read_audio(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, mono float64 samples peaking at 1) of a WAV file; :class:`PreviewError` for anything else."""
    from scipy.io import wavfile

    try:
        rate, data = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise PreviewError(
            f"{path} is not a WAV file this check can read ({exc}): the preview and the recordings it is checked "
            f"against must be WAV (e.g. `sox {path.name} {path.stem}.wav`)"
        ) from None
    samples = np.asarray(data, dtype=np.float64)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples - samples.mean() if len(samples) else samples  # 8-bit WAV is offset by 128
    peak = np.max(np.abs(samples)) if len(samples) else 0.0
    # Correlation ignores scale: each clip is brought to a peak of 1, whatever its sample format.
    return int(rate), samples / peak if peak else samples


def _at_8k(rate: int, samples: np.ndarray) -> np.ndarray:
    from scipy.signal import resample_poly

    common = gcd(rate, _RATE)
    return resample_poly(samples, _RATE // common, rate // common) if rate != _RATE else samples


class _Haystack:
    """A signal to look for pieces of another in, by normalised cross-correlation (FFT once)."""

    def __init__(self, samples: np.ndarray, needle_size: int) -> None:
        self.samples = samples
        self.n = 1 << (len(samples) + needle_size - 1).bit_length()
        self.spectrum = np.fft.rfft(samples, self.n)
        self.energy = np.concatenate(([0.0], np.cumsum(samples**2)))

    def best_match(self, needle: np.ndarray) -> float:
        """The highest normalised cross-correlation of ``needle`` against any window of the signal."""
        windows = len(self.samples) - len(needle) + 1
        corr = np.fft.irfft(self.spectrum * np.conj(np.fft.rfft(needle, self.n)), self.n)[:windows]
        energy = self.energy[len(needle) :] - self.energy[:windows]
        valid = energy > (_SILENT_RMS**2) * len(needle)
        if not valid.any():
            return 0.0
        norm = np.sqrt(energy[valid]) * np.linalg.norm(needle)
        return float(np.max(np.abs(corr[valid]) / norm))


def _mostly_sound(segment: np.ndarray) -> bool:
    """At least four fifths of the segment's 20 ms frames are sound, not silence: a segment that is mostly
    silence would be matched on a few milliseconds of sound, and short stretches of sound do recur."""
    frames = segment[: len(segment) // _FRAME * _FRAME].reshape(-1, _FRAME)
    return np.mean(np.sqrt(np.mean(frames**2, axis=1)) >= _QUIET) >= 0.8


def _shared_sound(preview: np.ndarray, recording: np.ndarray) -> tuple[float, float] | None:
    """(where in the recording, correlation) of the first half second of ``recording`` heard in ``preview``."""
    if len(preview) < _SEGMENT:  # a tiny preview: look for all of it in the recording instead
        if len(recording) < len(preview) or np.sqrt(np.mean(preview**2)) < _SILENT_RMS:
            return None
        score = _Haystack(recording, len(preview)).best_match(preview)
        return (0.0, score) if score >= SAME_SOUND else None
    haystack = _Haystack(preview, _SEGMENT)
    for start in range(0, len(recording) - _SEGMENT + 1, _HOP):
        segment = recording[start : start + _SEGMENT]
        if not _mostly_sound(segment):
            continue
        score = haystack.best_match(segment)
        if score >= SAME_SOUND:
            return start / _RATE, score
    return None


def check_preview(
    preview: str | Path, recordings: Iterable[str | Path], *, max_seconds: float = MAX_PREVIEW_S
) -> float:
    """Refuse (:class:`PreviewError`, saying why and what to do) a preview that is or holds one of
    ``recordings`` (the reference clip first, then any others), or is longer than ``max_seconds``.
    Returns the preview's length in seconds."""
    preview = Path(preview)
    if not preview.is_file():
        raise PreviewError(f"the preview {preview} does not exist")
    advice = (
        "the preview is public and unencrypted, and a few seconds of your real voice are all a zero-shot model "
        "needs to clone it: let `ape run mint` synthesise the preview with your model (leave `preview:` out of "
        "voice.yaml, or give `preview: {text: ..., language: ...}`), or name a clip that is not a recording"
    )
    preview_digest = hashlib.sha256(preview.read_bytes()).digest()
    recordings = [Path(r) for r in recordings]
    for recording in recordings:
        if hashlib.sha256(recording.read_bytes()).digest() == preview_digest:
            raise PreviewError(f"the preview {preview.name} is the recording {recording.name}: {advice}")
    rate, samples = read_audio(preview)
    seconds = len(samples) / rate
    if seconds > max_seconds:
        raise PreviewError(
            f"the preview {preview.name} lasts {seconds:.1f} s, longer than the {max_seconds:.0f} s a preview may: "
            "shorten its text (one or two sentences) or the clip"
        )
    heard = _at_8k(rate, samples)
    for recording in recordings:
        found = _shared_sound(heard, _at_8k(*read_audio(recording)))
        if found is not None:
            at, score = found
            raise PreviewError(
                f"the preview {preview.name} holds the sound of the recording {recording.name} (from {at:.2f} s, "
                f"correlation {score:.2f}): {advice}"
            )
    return seconds

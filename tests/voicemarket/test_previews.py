"""A model's public preview is never its reference clip or a recording (content/previews.py, minting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from voicemarket.content.previews import check_preview
from voicemarket.errors import MintError, PreviewError
from voicemarket.market.minting import DEFAULT_PREVIEW_TEXTS, PreviewText, prepare_preview, read_model_folder


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """espeak-ng clips: the reference, another sentence, and copies of the reference made to look different."""
    from synth.testing import make_reference_wav

    root = tmp_path_factory.mktemp("previews")
    reference = make_reference_wav(root / "reference.wav", "The quick brown fox jumps over the lazy dog.", 4.0)
    make_reference_wav(root / "other.wav", "Hello, this is a short preview of my voice.", 4.0)
    rate, samples = wavfile.read(reference)
    louder = resample_poly(samples.astype(np.float64), 441, 320) * 0.4 / 32768  # 44.1 kHz float, other gain
    padded = np.concatenate([np.zeros(12_000), louder, np.zeros(5_000)]).astype(np.float32)
    wavfile.write(root / "copy.wav", 44_100, padded)
    noise = np.random.default_rng(0).normal(0, 300, rate).astype(np.int16)
    wavfile.write(root / "cut.wav", rate, np.concatenate([noise, samples[int(1.3 * rate) : int(2.3 * rate)], noise]))
    wavfile.write(root / "long.wav", rate, np.tile(samples, 5))
    (root / "clip.mp3").write_bytes(b"ID3 not decoded here")
    return {p.stem: p for p in root.iterdir()}


def test_a_clip_that_is_not_a_recording_is_accepted(clips):
    assert check_preview(clips["other"], [clips["reference"]]) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("clip", "says"),
    [
        ("reference", "the preview reference.wav is the recording reference.wav"),
        ("copy", "the preview copy.wav holds the sound of the recording reference.wav (from 0.00 s"),
        ("cut", "the preview cut.wav holds the sound of the recording reference.wav (from 1.25 s"),
        ("long", "lasts 20.0 s, longer than the 15 s a preview may"),
        ("clip", "is not a WAV file this check can read"),
    ],
)
def test_a_preview_that_is_or_holds_a_recording_is_refused_and_says_why(clips, clip, says):
    """The reference itself, the reference re-encoded (44.1 kHz float, 0.4 gain, silence around it), one
    second of it inside noise, an over-long clip and an unreadable one are refused, with what to do."""
    with pytest.raises(PreviewError) as refused:
        check_preview(clips[clip], [clips["reference"]])
    assert says in str(refused.value)
    if clip in ("reference", "copy", "cut"):
        assert "a zero-shot model needs to clone it" in str(refused.value)
        assert "let `ape run mint` synthesise the preview with your model" in str(refused.value)


def _folder(root: Path, clips, preview: str | None) -> Path:
    root.mkdir()
    for name in ("gpt.ckpt", "sovits.pth"):
        (root / name).write_bytes(b"weights")
    for name in ("reference", "other", "copy"):
        (root / f"{name}.wav").write_bytes(clips[name].read_bytes())
    lines = ["name: Ada", "languages: [en, zh]", "reference: {audio: reference.wav, text: Hello., language: en}"]
    if preview is not None:
        lines.append(f"preview: {preview}")
    (root / "voice.yaml").write_text("\n".join(lines) + "\n")
    return root


def test_the_default_preview_is_spoken_by_the_model_and_a_recording_as_preview_is_refused(clips, tmp_path):
    """No `preview:` -> the model says the default text in the reference's language (it needs the shared
    HuBERT folder to do so, and says so); `preview: reference.wav` (the old default), or any other
    recording in the folder, is refused before anything is sealed."""
    model = read_model_folder(_folder(tmp_path / "default", clips, None))
    assert model.preview == PreviewText(DEFAULT_PREVIEW_TEXTS["en"], "en")
    with pytest.raises(MintError, match="needs GPT-SoVITS's shared HuBERT folder: give --hubert DIR"):
        prepare_preview(model)
    spoken = read_model_folder(_folder(tmp_path / "spoken", clips, "{text: 你好。, language: zh}"))
    assert spoken.preview == PreviewText("你好。", "zh")
    with pytest.raises(MintError, match="language 'ja' is not one of the model's"):
        read_model_folder(_folder(tmp_path / "ja", clips, "{text: Hi., language: ja}"))
    for named, recording in (("reference.wav", "reference.wav"), ("copy.wav", "reference.wav")):
        refused = read_model_folder(_folder(tmp_path / named, clips, named))
        with pytest.raises(MintError, match=f"the preview {named} (is|holds the sound of) the recording {recording}"):
            prepare_preview(refused)
    chosen = prepare_preview(read_model_folder(_folder(tmp_path / "chosen", clips, "other.wav")))
    assert chosen.preview.name == "other.wav"

"""The public API end to end on a tiny random voice: output, determinism, streaming, errors, CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from synth.__main__ import main as cli
from synth.engine import HOLD_FRAMES
from synth.errors import (
    CorruptCheckpointError,
    ReferenceAudioError,
    TextError,
    UnknownLanguageError,
)
from synth.sampling import SamplingParams
from synth.testing import make_reference_wav

PROMPT_TEXT = "The quick brown fox jumps over the lazy dog."


def test_synthesize_returns_float32_mono_of_the_expected_length(tts, reference_wav):
    """Random voices never stop early: each sentence is max tokens x 2 frames x 640 samples, plus a 0.3 s pause."""
    rate, wave = tts.synthesize(
        "Hello there, my friend. 你好，世界！",
        "zh",
        reference_wav,
        prompt_text=PROMPT_TEXT,
        prompt_language="en",
        max_semantic_tokens=20,
        seed=1,
    )
    assert rate == 32000 and wave.dtype == np.float32 and wave.ndim == 1
    assert wave.shape[0] == 2 * (20 * 2 * 640 + 9600)
    assert np.isfinite(wave).all() and np.abs(wave).max() <= 1.0


def test_same_seed_same_audio_other_seed_other_audio(tts, reference_wav):
    kwargs = dict(prompt_text=PROMPT_TEXT, max_semantic_tokens=20, top_k=15)
    _, a = tts.synthesize("Good morning to you.", "en", reference_wav, seed=3, **kwargs)
    _, b = tts.synthesize("Good morning to you.", "en", reference_wav, seed=3, **kwargs)
    _, c = tts.synthesize("Good morning to you.", "en", reference_wav, seed=4, **kwargs)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_batching_does_not_change_the_result(tts, reference_wav):
    """Three sentences in one batch or one at a time: same tokens, same audio within float tolerance."""
    text = "First sentence here. The second one is longer than the first. Third!"
    kwargs = dict(prompt_text=PROMPT_TEXT, max_semantic_tokens=16, seed=5)
    _, batched = tts.synthesize(text, "en", reference_wav, batch_size=8, **kwargs)
    _, single = tts.synthesize(text, "en", reference_wav, batch_size=1, **kwargs)
    np.testing.assert_allclose(batched, single, atol=1e-4)


STREAM_TEXT = "Streaming speech arrives in pieces. Then a second sentence."


def test_exact_stream_joined_equals_synthesize(tts, reference_wav):
    """exact=True: the joined chunks are synthesize()'s waveform, prior noise included (float tolerance)."""
    kwargs = dict(prompt_text=PROMPT_TEXT, max_semantic_tokens=20, seed=2)
    _, alone = tts.synthesize(STREAM_TEXT, "en", reference_wav, batch_size=1, **kwargs)
    _, batched = tts.synthesize(STREAM_TEXT, "en", reference_wav, **kwargs)
    chunks = list(tts.stream(STREAM_TEXT, "en", reference_wav, chunk_tokens=10, exact=True, **kwargs))
    assert len(chunks) == 2 * (2 + 1)  # per sentence: 20 tokens in pieces of 10, then the pause
    joined = np.concatenate(chunks)
    np.testing.assert_allclose(joined, alone, rtol=0, atol=1e-6)
    np.testing.assert_allclose(joined, batched, rtol=0, atol=1e-5)  # batching pads: float-level differences


def test_low_latency_stream_is_early_and_close_to_synthesize(tts, reference_wav):
    """Default stream: the first chunk comes long before the sentence's last token, chunks hold chunk_tokens'
    worth of audio, and the joined audio is close to synthesize()'s (measured 0.2 % RMS on this voice)."""
    kwargs = dict(prompt_text=PROMPT_TEXT, max_semantic_tokens=60, seed=2)
    text = "Streaming speech arrives in pieces."
    _, whole = tts.synthesize(text, "en", reference_wav, **kwargs)
    tokens_seen, seen_at_chunk = [], []
    chunks = []
    for chunk in tts.stream(
        text, "en", reference_wav, chunk_tokens=10, on_token=lambda n: tokens_seen.append(n), **kwargs
    ):
        chunks.append(chunk)
        seen_at_chunk.append(len(tokens_seen))
    # Token 34 of 60 releases the first chunk: 10 tokens of audio past the 24 held back.
    assert seen_at_chunk[0] == 10 + HOLD_FRAMES // 2 < 60
    assert all(c.dtype == np.float32 and c.shape == (20 * 640,) for c in chunks[:3])
    joined = np.concatenate(chunks)
    assert joined.shape == whole.shape
    # The SoVITS encoders attend over the whole sentence, so audio made from part of it differs a little.
    err = np.sqrt(np.mean((joined - whole) ** 2)) / np.sqrt(np.mean(whole**2))
    assert err < 0.01, err


def test_stream_is_deterministic_under_a_seed(tts, reference_wav):
    kwargs = dict(prompt_text=PROMPT_TEXT, max_semantic_tokens=40, chunk_tokens=10)
    a = list(tts.stream("Say it twice.", "en", reference_wav, seed=7, **kwargs))
    b = list(tts.stream("Say it twice.", "en", reference_wav, seed=7, **kwargs))
    c = list(tts.stream("Say it twice.", "en", reference_wav, seed=8, **kwargs))
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=False))
    assert not np.array_equal(np.concatenate(a), np.concatenate(c))


def test_original_prior_noise_is_the_originals_draw(tts, reference_wav):
    """prior_noise="original": after torch.manual_seed(seed), the original samples the GPT from the global
    generator and then draws randn_like over the whole prior; synthesize() (and an exact stream) give that."""
    kwargs = dict(prompt_text=PROMPT_TEXT, max_semantic_tokens=20, seed=11, pause_s=0.0)
    _, ours = tts.synthesize("One sentence only.", "en", reference_wav, prior_noise="original", **kwargs)
    streamed = np.concatenate(
        list(tts.stream("One sentence only.", "en", reference_wav, prior_noise="original", exact=True, **kwargs))
    )
    np.testing.assert_array_equal(streamed, ours)
    plans = tts.plan("One sentence only.", "en", PROMPT_TEXT, "en")
    prepared = tts.prepare_reference(reference_wav)
    torch.manual_seed(11)
    with torch.no_grad():
        tokens = tts.semantic_tokens(plans, prepared.prompt_tokens, SamplingParams(), [torch.default_generator], 20)
        codes = tokens[0][None]
        m_p, logs_p, mask, lengths = tts.sovits.decode_latent(
            codes,
            torch.tensor([codes.shape[1]]),
            torch.tensor([plans[0].target.ids]),
            torch.tensor([len(plans[0].target.ids)]),
            prepared.style,
        )
        z_p = m_p + torch.randn_like(m_p) * torch.exp(logs_p) * 0.5
        theirs = tts.sovits.flow_and_vocode(z_p, mask, prepared.style, lengths)[0].numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
    _, framewise = tts.synthesize("One sentence only.", "en", reference_wav, **kwargs)
    assert not np.allclose(framewise, ours, atol=1e-3)  # the default draws other (equally distributed) noise
    with pytest.raises(ValueError, match="exact=True"):
        next(tts.stream("One sentence only.", "en", reference_wav, prior_noise="original"))
    with pytest.raises(ValueError, match="prior_noise"):
        tts.synthesize("One sentence only.", "en", reference_wav, prior_noise="gaussian")


def test_reference_free_mode(tts, reference_wav):
    _, wave = tts.synthesize("No transcript given.", "en", reference_wav, max_semantic_tokens=12)
    assert wave.shape[0] == 12 * 2 * 640 + 9600


def test_reference_as_array(tts, reference_wav):
    from synth.audio import read_wav

    rate, samples = read_wav(reference_wav)
    _, a = tts.synthesize(
        "Same clip, two ways.", "en", (rate, samples), prompt_text=PROMPT_TEXT, max_semantic_tokens=10
    )
    _, b = tts.synthesize(
        "Same clip, two ways.", "en", str(reference_wav), prompt_text=PROMPT_TEXT, max_semantic_tokens=10
    )
    assert np.array_equal(a, b)


@pytest.mark.parametrize("seconds", [2.0, 11.0])
def test_reference_outside_3_to_10_seconds_is_refused(tts, tmp_path, seconds):
    clip = make_reference_wav(tmp_path / "clip.wav", seconds=seconds)
    with pytest.raises(ReferenceAudioError, match="3 to 10"):
        tts.synthesize("Hello.", "en", clip, prompt_text=PROMPT_TEXT)


def test_bad_reference_inputs(tts, tmp_path):
    with pytest.raises(ReferenceAudioError, match="does not exist"):
        tts.synthesize("Hello.", "en", tmp_path / "absent.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ReferenceAudioError, match="WAV"):
        tts.synthesize("Hello.", "en", junk)


def test_text_and_language_errors(tts, reference_wav):
    with pytest.raises(TextError, match="empty"):
        tts.synthesize("   ", "en", reference_wav)
    with pytest.raises(TextError):
        tts.synthesize("?!...", "en", reference_wav)
    with pytest.raises(UnknownLanguageError):
        tts.synthesize("Hello.", "klingon", reference_wav)
    # Cantonese, English and Japanese runs in one sentence reach the GPT (each front end: test_frontend_*.py)
    _, wave = tts.synthesize("我今日好busy，楽しかった。", "auto_yue", reference_wav, max_semantic_tokens=12)
    assert wave.size > 0
    with pytest.raises(ValueError, match="speed"):
        tts.synthesize("Hello.", "en", reference_wav, speed=0)


def test_corrupt_model_file_is_a_clear_error(tiny_files, tmp_path):
    from synth.engine import Synthesizer

    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(CorruptCheckpointError, match="not a PyTorch zip checkpoint"):
        Synthesizer.from_files(bad, tiny_files.sovits_path, hubert_dir=tiny_files.hubert_dir)


def test_speed_changes_length(tts, reference_wav):
    _, normal = tts.synthesize("Speed test.", "en", reference_wav, prompt_text=PROMPT_TEXT, max_semantic_tokens=20)
    _, fast = tts.synthesize(
        "Speed test.", "en", reference_wav, prompt_text=PROMPT_TEXT, max_semantic_tokens=20, speed=2.0
    )
    assert fast.shape[0] == (int(40 / 2.0) + 1) * 640 + 9600 < normal.shape[0]


def test_cli_say_and_info(tiny_files, reference_wav, tmp_path):
    out = tmp_path / "out.wav"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "say",
            "--gpt",
            str(tiny_files.gpt_path),
            "--sovits",
            str(tiny_files.sovits_path),
            "--hubert",
            str(tiny_files.hubert_dir),
            "--bert",
            str(tiny_files.bert_dir),
            "--ref",
            str(reference_wav),
            "--ref-text",
            PROMPT_TEXT,
            "--ref-lang",
            "en",
            "--text",
            "你好，我们说中文。",
            "--max-tokens",
            "12",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.stat().st_size > 44
    result = runner.invoke(cli, ["info", str(tiny_files.sovits_path)])
    assert result.exit_code == 0 and "version:    v2" in result.output and "SoVITS" in result.output
    result = runner.invoke(cli, ["info", str(tiny_files.gpt_path)])
    assert result.exit_code == 0 and "GPT" in result.output and "layers 2" in result.output
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    result = runner.invoke(cli, ["info", str(bad)])
    assert result.exit_code != 0 and "not a PyTorch zip checkpoint" in result.output
    result = runner.invoke(
        cli,
        [
            "say",
            "--gpt",
            str(tiny_files.gpt_path),
            "--sovits",
            str(tiny_files.sovits_path),
            "--hubert",
            str(tiny_files.hubert_dir),
            "--ref",
            str(reference_wav),
            "--text",
            "hi",
            "--lang",
            "xx",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code != 0 and "unknown language" in result.output


def test_synth_imports_no_chain_or_queue_code():
    """synth/ stands alone: importing all of it loads neither ape, web3 nor celery."""
    code = (
        "import sys, synth, synth.engine, synth.__main__, synth.random_model, synth.testing;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('ape','web3','celery')]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_fast_modes_run_and_stay_close_to_fp32(tiny_files, reference_wav, precision):
    """The fast modes speak the same lengths; greedy tokens mostly agree with fp32 (measured in BENCHMARKS.md)."""
    fast = tiny_files.load(precision=precision)
    rate, wave = fast.synthesize(
        "Fast mode check.", "en", reference_wav, prompt_text=PROMPT_TEXT, max_semantic_tokens=15, top_k=1
    )
    assert rate == 32000 and wave.shape[0] == 15 * 2 * 640 + 9600 and np.isfinite(wave).all()

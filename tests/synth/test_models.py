"""The two networks: shapes through each stage, KV cache against recomputation, batching, sampling order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synth.gpt import GPTConfig, Text2SemanticDecoder
from synth.sampling import SamplingParams, next_token_probs, sample_next
from synth.sovits import PriorNoise

PROMPT_TEXT = "The quick brown fox jumps over the lazy dog."


def _tiny_gpt(seed=0):
    torch.manual_seed(seed)
    gpt = Text2SemanticDecoder(GPTConfig(embedding_dim=32, hidden_dim=32, heads=2, layers=2)).eval()
    for p in gpt.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return gpt


def _run(gpt, phones, prompt, params, seeds, max_new, use_cache=True, min_new=0):
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    bert = [torch.randn(1024, p.numel(), generator=torch.Generator().manual_seed(5)) for p in phones]
    out = [[] for _ in phones]
    for step in gpt.generate(phones, bert, prompt, params, gens, max_new, min_new, use_cache=use_cache):
        for row, tok in zip(step.rows, step.tokens, strict=False):
            if row not in step.finished:
                out[row].append(tok)
    return out


@pytest.mark.parametrize("top_k", [1, 15])
def test_kv_cache_gives_the_same_tokens_as_recomputing(top_k):
    """Decoding with the preallocated cache yields the same tokens as re-running the whole sequence."""
    gpt = _tiny_gpt()
    phones = [torch.randint(0, 732, (23,), generator=torch.Generator().manual_seed(1))]
    prompt = torch.randint(0, 1024, (17,), generator=torch.Generator().manual_seed(2))
    params = SamplingParams(top_k=top_k)
    cached = _run(gpt, phones, prompt, params, [3], 40, use_cache=True)
    fresh = _run(gpt, phones, prompt, params, [3], 40, use_cache=False)
    assert cached == fresh and len(cached[0]) > 0


def test_batched_rows_match_single_rows():
    """Left-padded batch decoding gives each row the tokens it gets alone (greedy and sampled)."""
    gpt = _tiny_gpt(1)
    g = torch.Generator().manual_seed(4)
    phones = [torch.randint(0, 732, (n,), generator=g) for n in (9, 30, 17)]
    prompt = torch.randint(0, 1024, (12,), generator=g)
    for params in (SamplingParams(top_k=1), SamplingParams(top_k=10, top_p=0.9, temperature=0.8)):
        batch = _run(gpt, phones, prompt, params, [10, 11, 12], 30)
        single = [_run(gpt, [p], prompt, params, [s], 30)[0] for p, s in zip(phones, [10, 11, 12], strict=False)]
        assert batch == single


def test_eos_ends_a_row_after_the_minimum_and_is_not_returned():
    """EOS is masked for the first 11 steps (and below min_new_tokens); the stopping token is dropped."""
    gpt = _tiny_gpt(2)
    with torch.no_grad():
        gpt.ar_predict_layer.weight[1024] = gpt.ar_predict_layer.weight[:1024].abs().sum(0) * 10
    phones = [torch.arange(10)]
    prompt = torch.arange(5)
    tokens = _run(gpt, phones, prompt, SamplingParams(top_k=1), [0], 100)[0]
    assert len(tokens) == 11 and 1024 not in tokens
    tokens = _run(gpt, phones, prompt, SamplingParams(top_k=1), [0], 100, min_new=30)[0]
    assert len(tokens) == 30


def test_sampling_order_is_penalty_top_p_temperature_top_k():
    """The penalty divides positive seen logits before top-p; temperature applies before top-k."""
    logits = torch.tensor([[2.0, 1.9, 0.5, -1.0]])
    probs = next_token_probs(logits.clone(), torch.tensor([[0]]), SamplingParams(top_k=4, repetition_penalty=2.0))
    assert probs[0, 1] > probs[0, 0]  # token 0 was seen: 2.0 / 2 = 1.0 < 1.9
    probs = next_token_probs(logits.clone(), None, SamplingParams(top_k=2, repetition_penalty=1.0))
    assert probs[0, 2] == 0 and probs[0, 3] == 0 and torch.isclose(probs.sum(), torch.tensor(1.0))
    probs = next_token_probs(logits.clone(), None, SamplingParams(top_k=4, top_p=0.5, repetition_penalty=1.0))
    # cumulative probabilities 0.47, 0.90, ...: every token past top_p is dropped, the first always kept
    assert probs[0, 1:].sum() == 0
    hot = next_token_probs(logits.clone(), None, SamplingParams(top_k=4, temperature=10.0, repetition_penalty=1.0))
    cold = next_token_probs(logits.clone(), None, SamplingParams(top_k=4, temperature=0.1, repetition_penalty=1.0))
    assert hot[0, 3] > cold[0, 3]


def test_sampling_draws_like_a_global_seed():
    """One row with a generator seeded s draws what torch.manual_seed(s) draws (the original's RNG use)."""
    logits = torch.randn(1, 1025, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(top_k=50)
    ours = sample_next(logits.clone(), None, params, [torch.Generator().manual_seed(123)])
    torch.manual_seed(123)
    probs = next_token_probs(logits.clone(), None, params)
    theirs = torch.argmax(probs / torch.empty_like(probs).exponential_(1), dim=-1, keepdim=True)
    assert torch.equal(ours, theirs)


def test_shapes_through_the_sovits_stage(tts, reference_wav):
    """HuBERT 50 Hz -> tokens 25 Hz; tokens -> 2 latent frames each -> 640 samples per frame."""
    from synth.audio import load_reference

    ref = load_reference(reference_wav, 32000)
    ssl = tts.ssl.features(ref.audio_16k, 9600)
    assert ssl.shape[:2] == (1, 768)
    tokens = tts.sovits.extract_latent(ssl)
    assert tokens.shape == (1, ssl.shape[2] // 2) and tokens.max() < 1024
    prepared = tts.prepare_reference(reference_wav)
    assert prepared.style.shape == (1, 512, 1)
    plans = tts.plan("Hello there, friend.", "en", PROMPT_TEXT, "en")
    codes = [torch.randint(0, 1024, (n,)) for n in (20,)]
    m_p, logs_p, _mask, lengths = tts.sovits.decode_latent(
        codes[0][None],
        torch.tensor([20]),
        torch.tensor([plans[0].target.ids]),
        torch.tensor([len(plans[0].target.ids)]),
        prepared.style,
    )
    assert m_p.shape == logs_p.shape == (1, 32, 40) and lengths == [40]
    waves = tts.vocode(codes, plans, prepared.style, [PriorNoise(0, 32)])
    assert waves[0].shape == (40 * 640,) and waves[0].dtype == np.float32 and np.isfinite(waves[0]).all()


def test_batched_vocoding_matches_single(tts, reference_wav):
    """Sentences of different lengths decoded together equal each decoded alone (masks make padding inert)."""
    prepared = tts.prepare_reference(reference_wav)
    plans = tts.plan("Hello there, my friend. Good bye now!", "en", PROMPT_TEXT, "en")
    assert len(plans) == 2
    g = torch.Generator().manual_seed(9)
    codes = [torch.randint(0, 1024, (n,), generator=g) for n in (15, 28)]
    batch = tts.vocode(codes, plans, prepared.style, [PriorNoise(1, 32), PriorNoise(2, 32)])
    for i, seed in enumerate((1, 2)):
        alone = tts.vocode([codes[i]], [plans[i]], prepared.style, [PriorNoise(seed, 32)])[0]
        np.testing.assert_allclose(batch[i], alone, atol=1e-4)


def test_prior_noise_is_the_same_however_its_frames_are_asked_for():
    """Frame t gets the same noise whether frames come all at once or a chunk at a time (streaming)."""
    whole = PriorNoise(5, 32).take(150)
    pieces = PriorNoise(5, 32)
    for n in (10, 64, 65, 150):
        assert torch.equal(pieces.take(n), whole[:, :n])
    assert whole.shape == (32, 150) and abs(float(whole.mean())) < 0.05 and abs(float(whole.std()) - 1) < 0.05
    assert not torch.equal(PriorNoise(6, 32).take(150), whole)
    # Its own stream of numbers: not the GPT sampler's generator (seeded with the same seed).
    assert not torch.equal(whole[:, :1].flatten(), torch.randn(32, generator=torch.Generator().manual_seed(5)))


def _generator_on_frames(dec, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The HiFi-GAN generator as the original runs it: every convolution on [B, C, T] (conv1d)."""
    from synth.sovits import LRELU_SLOPE

    def block(rb, h):
        for c1, c2 in zip(rb.convs1, rb.convs2, strict=False):
            h = h + c2(torch.nn.functional.leaky_relu(c1(torch.nn.functional.leaky_relu(h, LRELU_SLOPE)), LRELU_SLOPE))
        return h

    x = dec.conv_pre(x) + dec.cond(g)
    for i, up in enumerate(dec.ups):
        x = up(torch.nn.functional.leaky_relu(x, LRELU_SLOPE))
        x = sum(block(dec.resblocks[i * dec.num_kernels + j], x) for j in range(dec.num_kernels)) / dec.num_kernels
    return torch.tanh(dec.conv_post(torch.nn.functional.leaky_relu(x)))


def _random_generator(size: str, seed: int):
    """A generator of the random voice's shape ``size`` with random weights (folded), and its config."""
    from synth.random_model import sovits_config
    from synth.sovits import Generator

    torch.manual_seed(seed)
    cfg = sovits_config(size)
    dec = Generator(cfg).eval()
    for m in dec.modules():
        if hasattr(m, "weight_v"):
            torch.nn.init.normal_(m.weight_v, std=0.05)
            m.fold()
    return cfg, dec


@pytest.mark.parametrize("size", ["tiny", "full"])
def test_the_generator_on_time_major_rows_computes_the_original_waveform(size):
    """The generator runs its convolutions time-major (channels last) on a CPU, for speed: the same
    waveform as the original's [B, C, T] convolutions, up to float rounding."""
    cfg, dec = _random_generator(size, seed=3)
    frames = 12 if size == "full" else 40
    x, g = torch.randn(2, cfg.inter_channels, frames), torch.randn(2, cfg.gin_channels, 1)
    with torch.no_grad():
        ours, original = dec(x, g), _generator_on_frames(dec, x, g)
    assert ours.shape == original.shape == (2, 1, frames * cfg.samples_per_frame)
    assert original.abs().max() > 0.1  # not a silent output: the comparison means something
    torch.testing.assert_close(ours, original, rtol=1e-4, atol=1e-5)


def test_the_generator_through_ffts_computes_the_original_waveform(monkeypatch):
    """One sentence (one row) on a CPU: the wider residual-block convolutions run through FFTs
    (synth.native.fft_conv); the waveform is the original's [B, C, T] convolutions' up to float rounding,
    and the direct convolutions' (SYNTH_FFT_CONV=0) within the same bound."""
    from synth import native

    if native.library() is None:
        pytest.skip("no C compiler here: the native kernels are optional")
    cfg, dec = _random_generator("full", seed=4)
    through_fft = [c for rb in dec.resblocks for c in [*rb.convs1, *rb.convs2] if c.through_fft()]
    assert len(through_fft) >= 30  # the 7- and 11-tap convolutions of the wide stages
    x, g = torch.randn(1, cfg.inter_channels, 12), torch.randn(1, cfg.gin_channels, 1)
    with torch.no_grad():
        ours, original = dec(x, g), _generator_on_frames(dec, x, g)
        monkeypatch.setenv("SYNTH_FFT_CONV", "0")
        assert not any(c.through_fft() for c in through_fft)
        direct = dec(x, g)
    assert original.abs().max() > 0.1
    assert not torch.equal(ours, direct)  # the FFT path did run
    torch.testing.assert_close(ours, original, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-5)


def test_the_generator_through_ffts_from_two_threads_and_without_memory(monkeypatch):
    """Two sentences vocoded at once from two threads (each generator call has its own scratch) give what
    each gives alone; when the FFT's scratch cannot be allocated, the layer runs directly instead."""
    import threading

    from synth import native

    if native.library() is None:
        pytest.skip("no C compiler here: the native kernels are optional")
    cfg, dec = _random_generator("full", seed=5)
    xs = [torch.randn(1, cfg.inter_channels, n) for n in (9, 14)]
    g = torch.randn(1, cfg.gin_channels, 1)
    with torch.no_grad():
        alone = [dec(x, g) for x in xs]
        together: dict[int, torch.Tensor] = {}

        def vocode(i):
            with torch.no_grad():
                together[i] = dec(xs[i], g)

        threads = [threading.Thread(target=vocode, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(torch.equal(together[i], alone[i]) for i in range(2))

        def no_memory(self, count):
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

        monkeypatch.setattr(native.ConvScratch, "floats", no_memory)
        direct = dec(xs[0], g)
        monkeypatch.setenv("SYNTH_FFT_CONV", "0")
        assert torch.equal(direct, dec(xs[0], g))  # every layer ran directly
    torch.testing.assert_close(direct, alone[0], rtol=1e-4, atol=1e-5)

"""The native decoding kernels compute what PyTorch computes (up to the order of float additions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synth import native
from synth.gpt import GPTConfig, KVCache, Text2SemanticDecoder
from synth.sampling import SamplingParams

lib = native.library()
pytestmark = pytest.mark.skipif(lib is None, reason="no C compiler here: the native kernels are optional")


def _gpt(seed: int, native_kernels: bool) -> Text2SemanticDecoder:
    torch.manual_seed(seed)
    gpt = Text2SemanticDecoder(GPTConfig(embedding_dim=48, hidden_dim=48, heads=3, layers=2)).eval()
    for p in gpt.parameters():
        torch.nn.init.normal_(p, std=0.3)
    if native_kernels:
        assert gpt.use_native_kernels()
    return gpt


def _decode(gpt, phones, prompt, params, seeds, max_new):
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    bert = [torch.randn(1024, p.numel(), generator=torch.Generator().manual_seed(5)) for p in phones]
    out = [[] for _ in phones]
    for step in gpt.generate(phones, bert, prompt, params, gens, max_new):
        for row, tok in zip(step.rows, step.tokens):
            if row not in step.finished:
                out[row].append(tok)
    return out


@pytest.mark.parametrize("n", [7, 48, 130, 512])
@pytest.mark.parametrize("batch", [1, 3])
def test_linear_matches_pytorch(n, batch):
    """bias + x W^T, with and without ReLU and residual, for lengths that are and are not multiples of 16/64."""
    g = torch.Generator().manual_seed(n + batch)
    w, b = torch.randn(37, n, generator=g), torch.randn(37, generator=g)
    x, res = torch.randn(batch, n, generator=g), torch.randn(batch, 37, generator=g)
    lin = native.NativeLinear(lib, w, b)
    torch.testing.assert_close(lin(x), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin(x, residual=res, relu=True), F.relu(F.linear(x, w, b)) + res, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(native.NativeLinear(lib, w, None)(x), F.linear(x, w), rtol=1e-5, atol=1e-5)


def test_decoder_step_matches_the_pytorch_layers():
    """One native step over all layers equals the layers' own step, keys/values written alike, pads hidden."""
    gpt = _gpt(0, native_kernels=False)
    cfg = gpt.config
    batch, max_len, pos = 2, 40, 23
    caches = [KVCache(cfg.layers, batch, cfg.heads, max_len, cfg.hidden_dim, torch.float32, "cpu") for _ in range(2)]
    g = torch.Generator().manual_seed(1)
    for c in caches[1:]:
        c.k.copy_(caches[0].k.normal_(generator=g))
        c.v.copy_(caches[0].v.normal_(generator=g))
    hidden = torch.zeros(batch, max_len, dtype=torch.bool)
    hidden[1, :5] = True
    x = torch.randn(batch, cfg.hidden_dim, generator=g)
    expected = x
    for n, layer in enumerate(gpt.h.layers):
        expected = layer.step(expected, pos, caches[0].k[n], caches[0].v[n], hidden)
    decoder = native.NativeDecoder(lib, [layer.native_tensors() for layer in gpt.h.layers], cfg.heads, 1e-5)
    decoder.bind(caches[1].k, caches[1].v)
    got = decoder.step(x, pos, hidden)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(caches[1].k, caches[0].k, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(caches[1].v, caches[0].v, rtol=1e-5, atol=1e-6)


def test_decoder_refuses_a_cache_that_does_not_fit():
    gpt = _gpt(0, native_kernels=False)
    decoder = native.NativeDecoder(lib, [layer.native_tensors() for layer in gpt.h.layers], 3, 1e-5)
    with pytest.raises(RuntimeError, match="bind"):
        decoder.step(torch.zeros(1, 48), 0, None)
    with pytest.raises(ValueError, match="does not fit"):
        decoder.bind(torch.zeros(5, 1, 3, 10, 16), torch.zeros(5, 1, 3, 10, 16))
    decoder.bind(torch.zeros(2, 1, 3, 10, 16), torch.zeros(2, 1, 3, 10, 16))
    with pytest.raises(ValueError, match="outside the cache"):
        decoder.step(torch.zeros(1, 48), 10, None)


def test_native_decoding_gives_the_same_tokens():
    """Greedy and sampled tokens, single rows and a left-padded batch: native kernels or PyTorch, the same."""
    g = torch.Generator().manual_seed(4)
    phones = [torch.randint(0, 732, (n,), generator=g) for n in (9, 30, 17)]
    prompt = torch.randint(0, 1024, (12,), generator=g)
    plain, fast = _gpt(1, native_kernels=False), _gpt(1, native_kernels=True)
    for params in (SamplingParams(top_k=1), SamplingParams(top_k=10, top_p=0.9, temperature=0.8)):
        assert _decode(fast, phones, prompt, params, [10, 11, 12], 30) == \
            _decode(plain, phones, prompt, params, [10, 11, 12], 30)
        assert _decode(fast, phones[:1], prompt, params, [3], 40) == _decode(plain, phones[:1], prompt, params, [3], 40)


def test_the_kernels_are_optional(monkeypatch):
    """SYNTH_NATIVE=0 (or no compiler) leaves decoding to PyTorch."""
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setenv("SYNTH_NATIVE", "0")
    assert native.library() is None
    assert not _gpt(0, native_kernels=False).use_native_kernels()

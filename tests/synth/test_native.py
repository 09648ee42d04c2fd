"""The native decoding kernels compute what PyTorch computes (up to the order of float additions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synth import native
from synth.gpt import GPTConfig, Int8Weight, KVCache, Text2SemanticDecoder
from synth.sampling import SamplingParams

lib = native.library()
pytestmark = pytest.mark.skipif(lib is None, reason="no C compiler here: the native kernels are optional")


def _gpt(seed: int, native_kernels: bool, precision: str = "fp32") -> Text2SemanticDecoder:
    """A tiny GPT; ``int8``: int8 weights with fp32 activations (native or PyTorch's same math)."""
    torch.manual_seed(seed)
    gpt = Text2SemanticDecoder(GPTConfig(embedding_dim=48, hidden_dim=48, heads=3, layers=2)).eval()
    for p in gpt.parameters():
        torch.nn.init.normal_(p, std=0.3)
    if precision == "int8":
        gpt.quantize_int8(torch.float32)
    if native_kernels:
        assert gpt.use_native_kernels()
    return gpt


def _decode(gpt, phones, prompt, params, seeds, max_new):
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    bert = [torch.randn(1024, p.numel(), generator=torch.Generator().manual_seed(5)) for p in phones]
    out = [[] for _ in phones]
    for step in gpt.generate(phones, bert, prompt, params, gens, max_new):
        for row, tok in zip(step.rows, step.tokens, strict=False):
            if row not in step.finished:
                out[row].append(tok)
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("n", [7, 48, 130, 512])
@pytest.mark.parametrize("batch", [1, 3])
def test_linear_matches_pytorch(n, batch, precision):
    """bias + x W^T, with and without ReLU and residual, for lengths that are and are not multiples of 16/64.

    fp16: the stored halves widened are W, and the sums are bit for bit those of the fp32 kernel on W.
    int8: W is the int8 rows times their fp32 scales (the kernel's output against fp32 math on them)."""
    g = torch.Generator().manual_seed(n + batch)
    w, b = torch.randn(37, n, generator=g), torch.randn(37, generator=g)
    x, res = torch.randn(batch, n, generator=g), torch.randn(batch, 37, generator=g)
    weight = w
    if precision == "fp16":
        weight = w.half()
        w = weight.float()
        as_fp32 = native.NativeLinear(lib, w, b)
        assert torch.equal(
            native.NativeLinear(lib, weight, b)(x, residual=res, relu=True), as_fp32(x, residual=res, relu=True)
        )
    if precision == "int8":
        q = Int8Weight(w, b, torch.float32)
        weight, w = q.native(), q.q.float() * q.scale32[:, None]
        with pytest.raises(ValueError, match="scales"):
            native.NativeLinear(lib, (q.q, q.scale32[:-1]), None)
    lin = native.NativeLinear(lib, weight, b)
    torch.testing.assert_close(lin(x), F.linear(x, w, b), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lin(x, residual=res, relu=True), F.relu(F.linear(x, w, b)) + res, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(native.NativeLinear(lib, weight, None)(x), F.linear(x, w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_decoder_step_matches_the_pytorch_layers(precision):
    """One native step over all layers equals the layers' own step, keys/values written alike, pads hidden.

    int8: the layers' PyTorch step multiplies fp32 activations by the dequantised int8 weights."""
    gpt = _gpt(0, native_kernels=False, precision=precision)
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


def _round_to_half(gpt: Text2SemanticDecoder) -> Text2SemanticDecoder:
    """Every parameter rounded to a float16 value (as a checkpoint the original trainer saves), kept float32."""
    with torch.no_grad():
        for p in gpt.parameters():
            p.copy_(p.half().float())
    return gpt


def test_weights_saved_as_float16_decode_from_float16_copies_with_the_same_sums():
    """A voice whose weights are float16 values (the original saves them with .half()): the native step
    streams float16 copies and decodes bit for bit what it decodes from the float32 matrices."""
    g = torch.Generator().manual_seed(6)
    phones = [torch.randint(0, 732, (n,), generator=g) for n in (9, 30)]
    prompt = torch.randint(0, 1024, (12,), generator=g)
    halves = _round_to_half(_gpt(7, False))
    assert halves.use_native_kernels() and halves.native_weights == "fp16"
    floats = _round_to_half(_gpt(7, False))
    assert floats.use_native_kernels(half_storage=False) and floats.native_weights == "fp32"
    plain = _round_to_half(_gpt(7, False))
    cfg = halves.config
    x = torch.randn(2, cfg.hidden_dim, generator=g)
    steps = []
    for model in (halves, floats):
        cache = KVCache(cfg.layers, 2, cfg.heads, 16, cfg.hidden_dim, torch.float32, "cpu")
        cache.k.zero_()
        cache.v.zero_()
        model._native.bind(cache.k, cache.v)
        steps.append(model._native.step(x, 3, None))
        steps.append(model._predict(steps[-1]))
    assert torch.equal(steps[0], steps[2]) and torch.equal(steps[1], steps[3])
    for params in (SamplingParams(top_k=1), SamplingParams(top_k=10, top_p=0.9, temperature=0.8)):
        tokens = _decode(halves, phones, prompt, params, [1, 2], 30)
        assert tokens == _decode(floats, phones, prompt, params, [1, 2], 30)
        assert tokens == _decode(plain, phones, prompt, params, [1, 2], 30)
    # Only the float16 matrices stay in memory; PyTorch's paths widen them when they use them:
    # the prefill (above), a batch too large for the native step, the cache-free reference.
    assert all(w.numel() == 0 for layer in halves.h.layers for w in layer.weights())
    assert halves.ar_predict_layer.weight.numel() == 0
    many = [phones[i % 2] for i in range(native.MAX_BATCH + 1)]
    greedy = SamplingParams(top_k=1)
    assert _decode(halves, many, prompt, greedy, list(range(len(many))), 8) == _decode(
        plain, many, prompt, greedy, list(range(len(many))), 8
    )
    bert = [torch.randn(1024, phones[0].numel(), generator=torch.Generator().manual_seed(5))]
    uncached = [s.tokens[0] for s in halves.generate(phones[:1], bert, prompt, greedy, [None], 6, use_cache=False)]
    assert uncached == [s.tokens[0] for s in plain.generate(phones[:1], bert, prompt, greedy, [None], 6)]
    with pytest.raises(ValueError, match="freed"):
        halves.use_native_kernels(half_storage=False)


def test_weights_float16_cannot_hold_stay_float32():
    gpt = _round_to_half(_gpt(8, False))
    with torch.no_grad():
        gpt.h.layers[1].linear2.weight[0, 0] += 1e-4  # no longer a float16 value
    assert gpt.use_native_kernels() and gpt.native_weights == "fp32"
    assert all(layer.half is None for layer in gpt.h.layers)


@pytest.fixture
def each_isa():
    """Runs the test body once per instruction set this CPU can run the kernels with; restores the default."""
    default = native.isa(lib)
    yield native.supported_isas(lib)
    native.set_isa(lib, default)


def test_float16_widening_of_every_path_gives_the_same_floats(each_isa):
    """The portable widening (CPUs without F16C) and the hardware's, specials and subnormals included."""
    bits = torch.arange(0, 65536, dtype=torch.int32).to(torch.int16).view(torch.float16)
    finite = bits[torch.isfinite(bits.float())]
    rows = finite[: (finite.numel() // 64) * 64].reshape(-1, 64).contiguous()
    x = torch.zeros(64)
    assert "portable" in each_isa
    for name in each_isa:
        native.set_isa(lib, name)
        for column in (0, 17, 63):  # pick one column: y[o] = w[o, column] exactly
            x.zero_()
            x[column] = 1.0
            assert torch.equal(native.NativeLinear(lib, rows, None)(x[None])[0], rows[:, column].float()), name


def test_every_instruction_set_computes_the_same_bits(each_isa):
    """AVX-512, AVX2 and plain C: the same float operations in the same order, so the same outputs bit for bit
    (every weight kind, lengths with and without a tail, a decode step through all layers with pads)."""
    g = torch.Generator().manual_seed(9)
    gpt = _gpt(3, native_kernels=False)
    q = Int8Weight(torch.randn(37, 130, generator=g), None, torch.float32)
    weights = [torch.randn(37, 130, generator=g), torch.randn(37, 200, generator=g).half(), q.native()]
    xs = [torch.randn(3, 130, generator=g), torch.randn(3, 200, generator=g), torch.randn(3, 130, generator=g)]
    cfg = gpt.config
    decoder = native.NativeDecoder(lib, [layer.native_tensors() for layer in gpt.h.layers], cfg.heads, 1e-5)
    hidden = torch.zeros(2, 40, dtype=torch.bool)
    hidden[1, :5] = True
    x = torch.randn(2, cfg.hidden_dim, generator=g)
    outputs = {}
    for name in each_isa:
        native.set_isa(lib, name)
        assert native.isa(lib) == name
        cache = KVCache(cfg.layers, 2, cfg.heads, 40, cfg.hidden_dim, torch.float32, "cpu")
        cache.k.copy_(torch.randn(cache.k.shape, generator=torch.Generator().manual_seed(1)))
        cache.v.copy_(torch.randn(cache.v.shape, generator=torch.Generator().manual_seed(2)))
        decoder.bind(cache.k, cache.v)
        outs = [native.NativeLinear(lib, w, None)(xi, relu=True) for w, xi in zip(weights, xs, strict=True)]
        outputs[name] = [*outs, decoder.step(x, 23, hidden), cache.k.clone()]
    for name, outs in outputs.items():
        assert all(torch.equal(a, b) for a, b in zip(outs, outputs["portable"], strict=True)), name
    with pytest.raises(ValueError, match="cannot run"):
        native.set_isa(lib, "sse9")


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


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_native_decoding_gives_the_same_tokens(precision):
    """Greedy and sampled tokens, single rows and a left-padded batch: native kernels or PyTorch, the same."""
    g = torch.Generator().manual_seed(4)
    phones = [torch.randint(0, 732, (n,), generator=g) for n in (9, 30, 17)]
    prompt = torch.randint(0, 1024, (12,), generator=g)
    plain, fast = _gpt(1, False, precision), _gpt(1, True, precision)
    if precision == "int8":
        assert fast._native is not None and fast._head is not None and plain._native is None
    for params in (SamplingParams(top_k=1), SamplingParams(top_k=10, top_p=0.9, temperature=0.8)):
        assert _decode(fast, phones, prompt, params, [10, 11, 12], 30) == _decode(
            plain, phones, prompt, params, [10, 11, 12], 30
        )
        assert _decode(fast, phones[:1], prompt, params, [3], 40) == _decode(plain, phones[:1], prompt, params, [3], 40)


def test_the_kernels_are_optional(monkeypatch):
    """SYNTH_NATIVE=0 (or no compiler) leaves decoding to PyTorch."""
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setenv("SYNTH_NATIVE", "0")
    assert native.library() is None
    assert not _gpt(0, native_kernels=False).use_native_kernels()


def test_int8_falls_back_to_pytorch_without_the_kernels(monkeypatch):
    """quantize_int8(): the native step with fp32 activations, or (SYNTH_NATIVE=0) PyTorch's int8 kernel, bf16;
    the same int8 weights either way."""
    fast = _gpt(2, native_kernels=False)
    assert fast.quantize_int8()
    assert fast._native is not None and fast.bert_proj.weight.dtype == torch.float32
    monkeypatch.setattr(native, "_tried", False)
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setenv("SYNTH_NATIVE", "0")
    slow = _gpt(2, native_kernels=False)
    assert not slow.quantize_int8()
    assert slow._native is None and slow._head is None and slow.bert_proj.weight.dtype == torch.bfloat16
    for layer_fast, layer_slow in zip(fast.h.layers, slow.h.layers, strict=False):
        for name, q in layer_fast.int8.items():
            assert torch.equal(q.q, layer_slow.int8[name].q) and torch.equal(q.scale32, layer_slow.int8[name].scale32)
    phones, prompt, params = [torch.arange(5, 25)], torch.arange(100, 110), SamplingParams(top_k=1)
    tokens = [_decode(gpt, phones, prompt, params, [0], 12)[0] for gpt in (fast, slow)]
    assert len(tokens[0]) == len(tokens[1]) == 12


# ----------------------------------------------------------------------------- convolution through FFTs


def _conv_reference(x, w, b, dilation, activate, residual):
    """conv1d in float64 on [T, C] rows (the generator's time-major layout); PyTorch's refuses an empty signal."""
    if x.shape[0] == 0:
        return torch.zeros(0, w.shape[0], dtype=torch.float64)
    h = x.double().t()[None]
    if activate is not None:
        h = F.leaky_relu(h, activate)
    k = w.shape[-1]
    y = F.conv1d(h, w.double(), b.double(), padding=(k - 1) * dilation // 2, dilation=dilation)[0].t()
    return y if residual is None else y + residual.double()


@pytest.mark.parametrize(("channels", "out_channels"), [(16, 16), (32, 64), (64, 32)])
@pytest.mark.parametrize(("k", "dilation"), [(3, 1), (7, 3), (11, 1), (11, 5), (9, 20)])
@pytest.mark.parametrize("length", [0, 1, 37, 600])
def test_fft_conv_computes_the_convolution(channels, out_channels, k, dilation, length):
    """conv1d(leaky_relu(x)) + bias (+ residual, also into the residual itself) through FFTs, for signals
    shorter than one frame, of one frame and a tail, and of many frames: float64's result within float32
    rounding of the sums."""
    g = torch.Generator().manual_seed(channels * 1000 + k * 10 + dilation + length)
    x = torch.randn(length, channels, generator=g)
    w = torch.randn(out_channels, channels, k, generator=g) / (channels * k) ** 0.5
    b, residual = torch.randn(out_channels, generator=g), torch.randn(length, out_channels, generator=g)
    pad = (k - 1) * dilation // 2
    scratch = native.ConvScratch()
    for activate, res in ((None, None), (0.1, None), (0.1, residual)):
        out = torch.full((length, out_channels), float("nan"))
        assert native.fft_conv(lib, x, w, b, dilation, pad, out, scratch, activate=activate, residual=res)
        expected = _conv_reference(x, w, b, dilation, activate, res)
        scale = 1 + (expected.abs().max().item() if length else 0)
        torch.testing.assert_close(out.double(), expected, rtol=0, atol=2e-5 * scale)
    into = residual.clone()
    assert native.fft_conv(lib, x, w, b, dilation, pad, into, scratch, activate=0.1, residual=into)
    assert torch.equal(into, out)  # the sum written over the residual, the same bits


def test_fft_frames_hold_at_least_twice_the_kernel():
    for channels in (16, 64, 256, 512):
        for span in (3, 11, 12, 51, 161, 1000):
            n = native.fft_frame(span, channels)
            assert n >= 2 * span and n >= 64 and n & (n - 1) == 0


def test_fft_conv_every_instruction_set_computes_the_same_bits(each_isa):
    """Each lane is one channel's scalar FFT and the products are fused multiply-adds in one order, so AVX-512,
    AVX2 and plain C give the same bits."""
    g = torch.Generator().manual_seed(4)
    x, w, b = torch.randn(900, 48, generator=g), torch.randn(32, 48, 11, generator=g), torch.randn(32, generator=g)
    outputs = {}
    for name in each_isa:
        native.set_isa(lib, name)
        out = torch.empty(900, 32)
        assert native.fft_conv(lib, x, w, b, 3, 15, out, native.ConvScratch(), activate=0.1)
        outputs[name] = out
    assert all(torch.equal(out, outputs["portable"]) for out in outputs.values())


def test_fft_conv_refuses_what_it_cannot_compute():
    x, w, b, out = torch.zeros(50, 24), torch.zeros(16, 24, 7), torch.zeros(16), torch.zeros(50, 16)
    with pytest.raises(ValueError, match="multiples of 16"):
        native.fft_conv(lib, x, w, b, 1, 3, out, native.ConvScratch())
    x, w = torch.zeros(50, 32), torch.zeros(16, 32, 7)
    with pytest.raises(ValueError, match="keep the length"):
        native.fft_conv(lib, x, w, b, 1, 2, out, native.ConvScratch())
    with pytest.raises(ValueError, match="do not fit"):
        native.fft_conv(lib, x, w, b, 1, 3, torch.zeros(49, 16), native.ConvScratch())
    with pytest.raises(ValueError, match="contiguous float32"):
        native.fft_conv(lib, x.double(), w, b, 1, 3, out, native.ConvScratch())


def test_the_generator_uses_ffts_only_where_they_pay(each_isa, monkeypatch):
    """7- and 11-tap convolutions wide enough, on AVX2 or AVX-512; never 3 taps, narrow ones, plain C (which
    multiplies a lane at a time: slower than oneDNN's direct convolution) or SYNTH_FFT_CONV=0."""
    from synth.sovits import WNConv

    def conv(channels, k, d=1):
        c = WNConv("conv1d", channels, channels, k, dilation=d, padding=(k - 1) * d // 2)
        c.fold()
        return c

    for name in each_isa:
        native.set_isa(lib, name)
        fast = name != "portable"
        assert conv(32, 11, 5).through_fft() == fast and conv(64, 7, 3).through_fft() == fast
        assert not conv(32, 7).through_fft() and not conv(256, 3).through_fft() and not conv(16, 11).through_fft()
    monkeypatch.setenv("SYNTH_FFT_CONV", "0")
    assert not conv(128, 11).through_fft()

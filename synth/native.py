"""Native kernels on a CPU (``native.c``): token-by-token GPT decoding, and the generator's FFT convolutions.

Decoding one token reads every weight of the GPT once: a chain of matrix-vector products,
bound by memory bandwidth, with a few hundred small steps around them. PyTorch sends the
products to MKL, whose GEMV streams the weights at about half the speed this machine reads
memory, and each small step costs a few microseconds of dispatch. ``native.c`` has a GEMV
that reads each weight row as one sequential stream (with the bias, a ReLU and the residual
folded in) and a single-query attention that also writes the new key and value into the
cache. With them the default fp32 mode decodes about 3x as fast as PyTorch's own kernels
(BENCHMARKS.md: 78 against 25 tokens/s on a 2-core AVX2 EPYC, with the float16 storage
below). The same step takes int8 weights with one float32 scale per output row (``int8``
precision): a quarter of the bytes to stream, float32 activations and sums. And it
takes float16 weights, widened to float32 as they are read: the checkpoints GPT-SoVITS's trainer
writes hold float16 values (it saves with ``.half()``), so in the default fp32 mode the step
streams float16 copies of them, half the bytes, and computes bit for bit what it computes on
the float32 matrices (the widening is exact and the sums keep their order).

The same library runs the SoVITS generator's wide convolutions through FFTs (:func:`fft_conv`,
``native_conv.c``): the same convolutions with a fraction of the multiply-adds (docs/synth.md).

The kernels are compiled on first use with the system C compiler (``cc -O3``, about two
seconds of CPU, once) into a per-user cache and loaded with ctypes. The library holds each kernel three
times, for AVX-512, AVX2 and plain C, and uses the best one the CPU it runs on has (checked
at run time, not taken from the build machine's flags); ``SYNTH_NATIVE_ISA=avx2`` (or
``portable``, ``avx512``) forces one, and :func:`set_isa` switches. All three compute the same
float operations in the same order: their outputs are bit for bit equal. They are optional:
without a compiler, or with ``SYNTH_NATIVE=0``, fp32 decoding runs the same arithmetic through
PyTorch. The two differ only in the order of float additions (relative differences of about
1e-7; the greedy tokens of the full-size test voice are the same). ``int8`` then falls back to
PyTorch's int8 kernel with bf16 activations (same int8 weights, other numerics).
"""

from __future__ import annotations

import copy
import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("native.c")
SOURCES = (SOURCE, Path(__file__).with_name("native_conv.c"))  # native.c includes native_conv.c
# No -march=native: native.c compiles its AVX2 and AVX-512 kernels with target pragmas and picks one at run
# time; -ffp-contract=off keeps every path's float operations the same (no path fuses what another does not).
FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-shared", "-fPIC"]
ISAS = ("portable", "avx2", "avx512")  # native.c's ISA_* values, in order
MAX_BATCH = 16  # beyond this many rows a blocked GEMM (MKL) reuses each weight better

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_tried = False
_p = ctypes.c_void_p
_long = ctypes.c_long


def _cache_dir() -> Path:
    if os.environ.get("SYNTH_KERNEL_CACHE"):
        return Path(os.environ["SYNTH_KERNEL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "voicemarket" / "synth"


def _cpu_signature() -> str:
    """The CPU's feature flags (the library is the same on every x86-64 CPU; kept in the key for safety)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            flags = next((line for line in cpuinfo if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _build(compiler: str) -> Path:
    source = b"".join(path.read_bytes() for path in SOURCES)
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    key = hashlib.sha256(source + " ".join(FLAGS).encode() + version.encode() + _cpu_signature().encode())
    target = _cache_dir() / f"native-{key.hexdigest()[:16]}.so"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target, then rename: workers starting together never load a half-written file.
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", str(built)], capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:500]}")
        os.replace(built, target)
    return target


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (no compiler, the build failed, or ``SYNTH_NATIVE=0``). Built once."""
    global _library, _tried
    with _lock:
        if _tried:
            return _library
        _tried = True
        if os.environ.get("SYNTH_NATIVE", "1") == "0":
            return None
        compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            log.info("no C compiler found: GPT decoding runs through PyTorch (slower)")
            return None
        try:
            lib = ctypes.CDLL(str(_build(compiler)))
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            log.warning("native decoding kernels unavailable (%s): GPT decoding runs through PyTorch (slower)", exc)
            return None
        lib.synth_linear.argtypes = [ctypes.c_int, _p, _p, _p, _p, _p, _p, _long, _long, _long, ctypes.c_int]
        lib.synth_linear.restype = None
        lib.synth_decode.argtypes = [
            ctypes.c_int,
            _p,
            _long,
            _p,
            _long,
            _long,
            _long,
            _long,
            _long,
            _p,
            ctypes.c_float,
            _p,
        ]
        lib.synth_decode.restype = None
        lib.synth_fft_conv.argtypes = [
            _p,
            _long,
            _long,
            _p,
            _long,
            _long,
            _p,
            _long,
            _long,
            _long,
            ctypes.c_int,
            ctypes.c_float,
            _p,
            _p,
            _p,
            _long,
        ]
        lib.synth_fft_conv.restype = _long
        for name in ("synth_isa_supported", "synth_set_isa"):
            getattr(lib, name).argtypes = [ctypes.c_int]
            getattr(lib, name).restype = ctypes.c_int
        lib.synth_isa.argtypes = []
        lib.synth_isa.restype = ctypes.c_int
        forced = os.environ.get("SYNTH_NATIVE_ISA", "").strip().lower()
        if forced:
            if forced not in ISAS:
                raise ValueError(f"SYNTH_NATIVE_ISA must be one of {', '.join(ISAS)}, got {forced!r}")
            if lib.synth_set_isa(ISAS.index(forced)) < 0:
                log.warning("SYNTH_NATIVE_ISA=%s: this CPU cannot run it; using %s", forced, ISAS[lib.synth_isa()])
        _library = lib
        return lib


def supported_isas(lib: ctypes.CDLL) -> list[str]:
    """The instruction sets this CPU can run the kernels with (``portable`` always)."""
    return [name for n, name in enumerate(ISAS) if lib.synth_isa_supported(n)]


def isa(lib: ctypes.CDLL) -> str:
    """The instruction set the kernels use now."""
    return ISAS[lib.synth_isa()]


def set_isa(lib: ctypes.CDLL, name: str) -> None:
    """Use the kernels of instruction set ``name`` (one of :data:`ISAS` this CPU supports) from now on."""
    if name not in ISAS or lib.synth_set_isa(ISAS.index(name)) < 0:
        raise ValueError(f"this CPU cannot run the {name!r} kernels; it can run {supported_isas(lib)}")


def _check_fp32_cpu(name: str, t: torch.Tensor) -> None:
    if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
        raise ValueError(f"native kernels need {name} as a contiguous float32 CPU tensor")


Weight = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
"""A matrix for the kernels: fp32 or fp16 ``[out, in]`` (fp16 is widened to fp32 as it is read: the same
products as the fp32 matrix of the same values), or ``(q, scale)``: int8 ``[out, in]`` and fp32 ``[out]``
(the matrix is ``q * scale[:, None]``)."""

# How a matrix is stored (native.c's WEIGHT_* values).
WEIGHT_F32, WEIGHT_F16, WEIGHT_Q8 = 0, 1, 2


def _weight_pointers(name: str, weight: Weight) -> tuple[tuple[torch.Tensor, ...], int, int, int | None]:
    """Check a :data:`Weight`; -> (the tensors to keep alive, its kind, the matrix's address, the scales' or None)."""
    if isinstance(weight, torch.Tensor):
        if weight.dtype == torch.float16 and weight.device.type == "cpu" and weight.is_contiguous():
            return (weight.detach(),), WEIGHT_F16, weight.data_ptr(), None
        _check_fp32_cpu(name, weight)
        return (weight.detach(),), WEIGHT_F32, weight.data_ptr(), None
    q, scale = weight
    if q.dtype != torch.int8 or q.device.type != "cpu" or not q.is_contiguous() or q.dim() != 2:
        raise ValueError(f"native kernels need {name} as a contiguous int8 CPU matrix")
    _check_fp32_cpu(f"the scales of {name}", scale)
    if scale.shape != (q.shape[0],):
        raise ValueError(f"{name} has {q.shape[0]} rows but {scale.numel()} scales")
    return (q.detach(), scale.detach()), WEIGHT_Q8, q.data_ptr(), scale.data_ptr()


class NativeLinear:
    """``F.linear`` for a few rows of fp32 ``x`` on the CPU, with an optional ReLU and residual.

    weight: a :data:`Weight` (referenced, not copied); bias: [out] fp32 or None.
    """

    def __init__(self, lib: ctypes.CDLL, weight: Weight, bias: torch.Tensor | None) -> None:
        self._keep, self._kind, self._w, self._scale = _weight_pointers("the weight", weight)
        self.rows, self.n = self._keep[0].shape
        self.bias = None if bias is None else bias.detach().contiguous()
        if self.bias is not None:
            _check_fp32_cpu("the bias", self.bias)
        self._lib = lib

    def __call__(self, x: torch.Tensor, residual: torch.Tensor | None = None, relu: bool = False) -> torch.Tensor:
        """x: [B, in] (B <= MAX_BATCH) -> relu?(x W^T + b) + residual: [B, out]."""
        x = x.contiguous()
        _check_fp32_cpu("the input", x)
        batch = x.shape[0]
        y = torch.empty(batch, self.rows, dtype=torch.float32)
        if residual is not None:
            residual = residual.contiguous()
            _check_fp32_cpu("the residual", residual)
        args = (
            None if self.bias is None else self.bias.data_ptr(),
            None if residual is None else residual.data_ptr(),
            x.data_ptr(),
            y.data_ptr(),
            self.rows,
            self.n,
            batch,
            int(relu),
        )
        self._lib.synth_linear(self._kind, self._w, self._scale, *args)
        return y


class NativeDecoder:
    """One decoding step through every layer of the GPT in one native call (``synth_decode``).

    layers: per layer, the twelve tensors in ``LAYER_TENSORS`` order: the four matrices as
    :data:`Weight` (all of one kind: fp32, fp16, or int8 with per-row scales), the biases and norms
    fp32; they are referenced, not copied. Call :meth:`bind` with the KV cache before stepping, and
    again whenever the cache tensors are replaced (a finished row dropped from the batch).
    """

    LAYER_TENSORS = (
        "qkv_w",
        "qkv_b",
        "out_w",
        "out_b",
        "ff1_w",
        "ff1_b",
        "ff2_w",
        "ff2_b",
        "ln1_w",
        "ln1_b",
        "ln2_w",
        "ln2_b",
    )
    MATRICES = ("qkv_w", "out_w", "ff1_w", "ff2_w")

    def __init__(
        self, lib: ctypes.CDLL, layers: list[tuple[Weight | torch.Tensor, ...]], heads: int, eps: float
    ) -> None:
        self._keep: list[torch.Tensor] = []
        self._layer_pointers: list[list[int | None]] = []  # per layer, synth_decode's order less the caches
        kinds: set[int] = set()
        for tensors in layers:
            if len(tensors) != len(self.LAYER_TENSORS):
                raise ValueError(f"each layer needs {len(self.LAYER_TENSORS)} tensors: {self.LAYER_TENSORS}")
            pointers: list[int | None] = []
            for name, t in zip(self.LAYER_TENSORS, tensors, strict=True):
                if name in self.MATRICES:
                    keep, kind, w, scale = _weight_pointers(name, t)
                    kinds.add(kind)
                    self._keep += keep
                    pointers += [w, scale]
                else:
                    _check_fp32_cpu(name, t)
                    self._keep.append(t.detach())
                    pointers.append(t.data_ptr())
            self._layer_pointers.append(pointers)
        if len(kinds) != 1:
            raise ValueError("every matrix of the decoder must be stored the same way (fp32, fp16 or int8)")
        self.kind = kinds.pop()
        self._fn = lib.synth_decode
        self.num_layers = len(layers)
        first = layers[0][0]
        self.dim = int((first if isinstance(first, torch.Tensor) else first[0]).shape[1])
        self.heads, self.eps = heads, eps
        self._params: ctypes.Array | None = None
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._work: torch.Tensor | None = None

    def bound(self, k: torch.Tensor, v: torch.Tensor) -> NativeDecoder:
        """A decoder of the same weights (shared, not copied) bound to this KV cache, for one
        generation: each generation steps its own copy, so threads decoding at once in one process
        never step with each other's cache or scratch memory."""
        own = copy.copy(self)
        own.bind(k, v)
        return own

    def bind(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """k, v: the KV cache, [layers, B, H, max_len, D/H] contiguous fp32 each."""
        _check_fp32_cpu("the key cache", k)
        _check_fp32_cpu("the value cache", v)
        if k.shape != v.shape or k.shape[0] != self.num_layers or k.shape[2] * k.shape[4] != self.dim:
            raise ValueError(f"KV cache of shape {tuple(k.shape)} does not fit {self.num_layers} layers of {self.dim}")
        pointers: list[int | None] = []
        for n, layer in enumerate(self._layer_pointers):
            pointers += layer + [k[n].data_ptr(), v[n].data_ptr()]
        self._params = (ctypes.c_void_p * len(pointers))(*pointers)
        self._cache = (k, v)  # keeps the memory the pointers name alive
        batch, max_len = k.shape[1], k.shape[3]
        self._work = torch.empty(batch * (9 * self.dim + self.heads * max_len), dtype=torch.float32)

    def step(self, x: torch.Tensor, pos: int, hidden: torch.Tensor | None) -> torch.Tensor:
        """x: [B, D] (the new tokens' inputs at cache position ``pos``) -> the last layer's output [B, D].

        hidden: [B, max_len] bool, True = a pad position no row attends to; None when there are none."""
        if self._cache is None:
            raise RuntimeError("bind the KV cache before stepping")
        k = self._cache[0]
        batch, max_len = k.shape[1], k.shape[3]
        if x.shape != (batch, self.dim):
            raise ValueError(f"x has shape {tuple(x.shape)}, expected {(batch, self.dim)}")
        if not 0 <= pos < max_len:
            raise ValueError(f"position {pos} is outside the cache (length {max_len})")
        if hidden is not None and (
            hidden.dtype != torch.bool or hidden.shape != (batch, max_len) or not hidden.is_contiguous()
        ):
            raise ValueError("hidden must be a contiguous [B, max_len] bool tensor")
        out = x.float().contiguous().clone()
        self._fn(
            self.kind,
            self._params,
            self.num_layers,
            out.data_ptr(),
            batch,
            self.dim,
            self.heads,
            max_len,
            pos,
            None if hidden is None else hidden.data_ptr(),
            self.eps,
            self._work.data_ptr(),
        )
        return out


# ----------------------------------------------------------------------------- convolution through FFTs

FFT_CHANNELS = 16  # native_conv.c's channel counts must be multiples of this (the widest vector)


def fft_frame(span: int, channels: int) -> int:
    """Samples per FFT frame for a (dilated) kernel spanning ``span`` samples over ``channels`` channels.

    Frames overlap by the span, so short frames waste products; each frame's products cost the same per
    bin, and every run of frames recomputes the kernel's spectrum (channels^2 numbers a bin), so many
    channels favour short frames. Measured per layer of the full-size generator on an AVX-512 EPYC
    (2 threads): 256 channels 64 samples up to an 11-tap span, else 128; fewer channels 128 up to 11,
    else 256 (spans up to 51)."""
    short = span <= 11
    n = (64 if short else 128) if channels >= 256 else (128 if short else 256)
    while n < 2 * span:  # longer kernels than the generator's: frames of at least twice the span
        n *= 2
    return n


class ConvScratch:
    """Scratch memory for :func:`fft_conv`, kept from one call to the next (one per thread of callers).

    Fresh pages cost the kernel a page fault and zeroing each: tens of MB for every convolution of a
    sentence's late stages. The generator keeps one for a whole sentence and drops it at the end."""

    def __init__(self) -> None:
        self._buffer = torch.empty(0, dtype=torch.float32)

    def floats(self, count: int) -> torch.Tensor:
        if self._buffer.numel() < count:
            self._buffer = torch.empty(0, dtype=torch.float32)  # free the old one first
            self._buffer = torch.empty(count, dtype=torch.float32)
        return self._buffer


def fft_conv(
    lib: ctypes.CDLL,
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dilation: int,
    padding: int,
    out: torch.Tensor,
    scratch: ConvScratch,
    activate: float | None = None,
    residual: torch.Tensor | None = None,
) -> bool:
    """``out = conv1d(leaky_relu(x, activate) if activate is not None else x, weight, bias, padding, dilation)``,
    plus ``residual`` when given, through FFTs (native_conv.c), time-major.

    x: [T, ci]; out and residual: [T, co] (residual may be out itself); weight: [co, ci, k]; all contiguous
    float32 on the CPU, channel counts multiples of :data:`FFT_CHANNELS`, and ``padding`` such that the
    output is as long as the input. Returns False (out untouched) when memory runs out."""
    for name, t in (("x", x), ("the weight", weight), ("the bias", bias), ("out", out)):
        _check_fp32_cpu(name, t)
    if residual is not None:
        _check_fp32_cpu("the residual", residual)
    length, ci = x.shape
    co, wci, k = weight.shape
    span = (k - 1) * dilation + 1
    if wci != ci or out.shape != (length, co) or (residual is not None and residual.shape != out.shape):
        raise ValueError(f"shapes do not fit: x {tuple(x.shape)}, weight {tuple(weight.shape)}, out {tuple(out.shape)}")
    if ci % FFT_CHANNELS or co % FFT_CHANNELS or 2 * padding != span - 1:
        raise ValueError(f"channels must be multiples of {FFT_CHANNELS} and the padding keep the length")
    n = fft_frame(span, max(ci, co))
    args = (
        x.data_ptr(),
        length,
        ci,
        weight.data_ptr(),
        k,
        dilation,
        bias.data_ptr(),
        co,
        n,
        padding,
        int(activate is not None),
        0.0 if activate is None else activate,
        None if residual is None else residual.data_ptr(),
        out.data_ptr(),
    )
    needed = lib.synth_fft_conv(*args, None, 0)
    try:
        work = scratch.floats(needed)
    except RuntimeError:  # out of memory
        return False
    return lib.synth_fft_conv(*args, work.data_ptr(), work.numel()) == 0

"""The GPT stage: GPT-SoVITS's Text2SemanticDecoder, for inference only.

Phones (+ phone-level BERT features) and the reference's semantic tokens go in; new
semantic tokens (25 Hz, 1,024 codes, EOS = 1024) come out, one per step. Parameter names
and shapes match the published ``.ckpt`` files (``h.layers.N.self_attn.in_proj_weight`` ...),
so a state dict loads unchanged.

Decoding keeps keys and values in a cache allocated once for the longest run
(:class:`KVCache`), where the original grows a tensor by concatenation at every step. The
arithmetic per step is the original's (same ops, same order, same memory layout of the
attended keys), so greedy tokens and sampled tokens under a seed come out the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from synth.native import MAX_BATCH, WEIGHT_F16, WEIGHT_F32, WEIGHT_Q8, NativeDecoder, NativeLinear, Weight, library
from synth.sampling import SamplingParams, sample_next


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a Text2SemanticDecoder (v2 defaults: 24 layers, width 512, 16 heads)."""

    embedding_dim: int = 512
    hidden_dim: int = 512
    heads: int = 16
    layers: int = 24
    vocab_size: int = 1025
    phoneme_vocab_size: int = 732
    eos: int = 1024
    bert_dim: int = 1024

    @classmethod
    def from_checkpoint_config(cls, config: dict) -> GPTConfig:
        m = config["model"]
        return cls(
            embedding_dim=int(m["embedding_dim"]),
            hidden_dim=int(m["hidden_dim"]),
            heads=int(m["head"]),
            layers=int(m["n_layer"]),
            vocab_size=int(m["vocab_size"]),
            phoneme_vocab_size=int(m["phoneme_vocab_size"]),
            eos=int(m["EOS"]),
        )

    def to_checkpoint_config(self) -> dict:
        """The ``config`` dict GPT-SoVITS's trainer stores (s1longer-v2.yaml layout)."""
        return {
            "train": {
                "seed": 1234,
                "epochs": 20,
                "batch_size": 8,
                "save_every_n_epoch": 1,
                "precision": "16-mixed",
                "gradient_clip": 1.0,
            },
            "optimizer": {"lr": 0.01, "lr_init": 1e-05, "lr_end": 0.0001, "warmup_steps": 2000, "decay_steps": 40000},
            "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
            "model": {
                "vocab_size": self.vocab_size,
                "phoneme_vocab_size": self.phoneme_vocab_size,
                "embedding_dim": self.embedding_dim,
                "hidden_dim": self.hidden_dim,
                "head": self.heads,
                "linear_units": self.hidden_dim * 4,
                "n_layer": self.layers,
                "dropout": 0,
                "EOS": self.eos,
                "random_bert": 0,
            },
            "inference": {"top_k": 15},
        }


class TokenEmbedding(nn.Module):
    def __init__(self, dim: int, vocab: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.word_embeddings(ids)


class SinePositions(nn.Module):
    """Sinusoidal positions scaled by a learnt ``alpha`` (VALL-E style), added to the input."""

    def __init__(self, dim: int, max_len: int = 4000) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1))
        position = torch.arange(0, max_len, dtype=torch.float32).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
        pe = torch.zeros(max_len, dim)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)

    def forward(self, x: torch.Tensor, start: int = 0) -> torch.Tensor:
        """x: [B, T, D] -> x + alpha * pe[start:start+T]."""
        return x * 1.0 + self.alpha * self.pe[:, start : start + x.size(1)].to(x.dtype)

    def at(self, position: int, dtype: torch.dtype) -> torch.Tensor:
        return self.alpha * self.pe[:, position].to(dtype)


def _exact_half(weight: torch.Tensor) -> torch.Tensor | None:
    """A contiguous float16 copy of a float32 matrix if float16 holds each of its values exactly, else None."""
    half = weight.detach().to(torch.float16).contiguous()
    return half if torch.equal(half.to(torch.float32), weight.detach()) else None


class SelfAttention(nn.Module):
    """Holds ``in_proj_weight``/``in_proj_bias``/``out_proj`` under nn.MultiheadAttention's names."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)


class Int8Weight:
    """A linear layer's weight as int8 with one scale per output row (weight-only quantisation).

    The int8 weights are a quarter of the fp32 bytes, which is what decoding one token at a time
    is bound by on a CPU. ``activations``: the dtype ``x`` is computed in (bfloat16 for PyTorch's
    int8 kernel; float32 beside the native decode step). ``scale32`` is the float32 scale the
    weights were rounded with (``scale`` is it in the activations' dtype).
    """

    def __init__(
        self, weight: torch.Tensor, bias: torch.Tensor | None, activations: torch.dtype = torch.bfloat16
    ) -> None:
        w = weight.detach().float()
        scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
        self.q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
        self.scale32 = scale.contiguous()
        self.activations = activations
        self.scale = scale.to(activations)
        self.bias = None if bias is None else bias.detach().to(activations).contiguous()

    def native(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The matrix for :mod:`synth.native`: ``(q, scale32)``."""
        return self.q, self.scale32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.activations == torch.float32:
            # PyTorch's int8 kernel in float32 is a slow generic loop (195 ms for 150 x 512 by 2048 x 512
            # on an AVX2 EPYC, against 7 ms here): dequantise the matrix for the moment, one GEMM.
            return F.linear(x, self.q.to(torch.float32).mul_(self.scale32[:, None]), self.bias)
        shape = x.shape
        y = torch._weight_int8pack_mm(x.reshape(-1, shape[-1]).to(self.activations), self.q, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.view(*shape[:-1], -1)


class DecoderLayer(nn.Module):
    """Post-norm transformer layer (attention, then ReLU FFN of width 4*dim)."""

    MATRICES = ("qkv", "out", "ff1", "ff2")  # the names of weights(), in its order

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.dim = dim
        self.int8: dict[str, Int8Weight] | None = None
        self.half: tuple[torch.Tensor, ...] | None = None  # weights() as float16, when stored so
        self.self_attn = SelfAttention(dim)
        self.linear1 = nn.Linear(dim, dim * 4)
        self.linear2 = nn.Linear(dim * 4, dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)

    def quantize_int8(self, activations: torch.dtype = torch.bfloat16) -> None:
        """Switch to int8 weights (activations in ``activations``)."""
        a = self.self_attn
        self.int8 = {
            "qkv": Int8Weight(a.in_proj_weight, a.in_proj_bias, activations),
            "out": Int8Weight(a.out_proj.weight, a.out_proj.bias, activations),
            "ff1": Int8Weight(self.linear1.weight, self.linear1.bias, activations),
            "ff2": Int8Weight(self.linear2.weight, self.linear2.bias, activations),
        }

    def weights(self) -> list[torch.Tensor]:
        """The four matrices of the layer (what decoding one token streams from memory)."""
        return [self.self_attn.in_proj_weight, self.self_attn.out_proj.weight, self.linear1.weight, self.linear2.weight]

    def native_tensors(self) -> tuple[torch.Tensor, ...]:
        """The layer's tensors in :attr:`NativeDecoder.LAYER_TENSORS` order (int8 matrices as ``(q, scale)``)."""
        a, q = self.self_attn, self.int8
        if q is None:
            qkv, out, ff1, ff2 = self.half or self.weights()
            linears = (qkv, a.in_proj_bias, out, a.out_proj.bias, ff1, self.linear1.bias, ff2, self.linear2.bias)
        else:
            linears = tuple(t for name in self.MATRICES for t in (q[name].native(), q[name].bias))
        return (*linears, self.norm1.weight, self.norm1.bias, self.norm2.weight, self.norm2.bias)

    def _linear(self, x: torch.Tensor, which: str, layer_w: torch.Tensor, layer_b: torch.Tensor) -> torch.Tensor:
        if self.int8 is not None:
            return self.int8[which](x)
        if self.half is not None:  # float16 storage: the same float32 values, widened for the moment
            layer_w = self.half[self.MATRICES.index(which)].float()
        return F.linear(x, layer_w, layer_b)

    def _qkv(self, x: torch.Tensor) -> torch.Tensor:
        return self._linear(x, "qkv", self.self_attn.in_proj_weight, self.self_attn.in_proj_bias)

    def _finish(self, x: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """x, attn: [..., D] -> the layer's output: out projection, residual, norm, FFN, residual, norm."""
        x = x + self._linear(attn, "out", self.self_attn.out_proj.weight, self.self_attn.out_proj.bias)
        x = F.layer_norm(x, [self.dim], self.norm1.weight, self.norm1.bias, self.norm1.eps)
        h = F.relu_(self._linear(x, "ff1", self.linear1.weight, self.linear1.bias))
        x = x + self._linear(h, "ff2", self.linear2.weight, self.linear2.bias)
        return F.layer_norm(x, [self.dim], self.norm2.weight, self.norm2.bias, self.norm2.eps)

    def prefill(
        self, x: torch.Tensor, mask: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor
    ) -> torch.Tensor:
        """x: [B, T, D]; mask: [B, H, T, T] bool, True = may attend. Writes keys/values 0..T-1.

        Caches: [B, H, max_len, D/H]."""
        b, t, _ = x.shape
        q, k, v = self._qkv(x).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        k_cache[:, :, :t].copy_(k)
        v_cache[:, :, :t].copy_(v)
        attn = F.scaled_dot_product_attention(q, k, v, mask)
        return self._finish(x, attn.transpose(1, 2).reshape(b, t, -1))

    def step(
        self, x: torch.Tensor, pos: int, k_cache: torch.Tensor, v_cache: torch.Tensor, hidden: torch.Tensor | None
    ) -> torch.Tensor:
        """x: [B, D], the token at cache position ``pos``; attends to cache[:pos+1] -> [B, D].

        ``hidden``: [B, max_len] bool, True = a left pad no row may attend to (None: no pads).
        (:class:`~synth.native.NativeDecoder` does the same for all layers in one call.)"""
        b = x.shape[0]
        q, k, v = self._qkv(x).view(b, 3, self.heads, -1).unbind(1)  # [B, H, dh] each
        k_cache[:, :, pos].copy_(k)
        v_cache[:, :, pos].copy_(v)
        n = pos + 1
        # One query per head: two small matmuls and a softmax over the cache view cost less than
        # the fused attention kernel's setup, and compute the same sums.
        scores = torch.matmul(q.unsqueeze(2), k_cache[:, :, :n].transpose(-1, -2))  # [B, H, 1, n]
        scores.mul_(q.shape[-1] ** -0.5)
        if hidden is not None:
            scores.masked_fill_(hidden[:, None, None, :n], float("-inf"))
        probs = (
            torch.softmax(scores, dim=-1)
            if scores.dtype == torch.float32
            else torch.softmax(scores.float(), dim=-1).to(scores.dtype)
        )
        attn = torch.matmul(probs, v_cache[:, :, :n])  # [B, H, 1, dh]
        return self._finish(x, attn.view(b, -1))


class Stack(nn.Module):
    """The ``h`` module of the original: ``h.layers.N``."""

    def __init__(self, dim: int, heads: int, layers: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(dim, heads) for _ in range(layers))


class KVCache:
    """Keys and values of every layer, allocated once: ``[layers, B, H, max_len, D/H]`` each.

    Heads first, so that the keys one head attends to are one contiguous block."""

    def __init__(self, layers: int, batch: int, heads: int, max_len: int, dim: int, dtype: torch.dtype, device) -> None:
        self.k = torch.empty(layers, batch, heads, max_len, dim // heads, dtype=dtype, device=device)
        self.v = torch.empty_like(self.k)
        self.max_len = max_len

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Drop finished sequences from the batch (rare: once per sentence)."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)


@dataclass
class DecodeStep:
    """What one decoding step reports: the new token of each still-running row."""

    rows: list[int]
    tokens: list[int]
    finished: list[int]


class Text2SemanticDecoder(nn.Module):
    """GPT-SoVITS v2 text-to-semantic model (inference)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embedding_dim
        self.bert_proj = nn.Linear(config.bert_dim, d)
        self.ar_text_embedding = TokenEmbedding(d, config.phoneme_vocab_size)
        self.ar_text_position = SinePositions(d)
        self.ar_audio_embedding = TokenEmbedding(d, config.vocab_size)
        self.ar_audio_position = SinePositions(d)
        self.h = Stack(config.hidden_dim, config.heads, config.layers)
        self.ar_predict_layer = nn.Linear(config.hidden_dim, config.vocab_size, bias=False)
        self._native: NativeDecoder | None = None
        self._head: NativeLinear | None = None
        self._int8_head: Int8Weight | None = None
        self._half_head: torch.Tensor | None = None  # the output head as float16 (see use_native_kernels)

    def quantize_int8(self, activations: torch.dtype | None = None) -> bool:
        """Fast mode: int8 weight-only linears in every layer and the output head.

        ``activations``: None (default) = float32 with the native decode step on a CPU where its
        kernels build, else bfloat16 (PyTorch's int8 kernel). Given explicitly, no native step is
        set up (:meth:`use_native_kernels` does it; float32 without it: PyTorch computes the same
        math on the dequantised matrices). The weights are rounded from their float32 values either way.
        Returns whether decoding uses the native step."""
        auto = activations is None
        if auto:
            native = self.bert_proj.weight.device.type == "cpu" and library() is not None
            activations = torch.float32 if native else torch.bfloat16
        for layer in self.h.layers:
            layer.quantize_int8(activations)
        head = Int8Weight(self.ar_predict_layer.weight, None, activations)
        self._int8_head = head
        self._free_float_matrices(head, activations)
        self.to(activations)
        return auto and activations == torch.float32 and self.use_native_kernels()

    def _free_float_matrices(self, head: Callable[[torch.Tensor], torch.Tensor], head_dtype: torch.dtype) -> None:
        """Free the float parameters of every layer's matrices and of the output head, once they are
        held another way (int8, float16); ``head`` computes the output head from then on."""
        for layer in self.h.layers:
            for p in layer.weights():
                p.data = torch.empty(0, dtype=p.dtype, device=p.device)
        weight = self.ar_predict_layer.weight
        weight.data = torch.empty(0, dtype=head_dtype, device=weight.device)
        self.ar_predict_layer.forward = head  # type: ignore[method-assign]

    def use_native_kernels(self, half_storage: bool = True) -> bool:
        """fp32 activations on a CPU (fp32 weights, or int8 ones quantised with float32 activations):
        decode steps through :mod:`synth.native` if its kernels build here.

        Returns whether they are used. The prefill (a matrix of positions, not a vector) stays with
        PyTorch's GEMM. ``half_storage``: when every fp32 matrix holds values that float16
        represents exactly (as in every checkpoint the original trainer writes: it saves the
        weights with ``.half()``), the matrices are kept as float16 only, and the native step
        widens each value to float32 as it reads it: the products and sums are the same as over
        the float32 matrices, bit for bit, decoding streams half the bytes, and the float32
        copies (300 MB at full size) are freed; PyTorch's paths (the prefill, batches of more
        than ``MAX_BATCH`` rows) widen a matrix when they use it. One way: once freed, the
        float32 matrices are not rebuilt (``half_storage=False`` is then refused)."""
        weight = self.bert_proj.weight
        if weight.dtype != torch.float32 or weight.device.type != "cpu":
            return False
        lib = library()
        if lib is None:
            return False
        layers = self.h.layers
        head = self._int8_head
        head_matrix: Weight = self.ar_predict_layer.weight if head is None else head.native()
        if self._half_head is not None:
            if not half_storage:
                raise ValueError("the float32 matrices were freed when float16 storage was chosen")
            head_matrix = self._half_head
        elif head is None and half_storage:
            halves = [_exact_half(w) for layer in layers for w in layer.weights()]
            head_half = _exact_half(self.ar_predict_layer.weight)
            if head_half is not None and all(h is not None for h in halves):
                for n, layer in enumerate(layers):
                    layer.half = tuple(halves[4 * n : 4 * n + 4])
                self._half_head = head_matrix = head_half
                self._free_float_matrices(lambda x: F.linear(x, head_half.float()), torch.float32)
        self._native = NativeDecoder(
            lib, [layer.native_tensors() for layer in layers], self.config.heads, layers[0].norm1.eps
        )
        self._head = NativeLinear(lib, head_matrix, None)
        return True

    @property
    def native_weights(self) -> str | None:
        """How the native decode step stores the matrices (``fp32``, ``fp16``, ``int8``), or None without it."""
        if self._native is None:
            return None
        return {WEIGHT_F32: "fp32", WEIGHT_F16: "fp16", WEIGHT_Q8: "int8"}[self._native.kind]

    def _predict(self, last: torch.Tensor) -> torch.Tensor:
        """last: [B, D] -> logits [B, vocab] (float32)."""
        if self._head is not None and last.shape[0] <= MAX_BATCH:
            return self._head(last)
        return self.ar_predict_layer(last).float()

    def store_weights_transposed(self) -> None:
        """Keep every big matrix in memory as ``[in, out]`` (the parameters stay ``[out, in]`` views).

        Decoding one token is a matrix-vector product per matrix, bound by streaming the weights
        from memory; on a CPU ``x @ W^T`` with ``W^T`` contiguous streams them faster than the
        row-major ``W`` (about 20 % here). Same products, same shapes; no extra memory."""
        for p in [w for layer in self.h.layers for w in layer.weights()] + [self.ar_predict_layer.weight]:
            if p.numel() and p.is_contiguous():
                p.data = p.data.t().contiguous().t()

    def embed_text(self, phones: torch.Tensor, bert: torch.Tensor) -> torch.Tensor:
        """phones: [T] int64; bert: [1024, T] -> [T, D]."""
        x = self.ar_text_embedding(phones.unsqueeze(0))
        x = x + self.bert_proj(bert.transpose(0, 1).unsqueeze(0).to(x.dtype))
        return self.ar_text_position(x).squeeze(0)

    @torch.no_grad()
    def generate(
        self,
        phones: Sequence[torch.Tensor],
        bert: Sequence[torch.Tensor],
        prompt: torch.Tensor,
        params: SamplingParams,
        generators: Sequence[torch.Generator | None],
        max_new_tokens: int,
        min_new_tokens: int = 0,
        use_cache: bool = True,
    ) -> Iterator[DecodeStep]:
        """Decode each row of a batch until EOS or ``max_new_tokens``; yield every step.

        phones[i]: [T_i] phone ids of row i (reference text + sentence i); bert[i]: [1024, T_i];
        prompt: [P] the reference's semantic tokens, shared by all rows.

        Rows are left-padded to the longest; each row's text positions start at 0, as in the
        original's batched decoder. EOS is not allowed before step 11 (as the original), nor
        before ``min_new_tokens``. ``use_cache=False`` recomputes the whole sequence at every
        step (the reference for the KV-cache test; slow).
        """
        device = self.bert_proj.weight.device
        dtype = self.bert_proj.weight.dtype
        batch = len(phones)
        eos = self.config.eos
        x_lens = [int(p.numel()) for p in phones]
        x_len = max(x_lens)
        p_len = int(prompt.numel())
        text = torch.zeros(batch, x_len, self.config.embedding_dim, dtype=dtype, device=device)
        for i, (ph, be) in enumerate(zip(phones, bert, strict=True)):
            text[i, x_len - x_lens[i] :] = self.embed_text(ph.to(device), be.to(device))
        y = prompt.to(device).long().unsqueeze(0).expand(batch, -1)
        y_emb = self.ar_audio_position(self.ar_audio_embedding(y))
        xy = torch.cat([text, y_emb], dim=1)
        src = x_len + p_len
        max_len = src + max_new_tokens + 1

        # True = may attend. Text sees text; prompt tokens see text and earlier tokens; pads are hidden.
        allowed = torch.zeros(src, src, dtype=torch.bool, device=device)
        allowed[:x_len, :x_len] = True
        allowed[x_len:, :x_len] = True
        allowed[x_len:, x_len:] = torch.ones(p_len, p_len, dtype=torch.bool, device=device).tril()
        pad = torch.zeros(batch, max_len, dtype=torch.bool, device=device)
        for i, n in enumerate(x_lens):
            pad[i, : x_len - n] = True
        mask = allowed.unsqueeze(0) & ~pad[:, None, :src]
        # A pad row attends to itself only, so that it stays finite (a row that sees nothing gives NaN).
        mask |= torch.diag_embed(pad[:, :src])
        mask = mask.unsqueeze(1).expand(-1, self.config.heads, -1, -1)
        hidden = pad if any(n != x_len for n in x_lens) else None

        # The repetition penalty looks at the prompt too, as the original; written in place, never regrown.
        history = torch.empty(batch, p_len + max_new_tokens, dtype=torch.long, device=device)
        history[:, :p_len] = y
        rows = list(range(batch))
        cache = (
            KVCache(self.config.layers, batch, self.config.heads, max_len, self.config.hidden_dim, dtype, device)
            if use_cache
            else None
        )
        full_input = xy
        gens = list(generators)
        # This generation's own binding: the model's decoder is shared by every thread that decodes.
        native = None
        if self._native is not None and cache is not None and batch <= MAX_BATCH:
            native = self._native.bound(cache.k, cache.v)
        positions = self.ar_audio_position

        for idx in range(max_new_tokens):
            if cache is None:
                last = self._recompute_last(full_input, mask, idx)
            elif idx == 0:
                h = xy
                for n, layer in enumerate(self.h.layers):
                    h = layer.prefill(h, mask, cache.k[n], cache.v[n])
                last = h[:, -1]
            elif native is not None:
                last = native.step(xy, src + idx - 1, hidden)
            else:
                last = xy
                for n, layer in enumerate(self.h.layers):
                    last = layer.step(last, src + idx - 1, cache.k[n], cache.v[n], hidden)
            logits = self._predict(last)
            if idx < 11 or idx < min_new_tokens:
                logits = logits[:, :-1]
            seen = p_len + idx
            samples = sample_next(logits, history[:, :seen], params, gens)
            history[:, seen] = samples[:, 0]
            stop_greedy = torch.argmax(logits, dim=-1) == eos
            tokens = samples[:, 0].tolist()
            stop = [t == eos or g for t, g in zip(tokens, stop_greedy.tolist(), strict=True)]
            finished = [rows[i] for i, s in enumerate(stop) if s]
            yield DecodeStep(rows=list(rows), tokens=tokens, finished=finished)
            keep = [i for i, s in enumerate(stop) if not s]
            if not keep:
                return
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=device)
                history = history.index_select(0, index)
                rows = [rows[i] for i in keep]
                gens = [gens[i] for i in keep]
                if cache is not None:
                    cache.keep_rows(index)
                    if native is not None:
                        native.bind(cache.k, cache.v)
                if hidden is not None:
                    hidden = hidden.index_select(0, index)
                mask = mask.index_select(0, index)
                full_input = full_input.index_select(0, index)
            new = self.ar_audio_embedding(history[:, seen])  # [B, D]
            xy = new * 1.0 + positions.at(p_len + idx, new.dtype)
            if cache is None:
                full_input = torch.cat([full_input, xy.unsqueeze(1)], dim=1)

    def _recompute_last(self, full_input: torch.Tensor, prefix_mask: torch.Tensor, idx: int) -> torch.Tensor:
        """Cache-free step: run every layer over the whole sequence so far."""
        b, t, _ = full_input.shape
        src = prefix_mask.shape[-1]
        mask = torch.ones(b, prefix_mask.shape[1], t, t, dtype=torch.bool, device=full_input.device).tril()
        mask[:, :, :src, :src] = prefix_mask
        mask[:, :, src:, :src] = prefix_mask[:, :, -1:, :]
        h = full_input
        for layer in self.h.layers:
            q, k, v = layer._qkv(h).chunk(3, dim=-1)
            q = q.view(b, t, layer.heads, -1).transpose(1, 2)
            k = k.view(b, t, layer.heads, -1).transpose(1, 2)
            v = v.view(b, t, layer.heads, -1).transpose(1, 2)
            attn = F.scaled_dot_product_attention(q, k, v, mask)
            h = layer._finish(h, attn.transpose(1, 2).reshape(b, t, -1))
        return h[:, -1]

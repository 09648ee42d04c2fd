"""Continuous batching: one GPT decode loop shared by the streams of many requests.

:class:`DecodeBatcher` runs the GPT's token-by-token decoding in one thread over a batch of
running sequences (sentences of different requests). A new sequence is prefilled alone and joins
the batch at the next step boundary; a sequence that ends (EOS, or its token limit) leaves at
once; each sequence's tokens go to its own consumer through a queue. :class:`StreamBatcher`
puts a voice's streams on one such loop: each stream turns its tokens into audio in its own
thread (:meth:`Synthesizer.stream`'s low-latency SoVITS stage), and a :class:`VocoderGate` lets
the pieces through one at a time, the stream with the fewest pieces out first, so that a new
request's first piece is not starved by long ones.

**Each sequence draws the tokens it draws alone** (``Synthesizer.stream`` or ``generate`` with a
batch of one), greedy or sampled, bit for bit with the native decode step:

- its prefill is the batch-of-one prefill (same inputs, same mask, same kernels);
- the rows of the shared KV cache write their next key at one position ``pos``; row i holds its
  sequence at ``[start_i, pos)`` and the positions before ``start_i`` are hidden (and zeroed).
  The GPT has no positional term in its attention (positions are added to the inputs), so where
  a row sits in the cache does not change what it computes; a hidden position gets the weight
  ``exp(-inf) = 0`` exactly and adds exact zeros, and the native step's matrix-vector products,
  attention and norms treat each row alone, in a fixed order;
- each row samples with its own parameters, history and generator, through the same
  :func:`~synth.sampling.sample_next` call on a batch of one.

Without the native step (bf16, PyTorch's int8, no compiler) the batch runs through PyTorch's
kernels, whose sums may be ordered differently for a batch: tokens then match to float rounding.

When the set of rows changes, the cache is repacked: the rows that stay are copied into a new
cache holding exactly the running rows, aligned on the longest (the copies cost the used part of
the cache only, about 98 kB per position and row at full size; the new rows' prefill goes straight
into place), so a step never computes a row that has left.
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from synth.gpt import Text2SemanticDecoder
from synth.native import MAX_BATCH, NativeDecoder, library
from synth.sampling import SamplingParams, sample_next

log = logging.getLogger(__name__)

_END = object()  # queued after a sequence's last token


class BatcherClosed(RuntimeError):
    """The batcher was closed while a sequence was waiting or running."""


@dataclass(eq=False)
class _Sequence:
    """One sentence to decode, and its decoding state (owned by the decode thread once admitted)."""

    phones: torch.Tensor  # [T] phone ids (reference text + sentence)
    bert: torch.Tensor  # [1024, T]
    prompt: torch.Tensor  # [P] the reference's semantic tokens
    params: SamplingParams
    generator: torch.Generator | None
    max_new: int
    min_new: int
    owner: object = None  # the stream it belongs to (None: its own)
    out: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    cancelled: bool = False
    src: int = 0  # prefix length (phones + prompt)
    p_len: int = 0
    idx: int = 0  # tokens drawn so far
    start: int = 0  # first cache position of this row
    row: int = -1  # index in the running batch
    history: torch.Tensor | None = None  # [1, P + max_new]: prompt, then the drawn tokens
    next_input: torch.Tensor | None = None  # [1, D]: the last token's input for the next step
    prefix: tuple[torch.Tensor, torch.Tensor] | None = None  # its prefill's keys and values, until it joins
    done: bool = False


class TokenStream:
    """A submitted sequence's tokens as they are drawn (an iterator; :meth:`cancel` leaves early).

    The token of the step that stopped on EOS is dropped (as ``Synthesizer.stream`` does); a
    sequence stopped by its token limit keeps its last token."""

    def __init__(self, batcher: DecodeBatcher, seq: _Sequence, cancel: threading.Event | None = None) -> None:
        self._batcher, self._seq, self._cancel = batcher, seq, cancel

    def __iter__(self) -> Iterator[int]:
        try:
            while True:
                if self._cancel is None:
                    item = self._seq.out.get()
                else:  # a consumer told to stop stops waiting, even in the queue for a row
                    try:
                        item = self._seq.out.get(timeout=0.05)
                    except queue.Empty:
                        if self._cancel.is_set():
                            return
                        continue
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop decoding this sequence (its row leaves the batch at the next step)."""
        self._seq.cancelled = True
        self._batcher._wake()


@dataclass
class BatchStats:
    """What the decode loop did: steps by batch size, sequences admitted and finished."""

    steps_by_rows: Counter = field(default_factory=Counter)
    steps_shared: int = 0  # steps whose rows belong to more than one stream
    admitted: int = 0
    finished: int = 0
    repacks: int = 0

    @property
    def max_rows(self) -> int:
        return max(self.steps_by_rows, default=0)

    def as_dict(self) -> dict:
        steps = sum(self.steps_by_rows.values())
        rows = sum(n * c for n, c in self.steps_by_rows.items())
        return {
            "steps": steps,
            "mean_rows": round(rows / steps, 3) if steps else 0.0,
            "max_rows": self.max_rows,
            "steps_by_rows": {str(n): c for n, c in sorted(self.steps_by_rows.items())},
            "steps_shared": self.steps_shared,
            "admitted": self.admitted,
            "finished": self.finished,
            "repacks": self.repacks,
        }


class DecodeBatcher:
    """One GPT decode loop over the running sequences of many requests (see the module docstring).

    ``max_rows``: the most sequences decoded at once (at most ``synth.native.MAX_BATCH``, where
    the native step stops); more wait, in the order they came, for a row to free up."""

    def __init__(self, gpt: Text2SemanticDecoder, max_rows: int = 8) -> None:
        if not 1 <= max_rows <= MAX_BATCH:
            raise ValueError(f"max_rows must be between 1 and {MAX_BATCH}, got {max_rows}")
        self.gpt, self.max_rows = gpt, max_rows
        cfg = gpt.config
        self._layers, self._heads, self._dim = cfg.layers, cfg.heads, cfg.hidden_dim
        self._dtype = gpt.bert_proj.weight.dtype
        self._device = gpt.bert_proj.weight.device
        # A decoder of its own (binding the shared one would race with generate() in other threads).
        self._native = None
        if gpt.native_weights is not None:
            layers = gpt.h.layers
            self._native = NativeDecoder(
                library(), [layer.native_tensors() for layer in layers], cfg.heads, layers[0].norm1.eps
            )
        self._cond = threading.Condition()
        self._waiting: deque[_Sequence] = deque()
        self._rows: list[_Sequence] = []
        self._k: torch.Tensor | None = None  # [layers, rows, H, max_len, D/H]
        self._v: torch.Tensor | None = None
        self._hidden: torch.Tensor | None = None  # [rows, max_len] bool, True = before the row's start
        self._pos = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self.stats = BatchStats()

    # ------------------------------------------------------------ the public side
    def submit(
        self,
        phones: torch.Tensor,
        bert: torch.Tensor,
        prompt: torch.Tensor,
        params: SamplingParams,
        generator: torch.Generator | None,
        max_new_tokens: int,
        min_new_tokens: int = 0,
        cancel: threading.Event | None = None,
    ) -> TokenStream:
        """Prefill one sequence (the arguments of ``Text2SemanticDecoder.generate`` for one row) in
        the calling thread, so that the running batch keeps stepping meanwhile, then queue it for a
        row; ``cancel``, when set, ends the token stream (and frees the row) even while it waits."""
        args = (phones, bert, prompt, params, generator, max_new_tokens, min_new_tokens)
        return self.submit_group([args], cancel)[0]

    def submit_group(
        self, sequences: list[tuple], cancel: threading.Event | None = None, owner: object = None
    ) -> list[TokenStream]:
        """:meth:`submit` for several sequences (each a tuple of its arguments, in its order): all
        are prefilled, then queued together, so that they join the batch at one step boundary
        (rows permitting). ``owner`` names the stream they belong to (for :attr:`stats`)."""
        seqs = []
        for phones, bert, prompt, params, generator, max_new, min_new in sequences:
            if max_new < 1:
                raise ValueError(f"max_new_tokens must be at least 1, got {max_new}")
            seq = _Sequence(phones, bert, prompt, params, generator, max_new, min_new, owner=owner)
            with torch.no_grad():
                seq.prefix = self._prefill(seq)
            seqs.append(seq)
        with self._cond:
            if self._closed:
                raise BatcherClosed("the decode batcher is closed")
            for seq in seqs:
                self.stats.admitted += 1
                if seq.done:  # its only token came from the prefill
                    seq.prefix = None
                else:
                    self._waiting.append(seq)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="gpt-batch", daemon=True)
                self._thread.start()
            self._cond.notify()
        return [TokenStream(self, seq, cancel) for seq in seqs]

    @property
    def running(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        """Stop the loop; waiting and running sequences end with :class:`BatcherClosed`."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(30)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    # ------------------------------------------------------------ the decode thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._waiting and not self._rows:
                    self._cond.wait()
                if self._closed:
                    break
                leaving = [s for s in self._rows if s.done or s.cancelled]
                room = self.max_rows - len(self._rows) + len(leaving)
                joining = []
                while self._waiting and len(joining) < room:
                    seq = self._waiting.popleft()
                    if not seq.cancelled:
                        joining.append(seq)
            try:
                with torch.no_grad():
                    keep = [s for s in self._rows if not (s.done or s.cancelled)]
                    if leaving or joining:
                        self._repack(keep, joining)
                    if self._rows:
                        self._step()
            except Exception as exc:
                log.exception("the decode batch failed")
                for seq in self._rows + joining:
                    if not seq.done:
                        seq.done = True
                        seq.out.put(exc)
                self._rows, self._k, self._v, self._hidden = [], None, None, None
        failure = BatcherClosed("the decode batcher was closed")
        with self._cond:
            pending = list(self._waiting) + self._rows
            self._waiting.clear()
        for seq in pending:
            if not seq.done:
                seq.out.put(failure)

    def _emit(self, seq: _Sequence, logits: torch.Tensor) -> None:
        """Draw the sequence's next token from its logits [1, vocab] (generate()'s rules, one row)."""
        eos = self.gpt.config.eos
        if seq.idx < 11 or seq.idx < seq.min_new:
            logits = logits[:, :-1]
        seen = seq.p_len + seq.idx
        sample = sample_next(logits, seq.history[:, :seen], seq.params, [seq.generator])
        seq.history[:, seen] = sample[:, 0]
        token = int(sample[0, 0])
        stop = token == eos or int(torch.argmax(logits, dim=-1)[0]) == eos
        if not stop:
            seq.out.put(token)
        seq.idx += 1
        if stop or seq.idx >= seq.max_new:
            seq.done = True
            seq.out.put(_END)
            self.stats.finished += 1
            return
        new = self.gpt.ar_audio_embedding(seq.history[:, seen])  # [1, D]
        seq.next_input = new * 1.0 + self.gpt.ar_audio_position.at(seq.p_len + seq.idx - 1, new.dtype)

    def _prefill(self, seq: _Sequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Run a sequence's prefix through the GPT alone and draw its first token -> the keys and
        values [layers, 1, H, src, D/H] of its prefix."""
        gpt, device = self.gpt, self._device
        text = gpt.embed_text(seq.phones.to(device), seq.bert.to(device, self._dtype)).unsqueeze(0)
        x_len, p_len = text.shape[1], int(seq.prompt.numel())
        y = seq.prompt.to(device).long().unsqueeze(0)
        xy = torch.cat([text, gpt.ar_audio_position(gpt.ar_audio_embedding(y))], dim=1)
        src = x_len + p_len
        # True = may attend: the text sees the text; a prompt token the text and the tokens up to it.
        allowed = torch.ones(src, src, dtype=torch.bool, device=device).tril()
        allowed[:, :x_len] = True
        mask = allowed.unsqueeze(0).unsqueeze(1).expand(-1, self._heads, -1, -1)
        shape = (self._layers, 1, self._heads, src, self._dim // self._heads)
        k = torch.empty(shape, dtype=self._dtype, device=device)
        v = torch.empty_like(k)
        h = xy
        for n, layer in enumerate(gpt.h.layers):
            h = layer.prefill(h, mask, k[n], v[n])
        seq.src, seq.p_len = src, p_len
        seq.history = torch.empty(1, p_len + seq.max_new, dtype=torch.long, device=device)
        seq.history[:, :p_len] = y
        self._emit(seq, gpt._predict(h[:, -1]))
        return k, v

    def _repack(self, keep: list[_Sequence], arrived: list[_Sequence]) -> None:
        """A new cache with exactly the rows ``keep`` (copied) and ``arrived`` (their prefill), aligned
        so that every row writes its next key at the same position."""
        self.stats.repacks += 1
        rows = keep + arrived
        if not rows:
            self._rows, self._k, self._v, self._hidden = [], None, None, None
            return
        spans = [self._pos - s.start for s in keep] + [s.src for s in rows[len(keep) :]]
        pos = max(spans)
        # Each row writes at most max_new - idx more keys, from pos on.
        max_len = pos + max(s.max_new - s.idx for s in rows) + 1
        shape = (self._layers, len(rows), self._heads, max_len, self._dim // self._heads)
        k = torch.empty(shape, dtype=self._dtype, device=self._device)
        v = torch.empty_like(k)
        hidden = torch.zeros(len(rows), max_len, dtype=torch.bool, device=self._device)
        sources = [(self._k, self._v, s.row, s.start, self._pos) for s in keep]
        sources += [(*s.prefix, 0, 0, s.src) for s in arrived]
        for j, (seq, span, (src_k, src_v, row, lo, hi)) in enumerate(zip(rows, spans, sources, strict=True)):
            start = pos - span
            k[:, j, :, start:pos] = src_k[:, row, :, lo:hi]
            v[:, j, :, start:pos] = src_v[:, row, :, lo:hi]
            k[:, j, :, :start] = 0  # hidden, but read (times zero): must be finite
            v[:, j, :, :start] = 0
            hidden[j, :start] = True
            seq.start, seq.row, seq.prefix = start, j, None
        self._rows, self._k, self._v, self._pos = rows, k, v, pos
        self._hidden = hidden if bool(hidden.any()) else None
        if self._native is not None and len(rows) <= MAX_BATCH:
            self._native.bind(k, v)

    def _step(self) -> None:
        """One decoding step of every running row."""
        rows = self._rows
        x = torch.cat([s.next_input for s in rows], dim=0)  # [B, D]
        if self._native is not None:
            last = self._native.step(x, self._pos, self._hidden)
        else:
            last = x
            for n, layer in enumerate(self.gpt.h.layers):
                last = layer.step(last, self._pos, self._k[n], self._v[n], self._hidden)
        self._pos += 1
        logits = self.gpt._predict(last)
        self.stats.steps_by_rows[len(rows)] += 1
        if len({id(s) if s.owner is None else id(s.owner) for s in rows}) > 1:
            self.stats.steps_shared += 1
        for j, seq in enumerate(rows):
            if not seq.cancelled:
                self._emit(seq, logits[j : j + 1])


class VocoderGate:
    """At most ``slots`` SoVITS pieces computed at once; a waiting stream with fewer pieces out goes
    first (then the one that asked first): a new request's first piece passes long streams' next ones."""

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self._cond = threading.Condition()
        self._free = slots
        self._queue: list[tuple[int, int]] = []
        self._tickets = itertools.count()

    @contextmanager
    def turn(self, pieces_out: int) -> Iterator[None]:
        with self._cond:
            me = (pieces_out, next(self._tickets))
            heapq.heappush(self._queue, me)
            while not (self._free and self._queue[0] == me):
                self._cond.wait()
            heapq.heappop(self._queue)
            self._free -= 1
        try:
            yield
        finally:
            with self._cond:
                self._free += 1
                self._cond.notify_all()


class StreamBatcher:
    """A voice's streams on one decode loop (:class:`DecodeBatcher`) and one :class:`VocoderGate`.

    >>> batcher = StreamBatcher(tts, max_rows=8)
    >>> for piece in batcher.stream("Hello there.", "en", "ref.wav", prompt_text="...", seed=0):
    ...     play(piece)

    :meth:`stream` takes :meth:`Synthesizer.stream`'s arguments (low-latency mode only) and
    yields what it yields for them, the GPT's tokens being the same; call it from as many threads
    as there are concurrent requests. ``ahead``: sentences of a stream decoded ahead of the one
    being vocoded (``tts`` is a :class:`~synth.engine.Synthesizer`)."""

    def __init__(self, tts, max_rows: int = 8, vocoder_slots: int = 1, ahead: int = 2) -> None:  # noqa: ANN001
        self.tts, self.ahead = tts, ahead
        self.decoder = DecodeBatcher(tts.gpt, max_rows)
        self.gate = VocoderGate(vocoder_slots)

    @property
    def stats(self) -> BatchStats:
        return self.decoder.stats

    def close(self) -> None:
        self.decoder.close()

    def stream(
        self,
        text: str,
        language: str,
        reference,  # noqa: ANN001
        *,
        timings: dict | None = None,
        cancel: threading.Event | None = None,
        **options,  # noqa: ANN003 - Synthesizer.stream's keyword arguments
    ) -> Iterator[np.ndarray]:
        """``Synthesizer.stream(text, language, reference, **options)`` in low-latency mode (its
        defaults; ``exact``, ``prior_noise`` and ``on_token`` are not taken). ``timings`` (a dict),
        when given, receives the seconds spent preparing the request (``prepare_s``: front end and
        reference); ``cancel`` (an Event), once set, ends the stream even while it waits for a row."""
        from synth.engine import Synthesizer, _check_knobs, _SentenceStream

        defaults = {
            name: p.default
            for name, p in inspect.signature(Synthesizer.stream).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("exact", "prior_noise", "on_token")
        }
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise TypeError(f"StreamBatcher.stream() takes no argument {', '.join(unknown)}")
        o = {**defaults, **options}
        tts = self.tts
        params = SamplingParams(
            top_k=o["top_k"], top_p=o["top_p"], temperature=o["temperature"], repetition_penalty=o["repetition_penalty"]
        )
        speed, noise_scale, chunk_tokens = o["speed"], o["noise_scale"], o["chunk_tokens"]
        max_semantic_tokens, min_semantic_tokens = o["max_semantic_tokens"], o["min_semantic_tokens"]
        _check_knobs(speed, max_semantic_tokens, noise_scale)
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be at least 1, got {chunk_tokens}")
        started = time.perf_counter()
        job = tts._job(
            text, language, reference, o["prompt_text"], o["prompt_language"], o["seed"], "frames", o["pause_s"]
        )
        if timings is not None:
            timings["prepare_s"] = time.perf_counter() - started
        pieces = [0]

        @contextmanager
        def gate() -> Iterator[None]:
            with self.gate.turn(pieces[0]):
                yield
            pieces[0] += 1

        owner = object()  # this stream, for the batcher's statistics

        def submit(indices: list[int]) -> list[TokenStream]:
            args = [
                (
                    job.plans[i].gpt_ids,
                    job.plans[i].gpt_bert,
                    job.prompt,
                    params,
                    job.generators[i],
                    max_semantic_tokens,
                    min_semantic_tokens,
                )
                for i in indices
            ]
            return self.decoder.submit_group(args, cancel, owner)

        # The first sentence alone (its first audio matters most), then up to `ahead` sentences
        # prefilled and decoding ahead of the one being vocoded, each group joining the batch at once.
        pending: dict[int, tuple[Future, int]] = {}
        launched = 1

        def launch(upto: int) -> None:
            nonlocal launched
            group = list(range(launched, min(len(job.plans), upto + 1)))
            if group:
                future = _in_thread(submit, group)
                pending.update({i: (future, k) for k, i in enumerate(group)})
                launched = group[-1] + 1

        tokens = submit([0])[0]
        try:
            for i, plan in enumerate(job.plans):
                if i:
                    future, k = pending.pop(i)
                    tokens = future.result()[k]
                launch(i + self.ahead)
                sentence = _SentenceStream(
                    tts,
                    plan,
                    job.style,
                    job.noises[i],
                    speed,
                    noise_scale,
                    chunk_tokens,
                    False,
                    o["first_chunk_tokens"],
                )
                sentence.gate = gate
                for token in tokens:
                    yield from sentence.add(token)
                yield from sentence.finish()
                yield job.pause.copy()
        finally:
            tokens.cancel()
            for future, k in pending.values():  # left early: the sentences ahead are not wanted
                future.add_done_callback(lambda f, k=k: f.exception() is None and f.result()[k].cancel())


def _in_thread(fn, *args) -> Future:  # noqa: ANN001
    """``fn(*args)`` in a thread of its own -> its Future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the result
            future.set_exception(exc)

    threading.Thread(target=run, name="gpt-prefill", daemon=True).start()
    return future


__all__ = ["BatchStats", "BatcherClosed", "DecodeBatcher", "StreamBatcher", "TokenStream", "VocoderGate"]

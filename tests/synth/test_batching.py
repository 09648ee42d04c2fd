"""Continuous batching (synth.batching): sequences of different requests share the GPT's decode
steps, joining and leaving at step boundaries, and each draws exactly what it draws alone."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from synth.batching import DecodeBatcher, StreamBatcher, VocoderGate
from synth.sampling import SamplingParams

PROMPT_TEXT = "The quick brown fox jumps over the lazy dog."
TEXTS = [
    "Hello there.",
    "A somewhat longer sentence, to have another number of phones.",
    "Short one!",
    "Numbers and words go here, many of them.",
]


def _solo(tts, plan, prompt, params, seed, max_new) -> list[int]:  # noqa: ANN001
    tokens = []
    generator = torch.Generator().manual_seed(seed)
    for step in tts.gpt.generate([plan.gpt_ids], [plan.gpt_bert], prompt, params, [generator], max_new):
        if not step.finished:
            tokens.append(step.tokens[0])
    return tokens


def test_batched_sequences_draw_the_tokens_they_draw_alone(tts, reference_wav):
    """Four sentences of four lengths, greedy and sampled with their own top_k, temperature and seed,
    in a batch of at most three rows: three join the first one mid-decode (at other cache
    positions), one waits for a free row, each leaves at its own end, and every token equals the
    token of the same sentence decoded alone."""
    assert tts.gpt.native_weights is not None, "the tiny voice decodes through the native step here"
    prompt = tts.prepare_reference(str(reference_wav)).prompt_tokens
    cases = []
    for i, (text, max_new) in enumerate(zip(TEXTS, (30, 12, 16, 20), strict=True)):
        plan = tts.plan(text, "en", PROMPT_TEXT, "en")[0]
        params = SamplingParams(top_k=1) if i % 2 == 0 else SamplingParams(top_k=8 + i, temperature=0.8 + 0.1 * i)
        cases.append((plan, params, 100 + i, max_new))
    alone = [_solo(tts, plan, prompt, params, seed, max_new) for plan, params, seed, max_new in cases]
    batcher = DecodeBatcher(tts.gpt, max_rows=3)
    together: list[list[int]] = [[] for _ in cases]
    first_running = threading.Event()

    def run(i: int) -> None:
        plan, params, seed, max_new = cases[i]
        generator = torch.Generator().manual_seed(seed)
        for token in batcher.submit(plan.gpt_ids, plan.gpt_bert, prompt, params, generator, max_new):
            together[i].append(token)
            if len(together[i]) == 3:
                first_running.set()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(cases))]
    threads[0].start()
    assert first_running.wait(60)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(120)
    batcher.close()
    stats = batcher.stats
    assert [len(t) for t in alone] == [30, 12, 16, 20]  # random weights: no early EOS, every limit reached
    assert together == alone
    assert stats.max_rows == 3, stats.as_dict()  # the rows did share steps, never more than max_rows
    assert stats.admitted == stats.finished == 4


def test_batched_streams_equal_streams_alone_and_a_cancelled_stream_frees_its_row(tts, reference_wav):
    """Two requests streamed at once through one StreamBatcher give the very pieces
    Synthesizer.stream gives each alone, a small first piece included (first_chunk_tokens);
    a stream closed after its first piece leaves the batch and the loop goes idle."""
    kw = {"prompt_text": PROMPT_TEXT, "prompt_language": "en", "max_semantic_tokens": 28, "chunk_tokens": 4}
    kw["first_chunk_tokens"] = 1  # the first piece after 24 + 1 tokens, the next ones at the end
    texts = ["Hello there.", "Another line!"]
    alone = [list(tts.stream(t, "en", str(reference_wav), seed=i, **kw)) for i, t in enumerate(texts)]
    batcher = StreamBatcher(tts, max_rows=4)
    together: list[list[np.ndarray]] = [[] for _ in texts]

    def run(i: int) -> None:
        together[i] = list(batcher.stream(texts[i], "en", str(reference_wav), seed=i, **kw))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [len(pieces) for pieces in alone] == [3, 3]  # an early piece, the rest, the pause
    for got, want in zip(together, alone, strict=True):
        assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    stream = batcher.stream("A line that nobody waits for.", "en", str(reference_wav), **kw)
    next(stream)
    stream.close()
    deadline = time.monotonic() + 10
    while batcher.decoder.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher.decoder.running == 0 and batcher.stats.admitted == 3
    batcher.close()


def test_vocoder_gate_lets_the_stream_with_fewest_pieces_out_first():
    gate = VocoderGate(1)
    order = []
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with gate.turn(5):
            holding.set()
            release.wait(10)

    def waiter(pieces: int) -> None:
        with gate.turn(pieces):
            order.append(pieces)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    holding.wait(10)
    for pieces in (7, 3, 0):
        threads.append(threading.Thread(target=waiter, args=(pieces,)))
        threads[-1].start()
        time.sleep(0.05)
    release.set()
    for t in threads:
        t.join(10)
    assert order == [0, 3, 7]
    with pytest.raises(ValueError, match="slots"):
        VocoderGate(0)


def test_threads_decoding_at_once_through_one_model_each_draw_their_own_tokens(tts, reference_wav):
    """Without the batcher, two threads calling generate on one model at the same time (a library
    user's thread pool): each generation steps its own binding of the shared native decoder, so
    neither steps with the other's KV cache (they did before: the model held one binding)."""
    assert tts.gpt.native_weights is not None, "the tiny voice decodes through the native step here"
    prompt = tts.prepare_reference(str(reference_wav)).prompt_tokens
    plans = [tts.plan(text, "en", PROMPT_TEXT, "en")[0] for text in TEXTS[:2]]
    params = SamplingParams(top_k=1)
    alone = [_solo(tts, plan, prompt, params, 7, 40) for plan in plans]
    assert alone[0] != alone[1]
    got: list[list[list[int]]] = [[], []]
    start = threading.Barrier(2)

    def run(i: int) -> None:
        start.wait()
        for _ in range(6):
            got[i].append(_solo(tts, plans[i], prompt, params, 7, 40))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert got == [[alone[0]] * 6, [alone[1]] * 6]

"""Synthesis benchmark: a full-size GPT-SoVITS v2 voice (random weights), 250 semantic tokens = 10 s of audio.

Writes benchmarks/results/synth.json with one object per device (``cpu``, and ``cuda`` when
present): ``gpt_tokens_per_s``, ``sovits_seconds``, ``rtf`` (compute seconds / audio seconds),
``first_chunk_s`` (streaming) and ``peak_rss_mb``; plus the same figures for the faster
``bf16`` and ``int8`` modes under ``<device>_bf16`` and ``<device>_int8``, with how far its output moves from fp32,
and on the CPU the fp32 mode without the native decode step under ``cpu_fp32_pytorch``. Each
figure is the best of ``RUNS`` runs; the 1-minute load average before and after each mode's
run is recorded beside it (the machine is shared).

Random weights never emit EOS (the random writer zeroes that row), so every run is exactly
250 tokens. Each device runs in its own process so that peak memory is that run's alone.

The text front ends (``frontend.<language>``, for zh, en, ja, ko, yue, auto and auto_yue), each
in ``RUNS`` fresh processes, best of them: ``cold_start_s``, from ``synth.text.frontend``
imported (torch included, ``import_s``) to the phones of a first sentence with digits and an
English word (``FRONTEND_FIRST``): ``load_language`` (``load_s``) and that sentence
(``first_sentence_s``: what loads only on first use, such as the English dictionary and jieba's);
then ``sentences_per_s``, one pass over sentences the process has not seen (``split_sentences``,
then ``phones_and_bert`` for each piece, without BERT features: those are a model's, timed with
the engine; one torch thread). ja, ko, yue, auto and auto_yue read the 200-odd sentences of
tests/synth/data/frontend_*.jsonl (numbers, dates, punctuation, English inside); zh and en the
32-sentence lists below.

Run: ``make bench-synth`` (or ``python -m benchmarks.synth``; ``--parts frontend`` for the front
ends alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKENS = 250
TEXT = "Hello there, how are you today? I am fine, thank you, and you?"
PROMPT = "The quick brown fox jumps over the lazy dog."
COMMAND = "make bench-synth"


FRONTEND_LANGUAGES = ("zh", "en", "ja", "ko", "yue", "auto", "auto_yue")
_FRONTEND_DATA = Path(__file__).resolve().parent.parent / "tests" / "synth" / "data"
_FRONTEND_LISTS = {"ja": "ja", "ko": "ko", "yue": "yue", "auto": "mixed", "auto_yue": "mixed"}
ZH_SENTENCES = (
    "你好，欢迎使用语音合成。",
    "今天是2024年3月15日，星期五，气温25.5℃。",
    "这本书卖39.99元，比上个月便宜了15%。",
    "我们下午三点在人民广场见面吧！",
    "他用iPhone给我发了一条消息。",
    "长江是中国最长的河流，全长约6300公里。",
    "请拨打电话13812345678联系我们。",
    "一年有十二个月，每个月大约三十天。",
    "小明说：“明天不一定会下雨。”",
    "这个项目的预算是1,200,000元。",
    "我喜欢喝咖啡，也喜欢喝茶。",
    "会议定在早上8:30开始，请准时到达。",
    "她在北京大学读研究生，专业是计算机科学。",
    "第3章讲的是GPT模型的训练方法。",
    "春眠不觉晓，处处闻啼鸟。",
    "你吃饭了吗？我刚吃完。",
    "火车将于18点45分从上海虹桥站出发。",
    "这家店的招牌菜是红烧肉和糖醋排骨。",
    "他跑完全程马拉松只用了3小时12分钟。",
    "请把窗户打开，屋里太闷了。",
    "我们公司去年的营业额增长了百分之二十。",
    "孩子们在公园里放风筝、踢足球。",
    "这台电脑的内存是16GB，硬盘是512GB。",
    "明天早上七点，我们一起去爬山好不好？",
    "图书馆周一到周五开放，周末休息。",
    "她弹钢琴已经弹了整整十年。",
    "今年的春节是2月10日。",
    "我觉得这个办法行得通。",
    "快递员说包裹下午就能送到。",
    "为了健康，他每天坚持跑步五公里。",
    "这道数学题的答案是-3.5。",
    "我们用Python写了一个小程序。",
)
EN_SENTENCES = (
    "Hello there, how are you today?",
    "The meeting starts at 9:30 on March 15th, 2024.",
    "This book costs $39.99, about 15% less than last month.",
    "Dr. Smith lives at 221B Baker Street in London.",
    "Please call me back at 555-0123 before noon.",
    "The quick brown fox jumps over the lazy dog.",
    "We shipped 1,250 units in the second quarter.",
    "She read the whole novel in one afternoon.",
    "It's 72 degrees outside, so let's go for a walk!",
    "Our GPU processes 125.8 tokens per second.",
    "Why does the voice market need an oracle?",
    "The 3rd edition was published in 1999.",
    "I can't believe it's already December.",
    "Turn left at the second light, then go straight for two miles.",
    "Mr. and Mrs. Brown bought 3 apples and 12 eggs.",
    "Thank you very much for listening.",
    "The train leaves platform 4 at a quarter past six.",
    "Could you send me the report by Friday afternoon?",
    "Our team won the championship for the third year in a row.",
    "The temperature dropped to minus 5 degrees last night.",
    "He paid 20 pounds for a ticket to the concert.",
    "Remember to water the plants while I'm away.",
    "The library opens at 8 a.m. and closes at 10 p.m.",
    "A journey of a thousand miles begins with a single step.",
    "The company hired 35 new engineers this spring.",
    "My grandmother baked an apple pie for dessert.",
    "Please restart your computer to finish the update.",
    "The museum is closed on Mondays and public holidays.",
    "They walked along the beach until the sun went down.",
    "Version 2.1 fixes seven bugs and adds two features.",
    "Is it faster to take the bus or the subway?",
    "The recipe calls for two cups of flour and one egg.",
)


# The first sentence of each cold start: the language's own words, digits and an English word, so that
# it loads every dictionary the language's sentences use (the English one loads on the first English word).
FRONTEND_FIRST = {
    "zh": "我用iPhone买了3本书。",
    "en": "I bought 3 books on my iPhone.",
    "ja": "私はiPhoneで本を3冊買いました。",
    "ko": "저는 iPhone으로 책 3권을 샀어요.",
    "yue": "我用iPhone買咗3本書。",
    "auto": "我今天用iPhone买了3本书，とても楽しかった。",
    "auto_yue": "我今日用iPhone買咗3本書，とても楽しかった。",
}


def frontend_sentences(language: str) -> list[str]:
    """The texts the front-end benchmark phonemises for ``language``."""
    if language == "zh":
        return list(ZH_SENTENCES)
    if language == "en":
        return list(EN_SENTENCES)
    lines = (_FRONTEND_DATA / f"frontend_{_FRONTEND_LISTS[language]}.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in lines.splitlines() if line.strip()]
    return [row["text"] for row in rows if row["language"] == language]


def measure_frontend(language: str) -> dict:
    """Runs inside a fresh process: the cold start of ``language``'s front end, then its warm throughput."""
    import logging

    logging.disable(logging.WARNING)  # characters dropped with a warning are part of the lists
    t0 = time.perf_counter()
    import torch

    from synth.text import frontend

    t1 = time.perf_counter()
    # The front end is single-threaded Python; its only torch work is zero-filled feature tensors, and
    # two intra-op threads filling them slow it 10-80x whenever the shared 2-core machine is busy.
    torch.set_num_threads(1)
    frontend.load_language(language)
    t2 = time.perf_counter()
    for piece in frontend.split_sentences(FRONTEND_FIRST[language], language):
        frontend.phones_and_bert(piece, language, None)
    t3 = time.perf_counter()
    texts = frontend_sentences(language)
    count, started = 0, time.perf_counter()
    for text in texts:
        for piece in frontend.split_sentences(text, language):
            frontend.phones_and_bert(piece, language, None)
            count += 1
    return {
        "cold_start_s": t3 - t1,
        "load_s": t2 - t1,
        "first_sentence_s": t3 - t2,
        "import_s": t1 - t0,
        "sentences_per_s": count / (time.perf_counter() - started),
        "sentences": count,
        "texts": len(texts),
    }


def _frontend_figures(language: str) -> dict:
    """Best of ``RUNS`` fresh processes (the least disturbed): each a cold start and one pass over
    sentences it has not seen (a second pass over the same list runs faster as allocations settle)."""
    load_before = _load()
    runs = [
        _in_child(f"measure_frontend({language!r})", f"the {language} front end", timeout=1800) for _ in range(RUNS)
    ]
    best = {key: min(run[key] for run in runs) for key in ("cold_start_s", "load_s", "first_sentence_s", "import_s")}
    return {
        **best,
        "sentences_per_s": max(run["sentences_per_s"] for run in runs),
        "cold_start_s_runs": [round(run["cold_start_s"], 3) for run in runs],
        "sentences_per_s_runs": [round(run["sentences_per_s"], 1) for run in runs],
        "sentences": runs[0]["sentences"],
        "texts": runs[0]["texts"],
        "load_1min_before": load_before,
        "load_1min_after": _load(),
    }


def _model_dir() -> Path:
    return Path(os.environ.get("SYNTH_BENCH_DIR", Path(tempfile.gettempdir()) / "voicemarket-synth-full"))


RUNS = int(
    os.environ.get("SYNTH_BENCH_RUNS", "3")
)  # best of RUNS: the machine is shared, so the least disturbed run is the closest to its speed


def _load() -> float:
    """The machine's 1-minute load average (other programs running beside the benchmark)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except OSError:
        return float("nan")


def measure(device: str, precision: str) -> dict:
    """Runs inside a fresh process: load, warm up, time the stages, report peak memory."""
    import numpy as np
    import torch

    from benchmarks.common import peak_rss_mb
    from synth.random_model import write_random_model
    from synth.sampling import SamplingParams
    from synth.testing import make_reference_wav

    load_before = _load()
    files = write_random_model(_model_dir(), "full")
    ref = _model_dir() / "ref.wav"
    if not ref.is_file():
        make_reference_wav(ref, seconds=5.0)
    tts = files.load(device=device, precision=precision)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    prepared = tts.prepare_reference(ref)
    plans = tts.plan(TEXT, "en", PROMPT, "en")[:1]
    params = SamplingParams(top_k=15)
    # Warm-up (first-call allocations), short.
    tts.semantic_tokens(plans, prepared.prompt_tokens, params, tts._generators(0, 1), 20)

    gpt_runs, sovits_runs = [], []
    for _ in range(RUNS):
        gens = tts._generators(0, 1)
        sync()
        t0 = time.perf_counter()
        tokens = tts.semantic_tokens(plans, prepared.prompt_tokens, params, gens, TOKENS)
        sync()
        t1 = time.perf_counter()
        wave = tts.vocode(tokens, plans, prepared.style, tts._prior_noise("frames", 0, gens))[0]
        sync()
        t2 = time.perf_counter()
        assert tokens[0].numel() == TOKENS, tokens[0].numel()
        gpt_runs.append(t1 - t0)
        sovits_runs.append(t2 - t1)
    audio_s = wave.shape[0] / tts.sample_rate

    first_chunks = []
    for _ in range(2):
        sync()
        t0 = time.perf_counter()
        stream = tts.stream(
            TEXT, "en", ref, prompt_text=PROMPT, prompt_language="en", max_semantic_tokens=TOKENS, chunk_tokens=25
        )
        next(stream)
        sync()
        first_chunks.append(time.perf_counter() - t0)
        stream.close()

    figures = {
        "gpt_tokens_per_s": TOKENS / min(gpt_runs),
        "gpt_tokens_per_s_runs": [round(TOKENS / t, 1) for t in gpt_runs],
        "sovits_seconds": min(sovits_runs),
        "sovits_seconds_runs": [round(t, 2) for t in sovits_runs],
        "rtf": (min(gpt_runs) + min(sovits_runs)) / audio_s,
        "first_chunk_s": min(first_chunks),
        "audio_seconds": audio_s,
        "tokens": TOKENS,
        "precision": precision,
        "native_kernels": tts.gpt._native is not None,
        "native_isa": _native_isa() if tts.gpt._native is not None else None,
        # the generator's convolutions that run through FFTs (synth/native_conv.c; CPU, AVX2 or AVX-512)
        "generator_fft_convs": sum(
            conv.through_fft() for block in tts.sovits.dec.resblocks for conv in (*block.convs1, *block.convs2)
        ),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "peak_rss_mb": peak_rss_mb(),
    }
    if device == "cuda":
        figures["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        figures["gpu"] = torch.cuda.get_device_name()
    # Token sequences, for the parent to compare modes (not written to synth.json).
    greedy = tts.semantic_tokens(plans, prepared.prompt_tokens, SamplingParams(top_k=1), tts._generators(0, 1), TOKENS)[
        0
    ]
    figures["_greedy_tokens"] = greedy.tolist()
    figures["_sampled_tokens"] = tokens[0].tolist()
    if precision != "fp32":
        # How far the fast mode moves from the default: same seed, greedy, against an fp32 copy.
        ref_tts = files.load(device=device, precision="fp32")
        greedy = SamplingParams(top_k=1)
        a = tts.semantic_tokens(plans, prepared.prompt_tokens, greedy, tts._generators(0, 1), 100)[0]
        b = ref_tts.semantic_tokens(plans, prepared.prompt_tokens, greedy, ref_tts._generators(0, 1), 100)[0]
        figures["greedy_tokens_equal_to_fp32"] = float((a == b).float().mean())
        first_diff = int(np.argmax((a != b).numpy())) if bool((a != b).any()) else 100
        figures["greedy_tokens_identical_prefix"] = first_diff
    figures["load_1min_before"] = load_before
    figures["load_1min_after"] = _load()
    return figures


def _native_isa() -> str:
    """The instruction set the native decode step runs with (synth/native.c picks it by the CPU)."""
    from synth import native

    return native.isa(native.library())


def _child(device: str, precision: str, native: bool = True) -> dict:
    env = {**os.environ, **({} if native else {"SYNTH_NATIVE": "0"})}
    return _in_child(f"measure({device!r}, {precision!r})", f"{device}/{precision}", timeout=3600, env=env)


def _in_child(call: str, what: str, timeout: float, env: dict[str, str] | None = None) -> dict:
    """Run ``benchmarks.synth.<call>`` in a fresh Python process; its figures."""
    code = f"import json; from benchmarks import synth; print('RESULT ' + json.dumps(synth.{call}))"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=timeout, env=env
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child for {what} failed:\n{out.stderr[-3000:]}")
    line = next(text for text in out.stdout.splitlines() if text.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


# The instruction-set flags that decide which kernels run (synth/native.c, oneDNN's convolutions, bf16/int8).
ISA_FLAGS = ("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16")


def _cpu_info() -> tuple[str, list[str]]:
    """The CPU's model name and which of :data:`ISA_FLAGS` (and any ``amx_*``) it has, from /proc/cpuinfo."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in ISA_FLAGS if f in flags] + sorted(f for f in flags if f.startswith("amx"))


def _machine() -> dict:
    """Which machine a device's figures come from (cuda figures may be measured on another machine)."""
    model, flags = _cpu_info()
    return {
        "cpu_model": model,
        "cpu_flags": flags,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> None:
    import argparse

    from benchmarks.common import RESULTS_DIR, print_table, write_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--devices", default="auto", help="comma-separated: cpu, cuda (default: cpu, and cuda when present)"
    )
    parser.add_argument(
        "--modes",
        default="fp32,bf16,int8",
        help="comma-separated precisions to measure (fp32 also measures the PyTorch-only path on a CPU)",
    )
    parser.add_argument(
        "--merge",
        metavar="SYNTH_JSON",
        help="measure nothing: copy the device objects of another machine's synth.json "
        "(e.g. cuda measured on a GPU machine with --devices cuda) into this one's",
    )
    parser.add_argument(
        "--parts",
        default="engine,frontend",
        help="comma-separated: engine (the voice's GPT and SoVITS), frontend (text front ends, on the CPU)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    previous_path = RESULTS_DIR / "synth.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    previous.pop("_meta", None)
    if args.merge:
        other = json.loads(Path(args.merge).read_text())
        other.pop("_meta", None)
        path = write_results("synth", {**previous, **other}, COMMAND)
        print(f"merged {sorted(other)} into {path}")
        return

    figures: dict = {}
    if "engine" in parts:
        figures.update(_engine_figures(args.devices, args.modes))
    machine = _machine()
    for values in figures.values():
        for key in [k for k in values if k.startswith("_")]:
            del values[key]
        values["machine"] = machine
    for name, values in figures.items():
        if name.startswith("cpu"):  # the CPU the figures were measured on, beside them (cpu.model, cpu.flags)
            values["model"], values["flags"] = machine["cpu_model"], machine["cpu_flags"]
    targets = {
        "gpt_tokens_per_s": "original: ~50 (issue), measured here: see BENCHMARKS.md",
        "rtf": "original: 0.66",
        "peak_rss_mb": "original: ~2,100",
    }
    for name, values in figures.items():
        print_table(f"synth {name} ({TOKENS} tokens = {values['audio_seconds']:.1f} s audio)", values, targets)
    if "frontend" in parts:
        frontend = {language: {**_frontend_figures(language), "machine": machine} for language in FRONTEND_LANGUAGES}
        for language, values in frontend.items():
            print_table(f"synth front end {language} ({values['sentences']} sentences)", values)
        figures["frontend"] = frontend
    # Parts and devices not measured in this run keep their earlier figures (each object names its machine).
    kept = {k: v for k, v in previous.items() if k not in figures}
    path = write_results("synth", {**kept, **figures}, COMMAND)
    print(f"\nwrote {path}" + (f" (kept earlier {sorted(kept)})" if kept else ""))


def _engine_figures(devices_arg: str, modes_arg: str) -> dict:
    """The voice's figures per device and mode, each measured in its own process."""
    import torch

    # Write the model in a child process, so that writing it does not count in anyone's peak memory.
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from synth.random_model import write_random_model; write_random_model({str(_model_dir())!r}, 'full')",
        ],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if devices_arg == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = devices_arg.split(",")
    figures: dict = {}
    for device in devices:
        modes = modes_arg.split(",")
        if "fp32" in modes:
            figures[device] = _child(device, "fp32")
        if device == "cpu" and "fp32" in modes:
            # The same fp32 arithmetic without the native decode step (SYNTH_NATIVE=0): its speed, and
            # whether the native step's different order of float additions changes any token.
            plain = _child(device, "fp32", native=False)
            for kind in ("greedy", "sampled"):
                figures[device][f"{kind}_tokens_equal_to_pytorch_path"] = (
                    figures[device][f"_{kind}_tokens"] == plain[f"_{kind}_tokens"]
                )
            figures[f"{device}_fp32_pytorch"] = plain
        for precision in [m for m in modes if m != "fp32"]:
            figures[f"{device}_{precision}"] = _child(device, precision)
    return figures


if __name__ == "__main__":
    main()

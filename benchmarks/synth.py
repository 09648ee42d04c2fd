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
Run: ``make bench-synth`` (or ``python -m benchmarks.synth``).
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


def _child(device: str, precision: str, native: bool = True) -> dict:
    code = (
        "import json,sys; from benchmarks.synth import measure; "
        f"print('RESULT ' + json.dumps(measure({device!r}, {precision!r})))"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, **({} if native else {"SYNTH_NATIVE": "0"})}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=3600, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child for {device}/{precision} failed:\n{out.stderr[-3000:]}")
    line = next(text for text in out.stdout.splitlines() if text.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


def _machine() -> dict:
    """Which machine a device's figures come from (cuda figures may be measured on another machine)."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu_model": model, "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv: list[str] | None = None) -> None:
    import argparse

    import torch

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
    args = parser.parse_args(argv)
    previous_path = RESULTS_DIR / "synth.json"
    previous = json.loads(previous_path.read_text()) if previous_path.is_file() else {}
    previous.pop("_meta", None)
    if args.merge:
        other = json.loads(Path(args.merge).read_text())
        other.pop("_meta", None)
        path = write_results("synth", {**previous, **other}, COMMAND)
        print(f"merged {sorted(other)} into {path}")
        return

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
    if args.devices == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = args.devices.split(",")
    figures: dict = {}
    for device in devices:
        modes = args.modes.split(",")
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
    machine = _machine()
    for values in figures.values():
        for key in [k for k in values if k.startswith("_")]:
            del values[key]
        values["machine"] = machine
    targets = {
        "gpt_tokens_per_s": "original: ~50 (issue), measured here: see BENCHMARKS.md",
        "rtf": "original: 0.66",
        "peak_rss_mb": "original: ~2,100",
    }
    for name, values in figures.items():
        print_table(f"synth {name} ({TOKENS} tokens = {values['audio_seconds']:.1f} s audio)", values, targets)
    # Devices not measured in this run keep their earlier figures (each object names its machine).
    kept = {k: v for k, v in previous.items() if k not in figures}
    path = write_results("synth", {**kept, **figures}, COMMAND)
    print(f"\nwrote {path}" + (f" (kept earlier {sorted(kept)})" if kept else ""))


if __name__ == "__main__":
    main()

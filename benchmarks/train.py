"""Training benchmark: ``python -m synth train``'s stages on 60 s of espeak-ng speech (15 clips of about 4 s).

For each model size, in a process of its own (so that its peak memory is its own):

* ``prepare_s``: checks, slicing, loudness, resampling of the 15 recordings;
* ``features_s``: phones, HuBERT features and semantic tokens of the 15 clips (models loaded included);
* ``s2_step_s`` / ``s1_batch_s``: the median of ``STEPS`` SoVITS steps (discriminator + generator
  update) and of ``STEPS`` GPT batches (forward + backward, an optimiser step every fourth), after
  one warm-up, at the default batch size the trainer would pick here;
* ``s2_epoch_s`` / ``s1_epoch_s``: those times the steps of one epoch of the original's schedule
  for 60 s of speech (the set repeated to 100 items, bucketed batches): an extrapolation from the
  measured steps, not a timed epoch (a full-size SoVITS epoch takes tens of minutes on 2 cores);
* ``peak_rss_mb``: the process's peak resident memory.

Sizes: ``tiny`` (the test architecture) and ``full`` (the published v2 sizes: GPT 24x512, SoVITS
s2.json, the full-width discriminator, hubert-base), with random weights unless
``VOICEMARKET_WEIGHTS`` names GPT-SoVITS's pretrained folder (then ``full`` uses it and says so).
``cpu.s2_epoch_s``, ``cpu.s1_epoch_s`` and ``cpu.peak_rss_mb`` are the full-size figures. One torch
thread by default (``--threads``): on the shared 2-core machine two threads made a SoVITS step tens
of times slower under load. The 1-minute load average before and after each size is recorded.

Run: ``make bench-train`` (``python -m benchmarks.train [--sizes tiny,full] [--steps 3]``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = "make bench-train"
CLIPS = 15
STEPS = 3

# The original's step time, measured by hand side by side with ours (alternating runs in one window; the
# original's code cannot be in this repository): BENCHMARKS.md, "Training", says how. Written into
# train.json by every run as ``vs_original`` and ``cpu.original_*`` so that the figures stay beside ours.
VS_ORIGINAL = {
    "batch": "2 clips of 4.4 s and 4.2 s; s2: noise waveform, random HuBERT features, 52/50 phones;"
    " s1: 52/50 phones, 110/105 tokens",
    "command": "cd /work/main && .venv/bin/python /tmp/trainbench/sbs.py S2_PAIRS S1_PAIRS (not in the repository)",
    "load_1min": [2.21, 5.86],
    "original": "RVC-Boss/GPT-SoVITS 48b1a01, its s2_train.py step sequence and t2s_lightning_module.training_step",
    "s1_pairs": 10,
    "s1_step_s": {
        "original": 4.93,
        "ours": 3.881,
        "pair_ratio_min_max": [0.79, 2.14],
        "ratio_original_over_ours": 1.27,
    },
    "s2_pairs": 13,
    "s2_step_s": {
        "original": 13.607,
        "ours": 14.355,
        "pair_ratio_min_max": [0.66, 1.1],
        "ratio_original_over_ours": 0.948,
    },
    "threads": 1,
    "weights": "random full-size (synth.random_model full, seed 0), the same in both",
    "when": "2026-12-03 10:36-10:48 UTC, three windows",
}


def _base_folder(size: str, root: Path) -> tuple[Path, bool]:
    """A pretrained_models-like folder for ``size``: the real one for ``full`` when configured."""
    real = os.environ.get("VOICEMARKET_WEIGHTS")
    if size == "full" and real:
        return Path(real), True
    from synth.random_model import write_random_model

    files = write_random_model(root / f"random-{size}", size, seed=0)
    folder = root / f"base-{size}"
    if not folder.is_dir():
        folder.mkdir()
        for src, name in ((files.gpt_path, "gpt.ckpt"), (files.sovits_path, "s2G.pth")):
            os.link(src, folder / name)
        (folder / "chinese-hubert-base").symlink_to(files.hubert_dir)
        (folder / "chinese-roberta-wwm-ext-large").symlink_to(files.bert_dir)
    return folder, False


def _median_time(run, steps: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def child(size: str, root: Path, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from benchmarks.common import peak_rss_mb
    from synth.testing import make_training_set
    from synth.train.base import find_base
    from synth.train.features import count_phones, extract
    from synth.train.prepare import prepare
    from synth.train.s1 import S1Settings, S1Trainer, make_items
    from synth.train.s1 import collate as s1_collate
    from synth.train.s1 import steps_per_epoch as s1_steps
    from synth.train.s2 import S2Settings, S2Trainer, bucket_batches, collate, default_batch_size, repeat_small
    from synth.train.s2 import make_items as s2_make_items
    from synth.train.s2 import steps_per_epoch as s2_steps

    folder, real = _base_folder(size, root)
    base = find_base(folder)
    recordings, transcripts = make_training_set(root / "data", count=CLIPS)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    data = prepare(recordings, transcripts, root / f"prepared-{size}", count_phones, min_total_s=30)
    prepare_s = time.perf_counter() - t0

    from synth.checkpoints import load_sovits
    from synth.sovits import SoVITSConfig, SynthesizerTrn

    t0 = time.perf_counter()
    ckpt = load_sovits(base.sovits)
    sovits = SynthesizerTrn(SoVITSConfig.from_checkpoint_config(ckpt.config))
    sovits.load_state_dict({k: v.float() for k, v in ckpt.weights.items() if not k.startswith("enc_q.")})
    features = extract(data, sovits, base.hubert_dir, base.bert_dir, torch.device("cpu"))
    features_s = time.perf_counter() - t0
    sovits = ckpt = None

    batch_size = default_batch_size()
    s2_settings = S2Settings(batch_size=batch_size)
    s2 = S2Trainer(base.sovits, base.discriminator, s2_settings, torch.device("cpu"))
    s2.start_epoch_schedule()
    items = [x for x in repeat_small(s2_make_items(features, s2.cfg)) if 0.6 < x.wav.shape[1] / 32000 < 54]
    batches = bucket_batches([x.wav.shape[1] // 640 for x in items], batch_size, 1)
    cursor = iter(batches * 2)
    s2_step_s = _median_time(lambda: s2.step(collate([items[i] for i in next(cursor)])), steps)
    s2 = None  # free it before the GPT

    s1_settings = S1Settings(batch_size=batch_size)
    s1 = S1Trainer(base.gpt, s1_settings, torch.device("cpu"))
    s1_items = make_items(features, s1_settings)
    count = [0]

    def s1_batch() -> None:
        k = count[0]
        ids = [(k * batch_size + j) % len(s1_items) for j in range(batch_size)]
        s1.batch_loss(s1_collate([s1_items[i] for i in ids], s1.cfg.eos))
        if k > 0 and k % 4 == 0:
            s1.optimizer_step()
        count[0] += 1

    s1_batch_s = _median_time(s1_batch, steps)
    s2_per_epoch, s1_per_epoch = s2_steps(features, s2_settings), s1_steps(features, s1_settings)
    return {
        "weights": "pretrained (VOICEMARKET_WEIGHTS)" if real else "random",
        "audio_s": round(data.seconds, 1),
        "clips": len(data.clips),
        "batch_size": batch_size,
        "threads": threads,
        "prepare_s": round(prepare_s, 2),
        "features_s": round(features_s, 2),
        "s2_step_s": round(s2_step_s, 3),
        "s2_steps_per_epoch": s2_per_epoch,
        "s2_epoch_s": round(s2_step_s * s2_per_epoch, 1),
        "s1_batch_s": round(s1_batch_s, 3),
        "s1_batches_per_epoch": s1_per_epoch,
        "s1_epoch_s": round(s1_batch_s * s1_per_epoch, 1),
        "peak_rss_mb": round(peak_rss_mb(), 0),
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.root), args.steps, args.threads)))
        return
    from benchmarks.common import print_table, write_results

    root = Path(tempfile.mkdtemp(prefix="bench-train-"))
    figures: dict = {}
    try:
        for size in args.sizes.split(","):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.train", "--child", size, "--root", str(root)]
                + ["--steps", str(args.steps), "--threads", str(args.threads)],
                check=True,
                capture_output=True,
                text=True,
            )
            figures[size] = json.loads(out.stdout.strip().splitlines()[-1])
            print_table(f"synth train, {size} ({figures[size]['weights']} weights)", figures[size])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if "full" in figures:
        full = figures["full"]
        figures["cpu"] = {k: full[k] for k in ("s2_epoch_s", "s1_epoch_s", "peak_rss_mb", "s2_step_s", "s1_batch_s")}
        s2, s1 = VS_ORIGINAL["s2_step_s"], VS_ORIGINAL["s1_step_s"]
        figures["cpu"].update(
            original_s2_step_s=s2["original"],
            original_s1_step_s=s1["original"],
            s2_step_ratio=s2["ratio_original_over_ours"],
            s1_step_ratio=s1["ratio_original_over_ours"],
        )
        figures["vs_original"] = VS_ORIGINAL
    path = write_results("train", figures, COMMAND)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

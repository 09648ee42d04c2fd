"""Storage benchmark: pack + encrypt + CID of a 256 MiB voice bundle (`make bench-storage`).

Inputs: a GPT checkpoint of 156 MiB and a SoVITS checkpoint of 100 MiB of random bytes
(incompressible, like real weights) plus two short WAV clips, written to a temporary folder
on the same disk as the output. Each measured step runs in a fresh Python process, so its
peak RSS is that step's alone (the interpreter and imports included), and runs three times;
the figures are the median run. The inputs are in the page cache (just written), as they
are when a creator packs a model they have just trained or copied.

Steps:
- ``seal``: :func:`voicemarket.content.sealed_bundle.seal_bundle` (pack + SHA-256 + AES-256-GCM +
  CIDv1 in one pass, sealed file written and fsynced) — the target: >= 150 MB/s, < 200 MB.
- ``publish``: :func:`publish_bundle` into a LocalStore (the same pass writing into the
  store, plus keyring, preview and metadata).
- ``open``: :func:`open_bundle` (read and CID-verify from the store, decrypt, SHA-256 check,
  extract) — what an oracle worker does on a cold model.
- ``cid``: CIDv0 + CIDv1 of the sealed file in one read (``ape run cid``).

MB here is 10**6 bytes, of the plain bundle.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

from benchmarks.common import print_table, write_results

MIB = 1024 * 1024
GPT_MIB = 156
SOVITS_MIB = 100
RUNS = 3
OPERATOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil account 1 (public)


def _write_random(path: Path, mib: int) -> None:
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MIB))


def _write_wav(path: Path, seconds: float) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(32000)
        out.writeframes(os.urandom(int(32000 * seconds) * 2))


def _model(folder: Path):
    from voicemarket.content.bundle import VoiceModelFiles

    return VoiceModelFiles(
        name="Benchmark voice",
        description="Random weights of a v2 model's size.",
        languages=("en", "zh"),
        gpt_checkpoint=folder / "voice.ckpt",
        sovits_checkpoint=folder / "voice.pth",
        reference_audio=folder / "ref.wav",
        reference_text="The quick brown fox jumps over the lazy dog.",
        reference_language="en",
        preview_audio=folder / "preview.wav",
        creator="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        voice_owner="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        consent={"statement": "benchmark"},
    )


def _measure(step: str, folder: Path, run: int) -> dict:
    """One step in this (fresh) process; returns seconds, peak RSS and sizes."""
    from voicemarket.content.cid import cids_of_file
    from voicemarket.content.sealed_bundle import open_bundle, publish_bundle, seal_bundle
    from voicemarket.content.sealing import public_key_from_private
    from voicemarket.content.store import LocalStore

    model = _model(folder)
    operator = public_key_from_private(OPERATOR_KEY)
    store = LocalStore(folder / "store")
    state_file = folder / "published.json"
    start = time.perf_counter()
    if step == "seal":
        sealed = seal_bundle(model, folder / f"sealed-{run}.bin", [operator])
        size = sealed.size
        (folder / f"sealed-{run}.bin").unlink()
    elif step == "publish":
        result = publish_bundle(model, store, [operator])
        size = result.sealed.size
        state_file.write_text(
            json.dumps(
                {
                    "cid": str(result.bundle_cid),
                    "keyring": str(result.keyring_cid),
                    "digest": result.digest.hex(),
                    "size": size,
                }
            )
        )
    elif step == "open":
        state = json.loads(state_file.read_text())
        open_bundle(store, state["cid"], state["keyring"], OPERATOR_KEY, state["digest"], folder / f"opened-{run}")
        size = state["size"]
    elif step == "cid":
        state = json.loads(state_file.read_text())
        cids_of_file(store.path_of(state["cid"]))
        size = state["size"]
    else:
        raise SystemExit(f"unknown step {step}")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "bytes": size, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _run_step(step: str, folder: Path) -> dict:
    runs = []
    for run in range(RUNS):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.storage", "--measure", step, str(folder), str(run)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.splitlines()[-1]))
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {
        "mb_per_s": median["bytes"] / 1e6 / median["seconds"],
        "seconds": median["seconds"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs_seconds": [round(r["seconds"], 3) for r in runs],
        "bundle_bytes": median["bytes"],
    }


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--measure":
        print(json.dumps(_measure(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as scratch:
        folder = Path(scratch)
        _write_random(folder / "voice.ckpt", GPT_MIB)
        _write_random(folder / "voice.pth", SOVITS_MIB)
        _write_wav(folder / "ref.wav", 5.0)
        _write_wav(folder / "preview.wav", 3.0)
        steps = {step: _run_step(step, folder) for step in ("seal", "publish", "open", "cid")}
    seal = steps["seal"]
    figures = {
        "mb_per_s": round(seal["mb_per_s"], 1),
        "peak_rss_mb": round(seal["peak_rss_mb"], 1),
        "bundle_bytes": seal["bundle_bytes"],
        "targets": {"mb_per_s": ">= 150", "peak_rss_mb": "< 200"},
        "steps": {
            name: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in figures_.items()}
            for name, figures_ in steps.items()
        },
    }
    path = write_results("storage", figures, "make bench-storage")
    print_table(
        f"Storage: 256 MiB bundle ({seal['bundle_bytes']:,} bytes), median of {RUNS} runs, fresh process per run",
        [(f"{name} MB/s", round(s["mb_per_s"], 1)) for name, s in steps.items()]
        + [(f"{name} peak RSS MB", round(s["peak_rss_mb"], 1)) for name, s in steps.items()],
        targets={"seal MB/s": "target >= 150", "seal peak RSS MB": "target < 200"},
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

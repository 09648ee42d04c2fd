"""`make demo`'s story, run as a user runs it (a child process), with a tiny random voice to keep it short.

The demo starts its own anvil, redis-server and oracle; the test checks what it promises: both
WAV files written and verified against the chain, the revenue split adding up to what the buyer
paid, and every process it started gone when it ends.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_the_demo_tells_the_whole_story_and_stops_what_it_started(tmp_path):
    output = tmp_path / "demo-output"
    env = {k: v for k, v in os.environ.items() if k not in ("VOICEMARKET_WEIGHTS", "APE_FOUNDRY_HOST")}
    env.setdefault("APE_DATA_FOLDER", str(ROOT / ".ape"))
    result = subprocess.run(
        [sys.executable, "-m", "voicemarket.dev.demo", "--tiny", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    shown = f"exit {result.returncode}\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.returncode == 0, shown
    out = result.stdout
    assert "[10/10] Stop everything the demo started" in out, shown
    assert re.search(r"offers +0x[0-9a-fA-F]{40}", out), shown  # the licence manager's offer book
    assert "(keccak256 of the creator and the bundle's SHA-256" in out, shown
    assert "paid 0.01 ETH for 30 days, auto-renewal on" in out, shown
    assert "its audio will be NOISE" in out and "VOICEMARKET_WEIGHTS=/path/to/pretrained_models make demo" in out
    wavs = sorted(output.glob("request-*.wav"))
    assert [w.name.split("-")[-1] for w in wavs] == ["en.wav", "zh.wav", "yue.wav"], shown
    for wav in wavs:
        assert wav.read_bytes()[:4] == b"RIFF"
        assert f"{wav}  " in out and "= the digest on-chain" in out
    assert (
        "the buyer paid 0.0126 ETH (licences, use price, fees); the parties can withdraw 0.0126 ETH: every wei "
        "accounted for" in out
    ), shown
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 3, shown  # anvil, redis-server, the oracle
    assert not [pid for pid in pids if alive(pid)], "the demo left processes running"


def test_real_weights_are_found_in_the_gpt_sovits_layout_or_refused_with_how_to_configure_them(tmp_path):
    from voicemarket.dev.demo import find_real_weights
    from voicemarket.errors import DemoError

    folder = tmp_path / "pretrained_models"
    with pytest.raises(DemoError, match="is not a folder"):
        find_real_weights(folder)
    for name in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large"):
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text("{}")
    (folder / "s1bert25hz-2kh-longer-epoch=68e-step=50232.ckpt").write_bytes(b"v1")  # v1 files sit at the top
    (folder / "s2G488k.pth").write_bytes(b"v1")
    v2 = folder / "gsv-v2final-pretrained"
    v2.mkdir()
    with pytest.raises(DemoError, match=r"(?s)exactly one \.ckpt.*VOICEMARKET_WEIGHTS=/path/to/pretrained_models"):
        find_real_weights(folder)
    (v2 / "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt").write_bytes(b"gpt")
    (v2 / "s2G2333k.pth").write_bytes(b"sovits")
    weights = find_real_weights(folder)
    assert (weights.gpt.name, weights.sovits.name, weights.real) == (
        "s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt",
        "s2G2333k.pth",
        True,
    )
    assert weights.bert_dir == folder / "chinese-roberta-wwm-ext-large"
    (folder / "chinese-hubert-base" / "config.json").unlink()
    with pytest.raises(DemoError, match="no chinese-hubert-base"):
        find_real_weights(folder)

"""`ape run cid FILE...` prints `<CIDv0> <CIDv1> <path>` per file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _ape_run_cid(*args: str) -> subprocess.CompletedProcess:
    ape = Path(sys.executable).with_name("ape")
    env = {**os.environ, "APE_DATA_FOLDER": os.environ.get("APE_DATA_FOLDER", str(ROOT / ".ape"))}
    return subprocess.run(
        [str(ape), "run", "cid", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_prints_both_cids_per_file(tmp_path, js_importer):
    (tmp_path / "hello.txt").write_bytes(b"hello\n")
    (tmp_path / "big.bin").write_bytes(os.urandom(600_000))
    result = _ape_run_cid(str(tmp_path / "hello.txt"), str(tmp_path / "big.bin"))
    assert result.returncode == 0, result.stderr
    lines = [line.split(" ") for line in result.stdout.splitlines()]
    assert lines[0] == [
        "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am",
        str(tmp_path / "hello.txt"),
    ]
    expected = js_importer([{"path": tmp_path / "big.bin"}])[0]
    assert lines[1] == [expected["v0"], expected["v1"], str(tmp_path / "big.bin")]


def test_a_missing_file_is_a_usage_error(tmp_path):
    result = _ape_run_cid(str(tmp_path / "absent.bin"))
    assert result.returncode == 2 and "does not exist" in result.stderr

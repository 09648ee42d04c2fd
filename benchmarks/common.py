"""What every benchmark shares: where results go and how they are printed."""

from __future__ import annotations

import json
import platform
import resource
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_results(name: str, figures: Mapping[str, Any], command: str) -> Path:
    """Write ``benchmarks/results/<name>.json`` with the figures, the command and the machine."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {**figures, "_meta": {"command": command, **machine()}}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def print_table(
    title: str, rows: list[tuple[str, Any]] | Mapping[str, Any], targets: Mapping[str, str] | None = None
) -> None:
    """Print ``key  value  [target]`` rows under a title."""
    items = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    targets = targets or {}
    width = max((len(k) for k, _ in items), default=10)
    print(f"\n{title}")
    print("-" * (width + 30))
    for key, value in items:
        shown = (
            f"{value:,.3f}" if isinstance(value, float) else (f"{value:,}" if isinstance(value, int) else str(value))
        )
        target = targets.get(key, "")
        print(f"{key:<{width}}  {shown:>14}  {target}")

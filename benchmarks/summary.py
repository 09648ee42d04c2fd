"""Print one summary of every benchmark result in benchmarks/results/."""

from __future__ import annotations

import json

from benchmarks.common import RESULTS_DIR


def _flatten(prefix: str, value: object, out: list[tuple[str, object]]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            if key != "_meta":
                _flatten(f"{prefix}.{key}" if prefix else key, sub, out)
    else:
        out.append((prefix, value))


def main() -> None:
    files = sorted(RESULTS_DIR.glob("*.json")) if RESULTS_DIR.exists() else []
    if not files:
        print("no benchmark results yet: run `make bench`")
        return
    for path in files:
        data = json.loads(path.read_text())
        rows: list[tuple[str, object]] = []
        _flatten("", data, rows)
        print(f"\n== {path.stem}  ({data.get('_meta', {}).get('command', '?')})")
        for key, value in rows:
            shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
            print(f"  {key:<40} {shown}")


if __name__ == "__main__":
    main()

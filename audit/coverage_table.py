"""Writes docs/coverage.md from forge coverage's LCOV report (make audit-coverage).

    python audit/coverage_table.py .audit-build/lcov.info docs/coverage.md

One row per contract source in contracts/ (test doubles in contracts/test/ and the
interfaces, which have no code, left out): lines, branches and functions hit, and the lines and
branches no forge test reaches, so that a reader sees what the percentages leave out.
"""

import sys
from collections import defaultdict
from pathlib import Path

HEADER = """# Test coverage of the contracts (forge)

Written by `make audit-coverage` (part of `make audit`) from
`FOUNDRY_PROFILE=coverage forge coverage --ir-minimum --report lcov`: every forge suite in
`test-forge/` (fuzz tests at 256 runs, the market invariant run at 8 runs of 300 calls, the
attack replays). The pytest suites on anvil (tests/contracts/) are not counted here: they cover
more (pausing, router replacement, retirement, freezing, versions, ERC-1271 consent, ...).

`--ir-minimum` is needed: without the optimizer the legacy pipeline runs out of stack in the
test handler. It compiles through the IR with minimal optimisation, and forge warns that source
maps are then approximate: a line or branch can be attributed to its neighbour. Read the
uncovered lines as pointers, not as proof.

| contract | lines | branches | functions |
| --- | --- | --- | --- |
"""


def parse(lcov: Path) -> dict[str, dict]:
    files: dict[str, dict] = {}
    current = None
    for raw in lcov.read_text(encoding="utf8").splitlines():
        tag, _, value = raw.partition(":")
        if tag == "SF":
            current = files.setdefault(value, {"lines": {}, "branches": defaultdict(int), "fn": {}})
        elif current is None:
            continue
        elif tag == "DA":
            line, hits = value.split(",")[:2]
            current["lines"][int(line)] = current["lines"].get(int(line), 0) + int(hits)
        elif tag == "BRDA":
            line, block, branch, taken = value.split(",")
            key = (int(line), block, branch)
            current["branches"][key] += 0 if taken == "-" else int(taken)
        elif tag == "FNDA":
            hits, name = value.split(",", 1)
            current["fn"][name] = current["fn"].get(name, 0) + int(hits)
        elif tag == "end_of_record":
            current = None
    return files


def ratio(hit: int, total: int) -> str:
    return f"{100 * hit / total:.1f}% ({hit}/{total})" if total else "n/a"


def spans(numbers: list[int]) -> str:
    out, start, prev = [], None, None
    for n in sorted(set(numbers)):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ", ".join(out)


def main() -> int:
    lcov, target = Path(sys.argv[1]), Path(sys.argv[2])
    files = parse(lcov)
    rows, details = [], []
    totals = [0, 0, 0, 0, 0, 0]
    for name in sorted(files):
        if not name.startswith("contracts/") or name.startswith(("contracts/test/", "contracts/interfaces/")):
            continue
        f = files[name]
        lh, lf = sum(1 for h in f["lines"].values() if h), len(f["lines"])
        bh, bf = sum(1 for h in f["branches"].values() if h), len(f["branches"])
        fh, ff = sum(1 for h in f["fn"].values() if h), len(f["fn"])
        for i, v in enumerate((lh, lf, bh, bf, fh, ff)):
            totals[i] += v
        rows.append(f"| `{name}` | {ratio(lh, lf)} | {ratio(bh, bf)} | {ratio(fh, ff)} |")
        missed_lines = [line for line, h in f["lines"].items() if not h]
        missed_branches = [key[0] for key, h in f["branches"].items() if not h]
        missed_fns = sorted(n for n, h in f["fn"].items() if not h)
        if missed_lines or missed_branches or missed_fns:
            details.append(f"- `{name}`")
            if missed_fns:
                details.append(f"  - functions never called: {', '.join(f'`{n}`' for n in missed_fns)}")
            if missed_lines:
                details.append(f"  - lines: {spans(missed_lines)}")
            if missed_branches:
                details.append(f"  - branches (at lines): {spans(missed_branches)}")
    rows.append(
        f"| **all** | {ratio(totals[0], totals[1])} | {ratio(totals[2], totals[3])} | {ratio(totals[4], totals[5])} |"
    )
    text = HEADER + "\n".join(rows) + "\n\n## Not reached by the forge suites\n\n" + "\n".join(details) + "\n"
    target.write_text(text, encoding="utf8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

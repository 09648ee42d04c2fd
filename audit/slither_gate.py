"""Runs Slither on contracts/ and fails on any finding that audit/slither-triage.json does not
triage, and on any function Slither could not analyse beyond the ones triaged there.

Slither's own triage database (slither.db.json) keys findings by a hash of their source lines,
so every edit of a contract would bring triaged findings back. Here a finding is named by its
detector and where it is (Contract.function, or Contract.function.variable), which survives
edits; audit/slither-triage.md explains every entry.

    .venv-audit/bin/python audit/slither_gate.py           # run Slither, check (make audit)
    .venv-audit/bin/python audit/slither_gate.py --table   # the triage as a markdown table
    .venv-audit/bin/python audit/slither_gate.py --reuse   # check the last run's report again
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIAGE = ROOT / "audit" / "slither-triage.json"
BUILD = ROOT / ".audit-build"
REPORT = BUILD / "slither.json"
LOG = BUILD / "slither.log"


def where(finding: dict) -> str:
    """`Contract.function` or `Contract.function.variable` of a finding's first element."""
    element = finding["elements"][0]
    parent = element.get("type_specific_fields", {}).get("parent", {})
    if parent.get("type") == "function":
        contract = parent["type_specific_fields"]["parent"]["name"]
        return f"{contract}.{parent['name']}.{element['name']}"
    return f"{parent.get('name', '?')}.{element['name']}"


def run_slither() -> tuple[list[dict], str]:
    BUILD.mkdir(exist_ok=True)
    REPORT.unlink(missing_ok=True)
    env = dict(os.environ, FOUNDRY_PROFILE="slither")
    slither = Path(sys.executable).parent / "slither"
    with open(LOG, "w", encoding="utf8") as log:
        done = subprocess.run(
            [str(slither), ".", "--fail-none", "--json", str(REPORT)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    text = LOG.read_text(encoding="utf8")
    if done.returncode != 0 or not REPORT.exists():
        sys.exit(f"slither failed (exit {done.returncode}); its output:\n{text[-4000:]}")
    report = json.loads(REPORT.read_text(encoding="utf8"))
    if not report.get("success"):
        sys.exit(f"slither reported an error: {report.get('error')}")
    return report["results"].get("detectors", []), text


def table(entries: list[dict]) -> str:
    rows = ["| detector | where | verdict | why |", "| --- | --- | --- | --- |"]
    for e in entries:
        rows.append(f"| {e['check']} | `{e['where']}` | {e['verdict']} | {e['why']} |")
    return "\n".join(rows)


def main() -> int:
    triage = json.loads(TRIAGE.read_text(encoding="utf8"))
    entries = triage["findings"]
    if "--table" in sys.argv:
        print(table(entries))
        return 0
    if "--reuse" in sys.argv:
        findings = json.loads(REPORT.read_text(encoding="utf8"))["results"].get("detectors", [])
        log = LOG.read_text(encoding="utf8")
    else:
        findings, log = run_slither()
    known = {(e["check"], e["where"]) for e in entries}
    seen = set()
    untriaged = []
    for f in findings:
        key = (f["check"], where(f))
        seen.add(key)
        if key not in known:
            untriaged.append((f, key))

    # Functions Slither could not translate to its IR are invisible to every detector.
    unanalysed = set(re.findall(r"Impossible to generate IR for (\S+)", log))
    allowed = {e["function"] for e in triage.get("unanalysed", [])}
    blind = sorted(unanalysed - allowed)

    # Some findings come and go with Slither's blind spot (see "unanalysed" in the triage).
    blind_spot = bool(unanalysed & allowed)
    expected = {
        (e["check"], e["where"])
        for e in entries
        if e.get("reported") != ("once analysed" if blind_spot else "while unanalysed")
    }
    stale = sorted(expected - seen)
    print(
        f"slither: {len(findings)} findings, all triaged in audit/slither-triage.json"
        if not untriaged
        else f"slither: {len(findings)} findings, {len(untriaged)} not triaged"
    )
    for f, (check, place) in untriaged:
        print(f"\nNOT TRIAGED [{f['impact']}] {check} at {place}:\n{f['description'].strip()}")
    for name in blind:
        print(f"\nNOT ANALYSED: Slither could not generate IR for {name} (see {LOG.relative_to(ROOT)})")
    for name in sorted(unanalysed & allowed):
        print(f"note: Slither could not analyse {name} (triaged: audit/slither-triage.md)")
    for check, place in stale:
        print(f"note: triage entry no longer reported (fixed, or the contract changed): {check} {place}")
    return 1 if untriaged or blind else 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench-app`: how fast the DApp opens on localhost, and how much JavaScript it sends.

A local market (anvil, the contracts, two tiny voices with offers in every tier) is indexed and
served by ``python -m voicemarket.index serve`` with the built app at /, as `make app` does (no
oracle: opening the app does not use it). Debian's Chromium (headless, through Playwright for
Python) opens the app in a fresh browser context each run (no cache), with no wallet:

- ``first_load_s``: navigation start to the load event (HTML, JS, CSS fetched and run);
- ``interactive_s``: navigation start until the voice cards from the index API are on screen and
  the page answers input (the search button is enabled and a click is handled);
- ``bundle_gzip_kb``: the JavaScript the server sends, gzipped as it sends it (level 9).

Median of ``--runs`` runs (default 7). Targets: under 1 s, under 300 kB.

    python -m benchmarks.app [--runs 7]
"""

from __future__ import annotations

import gzip
import os
import statistics
import tempfile
import time
from pathlib import Path

import click

from benchmarks.common import print_table, write_results

TARGETS = {"first_load_s": "< 1 s", "interactive_s": "< 1 s", "bundle_gzip_kb": "< 300 kB"}
CHROMIUM = "/usr/bin/chromium"


def bundle_gzip_kb(dist: Path) -> float:
    return sum(len(gzip.compress(p.read_bytes(), 9)) for p in (dist / "assets").glob("*.js")) / 1000


def measure(url: str, runs: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    loads, interactive = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(runs + 1):  # the first run warms the server and the OS caches: not counted
                context = browser.new_context()
                page = context.new_page()
                page.goto(url + "/", wait_until="load")
                page.wait_for_selector("[data-testid=voice-card]")
                page.get_by_test_id("search").click()  # handled: the app answers input
                page.wait_for_selector("[data-testid=cards][data-loading='0'] [data-testid=voice-card]")
                figures = page.evaluate(
                    """() => {
                        const nav = performance.getEntriesByType('navigation')[0]
                        const cards = performance.getEntriesByName('cards')[0]
                        return { load: nav.loadEventEnd, cards: cards ? cards.startTime : null }
                    }"""
                )
                loads.append(figures["load"] / 1000)
                interactive.append(max(figures["load"], figures["cards"] or 0) / 1000)
                context.close()
        finally:
            browser.close()
    return {"first_load_s": statistics.median(loads[1:]), "interactive_s": statistics.median(interactive[1:])}


@click.command()
@click.option("--runs", default=7, show_default=True, help="measured page loads (median)")
def main(runs: int) -> None:
    import ape

    from voicemarket.dev.dapp import APP_DIST, DappServices, build_app, build_market
    from voicemarket.dev.services import local_chain

    build_app()
    load = os.getloadavg()
    with local_chain() as provider:
        work = Path(tempfile.mkdtemp(prefix="bench-app-"))
        market = build_market(ape.accounts.test_accounts, int(provider.chain_id), work)
        with DappServices(market, provider.uri, work / "services").start(oracle=False) as services:
            services.wait_indexed()
            started = time.perf_counter()
            figures = measure(services.url, runs)
    figures["bundle_gzip_kb"] = round(bundle_gzip_kb(APP_DIST), 1)
    figures = {k: round(v, 3) for k, v in figures.items()}
    figures["load_before"] = [round(x, 2) for x in load]
    figures["load_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["runs"] = runs
    figures["cpu"] = _cpu()
    print_table(f"DApp on localhost ({runs} runs, median; {time.perf_counter() - started:.0f} s)", figures, TARGETS)
    path = write_results("app", figures, f"python -m benchmarks.app --runs {runs}")
    print(f"\nwritten to {path}")


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()

"""The DApp's tests: one market on the session's anvil with everything that serves it (redis, the
oracle with one Celery worker, the indexer, the web server with the built app), and one headless
Chromium (Debian's /usr/bin/chromium, driven by Playwright for Python) for every test here.

Pages get a test wallet (wallet.js): an EIP-1193 provider announced through EIP-6963 that
forwards transactions to anvil's unlocked test accounts; ``window.__wallet`` lets a test refuse
the next signature or put the wallet on another chain.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicemarket.dev.dapp import DappMarket, DappServices, build_app, build_market

HERE = Path(__file__).parent
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def dapp_market(accounts, chain, tmp_path_factory) -> DappMarket:
    build_app()  # skipped when app/dist is newer than its sources
    return build_market(list(accounts), int(chain.chain_id), tmp_path_factory.mktemp("dapp-market"))


# module scope: the oracle, indexer and server stop once the browser tests are done, instead of
# polling the shared anvil through the rest of the lane
@pytest.fixture(scope="module")
def dapp(dapp_market, chain, tmp_path_factory) -> Iterator[DappServices]:
    with DappServices(dapp_market, chain.provider.uri, tmp_path_factory.mktemp("dapp-services")) as services:
        services.start(wait_for_oracle=False)  # the browse test does not need it: the journey waits
        services.wait_indexed()
        yield services


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make setup` installs it (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=45_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        yield browser
        browser.close()


class Pages:
    """Opens DApp pages with the test wallet of one account."""

    def __init__(self, browser, dapp: DappServices, chain_id: int, rpc_url: str) -> None:  # noqa: ANN001
        self.browser, self.dapp, self.chain_id, self.rpc_url = browser, dapp, chain_id, rpc_url
        self.contexts = []

    def open(
        self,
        path: str = "/",
        *,
        account: str | None = None,
        wallet_chain: int | None = None,
        width: int = 1200,
        lang: str = "en",
    ):  # noqa: ANN201
        context = self.browser.new_context(viewport={"width": width, "height": 900}, locale="en-GB")
        context.set_default_timeout(45_000)  # a loaded 2-core machine: waits end as soon as the page is ready
        self.contexts.append(context)
        context.add_init_script(f"localStorage.setItem('vm.lang', {json.dumps(lang)})")
        if account:
            settings = {"account": account, "rpcUrl": self.rpc_url, "chainId": wallet_chain or self.chain_id,
                        "marketChainId": self.chain_id, "knownChains": [wallet_chain or self.chain_id]}  # fmt: skip
            context.add_init_script((HERE / "wallet.js").read_text().replace("__SETTINGS__", json.dumps(settings)))
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.goto(self.dapp.url + path)
        return page

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser, dapp, chain) -> Iterator[Pages]:
    opened = Pages(browser, dapp, int(chain.chain_id), chain.provider.uri)
    yield opened
    opened.close()

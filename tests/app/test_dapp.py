"""The DApp in a real browser against the real contracts, indexer, oracle and Celery worker."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from conftest import screenshot

TIMEOUT = 20_000


def test_browse_filter_and_preview(pages, dapp_market, dapp) -> None:
    page = pages.open("/")
    cards = page.get_by_test_id("voice-card")
    expect(cards).to_have_count(2, timeout=TIMEOUT)
    expect(page.get_by_test_id("no-wallet")).to_contain_text("MetaMask")  # no wallet: browse only, and how to get one
    expect(cards.first).to_contain_text("Tiny")
    # filters: Cantonese -> Mei only; a tier and a price in an asset; nothing under a tiny price
    page.locator("select[name=language]").select_option("yue")
    page.get_by_test_id("search").click()
    expect(cards).to_have_count(1, timeout=TIMEOUT)
    expect(cards.first).to_contain_text("Mei")
    page.locator("select[name=language]").select_option("")
    page.locator("select[name=tier]").select_option("buyout")
    page.locator("select[name=asset]").select_option("mUSD")
    page.locator("input[name=max_price]").fill("10")
    page.get_by_test_id("search").click()
    expect(page.get_by_text("No voice matches.")).to_be_visible(timeout=TIMEOUT)
    page.locator("input[name=max_price]").fill("50")
    page.get_by_test_id("search").click()
    expect(cards).to_have_count(2, timeout=TIMEOUT)
    expect(cards.first).to_contain_text("from 50 mUSD")
    # the preview: fetched by CID through the server, its SHA-256 checked in the page, then played
    cards.first.get_by_test_id("play-preview").click()
    expect(cards.first.get_by_test_id("preview-check")).to_have_text(re.compile("SHA-256 matches"), timeout=TIMEOUT)
    audio = cards.first.get_by_test_id("preview-audio")
    page.wait_for_function("a => a.readyState >= 2 && a.duration > 0.5", arg=audio.element_handle(), timeout=TIMEOUT)
    screenshot(page, "browse")
    assert not page.errors

"""The DApp in a real browser against the real contracts, indexer, oracle and Celery worker."""

from __future__ import annotations

import hashlib
import re

from playwright.sync_api import expect

from app_helpers import screenshot
from voicemarket.market import chain as vm
from voicemarket.market.buyer_key import BuyerKey

TIMEOUT = 45_000  # generous: the suite runs beside another lane on 2 cores
ETH = "0x" + "00" * 20


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


def connect(page) -> None:  # noqa: ANN001
    page.get_by_test_id("connect").click()
    expect(page.get_by_test_id("account")).to_be_visible(timeout=TIMEOUT)


def offer(page, tier: str, text: str):  # noqa: ANN001, ANN201
    return page.locator(f"[data-testid=offer][data-tier='{tier}']").filter(has_text=text)


def confirmed(card) -> None:  # noqa: ANN001
    expect(card.get_by_test_id("tx-state")).to_have_attribute("data-stage", "confirmed", timeout=TIMEOUT)


def buy_every_tier(pages, dapp_market, accounts) -> None:  # noqa: ANN001
    d = dapp_market.sandbox.d
    buyer = dapp_market.accounts["buyer"]
    page = pages.open(f"/#/voice/{dapp_market.model_hex('Ada')}", account=buyer, wallet_chain=1)
    connect(page)
    # the wallet is on mainnet and does not know this chain: the page says so, asks to switch, and
    # on 4902 asks the wallet to add the chain (with the node URL from /app-config.json)
    expect(page.get_by_test_id("wrong-network")).to_contain_text("chain 1", timeout=TIMEOUT)
    page.get_by_test_id("switch-network").click()
    expect(page.get_by_test_id("wrong-network")).to_have_count(0, timeout=TIMEOUT)
    calls = page.evaluate("window.__wallet.calls")
    assert calls.index("wallet_switchEthereumChain") < calls.index("wallet_addEthereumChain")
    # the terms in words, their document's hash checked against the chain in the page
    expect(page.get_by_test_id("policy-hash").first).to_have_attribute("data-ok", "1", timeout=TIMEOUT)
    expect(page.get_by_test_id("policy-hash")).to_have_count(4)
    sub = offer(page, "subscription", "ETH")
    expect(sub).to_contain_text("0.01 ETH per 30 days")
    expect(sub).to_contain_text("sublicense it")  # forbidden, from the ODRL document
    # a refused signature: said in words, nothing sent
    page.evaluate("window.__wallet.rejectNext = true")
    sub.get_by_test_id("buy").click()
    expect(sub.get_by_test_id("tx-state")).to_contain_text("You rejected the request", timeout=TIMEOUT)
    assert d.licenses.balanceOf(buyer) == 0
    screenshot(page, "voice")
    # every tier: subscription and pay-per-use in ETH, a pack and a buyout in mUSD (approve, then buy)
    sub.get_by_test_id("buy").click()
    confirmed(sub)
    ppu = offer(page, "pay-per-use", "ETH per use")
    ppu.get_by_test_id("buy").click()
    confirmed(ppu)
    pack = offer(page, "pay-per-use", "packs of 10")
    expect(pack.get_by_test_id("buy-summary")).to_contain_text("Approve exactly 5 mUSD")
    before = page.evaluate("window.__wallet.calls.filter(c => c === 'eth_sendTransaction').length")
    pack.get_by_test_id("buy").click()
    confirmed(pack)
    after = page.evaluate("window.__wallet.calls.filter(c => c === 'eth_sendTransaction').length")
    assert after - before == 2  # approve of exactly the price, then buy
    assert d.stablecoin.allowance(buyer, d.licenses.address) == 0  # the approval was the exact amount
    buyout = page.locator("[data-testid=offer][data-tier='buyout']")
    buyout.get_by_test_id("buy").click()
    confirmed(buyout)
    assert d.licenses.balanceOf(buyer) == 4
    assert d.stablecoin.balanceOf(buyer) == 1_000 * 10**6 - 5 * 10**6 - 50 * 10**6
    assert not page.errors

    # a contract error in words: an account with no mUSD buys a buyout (approve passes, buy reverts)
    poor = accounts[6].address
    page = pages.open(f"/#/voice/{dapp_market.model_hex('Mei')}", account=poor)
    connect(page)
    buyout = page.locator("[data-testid=offer][data-tier='buyout']")
    buyout.get_by_test_id("buy").click()
    expect(buyout.get_by_test_id("tx-state")).to_contain_text("token balance is too low", timeout=TIMEOUT)
    assert d.licenses.balanceOf(poor) == 0


def speech_heard_and_failed_request_refunded(pages, dapp_market, dapp, accounts, chain) -> None:  # noqa: ANN001
    dapp.wait_oracle()
    d = dapp_market.sandbox.d
    buyer = dapp_market.accounts["buyer"]
    page = pages.open("/#/licences", account=buyer)
    connect(page)
    licence = page.get_by_test_id("licence").filter(has_text="subscription")
    expect(licence).to_have_count(1, timeout=TIMEOUT)
    expect(licence).to_contain_text("expires")
    licence.get_by_test_id("ask").click()
    form = licence.get_by_test_id("ask-form")
    expect(form.get_by_test_id("escrow")).to_contain_text("0.0001 ETH (use price 0 ETH + operator fee 0.0001 ETH)")
    # private by default: the wallet signs the key message once, the page derives the same key as
    # Python's BuyerKey, seals the text to the operator and opens the sealed audio
    secret = "A private line from the browser."
    expect(form.get_by_test_id("private")).to_be_checked()
    form.get_by_test_id("speech-text").fill(secret)
    form.get_by_test_id("send-request").click()
    request = form.get_by_test_id("request").first
    expected_key = BuyerKey.derive(accounts[4], int(dapp_market.chain_id)).key_address
    expect(form.get_by_test_id("buyer-key")).to_contain_text(expected_key, timeout=TIMEOUT)
    expect(request).to_have_attribute("data-private", "1")
    expect(request).to_have_attribute("data-status", re.compile("fulfilled|settled"), timeout=120_000)
    expect(request.get_by_test_id("audio-check")).to_contain_text("matches the chain", timeout=TIMEOUT)
    request_id = int(request.get_attribute("data-request"))
    logs = list(d.router.SynthesisRequested.range(dapp_market.start_block, chain.blocks.head.number + 1))
    sent = next(log for log in logs if int(log.requestId) == request_id)
    assert bytes(sent.input)[0] == 0x02 and secret.encode() not in bytes(sent.input)  # sealed, not readable
    input_hash = bytes(vm.request_from_log(sent)[9])  # SynthesisRequest.inputHash
    assert input_hash != hashlib.sha256(secret.encode()).digest()  # salted: a guessed line cannot be tested
    page.wait_for_function(
        "a => a.readyState >= 1 && a.duration > 0.1", arg=request.get_by_test_id("speech-audio").element_handle()
    )
    with page.expect_download() as download:
        request.get_by_test_id("download").click()
    assert download.value.suggested_filename.endswith(".wav")
    screenshot(page, "licences")
    # Ada lists Japanese on-chain but its bundle has no Japanese front end: the oracle fails it
    credit_before = d.router.creditOf(buyer, ETH)
    form.get_by_test_id("private").uncheck()  # this one public
    form.get_by_test_id("speech-language").select_option("ja")
    form.get_by_test_id("speech-text").fill("こんにちは")
    form.get_by_test_id("send-request").click()
    failed = form.locator("[data-testid=request][data-status=failed]")
    expect(failed).to_contain_text("cannot speak this language", timeout=120_000)
    expect(failed.get_by_test_id("refund")).to_contain_text("Refunded 0.0001 ETH")
    assert d.router.creditOf(buyer, ETH) == credit_before + 10**14
    failed.get_by_test_id("withdraw-router").click()
    confirmed(failed)
    expect(failed.get_by_test_id("nothing-to-withdraw")).to_be_visible()
    # renewing now would pay past what the registry's retirement notice guarantees: refused, in words
    licence_id = int(licence.get_attribute("data-licence"))
    expires = d.licenses.expiresAt(licence_id)
    licence.get_by_role("button", name="Renew one period").click()
    renewal = licence.locator(":scope > [data-testid=tx-state]")
    expect(renewal).to_contain_text("run past the voice’s end of service", timeout=TIMEOUT)
    assert d.licenses.expiresAt(licence_id) == expires
    licence.get_by_role("button", name="Cancel auto-renewal").click()
    expect(licence).to_contain_text("auto-renewal cancelled", timeout=TIMEOUT)
    assert d.router.creditOf(buyer, ETH) == 0
    assert not page.errors


def creator_collects_and_withdraws(pages, dapp_market, dapp) -> None:  # noqa: ANN001
    d = dapp_market.sandbox.d
    creator = dapp_market.accounts["creator"]
    page = pages.open("/#/creator", account=creator)
    connect(page)
    pending = page.get_by_test_id("pending")
    expect(pending.first).to_be_visible(timeout=TIMEOUT)
    eth_pending = pending.filter(has_text="ETH")
    eth_pending.get_by_test_id("collect").click()  # distribute the model's pots (then the list is read again)
    withdraw = page.get_by_test_id("withdraw-licenses").first
    expect(withdraw).to_contain_text("Withdraw", timeout=TIMEOUT)
    assert d.licenses.creditOf(creator, ETH) > 0
    withdraw.click()
    confirmed(page.locator(f"[data-testid=withdrawable][data-asset='{ETH}']"))
    assert d.licenses.creditOf(creator, ETH) == 0
    expect(page.get_by_test_id("revenue-chart").first).to_be_visible(timeout=TIMEOUT)
    screenshot(page, "creator")
    # publish an offer: the server writes the ODRL document, the page hashes it and shows it in words
    ada = page.get_by_test_id("created-model").filter(has_text="Tiny Ada")
    # uses by tier: the fulfilled subscription request counts, the failed (refunded) one does not
    expect(ada.get_by_test_id("tier-uses")).to_have_text(
        "Uses (refunded requests not counted): buyout 0 · subscription 1 · pay per use 0", timeout=TIMEOUT
    )
    ada.locator("summary").click()
    ada.get_by_test_id("publish-price").fill("0.02")
    ada.get_by_test_id("publish-check").click()
    expect(ada.get_by_test_id("publish-terms")).to_contain_text("make speech from text", timeout=TIMEOUT)
    ada.get_by_test_id("publish-send").click()
    confirmed(ada.locator(".publish"))
    # retire it: the end-of-service date is shown before signing
    expect(ada.get_by_test_id("retire-notice")).to_contain_text("Service ends on")
    ada.get_by_role("button", name="Retire").click()
    confirmed(ada.locator(".retire"))
    dapp.wait_indexed()
    page = pages.open(f"/#/voice/{dapp_market.model_hex('Ada')}", account=creator)
    expect(page.get_by_test_id("offer")).to_have_count(5, timeout=TIMEOUT)
    new = offer(page, "subscription", "0.02 ETH per 30 days")
    expect(new.get_by_test_id("policy-hash")).to_have_attribute("data-ok", "1")  # the index's document too
    expect(page.get_by_test_id("status").first).to_contain_text("retiring on")
    assert not page.errors


def test_market_journey(pages, dapp_market, dapp, accounts, chain) -> None:
    """One buyer's and one creator's story, in order (Ape reverts the chain after each test, so the
    steps that build on each other share one test): wrong network, a refused signature, every tier
    bought (mUSD with its exact approve), a contract error in words, speech heard and checked, a
    failed request refunded and withdrawn, the creator's revenue split and withdrawn, the operator's
    record in Chinese on a phone-width screen, used by keyboard."""
    buy_every_tier(pages, dapp_market, accounts)
    speech_heard_and_failed_request_refunded(pages, dapp_market, dapp, accounts, chain)
    creator_collects_and_withdraws(pages, dapp_market, dapp)
    operator_page_in_chinese_at_phone_width_by_keyboard(pages, dapp_market)


def operator_page_in_chinese_at_phone_width_by_keyboard(pages, dapp_market) -> None:  # noqa: ANN001
    operator = dapp_market.accounts["operator"]
    page = pages.open(f"/#/operator/{operator}", width=390, lang="zh")
    expect(page.get_by_role("heading", name="运营者")).to_be_visible(timeout=TIMEOUT)
    expect(page.get_by_test_id("op-fulfilled")).to_have_text(re.compile("[1-9]"), timeout=TIMEOUT)
    expect(page.get_by_test_id("op-failed")).to_have_text(re.compile("[1-9]"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    screenshot(page, "operator-zh-phone")
    # keyboard only: Tab to the nav link for voices, Enter, Tab into the search box, type, Enter
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#/"
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("voice-card")).to_have_count(2, timeout=TIMEOUT)
    page.locator("input[name=q]").focus()
    page.keyboard.type("Mei")
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("voice-card")).to_have_count(1, timeout=TIMEOUT)
    assert not page.errors

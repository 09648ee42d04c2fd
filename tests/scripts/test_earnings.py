"""`ape run earnings` and `withdraw`: exact revenue per party after sales and delivered uses."""

from __future__ import annotations

import hashlib

import pytest

from conftest import fails, ok
from voicemarket.market import chain as vm
from voicemarket.protocol import ETH, FailReason, Language

BUYER = 5
FEE = 10**14


@pytest.fixture(scope="module")
def used(minted, market, operator, accounts, run):
    """A subscription bought, two requests delivered and one failed by the operator (the router, not a stand-in)."""
    import ape

    market.router.setFee(ETH, FEE, sender=operator)
    out = ok(run("buy", str(minted["offers"]["subscription"]), "--max-price", "0.01 ether", account=BUYER))
    license = int(out.split("Licence ")[1].split()[0])
    for index, outcome in enumerate(("fulfil", "fulfil", "fail")):
        params = {
            "modelId": minted["model_id"],
            "licenseId": license,
            "operator": operator.address,
            "maxFee": FEE,
            "deadline": ape.chain.pending_timestamp + 3600,
            "params": vm.SynthesisParams(Language.EN).pack(),
            "inputHash": vm.input_hash(f"line {index}"),
            "input": vm.inline_input(f"line {index}"),
        }
        receipt = market.router.requestSynthesis(params, value=FEE, sender=accounts[BUYER])
        request = vm.request_from_log(receipt.events.filter(market.router.SynthesisRequested)[0])
        if outcome == "fulfil":
            market.router.fulfil(
                request,
                hashlib.sha256(b"audio").digest(),
                vm.cid_input("bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"),
                sender=operator,
            )
        else:
            market.router.fail(request, int(FailReason.SYNTHESIS_ERROR), sender=operator)
    return license


def test_earnings_split_every_sale_exactly(run, used, market, minted, accounts):
    from voicemarket.market.earnings import earnings

    report = earnings(market, accounts[1].address)
    model = next(m for m in report.models if m.model_id == minted["model_id"])
    eth = model.revenue[ETH]
    # Everything this module's and earlier tests paid for the model in ETH, with the contract's split.
    paid = sum(
        int(log.amount)
        for log in market.licenses.RevenueAccrued.range(
            0, market.licenses.provider.get_block("latest").number + 1, search_topics={"modelId": minted["model_id"]}
        )
        if log.asset == ETH
    )
    assert eth["gross"] == paid
    share = paid - paid * 2000 // 10_000
    assert eth["platform"] == paid * 2000 // 10_000
    assert eth["voice owner"] == share * 1000 // 10_000 and eth["co-creators"] == share * 500 // 10_000
    assert eth["creator"] == share - eth["voice owner"] - eth["co-creators"]
    assert eth["operators"] == 2 * FEE  # two delivered, one failed (refunded)
    assert model.uses_by_tier["subscription"] == {"delivered": 2, "pending": 0, "refunded": 1}
    assert report.distributable[ETH] == eth["creator"]

    out = ok(run("earnings", "--account", "TEST::1"))
    assert f"Model {minted['model_id']:#x}" in out and "subscription" in out
    assert "Withdrawable by " + accounts[1].address in out


def test_withdraw_distributes_then_pays_each_party(run, used, market, minted, accounts, chain):
    from voicemarket.market.earnings import earnings

    expected = earnings(market, accounts[3].address).distributable[ETH]
    before = chain.provider.get_balance(accounts[3].address)
    out = ok(run("withdraw", account=3))  # the voice owner
    assert "Distributed the ETH pot" in out and "licence sales" in out
    receipts = list(accounts[3].history)[-3:]
    gas = sum(r.total_fees_paid for r in receipts if r.block_number >= chain.blocks.head.number - 3)
    assert chain.provider.get_balance(accounts[3].address) == before + expected - gas
    assert market.licenses.creditOf(accounts[3], ETH) == 0
    out = fails(run("withdraw", account=3))
    assert "nothing to withdraw" in out and "ape run earnings" in out


def test_the_operator_withdraws_its_fees(run, used, market, operator):
    credit = market.router.creditOf(operator, ETH)
    assert credit >= 2 * FEE
    out = ok(run("withdraw", "--asset", "ETH", account=2))
    assert "router (uses, fees, refunds)" in out and market.router.creditOf(operator, ETH) == 0


def test_earnings_needs_to_know_whose(run, market):
    assert "say whose earnings" in fails(run("earnings"))
    assert "there is no model 0x99" in fails(run("earnings", "--model", "0x99"))

"""`ape run retire`, `freeze`, `unfreeze`, `version`, `dispute`, `settle`, `autorenew`: each command's
success and the mistakes a user can make, each an `Error:` line that says what to do (nothing sent).

Two models of this module's own (so that freezing and retiring them leaves the shared one alone):
"Bea" for the model's life (freeze, unfreeze, versions, retirement) and "Cleo" (a one-hour dispute
window) for requests, disputes, settlements and subscriptions. A version is registered of the
shared "Ada", whose voice owner (account 3) consents to it again. Ape reverts the chain after each
test, so a test makes what it needs itself or takes it from the module's fixtures.
"""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from conftest import fails, ok
from voicemarket.content.multiformats import CID, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import ETH, Language, RequestStatus

CREATOR, ARBITER, VOICE_OWNER, BUYER, STRANGER, SUBSCRIBER = 1, 0, 3, 5, 6, 7
WINDOW = 3_600
BOND = 10**15
FEE = 10**14
OFFERS = """\
asset: ETH
offers:
  - tier: buyout
    price: 0.001 ether
  - tier: subscription
    asset: stablecoin
    price: 0.5 mUSD
    period: 30 days
  - tier: subscription
    asset: stablecoin
    price: 0.1 mUSD
    period: 1 hour
"""


def _folder(model_folder, tmp_path_factory, name: str, description: str):
    from voicemarket.dev.sandbox import REFERENCE_TEXT, tiny_preview, tiny_voice_files
    from voicemarket.market.minting import write_model_folder

    return write_model_folder(
        tmp_path_factory.mktemp(name) / name,
        name=name.capitalize(),
        languages=["en"],
        gpt=model_folder / "gpt.ckpt",
        sovits=model_folder / "sovits.pth",
        reference_audio=model_folder / "reference.wav",
        reference_text=REFERENCE_TEXT,
        description=description,
        preview=tiny_preview(tiny_voice_files(model_folder.parent / "voice")),
    )


@pytest.fixture(scope="module")
def offers_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("keeper-offers") / "offers.yaml"
    path.write_text(OFFERS)
    return path


def _mint(run, folder, offers_path, operator) -> dict:
    from voicemarket.market import deployments

    out = ok(
        run(
            "mint",
            str(folder),
            "--offers",
            str(offers_path),
            "--operator",
            operator.address,
            "--dispute-window",
            "1 hour",
            account=CREATOR,
        )
    )
    model_hex = re.search(r"model id (0x[0-9a-f]{64})", out)[1]
    record = json.loads((deployments.home() / "models" / "ethereum_local" / f"{model_hex}.json").read_text())
    return {"model_id": int(model_hex, 16), "offers": [o["offerId"] for o in record["offers"]]}


@pytest.fixture(scope="module")
def versions(model_folder, tmp_path_factory) -> dict:
    """Folders for new versions of Bea and Ada (another description: another bundle)."""
    return {
        "bea": _folder(model_folder, tmp_path_factory, "bea", "A second take of Bea."),
        "ada": _folder(model_folder, tmp_path_factory, "ada", "A second take of Ada."),
    }


@pytest.fixture(scope="module")
def bea(run, market, operator, model_folder, offers_path, tmp_path_factory) -> dict:
    return _mint(
        run, _folder(model_folder, tmp_path_factory, "bea", "A voice to freeze and retire."), offers_path, operator
    )


@pytest.fixture(scope="module")
def cleo(run, market, operator, model_folder, offers_path, tmp_path_factory) -> dict:
    return _mint(run, _folder(model_folder, tmp_path_factory, "cleo", "A voice to dispute."), offers_path, operator)


def _buy(run, offer: int, account: int, price: str, *extra: str) -> int:
    return int(
        re.search(r"Licence (\d+)", ok(run("buy", str(offer), "--max-price", price, *extra, account=account)))[1]
    )


# ---------------------------------------------------------------- the model's life


def test_only_the_arbiter_freezes_and_unfreezes(run, market, bea, versions, offers_path, accounts):
    model = hex(bea["model_id"])
    out = fails(run("freeze", model, "--reason", "disputed consent", account=STRANGER))
    assert f"{accounts[STRANGER].address} does not hold the registry's arbiter role" in out
    assert f"this deployment's arbiter is {accounts[ARBITER].address}" in out
    assert "at most 32" in fails(run("freeze", model, "--reason", "x" * 33, account=ARBITER))
    assert "there is no model 0x1234" in fails(run("freeze", "0x1234", "--reason", "test", account=ARBITER))

    out = ok(run("freeze", model, "--reason", "disputed consent", account=ARBITER))
    assert f"Model {model} frozen by {accounts[ARBITER].address} (reason: 'disputed consent')" in out
    assert "ape run unfreeze" in out and market.registry.modelInfo(bea["model_id"]).frozen
    assert "is already frozen" in fails(run("freeze", model, "--reason", "again", account=ARBITER))
    # Frozen: it sells nothing, and no version is registered under it.
    assert "is frozen by the arbiter" in fails(
        run("buy", str(bea["offers"][0]), "--max-price", "1 ether", account=BUYER)
    )
    assert "no new version can be registered under it" in fails(
        run(
            "version",
            model,
            str(versions["bea"]),
            "--offers",
            str(offers_path),
            "--operator",
            accounts[2].address,
            account=CREATOR,
        )
    )

    assert "unfrozen" in ok(run("unfreeze", model, account=ARBITER))
    assert not market.registry.modelInfo(bea["model_id"]).frozen
    assert "is not frozen" in fails(run("unfreeze", model, account=ARBITER))
    assert "does not hold the registry's arbiter role" in fails(run("unfreeze", model, account=STRANGER))


def test_a_new_version_keeps_the_voice_owner_who_consents_again(
    run, market, minted, versions, offers_path, accounts, operator
):
    parent = hex(minted["model_id"])
    args = ("version", parent, str(versions["ada"]), "--offers", str(offers_path), "--operator", operator.address)
    out = fails(run(*args, account=CREATOR))
    assert f"is the voice of {accounts[VOICE_OWNER].address}" in out and "pass --voice-owner" in out
    out = fails(run(*args, "--voice-owner", f"TEST::{STRANGER}", account=CREATOR))
    assert f"is the voice of {accounts[VOICE_OWNER].address}, not {accounts[STRANGER].address}" in out
    assert "only its owner registers new versions" in fails(
        run(*args, "--voice-owner", f"TEST::{VOICE_OWNER}", account=STRANGER)
    )
    assert "there is no model 0x1234" in fails(run("version", "0x1234", *args[2:], account=CREATOR))

    out = ok(run(*args, "--voice-owner", f"TEST::{VOICE_OWNER}", account=CREATOR))
    child = int(re.search(r"model id (0x[0-9a-f]{64})", out)[1], 16)
    assert f"version of {parent}" in out and f"voice owner {accounts[VOICE_OWNER].address} (10%)" in out
    registry = market.registry
    assert registry.parentOf(child) == minted["model_id"]
    assert tuple(registry.consentOf(child)) == (accounts[VOICE_OWNER].address, 1000)  # the parent's share
    assert registry.modelInfo(child).disputeWindow == registry.modelInfo(minted["model_id"]).disputeWindow
    assert "offer " in out and "keyring CID" in out


def test_a_version_of_your_own_voice_needs_no_signature(run, market, bea, versions, offers_path, operator):
    out = ok(
        run(
            "version",
            hex(bea["model_id"]),
            str(versions["bea"]),
            "--offers",
            str(offers_path),
            "--operator",
            operator.address,
            account=CREATOR,
        )
    )
    child = int(re.search(r"model id (0x[0-9a-f]{64})", out)[1], 16)
    assert market.registry.parentOf(child) == bea["model_id"]
    assert market.registry.modelInfo(child).disputeWindow == WINDOW  # the parent's, by default


def test_retire_shows_the_service_end_date(run, market, bea, accounts, chain):
    from voicemarket.units import format_time

    model = hex(bea["model_id"])
    assert f"is owned by {accounts[CREATOR].address}, not {accounts[STRANGER].address}" in fails(
        run("retire", model, account=STRANGER)
    )
    assert "there is no model 0x1234" in fails(run("retire", "0x1234", account=CREATOR))
    out = ok(run("retire", model, account=CREATOR))
    ends = market.registry.modelInfo(bea["model_id"]).serviceEndsAt
    assert ends == chain.blocks.head.timestamp + market.registry.retirementNotice()
    assert f"keep working until {format_time(ends)} (the retirement notice of 45 days)" in out
    assert f"already retired: its service ends {format_time(ends)}" in fails(run("retire", model, account=CREATOR))
    assert "was retired by its owner" in fails(
        run("buy", str(bea["offers"][0]), "--max-price", "1 ether", account=BUYER)
    )


# ---------------------------------------------------------------- disputes and settlements


@pytest.fixture(scope="module")
def requests_(cleo, market, operator, accounts, run) -> list[tuple]:
    """Three requests under a buyout of Cleo: the first two delivered by the operator, the third not."""
    import ape

    market.router.setDisputeBond(BOND, sender=accounts[ARBITER])
    market.router.setFee(ETH, FEE, sender=operator)
    license = _buy(run, cleo["offers"][0], BUYER, "0.001 ether")
    fee = FEE
    out = []
    for index in range(3):
        text = f"line {index}"
        params = {
            "modelId": cleo["model_id"],
            "licenseId": license,
            "operator": operator.address,
            "maxFee": fee,
            "deadline": ape.chain.pending_timestamp + 600,
            "params": vm.SynthesisParams(Language.EN).pack(),
            "inputHash": vm.input_hash(text),
            "input": vm.inline_input(text),
        }
        receipt = market.router.requestSynthesis(params, value=fee, sender=accounts[BUYER])
        out.append(vm.request_from_log(receipt.events.filter(market.router.SynthesisRequested)[0]))
    for request in out[:2]:
        audio = hashlib.sha256(f"audio {request[0]}".encode()).digest()
        market.router.fulfil(request, audio, vm.cid_input(CID(1, RAW, audio)), sender=operator)
    return out


def test_dispute_posts_the_bond_it_shows_first(run, market, requests_, accounts):
    delivered, _, pending = (str(r[0]) for r in requests_)
    assert "not delivered yet: there is nothing to dispute" in fails(run("dispute", pending, account=BUYER))
    out = fails(run("dispute", delivered, account=STRANGER))
    assert f"was made by {accounts[BUYER].address}, not {accounts[STRANGER].address}" in out
    assert "there is no request 999" in fails(run("dispute", "999", account=BUYER))

    out = ok(run("dispute", delivered, account=BUYER))
    shown, done = out.index("posts a bond of 0.001 ETH"), out.index(f"Request {delivered} disputed")
    assert shown < done and "the arbiter decides by" in out
    assert market.router.requestStatus(int(delivered)) == RequestStatus.DISPUTED
    assert market.router.disputeBondOf(int(delivered)) == BOND
    assert "already disputed: the arbiter decides by" in fails(run("dispute", delivered, account=BUYER))


def test_settle_pays_out_after_the_window_and_lets_undecided_disputes_lapse(
    run, market, requests_, accounts, operator, chain
):
    disputed, delivered, pending = (str(r[0]) for r in requests_)
    market.router.dispute(requests_[0], value=BOND, sender=accounts[BUYER])  # as the dispute test did
    assert "in its dispute window until" in fails(run("settle", delivered, account=STRANGER))
    assert f"request {pending} is not delivered yet" in fails(run("settle", pending, account=STRANGER))
    assert "name the requests to settle" in fails(run("settle", account=STRANGER))

    chain.mine(timestamp=chain.pending_timestamp + WINDOW)
    assert "dispute window of request" in fails(run("dispute", delivered, account=BUYER))
    operator_credit = market.router.creditOf(operator, ETH)
    out = ok(run("settle", delivered, disputed, pending, account=STRANGER))
    assert (
        f"{delivered} fulfilled 0.0001 ETH 0 ETH" in out
        and market.router.requestStatus(int(delivered)) == RequestStatus.SETTLED
    )
    assert f"Skipped: request {disputed} is disputed: the arbiter decides by" in out
    assert f"Skipped: request {pending} passed its deadline" in out and "refunded (cancelExpired)" in out
    assert market.router.creditOf(operator, ETH) == operator_credit + FEE
    assert f"request {delivered} is already settled" in fails(run("settle", delivered, account=STRANGER))

    chain.mine(timestamp=chain.pending_timestamp + int(market.router.ARBITRATION_PERIOD()))
    credit = market.router.creditOf(accounts[BUYER], ETH)
    out = ok(run("settle", "--all-due", account=STRANGER))
    assert f"{disputed} disputed" in out and "dispute lapsed: bond back to the buyer" in out
    assert market.router.requestStatus(int(disputed)) == RequestStatus.SETTLED
    assert market.router.creditOf(accounts[BUYER], ETH) == credit + BOND
    assert "Nothing to settle" in ok(run("settle", "--all-due", account=STRANGER))


# ---------------------------------------------------------------- auto-renewal


def test_autorenew_on_and_off_with_the_allowance_keepers_need(run, market, cleo, accounts):
    market.stablecoin.mint(accounts[SUBSCRIBER], 10 * 10**6, sender=accounts[SUBSCRIBER])
    license = str(_buy(run, cleo["offers"][1], SUBSCRIBER, "0.5 mUSD", "--approve"))
    assert f"held by {accounts[SUBSCRIBER].address}" in fails(run("autorenew", license, "on", account=STRANGER))
    assert "there is no licence 999" in fails(run("autorenew", "999", "on", account=SUBSCRIBER))

    out = ok(run("autorenew", license, "on", account=SUBSCRIBER))
    assert f"Licence {license} auto-renews: keepers may renew it one period (30 days, 0.5 mUSD)" in out
    assert "Warning: when it is due, a keeper cannot renew it: your allowance is below the price (0.5 mUSD)" in out
    assert market.licenses.license(int(license)).autoRenew
    assert "already auto-renews" in fails(run("autorenew", license, "on", account=SUBSCRIBER))

    out = ok(run("autorenew", license, "on", "--approve-periods", "3", account=SUBSCRIBER))
    assert "allowance for the licence manager: 1.5 mUSD (3 period(s))" in out and "Warning" not in out
    assert market.stablecoin.allowance(accounts[SUBSCRIBER], market.licenses) == 1_500_000
    assert "--approve-periods goes with `on`" in fails(
        run("autorenew", license, "off", "--approve-periods", "1", account=SUBSCRIBER)
    )

    out = ok(run("autorenew", license, "off", account=SUBSCRIBER))
    assert f"Licence {license} no longer auto-renews" in out and not market.licenses.license(int(license)).autoRenew
    assert "does not auto-renew" in fails(run("autorenew", license, "off", account=SUBSCRIBER))


def test_autorenew_refuses_what_keepers_cannot_renew(run, market, cleo, accounts, chain):
    market.stablecoin.mint(accounts[SUBSCRIBER], 10**6, sender=accounts[SUBSCRIBER])
    buyout = str(_buy(run, cleo["offers"][0], SUBSCRIBER, "0.001 ether"))
    assert "is not a subscription" in fails(run("autorenew", buyout, "on", account=SUBSCRIBER))
    hourly = _buy(run, cleo["offers"][2], SUBSCRIBER, "0.1 mUSD", "--approve")
    chain.mine(timestamp=market.licenses.license(hourly).expiresAt + 1)
    out = fails(run("autorenew", str(hourly), "on", account=SUBSCRIBER))
    assert f"licence {hourly} lapsed at" in out and "keepers never restart a lapsed subscription" in out
    assert f"ape run renew {hourly}" in out and not market.licenses.license(hourly).autoRenew

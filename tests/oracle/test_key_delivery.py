"""Local-use licences with the real key service (``python -m oracle.key_delivery``) on anvil and Redis.

A buyer buys a local-use licence; the key service (the operator's account, named key holder by the
creator) wraps the model's data key to the buyer's key, stores it and records the delivery within a
few blocks; ``fetch_model`` gives a bundle with the on-chain SHA-256 that synth loads and speaks
with; another account cannot unwrap it; a frozen model gets no key until it is unfrozen; a licence
of a model no key service serves is refunded after the deadline; and a key service killed after
sending, then restarted, delivers each key exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import ape
import pytest

from oracle_helpers import OPERATOR_INDEX, Oracle, wait_for
from voicemarket.dev.services import ManagedProcess
from voicemarket.errors import DecryptionError, LocalUseError
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.market.local_use import (
    LocalUse,
    buy_local_use,
    dispute_delivery,
    fetch_model,
    license_public_key,
    refund_local_use,
    sealed_key_id,
    settle_local_use,
    synth_command,
)
from voicemarket.protocol import ETH, LocalUseStatus

ROOT = Path(__file__).resolve().parents[2]
PRICE = 2 * 10**15


@pytest.fixture(scope="module")
def kd(sandbox):
    return sandbox.d.key_delivery


@pytest.fixture(scope="module")
def local_voice(sandbox, accounts, operator, kd):
    """A voice offered for local use, whose key holder is the operator (a keyring recipient)."""
    voice = sandbox.publish_voice(accounts[1], [operator], files=sandbox.tiny, label="local-use voice")
    kd.offerLocalUse(
        voice.offer_id, PRICE, sealed_key_id(sandbox.store, voice.model_id, sandbox.d.registry), sender=accounts[1]
    )
    kd.setKeyHolder(voice.model_id, operator, sender=accounts[1])
    return voice


STARTED: list[Oracle] = []


@pytest.fixture(autouse=True)
def _stop_key_services():
    """Every key service a test starts is stopped (by PID) when it ends, whatever happened."""
    STARTED.clear()
    yield
    for oracle in STARTED:
        oracle.stop()


def buy(sandbox, voice, buyer, chain) -> tuple[int, BuyerKey]:
    license_id = sandbox.buy_license(buyer, voice)
    key = BuyerKey.derive(buyer, chain.chain_id)
    buy_local_use(sandbox.d, license_id, buyer, license_public_key(key.private_key, license_id), max_price=PRICE)
    return license_id, key


def start_keys(sandbox, kd, voices, redis_server, tmp_path, chain, name="keys", **overrides) -> Oracle:
    env = sandbox.oracle_env(
        rpc_url=chain.provider.uri,
        redis_url=redis_server.url,
        operator_index=OPERATOR_INDEX,
        voices=voices,
        work_dir=tmp_path,
        key_delivery=kd.address,
        keys_interval_s=0.2,
        keys_deadline_margin_s=60,
        **overrides,
    )
    oracle = Oracle(sandbox, env, tmp_path / "logs")
    STARTED.append(oracle)
    process = ManagedProcess(
        [sys.executable, "-m", "oracle.key_delivery"],
        log_path=oracle.logs / f"{name}.log",
        env=env,
        cwd=ROOT,
        name=name,
    )
    oracle.processes.append(process.start())
    process.wait_until(lambda: "key service starting" in process.log_path.read_text(), 60, "the key service to start")
    return oracle


def status(kd, license_id: int) -> LocalUseStatus:
    return LocalUseStatus(int(kd.localUse(license_id).status))


def deliveries(kd, license_id: int, start_block: int) -> list:
    return [
        e for e in kd.KeyDelivered.range(start_block, ape.chain.blocks.head.number + 1) if e.licenseId == license_id
    ]


def test_bought_delivered_fetched_spoken_and_sealed_to_the_buyer_alone(
    sandbox, kd, local_voice, accounts, buyers, operator, redis_server, tmp_path, chain
):
    first = chain.blocks.head.number
    license_id, key = buy(sandbox, local_voice, buyers[0], chain)
    bought_at = chain.blocks.head.number
    with pytest.raises(LocalUseError, match="wait for the key holder"):
        fetch_model(sandbox.d, sandbox.store, license_id, key.private_key, tmp_path / "early")
    # A frozen model gets no key: nothing is wrapped while the arbiter's freeze lasts.
    sandbox.d.registry.freeze(local_voice.model_id, b"\x01" * 32, sender=accounts[0])
    stored_before = sorted(p.name for p in Path(sandbox.store.root).rglob("*") if p.is_file())
    oracle = start_keys(sandbox, kd, [local_voice], redis_server, tmp_path, chain, start_block=first)
    log = oracle.processes[0].log_path
    wait_for(lambda: "frozen" in log.read_text(), 30, "the key service to see the frozen model", oracle)
    assert status(kd, license_id) == LocalUseStatus.PENDING
    assert sorted(p.name for p in Path(sandbox.store.root).rglob("*") if p.is_file()) == stored_before
    sandbox.d.registry.unfreeze(local_voice.model_id, sender=accounts[0])

    wait_for(lambda: status(kd, license_id) == LocalUseStatus.DELIVERED, 30, "the key's delivery", oracle)
    (delivered,) = deliveries(kd, license_id, first)
    assert delivered.block_number - bought_at <= 6  # the unfreeze, then a round of 0.2 s: a few blocks
    assert delivered.keyHolder == operator.address
    assert kd.potOf(local_voice.model_id, ETH) == (0, 0)  # in escrow through the dispute window

    unpacked = fetch_model(sandbox.d, sandbox.store, license_id, key.private_key, tmp_path / "voice")
    assert unpacked.directory == tmp_path / "voice" and unpacked.gpt_checkpoint.is_file()
    # open_bundle checked sha256(bundle) with the creator against the model id (the on-chain commitment):
    assert local_voice.model_id == int(kd.localUseOption(local_voice.offer_id).modelId)

    # Another account's key cannot unwrap it, and leaves no folder behind.
    other = BuyerKey.derive(buyers[1], chain.chain_id)
    with pytest.raises(DecryptionError):
        fetch_model(sandbox.d, sandbox.store, license_id, other.private_key, tmp_path / "stolen")
    assert not (tmp_path / "stolen").exists()
    # The buyer's own check refuses to dispute a key that opens (it would reveal the licence key for nothing);
    # once the window has passed, anyone settles and the model's pot gets the price.
    with pytest.raises(LocalUseError, match="nothing to dispute"):
        dispute_delivery(sandbox.d, sandbox.store, license_id, key.private_key, buyers[0])
    chain.mine(timestamp=kd.localUse(license_id).deadline)
    settle_local_use(sandbox.d, license_id, accounts[9])
    fee = PRICE * 2_000 // 10_000
    assert kd.potOf(local_voice.model_id, ETH) == (PRICE - fee, fee)

    # synth loads the fetched folder and speaks.
    wav = tmp_path / "local.wav"
    command = synth_command(unpacked, str(sandbox.tiny.hubert_dir))
    command[0] = sys.executable
    command += ["--text", "Hello from my own machine.", "--lang", "en", "-o", str(wav), "--max-tokens", "20"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert wav.stat().st_size > 44


def test_no_delivery_by_the_deadline_the_key_service_refunds_the_buyer(
    sandbox, kd, accounts, operator, buyers, redis_server, tmp_path, chain
):
    """The operator serves the model but was never named its key holder: it wraps nothing, and at
    the deadline its service refunds the buyer, who withdraws the price."""
    first = chain.blocks.head.number
    voice = sandbox.publish_voice(accounts[1], [operator], files=sandbox.tiny, label="no key holder")
    kd.offerLocalUse(
        voice.offer_id, PRICE, sealed_key_id(sandbox.store, voice.model_id, sandbox.d.registry), sender=accounts[1]
    )
    license_id, _ = buy(sandbox, voice, buyers[2], chain)
    record = LocalUse.read(kd, license_id)
    with ape.reverts(kd.KeyDelivery_DeadlineNotReached):
        refund_local_use(sandbox.d, license_id, accounts[9])
    oracle = start_keys(sandbox, kd, [voice], redis_server, tmp_path, chain, start_block=first)
    log = oracle.processes[0].log_path
    wait_for(
        lambda: "not the model's key holder" in log.read_text(), 30, "the service to see it is no key holder", oracle
    )
    chain.mine(timestamp=record.deadline)
    wait_for(lambda: status(kd, license_id) == LocalUseStatus.REFUNDED, 30, "the service's refund", oracle)
    oracle.stop()
    assert kd.keyCid(license_id) == b""
    before = buyers[2].balance
    receipt = kd.withdraw(ETH, sender=buyers[2])
    assert buyers[2].balance == before + PRICE - receipt.total_fees_paid


def test_key_service_killed_after_sending_then_restarted_delivers_each_key_once(
    sandbox, kd, local_voice, buyers, redis_server, tmp_path, chain, operator
):
    first = chain.blocks.head.number
    bought = [buy(sandbox, local_voice, buyer, chain)[0] for buyer in buyers[:3]]
    rpc = chain.provider.web3.provider.make_request
    rpc("evm_setAutomine", [False])
    try:
        oracle = start_keys(sandbox, kd, [local_voice], redis_server, tmp_path, chain, "keys1", start_block=first)
        log = oracle.processes[0].log_path
        wait_for(lambda: log.read_text().count("key delivery sent") == 3, 60, "three deliveries sent", oracle)
        oracle.processes[0].signal(signal.SIGKILL)  # a crash with three transactions unmined
        oracle.processes[0].stop()
        again = start_keys(sandbox, kd, [local_voice], redis_server, tmp_path, chain, "keys2", start_block=first)
        log2 = again.processes[0].log_path
        wait_for(lambda: "key service starting" in log2.read_text(), 30, "the restart", again)
        time.sleep(1.5)  # several rounds with the three still unmined: nothing is sent again
        rpc("evm_mine", [])
    finally:
        rpc("evm_setAutomine", [True])
    for license_id in bought:
        wait_for(lambda lid=license_id: status(kd, lid) == LocalUseStatus.DELIVERED, 30, "each delivery", again)
    chain.mine(3)
    wait_for(lambda: "key delivered" in log2.read_text(), 30, "the restarted service to see them mined", again)
    again.stop()
    for license_id in bought:
        assert len(deliveries(kd, license_id, first)) == 1
    assert "key delivery sent" not in log2.read_text()
    # Every transaction the operator sent to the KeyDelivery contract was one of the three deliveries.
    sent = [
        tx
        for number in range(first, chain.blocks.head.number + 1)
        for tx in chain.provider.web3.eth.get_block(number, full_transactions=True).transactions
        if tx["from"] == operator.address and tx["to"] == kd.address
    ]
    assert len(sent) == 3


@pytest.mark.deep
def test_key_service_killed_at_random_points_delivers_each_key_exactly_once(
    sandbox, kd, local_voice, accounts, redis_server, tmp_path, chain, operator
):
    """Eight purchases; the service is SIGKILLed five times at random moments (mining every 0.5 s in
    between), then left to finish: one delivery per licence and no second transaction, ever."""
    import random

    first = chain.blocks.head.number
    buyers = [accounts[i] for i in (4, 5, 6, 7)]
    bought = [buy(sandbox, local_voice, buyers[i % 4], chain)[0] for i in range(8)]
    rpc = chain.provider.web3.provider.make_request
    rng = random.Random(19)
    rpc("evm_setAutomine", [False])
    rpc("evm_setIntervalMining", [1])
    try:
        for attempt in range(5):
            oracle = start_keys(
                sandbox, kd, [local_voice], redis_server, tmp_path, chain, f"keys{attempt}", start_block=first
            )
            time.sleep(rng.uniform(0.0, 2.0))
            oracle.processes[0].signal(signal.SIGKILL)
            oracle.processes[0].stop()
        last = start_keys(sandbox, kd, [local_voice], redis_server, tmp_path, chain, "keys-last", start_block=first)
        for license_id in bought:
            wait_for(lambda lid=license_id: status(kd, lid) == LocalUseStatus.DELIVERED, 60, "each delivery", last)
        time.sleep(2)
        last.stop()
    finally:
        rpc("evm_setIntervalMining", [0])
        rpc("evm_setAutomine", [True])
    for license_id in bought:
        assert len(deliveries(kd, license_id, first)) == 1
    sent = [
        tx
        for number in range(first, chain.blocks.head.number + 1)
        for tx in chain.provider.web3.eth.get_block(number, full_transactions=True).transactions
        if tx["from"] == operator.address and tx["to"] == kd.address
    ]
    assert len(sent) == len(bought)

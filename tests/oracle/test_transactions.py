"""The operator's transactions: shared nonces across processes, a nonce taken by another program,
stuck transactions replaced, and a crash between recording a transaction and broadcasting it."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from web3 import Web3

from oracle.keys import ape_test_key
from oracle.ledger import Ledger
from oracle.router import RouterClient
from oracle.rpc import JsonRpc
from oracle.settings import OracleSettings
from oracle.transactions import TxSender
from oracle_helpers import fake_ready, rpc, wait_for
from voicemarket.dev.sandbox import account_key

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
SPARE_ACCOUNT = 9  # an account no other part of these tests sends from


@pytest.fixture
def automine(chain):
    """Turn automining off inside the test; always back on afterwards."""
    yield lambda on: rpc(chain, "evm_setAutomine", [on])
    rpc(chain, "evm_setAutomine", [True])


def _request_now(sandbox, chain, buyer, voice, license, operator, text: str) -> int:
    """A request sent raw and mined by hand (works with automining off); returns its id."""
    w3 = chain.provider.web3
    request_id = sandbox.router.nextRequestId()
    params = sandbox.request_params(voice, license, operator, text, now=w3.eth.get_block("latest")["timestamp"])
    tx = sandbox.request_raw(account_key(buyer), w3.eth.get_transaction_count(buyer.address, "pending"), params)
    rpc(chain, "evm_mine")
    assert w3.eth.get_transaction_receipt(tx)["status"] == 1
    return request_id


def _outcomes(client, first_block, ids):
    return [(name, rid) for name, rid, _ in client.outcome_logs(first_block) if rid in ids]


def test_processes_sharing_redis_never_reuse_a_nonce(chain, redis_server):
    """Three OS processes send 8 transactions each from one account: 24 distinct nonces, all mined."""
    key = ape_test_key(SPARE_ACCOUNT)
    namespace = "oracle:test:shared-nonces"
    start_nonce = chain.provider.web3.eth.get_transaction_count(key.address)
    argv = [
        sys.executable,
        "-c",
        "import sys, oracle_helpers as h; h.nonce_client(*sys.argv[1:4], "
        "int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))",
    ]
    procs = [
        subprocess.Popen(
            argv + [chain.provider.uri, redis_server.url, namespace, str(SPARE_ACCOUNT), str(1000 * (p + 1)), "8"],
            cwd=HERE,
        )
        for p in range(3)
    ]
    try:
        assert [p.wait(120) for p in procs] == [0, 0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    w3 = chain.provider.web3
    ledger = Ledger(redis.Redis.from_url(redis_url := redis_server.url), namespace)
    sender = TxSender(
        JsonRpc(chain.provider.uri),
        key,
        ledger,
        OracleSettings(router=key.address, test_account=SPARE_ACCOUNT, confirmations=0, redis_url=redis_url),
        w3.eth.chain_id,
    )
    wait_for(lambda: (sender.reconcile(), not ledger.submissions())[1], 30, "every submission to be final")
    assert w3.eth.get_transaction_count(key.address) == start_nonce + 24
    assert ledger.stats()["transactions"] == 24


def test_a_crash_between_record_and_broadcast_is_repaired_with_the_same_bytes(chain, redis_server):
    w3 = chain.provider.web3
    key = ape_test_key(SPARE_ACCOUNT)
    ledger = Ledger(redis.Redis.from_url(redis_server.url), "oracle:test:crash")
    settings = OracleSettings(router=key.address, test_account=SPARE_ACCOUNT, confirmations=0)
    fake_ready(ledger, [1])
    crashed = TxSender(JsonRpc(chain.provider.uri), key, ledger, settings, w3.eth.chain_id)
    nonce = w3.eth.get_transaction_count(key.address, "pending")
    tx = crashed._sign(key.address, "0x", 30_000, nonce, crashed.fees())
    verdict, _sub_id = ledger.begin_submission(nonce, nonce, "fulfil", [1], tx)
    assert verdict == "ok"  # recorded, then the process "died" before broadcasting
    assert w3.eth.get_transaction_count(key.address, "pending") == nonce

    restarted = TxSender(JsonRpc(chain.provider.uri), key, ledger, settings, w3.eth.chain_id)
    wait_for(lambda: (restarted.reconcile(), not ledger.submissions())[1], 20, "the recorded tx to be mined")
    assert w3.eth.get_transaction_receipt(tx["hash"])["status"] == 1
    assert ledger.request(1)["state"] == "done"


def test_a_nonce_taken_by_another_process_is_survived(
    sandbox, voice, licenses, buyers, operator, start_oracle, chain, automine
):
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    w3 = chain.provider.web3
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1)
    ledger = oracle.ledger()
    buyer = buyers[0]
    ids = [sandbox.request(buyer, voice, licenses[buyer.address], operator, "Warm up.")]
    wait_for(lambda: len(_outcomes(client, first_block, ids)) == 1, 60, "the first fulfilment", oracle)

    # 1. Another program sends from the operator's account while nothing of ours is pending.
    operator_key = account_key(operator)

    def foreign_tx(nonce: int, tip_gwei: int) -> str:
        from eth_account import Account

        signed = Account.sign_transaction(
            {
                "type": 2,
                "chainId": w3.eth.chain_id,
                "nonce": nonce,
                "to": operator.address,
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": 200 * 10**9,
                "maxPriorityFeePerGas": tip_gwei * 10**9,
            },
            operator_key,
        )
        return Web3.to_hex(w3.eth.send_raw_transaction(signed.raw_transaction))

    foreign_tx(w3.eth.get_transaction_count(operator.address, "pending"), 1)
    ids.append(sandbox.request(buyer, voice, licenses[buyer.address], operator, "After a foreign transaction."))
    wait_for(lambda: len(_outcomes(client, first_block, ids)) == 2, 30, "a fulfilment after it", oracle)

    # 2. Another program takes the very nonce of our pending fulfilment (a replacement in the mempool).
    automine(False)
    ids.append(_request_now(sandbox, chain, buyer, voice, licenses[buyer.address], operator, "Raced."))
    wait_for(lambda: any(s.state == "sent" for s in ledger.submissions()), 30, "our fulfilment to be pending", oracle)
    (ours,) = [s for s in ledger.submissions() if s.state == "sent"]
    foreign = foreign_tx(ours.nonce, 50)
    rpc(chain, "evm_mine")
    assert w3.eth.get_transaction_receipt(foreign)["status"] == 1
    automine(True)
    wait_for(lambda: len(_outcomes(client, first_block, ids)) == 3, 30, "the raced request to be fulfilled", oracle)
    time.sleep(0.5)
    events = _outcomes(client, first_block, ids)
    assert Counter(events) == {("SynthesisFulfilled", rid): 1 for rid in ids}
    assert ledger.stats().get("foreign_nonces", 0) >= 1


def test_a_stuck_transaction_is_replaced_and_mined_once(
    sandbox, voice, licenses, buyers, operator, start_oracle, chain, automine
):
    client = RouterClient.connect(chain.provider.uri, sandbox.router.address)
    w3 = chain.provider.web3
    first_block = chain.blocks.head.number
    oracle = start_oracle(workers=1, stuck_after_s=1)
    ledger = oracle.ledger()
    buyer = buyers[1]
    automine(False)
    request_id = _request_now(sandbox, chain, buyer, voice, licenses[buyer.address], operator, "Stuck.")
    wait_for(lambda: any(len(s.txs) >= 2 for s in ledger.submissions()), 60, "a replacement to be sent", oracle)
    (sub,) = ledger.submissions()
    first, replacement = sub.txs[0], sub.txs[-1]
    assert int(replacement["max_fee"]) > int(first["max_fee"]) and replacement["hash"] != first["hash"]
    rpc(chain, "evm_mine")
    automine(True)
    wait_for(lambda: _outcomes(client, first_block, [request_id]), 30, "the fulfilment", oracle)
    time.sleep(0.5)
    assert _outcomes(client, first_block, [request_id]) == [("SynthesisFulfilled", request_id)]
    mined = [h for h in (tx["hash"] for tx in sub.txs) if _receipt(w3, h)]
    assert len(mined) == 1  # one of the two, never both (same nonce)
    assert ledger.stats().get("replacements", 0) >= 1


def _receipt(w3, tx_hash):
    from web3.exceptions import TransactionNotFound

    try:
        return w3.eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None

"""A retired model whose service has ended: the router accepts no more deliveries for it
(`Router_ServiceEnded`), so the oracle fails its pending requests (ModelUnavailable: the buyer is
refunded) instead of trying to deliver them again and again.

Its own market with the shortest retirement notice (1 day): a voice is retired, requests are made
before its service ends (with a deadline beyond that end), and the chain's clock is moved past the
end. Then (1) the batch submitter, handed a finished synthesis, finds the delivery refused and sends
`fail`; (2) the whole oracle, given such a request, fails it without synthesising.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest

from oracle.errors import FailReason
from oracle.router import RouterClient
from oracle.settings import OracleSettings
from oracle_helpers import OPERATOR_INDEX, Oracle, wait_for
from voicemarket.content.multiformats import CID, RAW
from voicemarket.dev.sandbox import OPERATOR_FEE, Sandbox
from voicemarket.protocol import RequestStatus

pytestmark = pytest.mark.integration
DAY = 86_400


@pytest.fixture(scope="module")
def ended(accounts, operator, buyers, chain, tmp_path_factory, tiny_voice):
    """Two requests pending on a retired voice whose service has ended (their deadlines still ahead)."""
    box = Sandbox.deploy(accounts[0], tmp_path_factory.mktemp("retiring"), retirement_notice=DAY)
    creator, buyer = accounts[1], buyers[0]
    voice = box.publish_voice(creator, [operator], files=tiny_voice)
    license = box.buy_license(buyer, voice)
    box.d.registry.retire(voice.model_id, sender=creator)
    ends = int(box.d.registry.modelTerms(voice.model_id).serviceEndsAt)
    chain.mine(timestamp=ends - DAY + 600)  # ten minutes later: still licensed, still served
    first_block = chain.blocks.head.number + 1
    ids = [box.request(buyer, voice, license, operator, f"Too late {i}.", deadline_in=DAY) for i in range(2)]
    chain.mine(timestamp=ends + 5)  # the service has ended; both deadlines are ~10 minutes ahead
    return {"box": box, "voice": voice, "ids": ids, "buyer": buyer, "first_block": first_block, "ends": ends}


def _failure(client: RouterClient, first_block: int, request_id: int):
    found = [args for name, rid, args in client.outcome_logs(first_block) if rid == request_id]
    return found[0] if found else None


def test_a_delivery_the_router_refuses_after_the_service_ended_becomes_a_failure(ended, operator, chain, redis_server):
    from oracle.runtime import Services
    from oracle.submitter import Submitter
    from oracle.transactions import TxSender

    box, request_id = ended["box"], ended["ids"][0]
    settings = OracleSettings(
        rpc_url=chain.provider.uri,
        router=box.router.address,
        redis_url=redis_server.url,
        test_account=OPERATOR_INDEX,
        confirmations=0,
        batch_linger_s=0,
    )
    services = Services(settings)
    client, ledger = services.router, services.ledger
    event, status, _, now = client.request_snapshot(request_id, ended["first_block"])
    assert status == RequestStatus.PENDING and now >= ended["ends"] and now < event.request.deadline
    # A worker finished the audio; the delivery would revert with Router_ServiceEnded.
    ledger.mark_queued(request_id, event.block_number)
    assert ledger.claim(request_id, "test-worker", 30, event.block_number) == "claimed"
    cid = CID(1, RAW, hashlib.sha256(b"wav").digest())
    outcome = {
        "kind": "fulfil",
        "request": event.request.to_json(),
        "digest": "0x" + hashlib.sha256(b"wav").hexdigest(),
        "cid": "0x" + cid.to_bytes().hex(),
        "cid_text": str(cid),
    }
    assert ledger.record_outcome(request_id, "test-worker", outcome) == "ready"
    with pytest.raises(box.router.Router_ServiceEnded) as refused:
        box.router.fulfil(
            event.request.as_tuple(), bytes.fromhex(outcome["digest"][2:]), cid.to_bytes(), sender=operator
        )
    assert refused.value.inputs == {"modelId": ended["voice"].model_id, "serviceEndsAt": ended["ends"]}

    submitter = Submitter(
        settings,
        ledger,
        client,
        TxSender(client.rpc, services.key, ledger, settings, services.chain_id),
        requeue=lambda *_: None,
    )
    credit_before = box.credit(ended["buyer"])
    deadline = time.monotonic() + 30
    while _failure(client, ended["first_block"], request_id) is None and time.monotonic() < deadline:
        time.sleep(min(submitter.step(), 0.2))
    args = _failure(client, ended["first_block"], request_id)
    assert args is not None, "the submitter never reported the failure"
    assert FailReason(args["reason"]) == FailReason.MODEL_UNAVAILABLE
    assert box.router.requestStatus(request_id) == RequestStatus.FAILED
    assert box.credit(ended["buyer"]) - credit_before == OPERATOR_FEE
    wait_for(
        lambda: (submitter.step(), ledger.request(request_id).get("state") == "done")[1],
        20,
        "the ledger to close the request",
    )


def test_the_oracle_fails_requests_for_an_ended_service_without_synthesising(ended, chain, redis_server, tmp_path):
    box = ended["box"]
    # Ape's test isolation may have undone the previous test's failure: whatever is pending gets failed.
    pending = [r for r in ended["ids"] if box.router.requestStatus(r) == RequestStatus.PENDING]
    assert ended["ids"][1] in pending
    client = RouterClient.connect(chain.provider.uri, box.router.address)
    env = box.oracle_env(
        rpc_url=chain.provider.uri,
        redis_url=redis_server.url,
        operator_index=OPERATOR_INDEX,
        voices=[ended["voice"]],
        work_dir=tmp_path,
        start_block=ended["first_block"],
    )
    oracle = Oracle(box, env, tmp_path / "logs")
    credit_before = box.credit(ended["buyer"])
    try:
        oracle.start_coordinator()
        oracle.start_worker()
        wait_for(
            lambda: all(_failure(client, ended["first_block"], r) is not None for r in pending),
            60,
            "the oracle to fail the requests",
            oracle,
        )
        log = [json.loads(line) for line in oracle.workers[0].log_path.read_text().splitlines() if line.startswith("{")]
        for request_id in pending:
            assert (
                FailReason(_failure(client, ended["first_block"], request_id)["reason"]) == FailReason.MODEL_UNAVAILABLE
            )
            refused = [e for e in log if e.get("event") == "request cannot be served" and e["request_id"] == request_id]
            assert refused and "was retired and its service ended" in refused[0]["detail"], refused
        assert not any(e.get("event") == "voice loaded" for e in log)  # nothing was synthesised
    finally:
        oracle.stop()
    assert all(box.router.requestStatus(r) == RequestStatus.FAILED for r in pending)
    assert box.credit(ended["buyer"]) - credit_before == len(pending) * OPERATOR_FEE

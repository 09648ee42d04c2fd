"""The Redis ledger's atomic steps (a real redis-server): claims, outcomes, nonce reservations."""

from __future__ import annotations

import time

import pytest
import redis

from oracle.ledger import Ledger


@pytest.fixture
def ledger(redis_server) -> Ledger:
    return Ledger(redis.Redis.from_url(redis_server.url), "oracle:test")


def test_one_worker_at_a_time_and_a_duplicate_finds_the_work_done(ledger):
    assert ledger.mark_queued(7, block=100)
    assert not ledger.mark_queued(7, block=100)  # the listener's overlap: nothing changes
    assert ledger.claim(7, "w1", lease_s=5) == "claimed"
    assert ledger.claim(7, "w2", lease_s=5) == "locked"
    assert ledger.record_outcome(7, "w1", {"kind": "fulfil"}) == "ready"
    assert ledger.claim(7, "w2", lease_s=5) == "ready"  # a redelivered message: nothing to do
    assert [rid for rid, _ in ledger.ready(10)] == [7]


def test_a_dead_workers_claim_lapses_and_its_late_outcome_is_refused(ledger):
    assert ledger.claim(8, "dead", lease_s=0.2, block=5) == "claimed"
    time.sleep(0.3)
    assert ledger.stale_queued(older_than_s=0.1) == [8]  # the sweeper would queue it again
    assert ledger.claim(8, "alive", lease_s=5) == "claimed"
    assert ledger.record_outcome(8, "dead", {"kind": "fulfil"}) == "lost"
    assert ledger.record_outcome(8, "alive", {"kind": "fulfil"}) == "ready"


def test_a_transient_fault_gives_the_request_back(ledger):
    assert ledger.claim(9, "w1", lease_s=5) == "claimed"
    assert ledger.release(9, "w1")
    assert ledger.request(9)["state"] == "queued"
    assert ledger.claim(9, "w2", lease_s=5) == "claimed"


def test_a_nonce_is_reserved_once_and_only_with_ready_requests(ledger):
    for request_id in (1, 2):
        ledger.claim(request_id, "w", lease_s=5)
        ledger.record_outcome(request_id, "w", {"kind": "fulfil"})
    tx = {"hash": "0x01", "raw": "0x02"}
    assert ledger.begin_submission(5, 3, "fulfil", [1], tx)[0] == "nonce"  # the node says 3 is next
    verdict, sub_id = ledger.begin_submission(3, 3, "fulfil", [1], tx)
    assert verdict == "ok" and ledger.next_nonce() == 4
    assert ledger.begin_submission(4, 3, "fulfil", [1, 2], tx) == ("state", "1")  # 1 is taken
    assert ledger.begin_submission(3, 3, "fulfil", [2], tx) == ("nonce", "4")  # 3 is taken
    (sub,) = ledger.submissions()
    assert (sub.id, sub.nonce, sub.request_ids, sub.hashes) == (sub_id, 3, [1], ["0x01"])
    ledger.requeue_submission(sub)  # its nonce went to someone else: request 1 is ready again
    assert sorted(rid for rid, _ in ledger.ready(10)) == [1, 2]
    assert ledger.begin_submission(4, 4, "fulfil", [1, 2], tx)[0] == "ok"


def test_finished_requests_are_counted_and_leave_the_open_set(ledger):
    ledger.mark_queued(3, block=1)
    ledger.finish(3, "failed:BAD_INPUT")
    assert ledger.open_requests() == []
    assert ledger.stats() == {"failed": 1, "failed:BAD_INPUT": 1}
    assert not ledger.finish(3, "failed:BAD_INPUT")  # once only

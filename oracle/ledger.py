"""The oracle's shared memory in Redis: what happened to each request, and every transaction sent.

One Redis serves every process and machine of one operator (several operators may share it:
keys live under a namespace per chain, router and operator). All multi-key changes are Lua
scripts, so they are atomic even with many workers and a restarted submitter.

A request moves through these states (``req:<id>`` hash, field ``state``)::

    queued ──claim──> working ──record_outcome──> ready ──begin_submission──> submitting ──finish──> done
       ^                 │ release (transient fault)                              │ requeue (tx lost to
       └─────────────────┘                                                        v  a foreign nonce / revert)
                                                                                ready

``ready`` holds the outcome (a fulfilment: output digest and CID; or a failure reason) and the
full on-chain request, so that the submitter needs nothing else. ``submitting`` names the
submission (one nonce, one or more signed transactions with that nonce: the original and its
fee-bumped replacements). A submission record with its raw signed transactions is written
*before* anything is broadcast: after a crash the same bytes are broadcast again, and a
request can only be in a new submission once the old one's nonce was taken by a transaction
that is not one of ours (so none of ours can ever be mined). That is what makes fulfilment
at most once, even across crashes; the chain's `Router_WrongStatus` makes it exactly once.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import redis

STATES = ("queued", "working", "ready", "submitting", "done")
DONE_TTL_S = 7 * 86_400  # finished requests are remembered this long (the chain remembers for ever)

_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'ready' or state == 'submitting' or state == 'done' then return state end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'locked' end
redis.call('HSET', KEYS[1], 'state', 'working', 'updated_at', ARGV[3], 'worker', ARGV[1])
if not state then
  redis.call('HSET', KEYS[1], 'seen_at', ARGV[3], 'block', ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
end
return 'claimed'
"""

_HEARTBEAT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('HGET', KEYS[1], 'state') == 'working' and redis.call('HGET', KEYS[1], 'worker') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'queued', 'updated_at', ARGV[2])
  return 1
end
return 0
"""

# Accept an outcome from the lock's owner, or from a worker whose lease lapsed while nobody took over.
_RECORD = """
local owner = redis.call('GET', KEYS[2])
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'working' then return state or 'unknown' end
if owner and owner ~= ARGV[1] then return 'lost' end
redis.call('HSET', KEYS[1], 'state', 'ready', 'outcome', ARGV[2], 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('DEL', KEYS[2])
redis.call('LPUSH', KEYS[4], ARGV[4])
redis.call('LTRIM', KEYS[4], 0, 999)
return 'ready'
"""

_FINISH = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[1], 'updated_at', ARGV[2])
redis.call('HDEL', KEYS[1], 'outcome', 'sub', 'worker')
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[4])
redis.call('ZREM', KEYS[3], ARGV[4])
redis.call('DEL', KEYS[5])
redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
if ARGV[6] ~= ARGV[5] then redis.call('HINCRBY', KEYS[4], ARGV[6], 1) end
return 1
"""

# KEYS: nonce counter, subs zset, sub hash, ready zset, then req hashes. ARGV: nonce, chain pending count,
# sub id, sub json fields..., then request ids. Reserves `nonce` if it is the next one and moves the
# requests (all of them must be ready) into the submission.
_BEGIN = """
local counter = tonumber(redis.call('GET', KEYS[1]) or '0')
local chain = tonumber(ARGV[2])
local expected = math.max(counter, chain)
if tonumber(ARGV[1]) ~= expected then return {'nonce', tostring(expected)} end
local n = tonumber(ARGV[7])
for i = 1, n do
  if redis.call('HGET', KEYS[4 + i], 'state') ~= 'ready' then return {'state', ARGV[7 + i]} end
end
redis.call('SET', KEYS[1], expected + 1)
redis.call('HSET', KEYS[3], 'nonce', ARGV[1], 'kind', ARGV[4], 'ids', ARGV[5], 'txs', ARGV[6],
           'state', 'sent', 'created_at', ARGV[8 + n], 'sent_at', ARGV[8 + n])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
for i = 1, n do
  redis.call('HSET', KEYS[4 + i], 'state', 'submitting', 'sub', ARGV[3], 'updated_at', ARGV[8 + n])
  redis.call('ZREM', KEYS[4], ARGV[7 + i])
end
return {'ok', ARGV[1]}
"""

_ADD_TX = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local txs = cjson.decode(redis.call('HGET', KEYS[1], 'txs'))
table.insert(txs, cjson.decode(ARGV[1]))
redis.call('HSET', KEYS[1], 'txs', cjson.encode(txs), 'sent_at', ARGV[2], 'state', 'sent')
return 1
"""

# Back to ready: the submission's nonce went to a transaction that is not ours, or its transaction reverted.
_REQUEUE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local key = KEYS[3 + i]
  if redis.call('HGET', key, 'state') == 'submitting' and redis.call('HGET', key, 'sub') == ARGV[2] then
    redis.call('HSET', key, 'state', 'ready', 'updated_at', ARGV[3])
    redis.call('HDEL', key, 'sub')
    redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3 + i])
  end
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""


_RESET_NONCE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"""


@dataclass
class Submission:
    """One nonce's worth of work: the requests it carries and every transaction signed for it."""

    id: str
    nonce: int
    kind: str  # "fulfil" (fulfilBatch) or "fail"
    request_ids: list[int]
    txs: list[dict[str, Any]]  # {"hash", "raw", "max_fee", "tip", "gas"}, oldest first
    state: str  # "sent" or "mined"
    created_at: float
    sent_at: float
    mined: dict[str, Any] = field(default_factory=dict)  # {"tx", "block", "block_hash", "status"}

    @property
    def hashes(self) -> list[str]:
        return [tx["hash"] for tx in self.txs]


class Ledger:
    """Request states, outcomes, submissions, nonces, checkpoints and counters for one operator."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.redis = client
        self.ns = namespace
        self._claim = client.register_script(_CLAIM)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._release = client.register_script(_RELEASE)
        self._record = client.register_script(_RECORD)
        self._finish = client.register_script(_FINISH)
        self._begin = client.register_script(_BEGIN)
        self._add_tx = client.register_script(_ADD_TX)
        self._requeue = client.register_script(_REQUEUE)
        self._reset_nonce = client.register_script(_RESET_NONCE)

    # ------------------------------------------------------------ keys
    def key(self, *parts: object) -> str:
        return ":".join([self.ns, *map(str, parts)])

    def _req(self, request_id: int) -> str:
        return self.key("req", request_id)

    def _lock(self, request_id: int) -> str:
        return self.key("lock", request_id)

    @property
    def signal_key(self) -> str:
        return self.key("signal")

    # ------------------------------------------------------------ requests
    def request(self, request_id: int) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.redis.hgetall(self._req(request_id)).items()}

    def known(self, request_id: int) -> bool:
        return bool(self.redis.exists(self._req(request_id)))

    def mark_queued(self, request_id: int, block: int, commitment: int | None = None) -> bool:
        """Note a request the listener queued; False if it was already known (nothing changed).

        ``commitment``: the request's on-chain commitment, kept so that a request id re-used after a
        deep reorg is told apart from the request the oracle served under it."""
        now = time.time()
        pipe = self.redis.pipeline()
        pipe.hsetnx(self._req(request_id), "state", "queued")
        pipe.hsetnx(self._req(request_id), "block", block)
        if commitment is not None:
            pipe.hsetnx(self._req(request_id), "commitment", hex(commitment))
        pipe.hsetnx(self._req(request_id), "seen_at", now)
        pipe.hsetnx(self._req(request_id), "updated_at", now)
        pipe.zadd(self.key("open"), {str(request_id): now}, nx=True)
        return bool(pipe.execute()[0])

    def touch(self, request_id: int) -> None:
        self.redis.hset(self._req(request_id), "updated_at", time.time())

    def claim(self, request_id: int, worker: str, lease_s: float, block: int = 0) -> str:
        """Take a request to work on: 'claimed', 'locked' (someone else is on it), or its state
        ('ready', 'submitting', 'done') when there is nothing left to do."""
        return self._claim(
            keys=[self._req(request_id), self._lock(request_id), self.key("open")],
            args=[worker, int(lease_s * 1000), time.time(), block, request_id],
        ).decode()

    def heartbeat(self, request_id: int, worker: str, lease_s: float) -> bool:
        return bool(self._heartbeat(keys=[self._lock(request_id)], args=[worker, int(lease_s * 1000)]))

    def release(self, request_id: int, worker: str) -> bool:
        """Give a claimed request back (a transient fault): it is queued again for a retry."""
        return bool(self._release(keys=[self._req(request_id), self._lock(request_id)], args=[worker, time.time()]))

    def record_outcome(self, request_id: int, worker: str, outcome: dict[str, Any]) -> str:
        """Store a worker's outcome and hand the request to the submitter: 'ready', or why not."""
        return self._record(
            keys=[self._req(request_id), self._lock(request_id), self.key("ready"), self.signal_key],
            args=[worker, json.dumps(outcome, separators=(",", ":")), time.time(), request_id],
        ).decode()

    def finish(self, request_id: int, result: str) -> bool:
        """The request is over (fulfilled, failed, expired, ...); remembered for DONE_TTL_S."""
        counter = result.split(":", 1)[0]
        return bool(
            self._finish(
                keys=[
                    self._req(request_id),
                    self.key("open"),
                    self.key("ready"),
                    self.key("stats"),
                    self._lock(request_id),
                ],
                args=[result, time.time(), DONE_TTL_S, request_id, counter, result],
            )
        )

    def back_to_queue(self, request_id: int) -> None:
        """The request changed on-chain under its outcome (a reorg reused its id): serve it afresh."""
        pipe = self.redis.pipeline()
        pipe.hset(self._req(request_id), mapping={"state": "queued", "updated_at": time.time()})
        pipe.hdel(self._req(request_id), "outcome", "sub", "attempts:store", "attempts:synthesis")
        pipe.zrem(self.key("ready"), request_id)
        pipe.execute()

    def forget(self, request_id: int) -> None:
        """The request vanished from the chain (a reorg): if it comes back, it is new."""
        pipe = self.redis.pipeline()
        pipe.delete(self._req(request_id), self._lock(request_id))
        pipe.zrem(self.key("open"), request_id)
        pipe.zrem(self.key("ready"), request_id)
        pipe.execute()

    def bump_attempts(self, request_id: int, what: str) -> int:
        """Count another failed attempt at ``what`` for a request (kept across workers and retries)."""
        return int(self.redis.hincrby(self._req(request_id), f"attempts:{what}", 1))

    def states(self, request_ids: list[int]) -> dict[int, tuple[str | None, int | None]]:
        """(state, commitment) of each request the ledger knows, (None, None) otherwise; one round trip."""
        pipe = self.redis.pipeline()
        for request_id in request_ids:
            pipe.hmget(self._req(request_id), "state", "commitment")
        out = {}
        for request_id, (state, commitment) in zip(request_ids, pipe.execute(), strict=True):
            out[request_id] = (
                state.decode() if state is not None else None,
                int(commitment, 16) if commitment is not None else None,
            )
        return out

    def oldest_open_block(self) -> int | None:
        """The lowest block of a request not yet finished (None if there is none)."""
        ids = self.open_requests()
        if not ids:
            return None
        pipe = self.redis.pipeline()
        for request_id in ids:
            pipe.hget(self._req(request_id), "block")
        blocks = [int(b) for b in pipe.execute() if b is not None and int(b) > 0]
        return min(blocks) if blocks else None

    def open_count(self) -> int:
        """Requests not yet finished (queued, being served, ready or being submitted)."""
        return int(self.redis.zcard(self.key("open")))

    def open_requests(self) -> list[int]:
        return [int(x) for x in self.redis.zrange(self.key("open"), 0, -1)]

    def stale_queued(self, older_than_s: float) -> list[int]:
        """Queued or working requests untouched for ``older_than_s`` whose worker lease lapsed."""
        cutoff = time.time() - older_than_s
        stale = []
        for request_id in self.open_requests():
            record = self.request(request_id)
            if record.get("state") in ("queued", "working") and float(record.get("updated_at", 0)) < cutoff:
                if not self.redis.exists(self._lock(request_id)):
                    stale.append(request_id)
        return stale

    def ready(self, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Up to ``limit`` outcomes waiting for the submitter, oldest first."""
        ids = [int(x) for x in self.redis.zrange(self.key("ready"), 0, limit - 1)]
        if not ids:
            return []
        pipe = self.redis.pipeline()
        for request_id in ids:
            pipe.hget(self._req(request_id), "outcome")
        out = []
        for request_id, raw in zip(ids, pipe.execute(), strict=False):
            if raw is None:  # finished meanwhile
                self.redis.zrem(self.key("ready"), request_id)
                continue
            out.append((request_id, json.loads(raw)))
        return out

    def oldest_ready_age(self) -> float:
        """Seconds the oldest ready outcome has waited for the submitter (0 if none)."""
        oldest = self.redis.zrange(self.key("ready"), 0, 0, withscores=True)
        return max(0.0, time.time() - oldest[0][1]) if oldest else 0.0

    def ready_count(self) -> int:
        return int(self.redis.zcard(self.key("ready")))

    def wait_for_ready(self, timeout_s: float) -> None:
        """Block until a worker signals a new outcome, or ``timeout_s``."""
        if timeout_s <= 0:
            return
        if self.redis.blpop([self.signal_key], timeout=max(timeout_s, 0.01)) is not None:
            self.redis.delete(self.signal_key)  # one wake-up covers every outcome signalled so far

    # ------------------------------------------------------------ submissions and nonces
    def next_nonce(self) -> int:
        return int(self.redis.get(self.key("nonce")) or 0)

    def begin_submission(
        self, nonce: int, chain_pending: int, kind: str, request_ids: list[int], tx: dict[str, Any]
    ) -> tuple[str, str]:
        """Atomically reserve ``nonce`` and record the signed ``tx`` carrying ``request_ids``.

        Returns ('ok', sub_id), ('nonce', expected) if ``nonce`` is not the next free one (sign
        again with the expected nonce), or ('state', request_id) if a request is no longer ready.
        Nothing is broadcast before this returns 'ok'.
        """
        sub_id = secrets.token_hex(8)
        keys = [self.key("nonce"), self.key("subs"), self.key("sub", sub_id), self.key("ready")]
        keys += [self._req(r) for r in request_ids]
        args = [
            nonce,
            chain_pending,
            sub_id,
            kind,
            json.dumps(request_ids),
            json.dumps([tx]),
            len(request_ids),
            *request_ids,
            time.time(),
        ]
        verdict, value = (v.decode() for v in self._begin(keys=keys, args=args))
        return (verdict, sub_id if verdict == "ok" else value)

    def reset_nonce(self, expected: int, nonce: int) -> bool:
        """Set the nonce counter to ``nonce`` if it still holds ``expected`` (a resync, oracle.transactions)."""
        return bool(self._reset_nonce(keys=[self.key("nonce")], args=[expected, nonce]))

    def add_tx(self, sub_id: str, tx: dict[str, Any]) -> bool:
        """Record a replacement (same nonce, higher fee) before it is broadcast."""
        return bool(self._add_tx(keys=[self.key("sub", sub_id)], args=[json.dumps(tx), time.time()]))

    def touch_submission(self, sub_id: str) -> None:
        """Restart a submission's stuck timer (it was broadcast again unchanged)."""
        self.redis.hset(self.key("sub", sub_id), "sent_at", time.time())

    def mark_mined(self, sub_id: str, mined: dict[str, Any]) -> None:
        self.redis.hset(self.key("sub", sub_id), mapping={"state": "mined", "mined": json.dumps(mined)})

    def mark_unmined(self, sub_id: str) -> None:
        """A reorg removed the block that held the submission's transaction."""
        self.redis.hset(self.key("sub", sub_id), mapping={"state": "sent", "sent_at": time.time()})
        self.redis.hdel(self.key("sub", sub_id), "mined")

    def submissions(self) -> list[Submission]:
        """Every submission not yet final, in nonce order."""
        ids = [x.decode() for x in self.redis.zrange(self.key("subs"), 0, -1)]
        out = []
        for sub_id in ids:
            raw = {k.decode(): v.decode() for k, v in self.redis.hgetall(self.key("sub", sub_id)).items()}
            if not raw:
                self.redis.zrem(self.key("subs"), sub_id)
                continue
            out.append(
                Submission(
                    id=sub_id,
                    nonce=int(raw["nonce"]),
                    kind=raw["kind"],
                    request_ids=json.loads(raw["ids"]),
                    txs=json.loads(raw["txs"]),
                    state=raw["state"],
                    created_at=float(raw["created_at"]),
                    sent_at=float(raw["sent_at"]),
                    mined=json.loads(raw.get("mined", "{}")),
                )
            )
        return out

    def requeue_submission(self, sub: Submission) -> None:
        """Its transactions can never be mined (foreign nonce) or reverted: its requests are ready again."""
        keys = [self.key("sub", sub.id), self.key("subs"), self.key("ready")] + [self._req(r) for r in sub.request_ids]
        self._requeue(keys=keys, args=[len(sub.request_ids), sub.id, time.time(), *sub.request_ids])
        self.redis.lpush(self.signal_key, "requeue")

    def close_submission(self, sub: Submission, results: dict[int, str]) -> None:
        """Final: each request gets its result, the record goes."""
        for request_id, result in results.items():
            self.finish(request_id, result)
        pipe = self.redis.pipeline()
        pipe.delete(self.key("sub", sub.id))
        pipe.zrem(self.key("subs"), sub.id)
        pipe.hincrby(self.key("stats"), "transactions", 1)
        pipe.execute()

    # ------------------------------------------------------------ listener checkpoint
    def checkpoint(self) -> tuple[int, str] | None:
        raw = self.redis.hgetall(self.key("checkpoint"))
        if not raw:
            return None
        return int(raw[b"block"]), raw[b"hash"].decode()

    def save_checkpoint(self, block: int, block_hash: str) -> None:
        self.redis.hset(self.key("checkpoint"), mapping={"block": block, "hash": block_hash, "at": time.time()})

    # ------------------------------------------------------------ the epoch marker (oracle.recovery)
    def epoch(self) -> str | None:
        value = self.redis.get(self.key("epoch"))
        return value.decode() if value is not None else None

    def init_epoch(self, value: str) -> str:
        """Give Redis its epoch marker unless it has one; the marker it holds now."""
        self.redis.set(self.key("epoch"), value, nx=True)
        return self.epoch() or value

    # ------------------------------------------------------------ counters
    def count(self, name: str, amount: int = 1) -> None:
        self.redis.hincrby(self.key("stats"), name, amount)

    def set_stat(self, name: str, value: int) -> None:
        self.redis.hset(self.key("stats"), name, value)

    def stats(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(self.key("stats")).items()}

    def state_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES[:-1], 0)
        ids = self.open_requests()
        pipe = self.redis.pipeline()
        for request_id in ids:
            pipe.hget(self._req(request_id), "state")
        for state in pipe.execute():
            if state is not None:
                counts[state.decode()] = counts.get(state.decode(), 0) + 1
        return counts


def namespace_for(chain_id: int, router: str, operator: str) -> str:
    return f"oracle:{chain_id}:{router.lower()}:{operator.lower()}"

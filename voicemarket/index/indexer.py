"""The indexer: ``python -m voicemarket.index run``, one writer per database.

Each :meth:`Indexer.step` reads the next range of blocks (at most ``batch_blocks``, never past
``head - confirmations``): the four contracts' logs in one ``eth_getLogs`` and the range's last
block in the same round trip; it applies them (:class:`~voicemarket.index.projection.Batch`)
and moves the checkpoint (``index_state.next_block``) in **one transaction**. So:

- **resumable and idempotent**: killed at any point, it restarts at the checkpoint, and a
  batch is in the tables whole or not at all — no gap, no duplicate;
- **reorg-safe**: the hashes of recent indexed blocks are kept (``blocks``); before each batch
  the last one is compared with the chain's. If the chain replaced it (a reorg deeper than
  ``confirmations``), the newest block both still agree on is found and everything after it is
  rewound (:func:`~voicemarket.index.projection.rewind`: the journal's images applied back, the
  rows those blocks made deleted), then indexing goes on from there. Changes are journaled for
  the last ``reorg_depth`` blocks; a deeper reorg stops the indexer with
  :class:`~voicemarket.errors.ReorgTooDeep` (rebuild with ``reset``).

Between batches it fetches the metadata of new models from the store
(:mod:`voicemarket.index.metadata`); a failure is recorded on the document and retried later.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
from eth_abi import decode as abi_decode
from sqlalchemy import Engine, bindparam, select, update

from voicemarket.errors import IndexingError, ReorgTooDeep, ServiceSettingsError
from voicemarket.index import db, schema
from voicemarket.index.chain import Contracts, Event, JsonRpc, LogDecoder, to_int
from voicemarket.index.metadata import fetch_metadata, next_attempt
from voicemarket.index.projection import Batch, rewind
from voicemarket.index.settings import IndexSettings
from voicemarket.protocol import ETH

log = logging.getLogger("voicemarket.index")

TARGET_EVENTS = 5_000
"""A batch that returned more logs than this halves the next batch's block range."""

METADATA_FETCHES = 8
"""Metadata documents fetched at once (each round is ``metadata_batch`` documents, then one transaction)."""

LIMIT_WORDS = ("more than", "too many", "limit", "exceed", "too large", "range")
"""Words of the errors nodes give for an ``eth_getLogs`` over too many logs or blocks (geth,
Erigon, Infura, Alchemy, QuickNode...): the range is halved and asked again."""


def _token_symbol(answer: str | None) -> str | None:
    """An ERC-20 ``symbol()`` answer (an ABI string, or bytes32 for old tokens), printable, or None."""
    if not answer or answer == "0x":
        return None
    data = bytes.fromhex(answer[2:])
    try:
        (text,) = abi_decode(["string"], data)
    except Exception:  # noqa: BLE001 - eth_abi raises several kinds for data that is no string
        text = data[:32].rstrip(b"\0").decode("utf-8", "replace")
    text = "".join(ch for ch in text if ch.isprintable())[:32]
    return text or None


@dataclasses.dataclass
class StepResult:
    from_block: int
    to_block: int
    events: int
    rewound_to: int | None = None
    caught_up: bool = True


class Indexer:
    """Follows one deployment into one database (see the module docstring)."""

    def __init__(
        self,
        settings: IndexSettings,
        *,
        engine: Engine | None = None,
        contracts: Contracts | None = None,
        store: Any = None,
    ) -> None:
        if contracts is None:
            if settings.deployment is None:
                raise ServiceSettingsError(
                    "the indexer needs the deployment: --deployment .voicemarket/deployments/<network>.json "
                    "(written by `ape run deploy`)"
                )
            contracts = Contracts.from_deployment_file(settings.deployment)
        self.settings = settings
        self.contracts = contracts
        self.engine = engine or db.open_engine(settings.db)
        self.rpc = JsonRpc(settings.rpc_url)
        # logs are read by one thread of their own, a range ahead while the batch before is written
        self.reader = JsonRpc(settings.rpc_url)
        self._reader_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-reader")
        self._ahead: tuple[int, Future] | None = None
        # metadata documents are fetched a few at a time (a remote store answers slowly, not busily)
        self._metadata_pool = ThreadPoolExecutor(max_workers=METADATA_FETCHES, thread_name_prefix="index-metadata")
        self.decoder = LogDecoder(contracts, settings.abi_manifest)
        if store is None and settings.store:
            from voicemarket.content.store import store_from_spec

            try:
                store = store_from_spec(settings.store)
            except ValueError as exc:
                raise ServiceSettingsError(str(exc)) from None
        self.store = store
        self.next_block = contracts.start_block
        self.unjournaled_until = -1
        # blocks read in the next batch: from 1, doubled while batches are light, halved when heavy,
        # so that a busy stretch of chain never arrives as one huge eth_getLogs answer
        self.span = 1

    # ------------------------------------------------------------ start
    def prepare(self) -> None:
        """Create or upgrade the tables; check that the database indexes this deployment."""
        db.migrate(self.engine)
        chain_id = to_int(self.rpc.call("eth_chainId"))
        if chain_id != self.contracts.chain_id:
            raise ServiceSettingsError(
                f"the node at {self.settings.rpc_url} is chain {chain_id}, but the deployment is on chain "
                f"{self.contracts.chain_id}: point --rpc-url at the deployment's network"
            )
        identity = {"chain_id": str(chain_id), **{k: v.lower() for k, v in self.contracts.by_role().items()}}
        with self.engine.begin() as connection:
            state = db.read_state(connection)
            recorded = {k: state[k] for k in identity if k in state}
            if recorded and recorded != identity:
                raise ServiceSettingsError(
                    f"the database {self.settings.db} indexes another deployment ({recorded}); use another --db, "
                    "or `python -m voicemarket.index reset` it"
                )
            if not recorded:
                db.write_state(connection, **identity, next_block=self.contracts.start_block, unjournaled_until=-1)
                connection.execute(schema.assets.insert().values(address=ETH, symbol="ETH", decimals=18))
                state = db.read_state(connection)
        self.next_block = int(state["next_block"])
        self.unjournaled_until = int(state["unjournaled_until"])

    # ------------------------------------------------------------ one batch
    def step(self) -> StepResult | None:
        """Check for a reorg, then index the next range of confirmed blocks. None when caught up."""
        head = to_int(self.rpc.call("eth_blockNumber"))
        rewound = self._check_reorg()
        safe = head - self.settings.confirmations
        if self.next_block > safe:
            return StepResult(self.next_block, self.next_block - 1, 0, rewound) if rewound is not None else None
        first = self.next_block
        events, last, header = self._take_read(first, safe)
        # keep batches near TARGET_EVENTS logs: bounded memory and transactions on busy chains
        if len(events) > TARGET_EVENTS and self.span > 1:
            self.span = max(1, self.span // 2)
        elif len(events) < TARGET_EVENTS // 4:
            self.span = min(self.settings.batch_blocks, self.span * 2)
        self.span = min(self.span, max(1, 2 * (last - first + 1)))  # a range the node cut: stay near it
        if last < safe:  # still behind: read the next range while this one is written
            ahead = last + 1
            self._ahead = (ahead, self._reader_pool.submit(self._read, ahead, min(safe, ahead + self.span - 1)))
        new_assets = self._new_assets(events, last)
        hashes = {event.block: event.block_hash for event in events}
        if hashes.get(last, header["hash"]) != header["hash"]:
            raise IndexingError(f"block {last} changed while it was read (a reorg under way); trying again")
        hashes[last] = header["hash"]
        journal_from = head - self.settings.reorg_depth + 1
        with self.engine.begin() as connection:
            batch = Batch(
                connection,
                chain_id=self.contracts.chain_id,
                registry=self.contracts.registry,
                journal_from=journal_from,
            )
            batch.prefetch_for(events)
            for event in events:
                batch.apply(event)
            batch.flush()
            if new_assets:
                connection.execute(schema.assets.insert(), new_assets)
            connection.execute(schema.blocks.insert(), [{"number": n, "hash": h} for n, h in sorted(hashes.items())])
            keep_from = min(journal_from, last) - 1
            connection.execute(schema.blocks.delete().where(schema.blocks.c.number < keep_from))
            connection.execute(schema.journal.delete().where(schema.journal.c.block < journal_from))
            unjournaled = max(self.unjournaled_until, batch.unjournaled_until)
            db.write_state(connection, next_block=last + 1, unjournaled_until=unjournaled)
            if self.settings.pause_before_commit_s:
                log.info("batch written, committing", extra={"from_block": first, "to_block": last})
                time.sleep(self.settings.pause_before_commit_s)
        self.next_block, self.unjournaled_until = last + 1, unjournaled
        log.info("indexed", extra={"from_block": first, "to_block": last, "events": len(events)})
        return StepResult(first, last, len(events), rewound, caught_up=last >= safe)

    def _take_read(self, first: int, safe: int) -> tuple[list[Event], int, dict[str, Any]]:
        """The range from ``first`` read ahead during the last batch, or read now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            start, future = ahead
            try:
                events, last, header = future.result()
                if start == first and last <= safe:
                    return events, last, header
            except (httpx.HTTPError, IndexingError, OSError) as exc:  # read again below, and fail here if it fails
                log.info("reading ahead failed; reading again", extra={"error": f"{type(exc).__name__}: {exc}"})
        return self._read(first, min(safe, first + self.span - 1))

    def _read(self, first: int, last: int) -> tuple[list[Event], int, dict[str, Any]]:
        """The decoded events of blocks ``first``..``last`` (or fewer blocks, when the node refuses so
        many logs or the stretch is dense), the last block read and its header. Runs in the reader
        thread while the batch before is written, so it touches no indexer state."""
        while True:
            try:
                raw_logs, header = self.reader.batch(
                    [
                        ("eth_getLogs", [self.decoder.logs_filter(first, last)]),
                        ("eth_getBlockByNumber", [hex(last), False]),
                    ]
                )
            except IndexingError as exc:
                # nodes limit an eth_getLogs answer (results, bytes or blocks): ask for half the range
                if last > first and any(w in str(exc).lower() for w in LIMIT_WORDS):
                    last = first + (last - first) // 2
                    continue
                raise
            break
        if header is None:
            raise IndexingError(f"the node has no block {last} although it answered for it")
        if len(raw_logs) > 2 * TARGET_EVENTS:  # a dense stretch: apply whole blocks up to about TARGET_EVENTS logs
            cut = to_int(raw_logs[TARGET_EVENTS]["blockNumber"])
            if cut > first:
                last = cut - 1
                raw_logs = [raw for raw in raw_logs if to_int(raw["blockNumber"]) <= last]
                header = self.reader.call("eth_getBlockByNumber", hex(last), False)
        events = [event for raw in raw_logs if (event := self.decoder.decode(raw)) is not None]
        del raw_logs
        return self._with_timestamps(events), last, header

    def _new_assets(self, events: list[Event], block: int) -> list[dict[str, Any]]:
        """Symbol and decimals of the ERC-20s that new offers name and the index does not know yet."""
        named = {e.args["terms"]["asset"] for e in events if e.name == "OfferPublished"}
        if not named:
            return []
        with self.engine.connect() as connection:
            known = set(connection.execute(select(schema.assets.c.address)).scalars())
        missing = sorted(named - known)
        calls = []
        for address in missing:
            for selector in ("0x95d89b41", "0x313ce567"):  # symbol(), decimals()
                calls.append(("eth_call", [{"to": address, "data": selector}, hex(block)]))
        try:
            answers = self.rpc.batch(calls)
        except IndexingError:  # a token that reverts: one by one below would say the same; name it by address
            answers = [None] * len(calls)
        out = []
        for i, address in enumerate(missing):
            symbol, decimals = _token_symbol(answers[2 * i]), answers[2 * i + 1]
            out.append(
                {
                    "address": address,
                    "symbol": symbol or address[:10],
                    "decimals": to_int(decimals) if decimals and len(decimals) == 66 and to_int(decimals) < 78 else 0,
                }
            )
        return out

    def _with_timestamps(self, events: list[Event]) -> list[Event]:
        """Events with their block's timestamp (read from the headers when the node's logs lack it)."""
        missing = sorted({e.block for e in events if e.timestamp is None})
        if not missing:
            return events
        headers = self.reader.batch([("eth_getBlockByNumber", [hex(n), False]) for n in missing])
        times = {n: to_int(h["timestamp"]) for n, h in zip(missing, headers, strict=True)}
        return [e if e.timestamp is not None else dataclasses.replace(e, timestamp=times[e.block]) for e in events]

    def _check_reorg(self) -> int | None:
        """Rewind if the chain replaced indexed blocks; returns the block rewound to, or None."""
        with self.engine.connect() as connection:
            stored = connection.execute(
                select(schema.blocks.c.number, schema.blocks.c.hash).order_by(schema.blocks.c.number.desc()).limit(1)
            ).first()
        if stored is None or self._chain_hashes([stored.number])[stored.number] == stored.hash:
            return None
        ancestor = self._common_ancestor()
        if ancestor < self.unjournaled_until:
            raise ReorgTooDeep(
                f"the chain replaced blocks down to {ancestor + 1}, but the index kept no journal for blocks up to "
                f"{self.unjournaled_until} (reorg_depth is {self.settings.reorg_depth}): rebuild the index with "
                "`python -m voicemarket.index reset` and run it again"
            )
        with self.engine.begin() as connection:
            deleted = rewind(connection, ancestor)
            db.write_state(connection, next_block=ancestor + 1)
        self.next_block = ancestor + 1
        log.warning(
            "a reorg replaced indexed blocks: rewound",
            extra={"to_block": ancestor, "deleted": {k: v for k, v in deleted.items() if v}},
        )
        return ancestor

    def _chain_hashes(self, numbers: list[int]) -> dict[int, str | None]:
        headers = self.rpc.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return {n: (h or {}).get("hash") for n, h in zip(numbers, headers, strict=True)}

    def _common_ancestor(self) -> int:
        """The newest stored block whose hash the chain still has (walking back in chunks)."""
        with self.engine.connect() as connection:
            stored = connection.execute(
                select(schema.blocks.c.number, schema.blocks.c.hash).order_by(schema.blocks.c.number.desc())
            ).all()
        for start in range(0, len(stored), 64):
            chunk = stored[start : start + 64]
            chain = self._chain_hashes([row.number for row in chunk])
            for row in chunk:
                if chain[row.number] == row.hash:
                    return row.number
        oldest = stored[-1].number if stored else self.contracts.start_block
        if oldest <= self.contracts.start_block:
            return self.contracts.start_block - 1
        raise ReorgTooDeep(
            f"the chain replaced every block the index kept a hash of (down to {oldest}): rebuild the index with "
            "`python -m voicemarket.index reset` and run it again"
        )

    # ------------------------------------------------------------ metadata
    def fetch_metadata(self, now: int | None = None) -> int:
        """Fetch the due metadata documents (new, or failed and due again); returns how many were tried."""
        if self.store is None:
            return 0  # nothing to fetch from: documents stay pending until a store is configured
        now = int(time.time()) if now is None else now
        table = schema.model_metadata
        with self.engine.connect() as connection:
            due = connection.execute(
                select(table.c.cid, table.c.attempts)
                .where(table.c.state != "ok", table.c.next_attempt_at <= now)
                .order_by(table.c.next_attempt_at, table.c.cid)
                .limit(self.settings.metadata_batch)
            ).all()
        fetched_all = self._metadata_pool.map(
            lambda cid: fetch_metadata(self.store, cid, self.settings.metadata_max_bytes), [cid for cid, _ in due]
        )
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # one executemany per set of columns
        for (cid, attempts), fetched in zip(due, fetched_all, strict=True):
            values: dict[str, Any] = {"attempts": attempts + 1}
            if fetched.ok:
                search = " ".join(filter(None, [fetched.name, fetched.description])).lower()
                values.update(
                    state="ok",
                    error=None,
                    next_attempt_at=0,
                    search_text=search,
                    **{
                        k: getattr(fetched, k)
                        for k in ("name", "description", "languages", "preview", "image", "architecture", "version")
                    },
                )
            else:
                values.update(
                    state="error",
                    error=fetched.error,
                    next_attempt_at=next_attempt(
                        now, attempts + 1, self.settings.metadata_retry_s, self.settings.metadata_max_retry_s
                    ),
                )
                log.warning("metadata refused; retried later", extra={"cid": cid, "error": fetched.error})
            by_columns.setdefault(tuple(values), []).append({"k_cid": cid, **values})
        with self.engine.begin() as connection:  # one transaction for the round
            for columns, rows in by_columns.items():
                statement = update(table).where(table.c.cid == bindparam("k_cid"))
                connection.execute(statement.values({c: bindparam(c) for c in columns}), rows)
        return len(due)

    # ------------------------------------------------------------ the loop
    def run(self, stop: threading.Event, on_idle: Callable[[], None] | None = None) -> None:
        """Index until ``stop``: batches back to back while behind, then a poll every ``poll_interval_s``.
        Node outages and transient errors are waited out; errors that need the user end the run."""
        self.prepare()
        delay = self.settings.poll_interval_s
        while not stop.is_set():
            try:
                result = self.step()
                self.fetch_metadata()
                delay = self.settings.poll_interval_s
                if result is not None and not result.caught_up:
                    continue  # still behind: no pause
                if on_idle is not None:
                    on_idle()
            except (ReorgTooDeep, ServiceSettingsError):
                raise
            except (httpx.HTTPError, IndexingError, OSError) as exc:
                log.warning("indexer step failed; retrying", extra={"error": f"{type(exc).__name__}: {exc}"})
                delay = min(max(delay * 2, 1.0), 30.0)
            stop.wait(delay)

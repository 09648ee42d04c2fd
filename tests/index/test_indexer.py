"""The indexer as a real process on the session's anvil: killed in the middle of a batch and
restarted it ends with the same tables as an uninterrupted run; a reorg (anvil's evm_revert, then
other blocks) removes what it should; metadata that fails is retried; and the live stream of the
API server (a real uvicorn process) delivers new activity, filtered by model."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time

import httpx
import pytest

from index_helpers import (
    ETHER,
    LATE_METADATA,
    MUSD,
    ROOT,
    dump_tables,
    index_env,
    index_settings,
    run_once,
)
from voicemarket.content.store import LocalStore
from voicemarket.dev.services import ManagedProcess, free_port
from voicemarket.errors import IndexingError
from voicemarket.index import db
from voicemarket.index.chain import JsonRpc
from voicemarket.index.indexer import Indexer
from voicemarket.index.settings import IndexSettings
from voicemarket.protocol import ETH


def _state(url: str) -> dict[str, str]:
    engine = db.open_engine(url)
    with engine.connect() as connection:
        state = db.read_state(connection)
    engine.dispose()
    return state


def _start(name: str, argv: list[str], env: dict[str, str], tmp_path) -> ManagedProcess:  # noqa: ANN001
    return ManagedProcess(
        [sys.executable, "-m", "voicemarket.index", *argv], log_path=tmp_path / f"{name}.log", env=env, cwd=ROOT
    ).start()


def test_killed_mid_batch_and_restarted_it_leaves_the_same_tables(databases, indexed, small_market, chain, tmp_path):
    """The uninterrupted run is ``indexed``; this one holds each batch's transaction open, is killed
    (SIGKILL) inside its third batch, then runs again to the end."""
    url = databases.new("killed")
    settings = index_settings(small_market, url, chain.provider.uri, batch_blocks=10, pause_before_commit_s=0.4)
    process = _start("killed", ["run"], index_env(**settings), tmp_path)
    try:
        process.wait_until(lambda: process.log_tail(200).count("committing") >= 3, 60, "a third batch")
        process.signal(signal.SIGKILL)
    finally:
        process.stop()
    # two batches committed (a batch reads 1 block, then doubles while light), the third rolled back
    assert int(_state(url)["next_block"]) == small_market.start_block + 1 + 2
    run_once({**settings, "pause_before_commit_s": 0})
    assert dump_tables(url) == dump_tables(indexed)


GETH_LIMIT = "query returned more than 10000 results"


class _NodeWithALimit(JsonRpc):
    """The session's anvil behind a public node's limit on ``eth_getLogs`` (in geth's words): a
    range of more than two blocks is refused."""

    refused = 0

    def batch(self, calls: list) -> list:
        for method, params in calls:
            if method == "eth_getLogs" and int(params[0]["toBlock"], 16) - int(params[0]["fromBlock"], 16) > 1:
                type(self).refused += 1
                raise IndexingError(f"the node refused {method}: {{'code': -32005, 'message': {GETH_LIMIT!r}}}")
        return super().batch(calls)


def test_a_node_that_limits_its_logs_is_asked_for_smaller_ranges(databases, indexed, small_market, chain):
    """A batch whose ``eth_getLogs`` the node refuses is read again as half the range, down to what
    the node serves; the tables end as an unlimited run's."""
    if databases.kind != "sqlite":
        pytest.skip("reading the chain is the same for both databases: checked once")
    url = databases.new("limited")
    settings = IndexSettings.load(None, **index_settings(small_market, url, chain.provider.uri, batch_blocks=64))
    indexer = Indexer(settings)
    indexer.reader = _NodeWithALimit(settings.rpc_url)
    indexer.prepare()
    while (result := indexer.step()) is not None and not result.caught_up:
        pass
    now = int(time.time())
    while indexer.fetch_metadata(now):
        pass
    assert _NodeWithALimit.refused > 0, "no range was refused: the test did not exercise the limit"
    assert dump_tables(url) == dump_tables(indexed)


def test_a_reorg_removes_what_it_should(databases, small_market, accounts, chain):
    d, models, offers = small_market.deployment, small_market.models, small_market.offers
    url = databases.new("reorg")
    settings = index_settings(small_market, url, chain.provider.uri)
    snapshot = chain.snapshot()
    # the branch that will be dropped: a sale, a use, an offer withdrawn, a freeze
    d.licenses.buy(offers["ada-sub"], ETHER // 100, 1, value=ETHER // 100, sender=accounts[6])
    dropped_license = int(d.licenses.nextLicenseId()) - 1
    d.offers.deactivateOffer(offers["mei-buyout"], sender=accounts[2])
    d.registry.freeze(models["mei"], b"\x02" * 32, sender=accounts[0])
    run_once(settings)
    engine = db.open_engine(url)

    def row(sql: str, **params) -> tuple:  # noqa: ANN003
        from sqlalchemy import text

        with engine.connect() as connection:
            return tuple(connection.execute(text(sql), params).first())

    key = small_market.key
    assert row("SELECT holder, offer_id FROM licenses WHERE license_id = :i", i=dropped_license) == (
        accounts[6].address,
        offers["ada-sub"],
    )
    assert row("SELECT active FROM offers WHERE offer_id = :i", i=offers["mei-buyout"]) == (False,)
    assert row("SELECT frozen, licenses_sold FROM models WHERE model_id = :m", m=key("mei")) == (True, 2)

    chain.restore(snapshot)
    # the branch that stays: another sale under the same licence id, and a longer chain
    d.stablecoin.mint(accounts[7], 5 * MUSD, sender=accounts[7])
    d.stablecoin.approve(d.licenses, 5 * MUSD, sender=accounts[7])
    d.licenses.buy(offers["mei-sub"], 5 * MUSD, 1, sender=accounts[7])
    chain.mine(5)
    log = run_once(settings)
    assert "rewound" in log
    assert row("SELECT holder, offer_id FROM licenses WHERE license_id = :i", i=dropped_license) == (
        accounts[7].address,
        offers["mei-sub"],
    )
    assert row("SELECT active FROM offers WHERE offer_id = :i", i=offers["mei-buyout"]) == (True,)
    assert row("SELECT frozen, licenses_sold FROM models WHERE model_id = :m", m=key("mei")) == (False, 3)
    assert row("SELECT licenses_sold FROM models WHERE model_id = :m", m=key("ada")) == (2,)
    engine.dispose()
    fresh = databases.new("reorg_fresh")
    run_once({**settings, "db": fresh})
    assert dump_tables(url) == dump_tables(fresh)


def test_metadata_that_fails_is_retried(small_market, chain, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(small_market.store_root, store)
    url = f"sqlite:///{tmp_path / 'retry.sqlite'}"
    settings = index_settings(small_market, url, chain.provider.uri, store=f"local:{store}", metadata_retry_s=1)
    run_once(settings)
    assert LocalStore(store).put_bytes(LATE_METADATA)  # the document reaches the store
    time.sleep(1.1)
    run_once(settings)
    from sqlalchemy import text

    engine = db.open_engine(url)
    with engine.connect() as connection:
        name, state, attempts = connection.execute(
            text(
                "SELECT md.name, md.state, md.attempts FROM models m JOIN model_metadata md ON md.cid = m.metadata_cid "
                "WHERE m.model_id = :m"
            ),
            {"m": small_market.key("missing")},
        ).first()
        refused = connection.execute(text("SELECT count(*) FROM model_metadata WHERE state = 'error'")).scalar()
    engine.dispose()
    assert (name, state, attempts) == ("Late", "ok", 2)
    assert refused == 3  # not JSON, too large, a list: still refused, tried again later


@pytest.fixture
def live_index(small_market, chain, tmp_path):
    """The indexer running (``run``) and the API served (``serve``) on one SQLite database."""
    url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    settings = index_settings(small_market, url, chain.provider.uri)
    port = free_port()
    indexer = _start("indexer", ["run"], index_env(**settings), tmp_path)
    server = None
    try:
        indexer.wait_until(lambda: "indexed" in indexer.log_tail(50), 60, "the first batch")
        server = _start("server", ["serve", "--port", str(port)], index_env(db=url), tmp_path)
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        server.wait_until(answers, 30, "the API to answer")
        yield base
    finally:
        for process in (server, indexer):
            if process is not None:
                process.stop()


def test_live_updates_stream_new_activity_filtered_by_model(live_index, small_market, accounts):
    d, offers = small_market.deployment, small_market.offers
    assert httpx.get(f"{live_index}/openapi.json").json()["info"]["title"] == "voicemarket index"
    bad = httpx.get(f"{live_index}/events", params={"model": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "model"
    events = []
    with httpx.stream(
        "GET", f"{live_index}/events", params={"model": small_market.key("mei")}, timeout=httpx.Timeout(30)
    ) as stream:
        lines = stream.iter_lines()
        assert next(lines) == ": connected"
        d.licenses.buy(offers["ada-sub"], ETHER // 100, 1, value=ETHER // 100, sender=accounts[7])  # another model
        d.licenses.buy(offers["mei-buyout"], ETHER // 2, 1, value=ETHER // 2, sender=accounts[6])
        license_id = int(d.licenses.nextLicenseId()) - 1
        message: dict[str, str] = {}
        for line in lines:
            if line.startswith(("id:", "event:", "data:")):
                name, _, value = line.partition(": ")
                message[name] = value
            elif not line and "data" in message:
                events.append(message)
                break
    assert events[0]["event"] == "license_purchased"
    data = json.loads(events[0]["data"])
    assert (data["license_id"], data["account"], data["model_id"]) == (
        license_id,
        accounts[6].address,
        small_market.key("mei"),
    )
    assert data["paid"] == str(ETHER // 2) and int(events[0]["id"]) == data["position"]
    assert data["tier"] == "buyout" and data["offer_id"] == offers["mei-buyout"]
    assert ETH  # the ETH offer: paid in wei

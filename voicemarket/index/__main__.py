"""``python -m voicemarket.index run | serve | status | reset``.

``run`` is the indexer (one per database); ``serve`` the read API (as many as you like, on the
same database); ``status`` how far the index is; ``reset`` drops the index's tables (the next
``run`` rebuilds them from the chain). Every option is also a setting (``--config`` TOML file,
``VOICEMARKET_INDEX_<NAME>`` variables; :mod:`voicemarket.index.settings`). An error the user can
fix ends the command with one ``Error:`` line saying what to do, never a traceback.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import time
from typing import Any

import click

from voicemarket.errors import VoicemarketError

STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _Lines(logging.Formatter):
    """``time level message key=value ...``: the record's extra fields after the message."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items() if k not in STANDARD)
        return f"{self.formatTime(record)} {record.levelname.lower()} {record.getMessage()} {extras}".rstrip()


def _logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Lines())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)


def _user_errors(command):  # noqa: ANN001, ANN201
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except VoicemarketError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def _settings(config: str | None, **options: Any):  # noqa: ANN202
    from voicemarket.index.settings import IndexSettings

    return IndexSettings.load(config, **options)


config_option = click.option("--config", type=click.Path(dir_okay=False), help="TOML settings file")
db_option = click.option("--db", help="sqlite:///PATH (default .voicemarket/index.sqlite) or postgresql://...")


@click.group()
def cli() -> None:
    """The market's index: events into SQLite or PostgreSQL, and a read API over them."""


@cli.command()
@config_option
@db_option
@click.option("--rpc-url", help="the node's JSON-RPC URL")
@click.option("--deployment", type=click.Path(dir_okay=False), help=".voicemarket/deployments/<network>.json")
@click.option("--store", help="where metadata is fetched: local:PATH or kubo:http://HOST:5001")
@click.option("--confirmations", type=int, help="blocks behind the head (default 12)")
@click.option("--batch-blocks", type=int, help="the most blocks read in one batch")
@click.option("--poll-interval-s", type=float, help="pause between polls once caught up")
@click.option("--once", is_flag=True, help="index up to the confirmed head, fetch metadata once, and exit")
@click.option("-v", "--verbose", is_flag=True)
@_user_errors
def run(config: str | None, once: bool, verbose: bool, **options: Any) -> None:
    """Follow the deployment's events into the database (one writer per database)."""
    from voicemarket.index.indexer import Indexer

    _logging(verbose)
    settings = _settings(config, **options)
    indexer = Indexer(settings)
    log = logging.getLogger("voicemarket.index")
    if once:
        indexer.prepare()
        started, events = time.perf_counter(), 0
        while (result := indexer.step()) is not None:
            events += result.events
            if result.caught_up:
                break
        indexed_s = time.perf_counter() - started
        fetched, now = 0, int(time.time())  # one pass: what fails now is due again only after this run
        while tried := indexer.fetch_metadata(now):
            fetched += tried
        log.info(
            "caught up",
            extra={
                "next_block": indexer.next_block,
                "events": events,
                "seconds": round(indexed_s, 3),
                "metadata_tried": fetched,
                "metadata_seconds": round(time.perf_counter() - started - indexed_s, 3),
            },
        )
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("indexer starting", extra={"db": settings.db.split("@")[-1], "rpc_url": settings.rpc_url})
    indexer.run(stop)
    log.info("indexer stopped", extra={"next_block": indexer.next_block})


@cli.command()
@config_option
@db_option
@click.option("--host", help="address to listen on (default 127.0.0.1)")
@click.option("--port", type=int, help="port (default 8600)")
@click.option("--deployment", type=click.Path(dir_okay=False), help="the deployment file, for the DApp at /")
@click.option("--store", help="content served at /ipfs/{cid}: local:PATH or kubo:http://HOST:5001")
@click.option("--app-dir", type=click.Path(file_okay=False), help="the built DApp (default app/dist)")
@click.option("-v", "--verbose", is_flag=True)
@_user_errors
def serve(config: str | None, verbose: bool, **options: Any) -> None:
    """Serve the read API (HTTP + JSON, OpenAPI at /openapi.json) over the database."""
    from voicemarket.index import db
    from voicemarket.index.api import create_index_app
    from voicemarket.web.api import serve as serve_app

    _logging(verbose)
    settings = _settings(config, **options)
    engine = db.open_engine(settings.db, readonly=True)
    if db.schema_version(engine) is None:
        raise click.ClickException(
            f"{settings.db} holds no index yet: start `python -m voicemarket.index run` on it first"
        )
    logging.getLogger("voicemarket.index").info("api starting", extra={"host": settings.host, "port": settings.port})
    serve_app(create_index_app(engine, settings), settings, log_level="debug" if verbose else "warning")


@cli.command()
@config_option
@db_option
@_user_errors
def status(config: str | None, **options: Any) -> None:
    """How far the index is, and what it holds."""
    import json

    from voicemarket.index import db, queries

    settings = _settings(config, **options)
    engine = db.open_engine(settings.db, readonly=True)
    if db.schema_version(engine) is None:
        raise click.ClickException(f"{settings.db} holds no index")
    with engine.connect() as connection:
        click.echo(json.dumps(queries.stats(connection), indent=2))


@cli.command()
@config_option
@db_option
@click.option("--yes", is_flag=True, help="do not ask")
@_user_errors
def reset(config: str | None, yes: bool, **options: Any) -> None:
    """Drop the index's tables; the next `run` rebuilds them from the chain."""
    from voicemarket.index import db

    settings = _settings(config, **options)
    if not yes:
        click.confirm(f"Drop every index table in {settings.db}?", abort=True)
    db.reset(db.open_engine(settings.db))
    click.echo(f"dropped the index tables of {settings.db}")


if __name__ == "__main__":
    cli()

"""``python -m oracle run | worker | keeper | status | config``: what an operator types.

``run`` starts the listener and the batch submitter (each active on one machine at a time, by
lease: start ``run`` on several machines and the others stand by), a Prometheus endpoint, and a
Celery worker as a child process (``--workers 0`` for none: workers then run elsewhere with
``python -m oracle worker``). SIGTERM or Ctrl-C stops everything it started.

Every command reads its settings from ``--config`` (else ``$ORACLE_CONFIG``) and the environment.
An error the operator can fix (:class:`oracle.errors.OracleError`) ends the command with its message
and what to do, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading

import click

from oracle.errors import ConfigError, OracleError

log = logging.getLogger("oracle.run")


def _settings(config: str | None, kind=None):  # noqa: ANN001, ANN202
    from oracle.settings import OracleSettings, load_settings

    return load_settings(config, kind=kind or OracleSettings)


def _config_option(help_text: str | None = "TOML settings file (default: $ORACLE_CONFIG)"):  # noqa: ANN202
    """A command's ``--config FILE`` option."""
    return click.option("--config", "config", type=click.Path(dir_okay=False), default=None, help=help_text)


def _stop_on_signals() -> threading.Event:
    """An event that SIGTERM and Ctrl-C set (the command then stops what it started)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait_for_services(svc, stop: threading.Event) -> None:  # noqa: ANN001
    """Block until Redis and the node answer (an operator may start the oracle before them)."""
    delay = 0.5
    while not stop.is_set():
        try:
            svc.redis.ping()
            _ = svc.router.w3.eth.block_number  # the RPC answers
            return
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything from a connection that is not up yet
            log.warning("waiting for Redis and the node", extra={"error": f"{type(exc).__name__}: {exc}"})
            svc.__dict__.pop("router", None)
            stop.wait(delay)
            delay = min(delay * 2, 10.0)


def _check_operator(svc) -> None:  # noqa: ANN001
    info = svc.router.router.functions.operatorInfo(svc.key.address).call()
    registered = info[3] if isinstance(info, (list, tuple)) else info["registered"]
    if not registered:
        log.warning(
            "this account is not a registered operator of the router: nothing will be assigned to it",
            extra={"operator": svc.key.address},
        )
        return
    public_key = bytes(svc.router.router.functions.operatorPublicKey(svc.key.address).call())
    if public_key != svc.key.public_key:
        log.warning(
            "the public key registered on-chain is not this account's: creators' keyrings will not open",
            extra={"operator": svc.key.address},
        )


def worker_argv(config: str | None, concurrency: int, pool: str) -> list[str]:
    """``python -m oracle worker`` with ``run``'s settings file (none: the child reads the same environment)."""
    argv = [sys.executable, "-m", "oracle", "worker", "--pool", pool, "--concurrency", str(concurrency)]
    return argv + (["--config", os.path.abspath(config)] if config is not None else [])


class _Commands(click.Group):
    """The oracle's commands: an :class:`OracleError` ends one with its message, not a traceback."""

    def invoke(self, ctx: click.Context):  # noqa: ANN201
        try:
            return super().invoke(ctx)
        except OracleError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Commands)
def main() -> None:
    """The voicemarket oracle (see docs/oracle.md)."""


@main.command()
@_config_option()
@click.option("--workers", default=1, show_default=True, help="worker processes to start here (0: none)")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--listener/--no-listener", default=True, show_default=True, help="take part in following the chain")
@click.option("--submitter/--no-submitter", default=True, show_default=True, help="take part in sending transactions")
def run(config: str | None, workers: int, pool: str, listener: bool, submitter: bool) -> None:
    """Listener + batch submitter + metrics (+ a Celery worker child)."""
    from prometheus_client import CollectorRegistry, start_http_server

    from oracle.app import create_app, enqueuer, queued_request_ids
    from oracle.leases import Lease
    from oracle.listener import Listener
    from oracle.logs import setup_logging
    from oracle.recovery import DurableMark, RedisGuard
    from oracle.runtime import Services, queue_name
    from oracle.status import StatusCollector
    from oracle.submitter import Submitter
    from oracle.transactions import TxSender

    settings = _settings(config)
    enqueue = enqueuer(create_app(settings))
    setup_logging("run", settings.log_format, settings.log_level)
    if workers and (settings.hubert_dir is None or not settings.hubert_dir.is_dir()):
        raise ConfigError(
            f"hubert_dir {settings.hubert_dir} is not a folder: workers need the "
            "chinese-hubert-base folder to synthesise (set ORACLE_HUBERT_DIR)"
        )
    stop = _stop_on_signals()
    svc = Services(settings)
    _wait_for_services(svc, stop)
    key = svc.key
    _check_operator(svc)
    log.info(
        "oracle starting",
        extra={
            "operator": key.address,
            "router": settings.router,
            "chain_id": svc.chain_id,
            "namespace": svc.ledger.ns,
            "workers": workers,
        },
    )

    if settings.metrics_port:
        registry = CollectorRegistry()
        registry.register(StatusCollector(svc))
        start_http_server(settings.metrics_port, settings.metrics_host, registry=registry)
        log.info("metrics endpoint", extra={"url": f"http://{settings.metrics_host}:{settings.metrics_port}/metrics"})

    threads = []
    leases = []
    if listener:
        lease = Lease(svc.redis, svc.ledger.key("lease", "listener"), svc.worker_id, settings.leader_lease_s)
        leases.append(lease)
        guard = RedisGuard(svc.ledger, DurableMark(settings.state_path, svc.ledger.ns), settings.start_block)
        queue = queue_name(settings)
        follower = Listener(
            settings,
            svc.ledger,
            svc.router,
            key.address,
            enqueue,
            guard=guard,
            queued_tasks=lambda: queued_request_ids(svc.redis, queue, settings.requeue_after_s),
        )
        threads.append(threading.Thread(target=follower.run, args=(stop, lease.hold), name="listener"))
    if submitter:
        lease = Lease(svc.redis, svc.ledger.key("lease", "submitter"), svc.worker_id, settings.leader_lease_s)
        leases.append(lease)
        # The submitter gets its own connections: it must not wait behind the listener's calls.
        own = Services(settings)
        sender = TxSender(own.router.rpc, key, own.ledger, settings, svc.chain_id)
        batcher = Submitter(settings, own.ledger, own.router, sender, enqueue)
        threads.append(threading.Thread(target=batcher.run, args=(stop, lease.hold), name="submitter"))
    child = None
    if workers:
        child = subprocess.Popen(worker_argv(config, workers, pool))
    for thread in threads:
        thread.start()
    try:
        while not stop.is_set():
            if child is not None and child.poll() is not None:
                log.error("the worker process exited; stopping", extra={"returncode": child.returncode})
                stop.set()
            stop.wait(1.0)
    finally:
        stop.set()
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        for thread in threads:
            thread.join(timeout=10)
        for lease in leases:
            try:
                lease.release()
            except Exception:  # noqa: BLE001 - Redis gone: the lease lapses by itself
                pass
        log.info("oracle stopped")


@main.command(context_settings={"ignore_unknown_options": True})
@_config_option()
@click.option("--concurrency", default=1, show_default=True)
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--hostname", default=None, help="Celery node name (default: oracle-<pid>@<host>)")
@click.argument("celery_options", nargs=-1, type=click.UNPROCESSED)
def worker(
    config: str | None, concurrency: int, pool: str, hostname: str | None, celery_options: tuple[str, ...]
) -> None:
    """Only a Celery worker on this operator's queue (for extra machines); other `celery worker` options
    may follow (`-- --max-tasks-per-child 100`)."""
    from oracle.app import run_worker

    settings = _settings(config)
    options = [
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        hostname or f"oracle-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        *celery_options,
    ]
    sys.exit(run_worker(settings, options))


@main.command()
@_config_option("TOML settings file with a [keeper] table (default: $ORACLE_CONFIG)")
@click.option("--once", is_flag=True, help="make one round, then exit (e.g. from cron)")
def keeper(config: str | None, once: bool) -> None:
    """Renew agreed subscriptions, settle closed dispute windows, refund expired requests (docs/oracle.md)."""
    from oracle.keeper import start
    from oracle.keeper_settings import KeeperSettings
    from oracle.logs import setup_logging
    from oracle.runtime import Services

    settings = _settings(config, KeeperSettings)
    setup_logging("keeper", settings.log_format, settings.log_level)
    stop = _stop_on_signals()
    _wait_for_services(Services(settings), stop)
    try:
        start(settings, stop, once=once)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - only --once gives up on a failed round (it is logged)
        raise click.ClickException(f"the keeper's round failed: {type(exc).__name__}: {exc}") from None


@main.command()
@_config_option(None)
@click.option("--json", "as_json", is_flag=True, help="machine-readable")
def status(config: str | None, as_json: bool) -> None:
    """Last block, queue depth, in flight, fulfilled, failed (for the whole operator)."""
    from oracle.runtime import Services
    from oracle.status import render, snapshot

    svc = Services(_settings(config))
    try:
        snap = snapshot(svc)
    except OracleError:
        raise
    except Exception as exc:  # noqa: BLE001 - say what is down instead of a traceback
        raise click.ClickException(f"cannot read the oracle's state from {svc.settings.redis_url}: {exc}") from None
    click.echo(json.dumps(snap, indent=2) if as_json else render(snap))


@main.command()
@_config_option(None)
def config(config: str | None) -> None:
    """Print the effective settings (after the file and the environment), then every setting's meaning."""
    from oracle.settings import OracleSettings

    settings = _settings(config)
    click.echo(json.dumps(json.loads(settings.model_dump_json()), indent=2))
    click.echo("\nsettings (ORACLE_<NAME> in the environment, or <name> in the TOML file):")
    for name, field in OracleSettings.model_fields.items():
        click.echo(f"  {name:<22} {field.description or ''}")


@main.command()
@_config_option()
@click.option("--api-config", default=None, type=click.Path(dir_okay=False), help="TOML file with an [api] table")
@click.option("--host", default=None, help="address to listen on (default 127.0.0.1: put TLS in front)")
@click.option("--port", default=None, type=int, help="port (default 8700)")
def api(config: str | None, api_config: str | None, host: str | None, port: int | None) -> None:
    """The streaming speech API for licensed buyers, paid by channel vouchers (docs/api.md)."""
    from oracle.api.app import run_api
    from oracle.api.settings import ApiSettings
    from oracle.logs import setup_logging

    settings = _settings(config)
    setup_logging("api", settings.log_format, settings.log_level)
    try:
        api_settings = ApiSettings.load(api_config, host=host, port=port)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    run_api(settings, api_settings)


if __name__ == "__main__":
    main()

"""The Celery app and its one thin task, built from the settings by :func:`create_app`.

Importing this module reads no settings and builds nothing. Start workers with::

    python -m oracle worker --config oracle.toml --concurrency 2 --pool prefork     # or --pool solo

on as many machines as you like, all pointing at the same Redis (``redis_url``) with the same
settings; ``python -m oracle run`` starts one as its child. The worker reads its settings (``--config``,
else ``$ORACLE_CONFIG``, and the environment) before it builds the app; invalid settings stop it at
once with a message that says what to fix.

Messages carry JSON ids only (request id, block number). The task re-reads the chain itself.
Delivery is at least once (``acks_late``, ``reject_on_worker_lost``: a worker killed mid-job means
the job runs again elsewhere); Redis claims and the on-chain status make a repeat harmless.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

import redis.exceptions
import requests.exceptions
from celery import Celery, signals

from oracle.errors import TransientError
from oracle.logs import setup_logging
from oracle.runtime import queue_name, services
from oracle.settings import OracleSettings

SERVE_TASK = "oracle.serve_request"

# Faults that may pass: retried with exponential backoff and full jitter, never reported as a failure.
TRANSIENT = (
    TransientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)


def create_app(settings: OracleSettings) -> Celery:
    """The Celery app of this operator's queue, with the serve task registered; it connects to nothing yet."""
    app = Celery("oracle")
    app.conf.update(
        broker_url=settings.redis_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        task_default_queue=queue_name(settings),
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_heartbeat=0,
    )

    # shared=False: the task belongs to this app only, not to every app the process finalizes.
    @app.task(
        name=SERVE_TASK,
        bind=True,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        autoretry_for=TRANSIENT,
        retry_backoff=1,
        retry_backoff_max=settings.retry_backoff_max_s,
        retry_jitter=True,
        max_retries=None,
    )
    def serve_request(self, request_id: int, block: int) -> str:  # noqa: ANN001 - Celery's bound task
        """Serve one synthesis request (see :func:`oracle.serve.serve_request`)."""
        return serve(settings, int(request_id), int(block))

    return app


def serve(settings: OracleSettings, request_id: int, block: int) -> str:
    """The task's body: this process's services, then :func:`oracle.serve.serve_request`."""
    from oracle.serve import serve_request

    # torch is imported (and its threads set) when the first voice loads, after the request is claimed:
    # seconds of imports before the claim would look like a dead worker to the sweeper.
    return serve_request(services(settings).serve_context(), request_id, block)


def enqueuer(app: Celery) -> Callable[[int, int], None]:
    """``enqueue(request_id, block)``: publish the task for a request (the listener's and the sweeper's
    way in). The task id is the request id, so a duplicate (overlap, sweeper, redelivery) reads as the
    same task in every log."""
    task = app.tasks[SERVE_TASK]
    queue = app.conf.task_default_queue

    def enqueue(request_id: int, block: int) -> None:
        task.apply_async((request_id, block), queue=queue, task_id=f"request-{request_id}")

    return enqueue


def queued_request_ids(client: redis.Redis, queue: str, taken_within_s: float = 0.0) -> set[int]:
    """Request ids whose task waits in ``queue`` (kombu's Redis transport: one list per priority step),
    or was taken by a worker less than ``taken_within_s`` ago and not yet acknowledged (kombu's
    ``unacked`` hash and its ``unacked_index`` of delivery times).

    A task taken longer ago is not counted: a live worker claims the request (and holds its lease)
    as soon as it starts on it, so one that never did may have died with the message."""
    import json
    import time

    def request_id(message: bytes | str | dict) -> int | None:
        try:
            body = json.loads(message) if not isinstance(message, dict) else message
            headers = body.get("headers") or {}
        except (ValueError, AttributeError):
            return None
        task_id = str(headers.get("id", ""))
        if headers.get("task") == SERVE_TASK and task_id.startswith("request-"):
            return int(task_id.removeprefix("request-"))
        return None

    pipe = client.pipeline()
    for key in [queue] + [f"{queue}\x06\x16{priority}" for priority in (3, 6, 9)]:
        pipe.lrange(key, 0, -1)
    pipe.zrangebyscore("unacked_index", time.time() - taken_within_s, "+inf")
    *lists, recent = pipe.execute()
    ids = {rid for messages in lists for rid in map(request_id, messages) if rid is not None}
    if recent and taken_within_s > 0:
        for raw in client.hmget("unacked", recent):
            try:
                delivered = json.loads(raw) if raw is not None else None
            except ValueError:
                continue
            # [message, exchange, routing key]: this operator's tasks go to its queue by that name
            if isinstance(delivered, list) and len(delivered) == 3 and queue in delivered[1:]:
                rid = request_id(delivered[0])
                if rid is not None:
                    ids.add(rid)
    return ids


def run_worker(settings: OracleSettings, options: Sequence[str]) -> int:
    """Run a Celery worker on this operator's queue in this process until it is stopped; its exit status.

    ``options``: ``celery worker`` options (``--pool``, ``--concurrency``, ``--hostname`` ...)."""
    from celery.bin.celery import celery as celery_command

    def configure_logging(**_: object) -> None:
        setup_logging("worker", settings.log_format, settings.log_level)

    def limit_threads(**_: object) -> None:
        if settings.torch_threads is not None:
            os.environ["OMP_NUM_THREADS"] = str(settings.torch_threads)
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(settings.torch_threads)

    # weak=False: the handlers are closures that nothing else keeps alive.
    signals.setup_logging.connect(configure_logging, weak=False)
    signals.worker_init.connect(limit_threads, weak=False)
    signals.worker_process_init.connect(limit_threads, weak=False)
    app = create_app(settings)
    argv = ["worker", "-Q", app.conf.task_default_queue, "--loglevel", settings.log_level, *options]
    # What app.worker_main() does, but keeping the worker's exit status (app.start() drops it).
    celery_command.params[0].default = app
    try:
        return celery_command.main(argv, prog_name="python -m oracle", standalone_mode=False) or 0
    finally:
        celery_command.params[0].default = None

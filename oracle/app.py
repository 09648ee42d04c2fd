"""The Celery app and its one thin task. Start workers with::

    celery -A oracle.app worker --pool=prefork --concurrency=2      # or --pool=solo

on as many machines as you like, all pointing at the same Redis (``ORACLE_REDIS_URL``) with the
same settings. The settings are read from the environment and ``$ORACLE_CONFIG`` when this module
is imported; invalid settings stop the worker at once with a message that says what to fix.

Messages carry JSON ids only (request id, block number). The task re-reads the chain itself.
Delivery is at least once (``acks_late``, ``reject_on_worker_lost``: a worker killed mid-job means
the job runs again elsewhere); Redis claims and the on-chain status make a repeat harmless.
"""

from __future__ import annotations

import logging
import sys

import redis.exceptions
import requests.exceptions
from celery import Celery, signals

from oracle.errors import ConfigError, TransientError
from oracle.logs import setup_logging
from oracle.runtime import queue_name, services
from oracle.settings import load_settings

log = logging.getLogger("oracle.app")

# Faults that may pass: retried with exponential backoff and full jitter, never reported as a failure.
TRANSIENT = (TransientError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
             requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)

try:
    settings = load_settings()
    QUEUE = queue_name(settings)
except ConfigError as exc:
    print(f"oracle: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

app = Celery("oracle")
app.conf.update(
    broker_url=settings.redis_url,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
    task_default_queue=QUEUE,
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


@signals.setup_logging.connect
def _logging(**_: object) -> None:
    setup_logging("worker", settings.log_format, settings.log_level)


@signals.worker_process_init.connect
@signals.worker_init.connect
def _threads(**_: object) -> None:
    if settings.torch_threads is not None:
        import os

        os.environ["OMP_NUM_THREADS"] = str(settings.torch_threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(settings.torch_threads)


@app.task(name="oracle.serve_request", bind=True, acks_late=True, reject_on_worker_lost=True,
          autoretry_for=TRANSIENT, retry_backoff=1, retry_backoff_max=settings.retry_backoff_max_s,
          retry_jitter=True, max_retries=None)
def serve_request(self, request_id: int, block: int) -> str:  # noqa: ANN001 - Celery's bound task
    """Serve one synthesis request (see :func:`oracle.serve.serve_request`)."""
    from oracle.serve import serve_request as serve

    if settings.torch_threads is not None and "torch" not in sys.modules:
        import torch

        torch.set_num_threads(settings.torch_threads)
    return serve(services(settings).serve_context(), int(request_id), int(block))


def enqueue(request_id: int, block: int) -> None:
    """Publish the task for a request (the listener's and the sweeper's way in). The task id is the
    request id, so a duplicate (overlap, sweeper, redelivery) reads as the same task in every log."""
    serve_request.apply_async((request_id, block), queue=QUEUE, task_id=f"request-{request_id}")

"""Connections a process needs, built from the settings: Redis, the ledger, the chain, the key.

Each process builds its own (after a fork, never before), lazily; workers import torch and
synth only when a voice is first needed (:mod:`oracle.voices`).
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from functools import cached_property

import redis

from oracle.errors import ConfigError
from oracle.keys import OperatorKey, load_operator_key, operator_address
from oracle.ledger import Ledger
from oracle.router import RouterClient
from oracle.settings import OracleSettings


def namespace(settings: OracleSettings) -> str:
    """Redis key prefix of this operator and router (several operators may share one Redis)."""
    return settings.namespace or f"oracle:{settings.router.lower()}:{operator_address(settings).lower()}"


def queue_name(settings: OracleSettings) -> str:
    """The Celery queue of this operator and router."""
    return namespace(settings) + ":tasks"


def redis_client(settings: OracleSettings) -> redis.Redis:
    return redis.Redis.from_url(
        settings.redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=15, retry_on_timeout=True
    )


def make_store(spec: str):  # noqa: ANN201 - a voicemarket ContentStore
    from voicemarket.content.store import store_from_spec

    try:
        return store_from_spec(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


class Services:
    """One process's view of everything; attributes connect on first use."""

    def __init__(self, settings: OracleSettings) -> None:
        self.settings = settings
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._lock = threading.Lock()

    @cached_property
    def redis(self) -> redis.Redis:
        return redis_client(self.settings)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.redis, namespace(self.settings))

    @cached_property
    def router(self) -> RouterClient:
        client = RouterClient.connect(
            self.settings.rpc_url, self.settings.router, self.settings.registry, timeout=self.settings.rpc_timeout_s
        )
        if self.settings.chain_id is not None and client.w3.eth.chain_id != self.settings.chain_id:
            raise ConfigError(
                f"the node at {self.settings.rpc_url} is chain {client.w3.eth.chain_id}, "
                f"not chain_id {self.settings.chain_id}: wrong rpc_url?"
            )
        return client

    @cached_property
    def chain_id(self) -> int:
        return int(self.router.w3.eth.chain_id)

    @cached_property
    def key(self) -> OperatorKey:
        return load_operator_key(self.settings, self.chain_id)

    @cached_property
    def store(self):  # noqa: ANN201
        return make_store(self.settings.store)

    @cached_property
    def output_store(self):  # noqa: ANN201
        return make_store(self.settings.output_store) if self.settings.output_store else self.store

    def serve_context(self):  # noqa: ANN201 - oracle.serve.Context
        from oracle.serve import Context
        from oracle.voices import VoiceCache

        with self._lock:
            if not hasattr(self, "_context"):
                voices = VoiceCache(self.settings, self.router, self.key.private_key, self.store)
                self._context = Context(
                    self.settings,
                    self.ledger,
                    self.router,
                    self.key.address,
                    voices,
                    self.store,
                    self.output_store,
                    self.worker_id,
                    self.key.private_key,
                )
            return self._context


@dataclass(frozen=True)
class _ProcessServices:
    pid: int
    services: Services


_current: _ProcessServices | None = None


def services(settings: OracleSettings) -> Services:
    """This process's :class:`Services` (rebuilt after a fork)."""
    global _current
    if _current is None or _current.pid != os.getpid():
        _current = _ProcessServices(os.getpid(), Services(settings))
    return _current.services

"""Helpers the oracle tests share: the oracle's processes for one test, and waiting with evidence."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voicemarket.dev.sandbox import Sandbox
from voicemarket.dev.services import ManagedProcess

OPERATOR_INDEX = 2  # Ape test accounts: 0 deploys, 1 creates voices, 2 and 3 operate, 4..7 buy, 9 spare
SECOND_OPERATOR_INDEX = 3


@dataclass
class Oracle:
    """The oracle's processes for one test, all stopped (by PID) when the test ends."""

    sandbox: Sandbox
    env: dict[str, str]
    logs: Path
    processes: list[ManagedProcess] = field(default_factory=list)
    coordinator: ManagedProcess | None = None
    workers: list[ManagedProcess] = field(default_factory=list)

    def start_worker(self, name: str | None = None, **kwargs) -> ManagedProcess:
        name = name or f"worker{len(self.workers) + 1}"
        process = self.sandbox.start_worker(self.env, self.logs / f"{name}.log", name=name, **kwargs)
        self.workers.append(process)
        self.processes.append(process)
        return process

    def start_coordinator(self, name: str = "coordinator", workers: int = 0) -> ManagedProcess:
        """``python -m oracle run`` (with ``workers`` Celery worker children: the one-laptop setup)."""
        self.coordinator = self.sandbox.start_coordinator(
            self.env, self.logs / f"{name}.log", name=name, workers=workers
        )
        self.processes.append(self.coordinator)
        return self.coordinator

    def stop(self) -> None:
        import signal

        for process in self.processes:  # all at once; workers cold (SIGQUIT: Celery's immediate shutdown)
            process.signal(signal.SIGQUIT if process in self.workers else signal.SIGTERM)
        for process in reversed(self.processes):
            process.stop()

    def settings(self):
        """The settings the oracle's processes read (from this test's ORACLE_* environment)."""
        import os

        from oracle.settings import load_settings

        saved = {k: v for k, v in os.environ.items() if k.startswith("ORACLE_")}
        try:
            for key in saved:
                del os.environ[key]
            os.environ.update({k: v for k, v in self.env.items() if k.startswith("ORACLE_")})
            return load_settings()
        finally:
            for key in [k for k in os.environ if k.startswith("ORACLE_")]:
                del os.environ[key]
            os.environ.update(saved)

    def ledger(self):
        """The oracle's Redis ledger, read from the test."""
        import redis

        from oracle.ledger import Ledger
        from oracle.runtime import namespace

        settings = self.settings()
        return Ledger(redis.Redis.from_url(settings.redis_url), namespace(settings))

    def log_tails(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log_tail(40)}" for p in self.processes)


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, oracle: Oracle | None = None, interval: float = 0.2
) -> None:
    """Poll ``predicate`` until true; fail with the oracle's log tails if it never is."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    tails = oracle.log_tails() if oracle is not None else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 in front of the node, that the test can cut and restore.

    The oracle's processes are given the proxy's URL as their RPC endpoint. ``pause()`` closes
    the listening socket and every open connection, so the oracle sees exactly what it sees when
    a node goes away (connection refused, connections reset); ``resume()`` listens again on the
    same port. The node itself keeps running and the test keeps using it directly.
    """

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        from voicemarket.dev.services import free_port

        self.target_port = target_port
        self.port = free_port()
        self._socket_module = socket
        self._lock = threading.Lock()
        self._connections: list = []
        self._server = None
        self._accepting = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        import threading

        socket = self._socket_module
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        self._accepting = True
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server) -> None:
        import threading

        socket = self._socket_module
        while self._accepting:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.close()
                except OSError:
                    pass

    def pause(self) -> None:
        socket = self._socket_module
        self._accepting = False
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self._connections.clear()

    def resume(self) -> None:
        self.start()

    def stop(self) -> None:
        self.pause()


def rpc(chain, method: str, params: list | None = None):
    """A raw JSON-RPC call to the session's anvil (evm_setAutomine, evm_mine, ...)."""
    response = chain.provider.web3.provider.make_request(method, params or [])
    if "error" in response:
        raise RuntimeError(f"{method}: {response['error']}")
    return response.get("result")


def fake_ready(ledger, request_ids) -> None:
    """Mark ids as ready in a ledger, for tests of the transaction layer alone."""
    for request_id in request_ids:
        ledger.redis.hset(ledger.key("req", request_id), mapping={"state": "ready", "outcome": "{}"})
        ledger.redis.zadd(ledger.key("ready"), {str(request_id): 0})


def nonce_client(rpc_url: str, redis_url: str, namespace: str, account_index: int, first_id: int, count: int) -> None:
    """One process of the shared-nonce test: send ``count`` self-transfers through the shared ledger."""
    import redis

    from oracle.keys import ape_test_key
    from oracle.ledger import Ledger
    from oracle.rpc import JsonRpc, to_int
    from oracle.settings import OracleSettings
    from oracle.transactions import TxSender

    key = ape_test_key(account_index)
    rpc = JsonRpc(rpc_url)
    ledger = Ledger(redis.Redis.from_url(redis_url), namespace)
    settings = OracleSettings(router=key.address, test_account=account_index, confirmations=0)
    sender = TxSender(rpc, key, ledger, settings, to_int(rpc.call("eth_chainId")))
    ids = list(range(first_id, first_id + count))
    fake_ready(ledger, ids)
    for request_id in ids:
        assert sender.submit("fulfil", [request_id], key.address, "0x", 30_000) is not None

"""The local-service helpers start real processes on loopback and always stop them."""

import os
import signal

import pytest
import redis

from voicemarket.dev.services import ManagedProcess, RedisServer, port_open
from voicemarket.errors import ServiceError


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); read its state.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_redis_server_starts_serves_and_stops(tmp_path):
    server = RedisServer(directory=tmp_path)
    with server:
        pid = server.pid
        client = redis.Redis.from_url(server.url)
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert server.url.startswith("redis://127.0.0.1:")
    assert not port_open(server.port)
    assert not _pid_running(pid)


def test_redis_restart_keeps_data_when_persistent(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.set("checkpoint", 41)
    client.incr("checkpoint")
    redis_server.restart()
    assert redis.Redis.from_url(redis_server.url).get("checkpoint") == b"42"


def test_redis_server_is_stopped_when_the_body_fails(tmp_path):
    server = RedisServer(directory=tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        with server:
            pid = server.pid
            raise RuntimeError("boom")
    assert not _pid_running(pid)


def test_managed_process_reports_why_it_died(tmp_path):
    proc = ManagedProcess(["sh", "-c", "echo cannot bind; exit 3"], log_path=tmp_path / "log", name="broken")
    with proc:
        with pytest.raises(ServiceError, match="cannot bind"):
            proc.wait_until(lambda: False, timeout=5, what="readiness")


def test_managed_process_stops_its_whole_group(tmp_path):
    # The shell's child `sleep` must die with it: workers leave no orphans behind.
    proc = ManagedProcess(
        ["sh", "-c", "sleep 300 & echo $! > child.pid; wait"], log_path=tmp_path / "log", cwd=tmp_path
    )
    with proc:
        proc.wait_until(lambda: (tmp_path / "child.pid").exists(), timeout=5, what="child pid")
        child = int((tmp_path / "child.pid").read_text())
        assert _pid_running(child)
        proc.signal(signal.SIGKILL)
    assert not _pid_running(child)


def test_missing_executable_says_to_run_setup(tmp_path):
    with pytest.raises(ServiceError, match="make setup"):
        ManagedProcess(["/nonexistent/redis-server"], log_path=tmp_path / "log").start()


def test_local_chain_starts_and_stops_anvil(tmp_path):
    # In a separate process: this suite's own session is already connected to anvil.
    import subprocess
    import sys

    script = (
        "import ape, os\n"
        "from voicemarket.dev.services import local_chain\n"
        "with local_chain() as provider:\n"
        "    pid = provider.process.pid\n"
        "    alice, bob = ape.accounts.test_accounts[:2]\n"
        "    alice.transfer(bob, 10**18)\n"
        "    print('RESULT', pid, provider.uri, bob.balance)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=os.getcwd())
    assert out.returncode == 0, out.stderr
    result = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    pid, uri, balance = result.split()[1:]
    assert uri.startswith("http://127.0.0.1:")
    assert int(balance) > 10**18
    assert not _pid_running(int(pid))

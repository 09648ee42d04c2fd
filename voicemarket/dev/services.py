"""Local services started on 127.0.0.1 for tests, benchmarks and the demo.

Every process started here is owned by the object that started it and is stopped by
PID when that object is closed (also when the caller fails: use them as context
managers). Nothing binds to anything but the loopback interface.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from voicemarket.errors import ServiceError

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free when asked (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class ManagedProcess:
    """A child process in its own process group, stopped (group and all) by PID on close.

    Output goes to ``log_path`` so that a failing start can say why.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.name = name or Path(self.argv[0]).name
        self.log_path = log_path
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServiceError(f"{self.name} was never started")
        return self._proc.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed by the child's exit
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,  # own process group: stop() reaches grandchildren
            )
        except FileNotFoundError as exc:
            raise ServiceError(f"cannot start {self.name}: {self.argv[0]} not found. Run `make setup` first.") from exc
        finally:
            log.close()
        return self

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (e.g. SIGKILL to simulate a crash)."""
        if self.alive():
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait_until(self, ready, timeout: float, what: str) -> None:  # noqa: ANN001
        """Poll ``ready()`` until true; fail with the log tail if the process dies or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServiceError(f"{self.name} exited while waiting for {what}:\n{self.log_tail()}")
            if ready():
                return
            time.sleep(0.05)
        raise ServiceError(f"{self.name} not ready ({what}) after {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process group: SIGTERM, then SIGKILL after ``timeout``. Returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self._proc.wait(5)
        # Reap anything left in the group (a worker's pool children, say), and return only once it
        # is gone: a SIGKILL is delivered when the process next runs, which on a busy machine is later.
        try:
            os.killpg(self._proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.monotonic() + 5
        while _group_running(self._proc.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        return self._proc.returncode

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_running(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies do not count). Read from /proc;
    without /proc (not Linux) the group is taken as gone."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended while we looked
        if fields[0] != "Z" and int(fields[2]) == pgid:  # state, ppid, pgrp
            return True
    return False


class RedisServer:
    """A private redis-server on a free 127.0.0.1 port with its data in a temporary folder.

    ``persistent=True`` turns on the append-only file, so that a restart (``restart()``)
    keeps the data, as an operator's Redis would.
    """

    def __init__(self, *, port: int | None = None, directory: Path | None = None, persistent: bool = True):
        self.executable = shutil.which("redis-server")
        if self.executable is None:
            raise ServiceError("redis-server is not installed. Run `make setup` (it installs Debian's redis-server).")
        self.port = port or free_port()
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="vm-redis-"))
        self.persistent = persistent
        self._process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def _argv(self) -> list[str]:
        argv = [
            self.executable,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--dir",
            str(self.directory),
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
        ]
        if self.persistent:
            argv += ["--appendonly", "yes", "--appendfsync", "everysec"]
        return argv

    def start(self, timeout: float = 10.0) -> RedisServer:
        self._process = ManagedProcess(self._argv(), log_path=self.directory / "redis.log", name="redis-server")
        self._process.start()
        self._process.wait_until(self.ping, timeout, f"PING on port {self.port}")
        return self

    def ping(self) -> bool:
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def restart(self, down_for: float = 0.0) -> None:
        """Stop and start again on the same port and folder (the data survives if persistent)."""
        self.stop()
        time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


TEST_MNEMONIC = "test test test test test test test test test test test junk"


def local_chain(network: str = "ethereum:local:foundry"):
    """Connect Ape to a fresh local chain (anvil through ape-foundry) for scripts and benchmarks.

    Use as a context manager: ``with local_chain() as provider: ...``. The funded test
    accounts (from the standard test mnemonic in ape-config.yaml) are
    ``ape.accounts.test_accounts``. anvil is started on a free 127.0.0.1 port and stopped
    when the block exits. Tests get the same through Ape's pytest plugin instead.
    """
    if network.endswith(":foundry") and shutil.which("anvil") is None:
        raise ServiceError("anvil is not on PATH. Run `make setup` (it installs anvil from npm).")
    import ape  # imported here: services must stay importable without Ape's start-up cost

    return ape.networks.parse_network_choice(network)

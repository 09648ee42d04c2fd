"""A throwaway PostgreSQL server for tests and benchmarks, on 127.0.0.1 and a free port.

Debian's ``postgresql`` package (``make setup`` installs it) gives ``initdb`` and ``pg_ctl``
under ``/usr/lib/postgresql/<version>/bin``. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (``runuser``), in a folder it owns. Durability is off
(``fsync``, ``synchronous_commit``, ``full_page_writes``): the data is thrown away with the
server, which :meth:`PostgresServer.stop` stops (``pg_ctl stop``, by the PID in its data folder).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from voicemarket.dev.services import LOOPBACK, free_port
from voicemarket.errors import ServiceError

USER = "voicemarket"


def postgres_bin() -> Path:
    """The folder of ``initdb`` and ``pg_ctl`` (the newest installed version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServiceError("PostgreSQL is not installed: run `make setup` (it installs Debian's postgresql)")


class PostgresServer:
    """``with PostgresServer() as pg: url = pg.create_database("index")``."""

    def __init__(self, *, port: int | None = None) -> None:
        self.bin = postgres_bin()
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="vm-pg-"))
        self.data = self.directory / "data"
        self._as_postgres = os.geteuid() == 0
        self._started = False

    def _run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise ServiceError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")
        return result

    def start(self) -> PostgresServer:
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--no-sync")
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses={LOOPBACK} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.directory / "server.log"), "-w", "start"
        )
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@{LOOPBACK}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL (``postgresql://...``)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if self._started:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            finally:
                self._started = False
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

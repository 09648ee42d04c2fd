"""Fixtures for the index tests: one small market on the session's anvil (built through Ape,
shared by every module here), a real PostgreSQL server (started and stopped here, by
:class:`voicemarket.dev.postgres.PostgresServer`), and per module the market indexed once by the
real indexer process into SQLite and into PostgreSQL: ``databases`` and ``indexed`` are
parametrized over both, so every test that uses them runs on each database against the same data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from index_helpers import SmallMarket, build_market, index_settings, run_once
from voicemarket.dev.postgres import PostgresServer


@pytest.fixture(scope="session")
def small_market(accounts, chain, project, tmp_path_factory) -> SmallMarket:
    return build_market(accounts, chain, project, tmp_path_factory.mktemp("index-market"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


class Databases:
    """Fresh databases of one kind: ``new(name)`` -> URL."""

    def __init__(self, kind: str, root: Path, postgres: PostgresServer | None) -> None:
        self.kind, self.root, self.postgres = kind, root, postgres

    def new(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.root / (name + '.sqlite')}"
        return self.postgres.create_database(name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def databases(request, tmp_path_factory) -> Databases:
    postgres = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return Databases(request.param, tmp_path_factory.mktemp(f"index-{request.param}"), postgres)


@pytest.fixture(scope="module")
def indexed(databases, small_market, chain) -> str:
    """The small market, indexed by ``python -m voicemarket.index run --once``: the database's URL."""
    url = databases.new("indexed")
    run_once(index_settings(small_market, url, chain.provider.uri))
    return url

"""Opening the index's database (SQLite or PostgreSQL) and keeping its schema current.

``--db sqlite:///path/to/index.sqlite`` (the default, ``.voicemarket/index.sqlite``: embedded,
nothing to run) or ``--db postgresql://user@host:port/name`` (psycopg 3) — the same tables and
queries on both (:mod:`voicemarket.index.schema`).

SQLite runs in WAL mode, so that the API's readers never wait for the indexer's writes (one
writer, many readers); PostgreSQL does that by itself, across machines.

**Migrations.** The index is derived data: everything in it is read again from the chain and
the store. Its schema carries a version (``index_state.schema_version``); :func:`migrate`
creates the tables in an empty database, applies the steps in :data:`UPGRADES` (each one
version up, in one transaction) to an older one, and refuses a database made by newer code.
A change no step can make in place is shipped as a new version with no step: the database is
then rebuilt from the chain (``python -m voicemarket.index reset``). This keeps migrations to
a version table and a dict of plain functions over SQLAlchemy rather than Alembic's script
folder and environment: with one writer and a rebuildable store, that is all they need.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text

from voicemarket.errors import IndexSchemaError, ServiceSettingsError
from voicemarket.index import schema
from voicemarket.protocol import ETH

DEFAULT_DB = "sqlite:///.voicemarket/index.sqlite"


def _v1_to_v2(connection: Connection) -> None:
    """Payment assets get their own table (symbols and decimals); offers' ODRL documents are rebuilt
    when read instead of stored."""
    schema.assets.create(connection)
    connection.execute(schema.assets.insert().values(address=ETH, symbol="ETH", decimals=18))
    for column in ("policy", "policy_matches"):
        connection.execute(text(f"ALTER TABLE offers DROP COLUMN {column}"))


def _v2_to_v3(connection: Connection) -> None:
    """The journal keeps one row per block (all that block changed) instead of one per row changed.
    Its entries are dropped: the blocks indexed so far can no longer be rewound (a deeper reorg
    than that asks for a rebuild)."""
    connection.execute(text("DROP TABLE journal"))
    schema.journal.create(connection)
    next_block = connection.execute(select(schema.state.c.value).where(schema.state.c.key == "next_block")).scalar()
    if next_block is not None:
        write_state(connection, unjournaled_until=int(next_block) - 1)


def _v3_to_v4(connection: Connection) -> None:
    """Indexes for the searches' plans: models by uses and by creator, offers by asset and price."""
    for table, name in (
        (schema.models, "ix_models_most_used"),
        (schema.models, "ix_models_creator_newest"),
        (schema.offers, "ix_offers_cheapest"),
    ):
        next(index for index in table.indexes if index.name == name).create(connection)


UPGRADES: dict[int, Callable[[Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}
"""``UPGRADES[n](connection)`` takes a database from schema version ``n`` to ``n + 1``."""


def engine_url(db: str) -> str:
    """The SQLAlchemy URL of ``--db``: ``postgresql://`` means psycopg 3; SQLite's folder is made."""
    if db.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    if db.startswith("postgresql+psycopg://"):
        return db
    if db.startswith("sqlite:///"):
        path = db.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return db
    raise ServiceSettingsError(
        f"--db {db!r} is neither sqlite:///PATH nor postgresql://USER@HOST:PORT/NAME "
        "(for example sqlite:///.voicemarket/index.sqlite)"
    )


def open_engine(db: str, *, readonly: bool = False) -> Engine:
    """An engine for ``db``. ``readonly``: the API's connections (SQLite: ``query_only``)."""
    url = engine_url(db)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            if readonly:
                cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def read_state(connection: Connection) -> dict[str, str]:
    return dict(connection.execute(select(schema.state.c.key, schema.state.c.value)).all())


def write_state(connection: Connection, **values: object) -> None:
    """Set ``index_state`` keys (insert or update)."""
    existing = read_state(connection)
    for key, value in values.items():
        if key in existing:
            connection.execute(schema.state.update().where(schema.state.c.key == key).values(value=str(value)))
        else:
            connection.execute(schema.state.insert().values(key=key, value=str(value)))


def schema_version(engine: Engine) -> int | None:
    """The schema version of the database, or None when it holds no index."""
    if not inspect(engine).has_table(schema.state.name):
        return None
    with engine.connect() as connection:
        value = read_state(connection).get("schema_version")
    return int(value) if value is not None else None


def migrate(engine: Engine) -> int:
    """Bring the database to :data:`~voicemarket.index.schema.SCHEMA_VERSION`; returns the version
    found (0 for an empty database). Raises :class:`IndexSchemaError` when it cannot."""
    found = schema_version(engine)
    if found is None:
        with engine.begin() as connection:
            schema.metadata.create_all(connection)
            write_state(connection, schema_version=schema.SCHEMA_VERSION)
        return 0
    if found > schema.SCHEMA_VERSION:
        raise IndexSchemaError(
            f"the database holds index schema version {found}, made by a newer voicemarket than this one "
            f"(version {schema.SCHEMA_VERSION}): upgrade voicemarket, or point --db at another database"
        )
    for version in range(found, schema.SCHEMA_VERSION):
        step = UPGRADES.get(version)
        if step is None:
            raise IndexSchemaError(
                f"the database holds index schema version {version}, which this voicemarket cannot upgrade in "
                f"place to {schema.SCHEMA_VERSION}: rebuild it from the chain with "
                "`python -m voicemarket.index reset --db ...` and run the indexer again"
            )
        with engine.begin() as connection:
            step(connection)
            write_state(connection, schema_version=version + 1)
    return found


def reset(engine: Engine) -> None:
    """Drop every index table (the next run rebuilds them from the chain)."""
    schema.metadata.drop_all(engine)

"""The index's schema on SQLite: created whole in an empty database, upgraded in place from
version 1 (through 2 and 3), refused when a newer voicemarket made it. (No chain needed.)"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from voicemarket.errors import IndexSchemaError
from voicemarket.index import db, schema


def _columns(engine) -> dict[str, set[str]]:  # noqa: ANN001 - an Engine
    inspector = inspect(engine)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in inspector.get_table_names()}


def test_an_empty_database_gets_every_table_and_a_version_1_one_is_upgraded(tmp_path):
    fresh = db.open_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    assert db.migrate(fresh) == 0 and db.schema_version(fresh) == schema.SCHEMA_VERSION
    expected = {table.name: {c.name for c in table.columns} for table in schema.metadata.sorted_tables}
    assert _columns(fresh) == expected
    assert db.migrate(fresh) == schema.SCHEMA_VERSION  # nothing to do the second time

    old = db.open_engine(f"sqlite:///{tmp_path / 'v1.sqlite'}")
    with old.begin() as connection:  # version 1: no assets table; offers kept their ODRL document
        schema.metadata.create_all(connection, tables=[t for t in schema.metadata.sorted_tables if t.name != "assets"])
        for name in ("ix_models_most_used", "ix_models_creator_newest", "ix_offers_cheapest"):  # version 4's
            connection.execute(text(f"DROP INDEX {name}"))
        connection.execute(text("ALTER TABLE offers ADD COLUMN policy JSON"))
        connection.execute(text("ALTER TABLE offers ADD COLUMN policy_matches BOOLEAN NOT NULL DEFAULT 0"))
        db.write_state(connection, schema_version=1)
        connection.execute(text("DROP TABLE journal"))  # and one journal row per change
        connection.execute(
            text("CREATE TABLE journal (id INTEGER PRIMARY KEY, block BIGINT, table_name TEXT, key JSON, old JSON)")
        )
        db.write_state(connection, next_block=120, unjournaled_until=-1)
    assert db.migrate(old) == 1 and db.schema_version(old) == schema.SCHEMA_VERSION
    assert _columns(old) == expected
    with old.connect() as connection:
        assert connection.execute(text("SELECT symbol, decimals FROM assets")).all() == [("ETH", 18)]
        assert db.read_state(connection)["unjournaled_until"] == "119"  # the old journal is gone: no rewind below


def test_a_database_from_a_newer_voicemarket_is_refused(tmp_path):
    engine = db.open_engine(f"sqlite:///{tmp_path / 'new.sqlite'}")
    db.migrate(engine)
    with engine.begin() as connection:
        db.write_state(connection, schema_version=schema.SCHEMA_VERSION + 1)
    with pytest.raises(IndexSchemaError, match="newer voicemarket"):
        db.migrate(engine)

"""The market's index: the contracts' events in SQLite or PostgreSQL, and a read API over them.

- :mod:`.indexer` follows the registry, the offer book, the licence manager and the router after
  N confirmations, checkpointed, reorg-safe and idempotent (``python -m voicemarket.index run``);
- :mod:`.projection` turns events into rows; :mod:`.schema` holds the tables, :mod:`.db` opens
  the database and keeps its schema current; :mod:`.metadata` fetches models' metadata;
- :mod:`.queries` answers searches and lists, the same SQL on both databases;
- :mod:`.api` is the HTTP + JSON API with server-sent events (``python -m voicemarket.index serve``).

It imports the base layer, content and market, never cli or dev. docs/index.md has the whole picture.
"""

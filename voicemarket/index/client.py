"""Reading the index from a program: through a running read API, or straight from its database.

:func:`find_models` answers ``GET /models`` the same way both ways (``ape run models`` uses it):
``api="http://127.0.0.1:8600"`` asks the server; otherwise ``db`` (a SQLite path or PostgreSQL
URL, read only) is queried in-process with :mod:`voicemarket.index.queries`.
"""

from __future__ import annotations

from typing import Any

from voicemarket.errors import IndexingError, IndexQueryError
from voicemarket.index import db as databases
from voicemarket.index import queries
from voicemarket.web.api import ApiError, decode_cursor, encode_cursor


def find_models(params: dict[str, Any], *, api: str | None = None, db: str | None = None) -> dict[str, Any]:
    """``{"items": [...], "next_cursor": ...}`` for the ``/models`` parameters ``params``.

    Raises :class:`IndexQueryError` for a parameter the index refuses (naming it) and
    :class:`IndexingError` when the API or the database cannot be read.
    """
    params = {k: v for k, v in params.items() if v is not None}
    if api is not None:
        return _from_api(api, params)
    if db is None:
        raise IndexingError("say where the index is: an API URL or a database")
    engine = databases.open_engine(db, readonly=True)
    try:
        if databases.schema_version(engine) is None:
            raise IndexingError(f"{db} holds no index: run `python -m voicemarket.index run` on it first")
        sort = params.get("sort", "newest")
        cursor = params.pop("cursor", None)
        try:
            after = decode_cursor(cursor, sort, 1 if sort == "newest" else 2) if cursor else None
        except ApiError as exc:
            raise IndexQueryError("cursor", exc.message) from None
        with engine.connect() as connection:
            items, next_after, asset = queries.find_models(connection, params, after)
        return {"items": items, "next_cursor": encode_cursor(sort, next_after) if next_after else None, "asset": asset}
    finally:
        engine.dispose()


def _from_api(api: str, params: dict[str, Any]) -> dict[str, Any]:
    import httpx

    try:
        answer = httpx.get(api.rstrip("/") + "/models", params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise IndexingError(
            f"the index API at {api} does not answer ({exc}): is `python -m voicemarket.index serve` running?"
        ) from None
    body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
    if answer.status_code == 400:
        error = body.get("error", {})
        raise IndexQueryError(error.get("field") or "request", error.get("message", answer.text))
    if answer.status_code != 200:
        raise IndexingError(f"the index API at {api} answered {answer.status_code}: {answer.text[:200]}")
    return body

"""A model's ERC-721 metadata, fetched from the store by its CID and checked before anything of
it is shown.

A creator writes the metadata (``voicemarket.content.metadata.model_metadata``), so the index
treats it as untrusted input: at most ``max_bytes``, UTF-8 JSON, an object, with a string
``name`` and otherwise the fields of :func:`read_metadata` (anything else is ignored; text is
cut to a sane length). A document that fails any of this, or a CID the store cannot serve, is
recorded with the reason (:class:`Fetched` with ``error``) and tried again later, with the
pause doubling from ``retry_s`` up to ``max_retry_s``: the indexer never stops on one model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from voicemarket.content.multiformats import CID
from voicemarket.errors import ContentNotFound, IntegrityError, InvalidCID, PackageError, StoreError

MAX_NAME = 200
MAX_DESCRIPTION = 5_000
MAX_FIELD = 2_000


@dataclass(frozen=True)
class Fetched:
    """What became of one attempt: the fields read, or the reason it was refused."""

    name: str | None = None
    description: str | None = None
    languages: list[str] | None = None
    preview: str | None = None
    image: str | None = None
    architecture: str | None = None
    version: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def metadata_cid(codec: int, digest: str) -> str:
    """The CID text of the metadata that ``MetadataSet(modelId, digest, codec)`` names."""
    return str(CID(1, int(codec), bytes.fromhex(digest.removeprefix("0x"))))


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValueError(f"expected text, got {type(value).__name__}")
    return str(value)[:limit]


def read_metadata(data: bytes) -> Fetched:
    """Check and read a metadata document (raises ValueError saying what is wrong with it)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not JSON this index reads (nested too deeply)") from None
    if not isinstance(document, dict):
        raise ValueError(f"the document is a JSON {type(document).__name__}, not an object")
    name = document.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("`name` is missing or not a non-empty string")
    description = _text(document.get("description"), MAX_DESCRIPTION)
    traits: dict[str, str] = {}
    attributes = document.get("attributes", [])
    if not isinstance(attributes, list):
        raise ValueError("`attributes` is not a list")
    for attribute in attributes[:100]:
        if isinstance(attribute, dict) and isinstance(attribute.get("trait_type"), str):
            value = attribute.get("value")
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                traits[attribute["trait_type"].lower()] = str(value)[:MAX_FIELD]
    properties = document.get("properties", {})
    languages = properties.get("languages") if isinstance(properties, dict) else None
    if languages is not None and not (isinstance(languages, list) and all(isinstance(x, str) for x in languages)):
        raise ValueError("`properties.languages` is not a list of language codes")
    if languages is None and "languages" in traits:
        languages = [code.strip() for code in traits["languages"].split(",") if code.strip()]
    return Fetched(
        name=name.strip()[:MAX_NAME],
        description=description,
        languages=[code[:16] for code in languages[:16]] if languages else None,
        preview=_text(document.get("animation_url"), MAX_FIELD),
        image=_text(document.get("image"), MAX_FIELD),
        architecture=traits.get("architecture"),
        version=traits.get("version"),
    )


def fetch_metadata(store: Any, cid: str, max_bytes: int) -> Fetched:
    """Fetch ``cid`` from ``store`` (a :class:`~voicemarket.content.store.ContentStore`) and read it;
    every failure becomes a :class:`Fetched` with ``error``, never an exception."""
    if store is None:
        return Fetched(error="no content store is configured (set `store`, e.g. local:PATH or kubo:URL)")
    try:
        data = store.get_bytes(cid, max_bytes=max_bytes)
    except ContentNotFound:
        return Fetched(error=f"the store has no content under {cid}")
    except IntegrityError as exc:
        return Fetched(error=f"the store returned bytes that do not match {cid}: {exc}")
    except StoreError as exc:
        message = str(exc)
        if "more than" in message:
            return Fetched(error=f"the document is larger than {max_bytes} bytes")
        return Fetched(error=f"the store failed: {message}")
    except (InvalidCID, PackageError) as exc:
        return Fetched(error=f"cannot read {cid}: {exc}")
    except OSError as exc:
        return Fetched(error=f"the store is unreachable: {exc}")
    try:
        return read_metadata(data)
    except ValueError as exc:
        return Fetched(error=f"bad metadata: {exc}")


def next_attempt(now: int, attempts: int, retry_s: int, max_retry_s: int) -> int:
    """When to try a failed document again: ``retry_s`` doubling per attempt, at most ``max_retry_s``."""
    return int(now + min(max_retry_s, retry_s * 2 ** max(0, min(attempts - 1, 30))))

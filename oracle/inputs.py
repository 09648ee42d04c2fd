"""A request's text: inline on-chain or behind a CID, checked against its committed SHA-256."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from oracle.errors import FailReason, RequestFailure, TransientError


def read_text(data: bytes, input_hash: bytes, store, *, max_chars: int, max_bytes: int) -> str:  # noqa: ANN001
    """The UTF-8 text a request asks for.

    ``data`` is 0x00 followed by the text, or a binary CID of a UTF-8 text file in ``store``.
    Raises :class:`RequestFailure` (BadInput, InputUnavailable, TextTooLong) for what the buyer
    got wrong, :class:`TransientError` if the store does not answer.
    """
    from voicemarket.content.multiformats import CID
    from voicemarket.errors import ContentNotFound, IntegrityError, InvalidCID, StoreError

    if not data:
        raise RequestFailure(FailReason.BAD_INPUT, "the request carries no input")
    if data[0] == 0:
        raw = data[1:]
    else:
        try:
            cid = CID.from_bytes(data)
        except InvalidCID as exc:
            raise RequestFailure(FailReason.BAD_INPUT, f"the input is neither inline text nor a CID: {exc}") from None
        with tempfile.TemporaryDirectory(prefix="oracle-input-") as scratch:
            try:
                path = store.get_to_file(cid, Path(scratch) / "input")
            except ContentNotFound as exc:
                raise RequestFailure(FailReason.INPUT_UNAVAILABLE, f"input {cid} is not in the store: {exc}") from None
            except IntegrityError as exc:
                raise RequestFailure(FailReason.INPUT_UNAVAILABLE, f"input {cid} came back corrupt: {exc}") from None
            except StoreError as exc:
                raise TransientError(f"cannot fetch input {cid}: {exc}") from None
            if path.stat().st_size > max_bytes:
                raise RequestFailure(
                    FailReason.TEXT_TOO_LONG,
                    f"input {cid} is {path.stat().st_size} bytes; this operator takes {max_bytes}",
                )
            raw = path.read_bytes()
    if hashlib.sha256(raw).digest() != bytes(input_hash):
        raise RequestFailure(FailReason.BAD_INPUT, "the input's SHA-256 is not the request's inputHash")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestFailure(FailReason.BAD_INPUT, f"the input is not UTF-8 text: {exc}") from None
    if not text.strip():
        raise RequestFailure(FailReason.BAD_INPUT, "the input text is empty")
    if len(text) > max_chars:
        raise RequestFailure(
            FailReason.TEXT_TOO_LONG, f"the text has {len(text)} characters; this operator takes at most {max_chars}"
        )
    return text

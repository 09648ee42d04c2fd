"""A request's text: inline on-chain or behind a CID, plain or sealed to this operator, checked
against its committed ``inputHash``.

The four forms of ``input`` are :class:`voicemarket.market.chain.RequestInput`'s. A private request's
sealed envelope (:mod:`voicemarket.content.envelopes`) is opened with the operator's account key; it
names the key the audio must be sealed to (``reply_to``) and the salt of its ``inputHash``.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from oracle.errors import FailReason, RequestFailure, TransientError


@dataclass(frozen=True)
class RequestText:
    """The text to speak, and for a private request the buyer's key to seal the audio to and the salt."""

    text: str
    reply_to: bytes | None = None  # 64-byte public key; None: a public request (the audio is stored plain)
    salt: bytes = b""  # a private request's: it keys the sampling seed (envelopes.private_seed)

    @property
    def private(self) -> bool:
        return self.reply_to is not None


def read_input(
    data: bytes,
    input_hash: bytes,
    store,  # noqa: ANN001 - a voicemarket ContentStore
    *,
    operator_key: bytes,
    max_chars: int,
    max_bytes: int,
) -> RequestText:
    """The text a request asks for (and whom to seal the audio to).

    Raises :class:`RequestFailure` for what the buyer got wrong — BadInput (malformed; not
    UTF-8; a sealed input this operator's key does not open, altered, or not an envelope; not
    matching ``inputHash``), InputUnavailable (the CID is not in the store), TextTooLong — and
    :class:`TransientError` if the store does not answer.
    """
    from voicemarket.content.envelopes import ENVELOPE_OVERHEAD, open_request
    from voicemarket.errors import DecryptionError, EnvelopeError, IntegrityError, InvalidCID
    from voicemarket.market.chain import RequestInput

    try:
        parsed = RequestInput.parse(data)
    except (InvalidCID, ValueError) as exc:
        raise RequestFailure(
            FailReason.BAD_INPUT, f"the input is neither text nor a sealed envelope, inline or by CID: {exc}"
        ) from None
    raw = parsed.inline
    if raw is None:
        raw = _fetch(parsed.cid, store, max_bytes + (ENVELOPE_OVERHEAD if parsed.private else 0))
    reply_to, salt = None, b""
    if parsed.private:
        try:
            envelope = open_request(raw, operator_key)
        except DecryptionError as exc:
            raise RequestFailure(
                FailReason.BAD_INPUT, f"the private input is not sealed to this operator's key: {exc}"
            ) from None
        except (IntegrityError, EnvelopeError) as exc:
            raise RequestFailure(FailReason.BAD_INPUT, f"the private input cannot be opened: {exc}") from None
        if envelope.input_hash != bytes(input_hash):
            raise RequestFailure(
                FailReason.BAD_INPUT, "the private input's text and salt do not give the request's inputHash"
            )
        text, reply_to, salt = envelope.text, envelope.reply_to, envelope.salt
    else:
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
    return RequestText(text, reply_to, salt)


def _fetch(cid, store, max_bytes: int) -> bytes:  # noqa: ANN001
    """The bytes under ``cid`` in ``store``, at most ``max_bytes`` (TextTooLong beyond).

    A larger input is refused from the size the store declares before anything is read (a local
    file's size, Kubo's ``X-Content-Length`` from the file's root node), and a store that declares
    nothing is read no further than ``max_bytes`` + 1: one cheap request cannot make an operator
    download, copy or hash more than that."""
    from voicemarket.errors import ContentNotFound, ContentTooLarge, IntegrityError, StoreError

    with tempfile.TemporaryDirectory(prefix="oracle-input-") as scratch:
        try:
            path = store.get_to_file(cid, Path(scratch) / "input", max_bytes=max_bytes)
        except ContentTooLarge as exc:
            raise RequestFailure(
                FailReason.TEXT_TOO_LONG,
                f"input {cid} is larger than this operator takes ({max_bytes} bytes): {exc}",
            ) from None
        except ContentNotFound as exc:
            raise RequestFailure(FailReason.INPUT_UNAVAILABLE, f"input {cid} is not in the store: {exc}") from None
        except IntegrityError as exc:
            raise RequestFailure(FailReason.INPUT_UNAVAILABLE, f"input {cid} came back corrupt: {exc}") from None
        except StoreError as exc:
            raise TransientError(f"cannot fetch input {cid}: {exc}") from None
        return path.read_bytes()

"""Private requests: the text sealed to the operator, the audio sealed to the buyer.

A buyer who does not want their text or their audio public (the default of ``ape run say``)
seals a **request envelope** to the chosen operator's registered public key (the key of its
Ethereum account, ``router.operatorPublicKey``)::

    envelope   version 0x01 (1) | reply-to key, compressed (33) | salt (16) | the UTF-8 text
    on-chain   inputHash = SHA-256("voicemarket/private-input/v1" 0x00 | salt | text)
               input     = the envelope as a sealed box (inline), or the CID of that box

The operator opens the box with its account key (:func:`open_request`), checks the text
against ``inputHash`` (:func:`input_commitment`), synthesises, and seals the WAV to the
reply-to key (:func:`seal_output`) before storing it; ``outputDigest`` on-chain stays the
SHA-256 of the plain WAV, which the buyer checks after opening it (:func:`open_output`).

Why a salt: an unsalted SHA-256 of a short text ("Yes.", "Follow me!") is found by trying
likely lines. With 16 secret bytes beside the text nobody can test guesses against the chain;
the buyer, who derives the salt again from their key and the text
(:meth:`voicemarket.market.buyer_key.BuyerKey.input_salt`), reveals text and salt to settle a
dispute, and anyone can then recompute the commitment.

The salt also keys the sampling: a private request is synthesised with the seed
:func:`private_seed` (the ``params`` seed mixed with the salt), not the seed the chain shows.
Otherwise anyone holding a licence for the model could speak a guessed line with the request's
public parameters and compare the result's SHA-256 with ``outputDigest``. The buyer still gets
the same speech for the same seed and text, since their salt is the same each time.

The sealed boxes are :func:`voicemarket.content.sealing.seal_box`: the bundle's own key
wrapping and AES-256-GCM stream, laid out compactly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from voicemarket.content.sealing import BOX_OVERHEAD, normalise_public_key, open_box, seal_box
from voicemarket.errors import EnvelopeError

ENVELOPE_VERSION = 1
SALT_SIZE = 16
_HEAD = 1 + 33 + SALT_SIZE
ENVELOPE_OVERHEAD = BOX_OVERHEAD + _HEAD
"""Bytes a sealed envelope adds to the text: 203 (so 308 bytes of text fit inline on-chain)."""
_COMMITMENT_LABEL = b"voicemarket/private-input/v1\x00"


def compressed(public_key: bytes | str) -> bytes:
    """The 33-byte compressed form of a secp256k1 public key (any form :func:`normalise_public_key` reads)."""
    import coincurve

    return coincurve.PublicKey(b"\x04" + normalise_public_key(public_key)).format(compressed=True)


def input_commitment(text: str, salt: bytes) -> bytes:
    """A private request's ``inputHash``: SHA-256 of the label, the salt and the UTF-8 text."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"the salt is {SALT_SIZE} bytes")
    return hashlib.sha256(_COMMITMENT_LABEL + bytes(salt) + text.encode("utf-8")).digest()


def private_seed(seed: int, salt: bytes) -> int:
    """The sampling seed of a private request: the ``params`` seed XOR the salt's first four bytes."""
    return (int(seed) ^ int.from_bytes(bytes(salt)[:4], "big")) & 0xFFFFFFFF


@dataclass(frozen=True)
class RequestEnvelope:
    """What a private request tells its operator: the text, whom to seal the audio to, and the salt."""

    text: str
    reply_to: bytes  # the buyer's encryption public key, 64 bytes (x || y)
    salt: bytes

    @property
    def input_hash(self) -> bytes:
        return input_commitment(self.text, self.salt)

    def to_bytes(self) -> bytes:
        if len(self.salt) != SALT_SIZE:
            raise ValueError(f"the salt is {SALT_SIZE} bytes")
        return bytes([ENVELOPE_VERSION]) + compressed(self.reply_to) + self.salt + self.text.encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> RequestEnvelope:
        """Parse an opened envelope; :class:`EnvelopeError` names what is wrong."""
        if len(data) < _HEAD or data[0] != ENVELOPE_VERSION:
            raise EnvelopeError(
                f"the private input is not a version-{ENVELOPE_VERSION} request envelope "
                f"({len(data)} bytes, version byte {data[:1].hex() or 'missing'})"
            )
        try:
            reply_to = normalise_public_key(data[1:34])
        except ValueError:
            raise EnvelopeError("the envelope's reply-to key is not a secp256k1 public key") from None
        try:
            text = data[_HEAD:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"the envelope's text is not UTF-8: {exc}") from None
        return cls(text, reply_to, data[34:_HEAD])


def seal_request(envelope: RequestEnvelope, operator_public_key: bytes | str) -> bytes:
    """The envelope sealed so that only the operator can open it (a sealed box)."""
    return seal_box(envelope.to_bytes(), operator_public_key)


def open_request(box: bytes, operator_private_key: bytes | str) -> RequestEnvelope:
    """The envelope in ``box``. :class:`~voicemarket.errors.DecryptionError`: sealed to another key;
    :class:`~voicemarket.errors.IntegrityError`: not a box or altered; :class:`EnvelopeError`: opened
    but malformed. (It is not checked against ``inputHash`` here: see :meth:`RequestEnvelope.input_hash`.)"""
    return RequestEnvelope.from_bytes(open_box(box, operator_private_key))


def seal_output(audio: bytes, reply_to: bytes | str) -> bytes:
    """The audio of a private request, sealed to the buyer's key: what the operator stores."""
    return seal_box(audio, reply_to)


def open_output(box: bytes, buyer_private_key: bytes | str) -> bytes:
    """The audio in a private result (the caller checks it against ``outputDigest``)."""
    return open_box(box, buyer_private_key)

"""Encryption at rest: streamed AES-256-GCM, with the data key wrapped to operators' keys.

Sealed stream (format 1)::

    header   40 bytes: magic "VMSEAL\\0\\1" | chunk size (u32 BE) | nonce prefix (8 random bytes)
                       | key id (16 bytes, a commitment to the data key) | reserved (4 zero bytes)
    chunk i  AES-256-GCM(data key, nonce = prefix || i as u32 BE,
                         plaintext = the i-th ``chunk size`` bytes, aad = header || final flag)

Every chunk but the last holds exactly ``chunk size`` plaintext bytes and has final flag 0;
the last has 0..chunk size bytes and final flag 1 (an empty plaintext is one empty final
chunk). So a flipped bit fails that chunk's tag, a swapped or dropped chunk fails (its
nonce is its position), and a stream cut at any point fails (the last chunk present was
not sealed as final). Decryption writes to a temporary file and moves it into place only
after the final chunk authenticates.

Key wrapping (ECIES over secp256k1, the curve of Ethereum accounts): for each recipient's
64-byte public key P, a fresh ephemeral key e; the shared secret is the x coordinate of
e·P; HKDF-SHA256(secret, salt = e·G || P, info = "voicemarket/keywrap/v1") gives a
key-encryption key; AES-256-GCM under it (random nonce, aad = the info string and the key
id) seals the 32-byte data key. The resulting :class:`Keyring` is public data.

Sealed box (one recipient, for messages rather than bundles: a private request's text, a
private result's audio)::

    magic "VMB\\x01" (4) | ephemeral public key, compressed (33) | wrap nonce (12)
    | wrapped data key (48: the key and its GCM tag) | a sealed stream of the message

The same two steps as a bundle (the data key wrapped as above, the message sealed as above),
laid out compactly so that a short text and its envelope fit in a request's 512 bytes
(153 bytes of overhead). The recipient's key is not written: only its holder can open it.
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import coincurve
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import keccak, to_checksum_address

from voicemarket.content.files import atomic_output
from voicemarket.errors import DecryptionError, IntegrityError

MAGIC = b"VMSEAL\x00\x01"
HEADER = struct.Struct(">8sI8s16s4x")
HEADER_SIZE = HEADER.size
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 1024 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
KEY_SIZE = 32
_KEYWRAP_INFO = b"voicemarket/keywrap/v1"
_KEY_ID_LABEL = b"voicemarket/sealing/key-id/v1"
KEYRING_SCHEME = "ecies-secp256k1-hkdf-sha256-aes256gcm"


def new_data_key() -> bytes:
    """A fresh random 256-bit data key."""
    return secrets.token_bytes(KEY_SIZE)


def key_id(data_key: bytes) -> bytes:
    """A 16-byte commitment to a data key: tells "wrong key" apart from "tampered data"."""
    _check_key(data_key)
    return hashlib.sha256(_KEY_ID_LABEL + data_key).digest()[:16]


def _check_key(data_key: bytes) -> None:
    if not isinstance(data_key, (bytes, bytearray)) or len(data_key) != KEY_SIZE:
        raise ValueError("a data key is 32 bytes (AES-256)")


# ---------------------------------------------------------------- streamed encryption


class SealWriter:
    """Encrypts a stream pushed into :meth:`write`; sealed bytes go to ``sink`` as they are made.

    ``sink`` receives the header first, then one sealed chunk (plaintext + 16-byte tag) at a
    time. Call :meth:`close` to seal the final chunk; nothing is complete before that.
    """

    def __init__(
        self,
        data_key: bytes,
        sink: Callable[[bytes], object],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        nonce_prefix: bytes | None = None,
    ) -> None:
        _check_key(data_key)
        if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
        prefix = secrets.token_bytes(8) if nonce_prefix is None else nonce_prefix
        if len(prefix) != 8:
            raise ValueError("the nonce prefix is 8 bytes")
        self.header = HEADER.pack(MAGIC, chunk_size, prefix, key_id(data_key))
        self._aead = AESGCM(data_key)
        self._prefix = prefix
        self._chunk_size = chunk_size
        self._sink = sink
        self._buffer = bytearray()
        self._index = 0
        self._closed = False
        self.plaintext_size = 0
        self.sealed_size = HEADER_SIZE
        sink(self.header)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise ValueError("this SealWriter is closed")
        self.plaintext_size += len(data)
        self._buffer += data
        # A chunk is sealed only once a byte after it exists, so that it is known not to be final.
        size = self._chunk_size
        if len(self._buffer) > size:
            view = memoryview(self._buffer)
            start = 0
            while len(self._buffer) - start > size:
                self._emit(view[start : start + size], final=False)
                start += size
            view.release()
            del self._buffer[:start]

    def close(self) -> None:
        if self._closed:
            return
        self._emit(self._buffer, final=True)
        self._buffer = bytearray()
        self._closed = True

    def _emit(self, plaintext: bytes | bytearray | memoryview, *, final: bool) -> None:
        sealed = self._aead.encrypt(
            _nonce(self._prefix, self._index), plaintext, self.header + (b"\x01" if final else b"\x00")
        )
        self._index += 1
        self.sealed_size += len(sealed)
        self._sink(sealed)


def _nonce(prefix: bytes, index: int) -> bytes:
    if index >= 2**32:
        raise ValueError("too many chunks for one sealed stream (2**32)")
    return prefix + index.to_bytes(4, "big")


def _read_exact(source: BinaryIO, size: int) -> bytes:
    data = source.read(size)
    if len(data) == size or not data:
        return data
    parts = [data]
    got = len(data)
    while got < size:
        more = source.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def read_header(source: BinaryIO) -> tuple[int, bytes, bytes, bytes]:
    """(chunk size, nonce prefix, key id, header bytes) of a sealed stream."""
    header = _read_exact(source, HEADER_SIZE)
    if len(header) < HEADER_SIZE or header[:8] != MAGIC:
        raise IntegrityError(
            "not a voicemarket sealed file (bad or missing header): was it encrypted with voicemarket?"
        )
    _, chunk_size, prefix, kid = HEADER.unpack(header)
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE or header[36:] != b"\0\0\0\0":
        raise IntegrityError("the sealed file's header is corrupt")
    return chunk_size, prefix, kid, header


def iter_unsealed(source: BinaryIO, data_key: bytes) -> Iterator[bytes]:
    """Yield the plaintext chunk by chunk, each authenticated before it is yielded.

    The stream as a whole is authentic only once the generator is exhausted without error:
    a caller must not treat what it has written as complete before then (see :func:`unseal_file`).
    """
    chunk_size, prefix, kid, header = read_header(source)
    if key_id(data_key) != kid:
        raise DecryptionError(
            "this data key does not open this sealed file (a different bundle's key, or its header was altered)"
        )
    aead = AESGCM(data_key)
    sealed_size = chunk_size + TAG_SIZE
    current = _read_exact(source, sealed_size)
    index = 0
    while True:
        following = _read_exact(source, sealed_size) if len(current) == sealed_size else b""
        final = not following
        if len(current) < TAG_SIZE:
            raise IntegrityError(f"sealed file truncated in chunk {index}")
        try:
            plaintext = aead.decrypt(_nonce(prefix, index), current, header + (b"\x01" if final else b"\x00"))
        except InvalidTag:
            raise IntegrityError(
                f"chunk {index} failed authentication: the sealed file was truncated, reordered or tampered with"
            ) from None
        yield plaintext
        if final:
            return
        current = following
        index += 1


def seal_bytes(data: bytes, data_key: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    out: list[bytes] = []
    writer = SealWriter(data_key, out.append, chunk_size=chunk_size)
    writer.write(data)
    writer.close()
    return b"".join(out)


def unseal_bytes(sealed: bytes, data_key: bytes) -> bytes:
    return b"".join(iter_unsealed(io.BytesIO(sealed), data_key))


def seal_file(source: str | Path, dest: str | Path, data_key: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> None:
    """Encrypt ``source`` into ``dest`` (written to a temporary file, then moved into place)."""
    with atomic_output(dest) as out, open(source, "rb") as src:
        writer = SealWriter(data_key, out.write, chunk_size=chunk_size)
        while piece := src.read(4 * chunk_size):
            writer.write(piece)
        writer.close()


def unseal_file(
    source: str | Path, dest: str | Path, data_key: bytes, on_plaintext: Callable[[bytes], object] | None = None
) -> int:
    """Decrypt ``source`` into ``dest``; ``dest`` appears only if the whole stream authenticates.

    ``on_plaintext`` sees every authenticated chunk (to hash it on the way). Returns the size.
    """
    size = 0
    with atomic_output(dest, private=True) as out, open(source, "rb") as src:
        for plaintext in iter_unsealed(src, data_key):
            out.write(plaintext)
            if on_plaintext:
                on_plaintext(plaintext)
            size += len(plaintext)
    return size


# ---------------------------------------------------------------- operator keys (secp256k1, as Ethereum)


def _as_bytes(value: bytes | str, what: str) -> bytes:
    if isinstance(value, str):
        text = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"{what} must be hex (0x...) or bytes") from None
    return bytes(value)


def public_key_from_private(private_key: bytes | str) -> bytes:
    """The 64-byte uncompressed public key (x || y, no 0x04 prefix) of a 32-byte private key."""
    key = _as_bytes(private_key, "a private key")
    if len(key) != 32:
        raise ValueError("a secp256k1 private key is 32 bytes")
    return coincurve.PrivateKey(key).public_key.format(compressed=False)[1:]


def normalise_public_key(public_key: bytes | str) -> bytes:
    """Accept 64-byte (Ethereum), 65-byte (0x04 ...) or 33-byte compressed forms; return 64 bytes."""
    raw = _as_bytes(public_key, "a public key")
    if len(raw) == 64:
        raw = b"\x04" + raw
    if len(raw) not in (33, 65):
        raise ValueError(f"a secp256k1 public key is 64 bytes (x || y), got {len(raw)}")
    try:
        return coincurve.PublicKey(raw).format(compressed=False)[1:]
    except ValueError:
        raise ValueError("not a point on secp256k1: check the operator's public key") from None


def address_from_public_key(public_key: bytes | str) -> str:
    """The EIP-55 Ethereum address of a public key: the last 20 bytes of keccak256(x || y)."""
    return to_checksum_address(keccak(normalise_public_key(public_key))[-20:])


@dataclass(frozen=True)
class WrappedKey:
    """A data key sealed to one recipient."""

    address: str
    public_key: bytes
    ephemeral_public_key: bytes
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict:
        return {
            "address": self.address,
            "publicKey": "0x" + self.public_key.hex(),
            "ephemeralPublicKey": "0x" + self.ephemeral_public_key.hex(),
            "nonce": "0x" + self.nonce.hex(),
            "wrappedKey": "0x" + self.ciphertext.hex(),
        }

    @classmethod
    def from_json(cls, obj: dict) -> WrappedKey:
        return cls(
            address=to_checksum_address(obj["address"]),
            public_key=normalise_public_key(obj["publicKey"]),
            ephemeral_public_key=normalise_public_key(obj["ephemeralPublicKey"]),
            nonce=_as_bytes(obj["nonce"], "nonce"),
            ciphertext=_as_bytes(obj["wrappedKey"], "wrappedKey"),
        )


def _kek(shared_x: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_KEYWRAP_INFO).derive(shared_x)


def wrap_key(data_key: bytes, public_key: bytes | str) -> WrappedKey:
    """Seal ``data_key`` so that only the holder of ``public_key``'s private key can open it."""
    _check_key(data_key)
    recipient = normalise_public_key(public_key)
    ephemeral = coincurve.PrivateKey()
    ephemeral_pub = ephemeral.public_key.format(compressed=False)[1:]
    shared = coincurve.PublicKey(b"\x04" + recipient).multiply(ephemeral.secret).format(compressed=False)[1:33]
    nonce = secrets.token_bytes(12)
    ciphertext = AESGCM(_kek(shared, ephemeral_pub, recipient)).encrypt(
        nonce, data_key, _KEYWRAP_INFO + key_id(data_key)
    )
    return WrappedKey(address_from_public_key(recipient), recipient, ephemeral_pub, nonce, ciphertext)


def unwrap_key(wrapped: WrappedKey, private_key: bytes | str, expected_key_id: bytes) -> bytes:
    key = _as_bytes(private_key, "a private key")
    if len(key) != 32:
        raise ValueError("a secp256k1 private key is 32 bytes")
    secret = coincurve.PrivateKey(key)
    shared = coincurve.PublicKey(b"\x04" + wrapped.ephemeral_public_key).multiply(secret.secret)
    shared_x = shared.format(compressed=False)[1:33]
    own = secret.public_key.format(compressed=False)[1:]
    try:
        data_key = AESGCM(_kek(shared_x, wrapped.ephemeral_public_key, own)).decrypt(
            wrapped.nonce, wrapped.ciphertext, _KEYWRAP_INFO + expected_key_id
        )
    except InvalidTag:
        raise DecryptionError("this private key cannot unwrap this data key") from None
    if key_id(data_key) != expected_key_id:
        raise DecryptionError("the unwrapped key does not match the keyring's key id")
    return data_key


@dataclass(frozen=True)
class Keyring:
    """The data key of one sealed bundle, wrapped to each authorised operator. Public data."""

    key_id: bytes
    recipients: tuple[WrappedKey, ...]

    @classmethod
    def create(cls, data_key: bytes, public_keys: Iterable[bytes | str]) -> Keyring:
        keys = [normalise_public_key(k) for k in public_keys]
        if not keys:
            raise ValueError("a keyring needs at least one recipient (an operator's public key)")
        unique = list(dict.fromkeys(keys))
        return cls(key_id(data_key), tuple(wrap_key(data_key, k) for k in unique))

    def with_recipient(self, data_key: bytes, public_key: bytes | str) -> Keyring:
        """The same keyring with one more recipient (the caller must hold the data key)."""
        if key_id(data_key) != self.key_id:
            raise DecryptionError("this data key does not belong to this keyring")
        if normalise_public_key(public_key) in {r.public_key for r in self.recipients}:
            return self
        return Keyring(self.key_id, self.recipients + (wrap_key(data_key, public_key),))

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(r.address for r in self.recipients)

    def unwrap(self, private_key: bytes | str) -> bytes:
        """The data key, for the holder of one recipient's private key."""
        own = public_key_from_private(private_key)
        for recipient in self.recipients:
            if recipient.public_key == own:
                return unwrap_key(recipient, private_key, self.key_id)
        raise DecryptionError(
            f"account {address_from_public_key(own)} is not a recipient of this bundle's key "
            f"(recipients: {', '.join(self.addresses)}); ask the creator to add this operator"
        )

    def to_json(self) -> dict:
        return {
            "type": "voicemarket/keyring",
            "version": 1,
            "scheme": KEYRING_SCHEME,
            "keyId": "0x" + self.key_id.hex(),
            "recipients": [r.to_json() for r in self.recipients],
        }

    def to_bytes(self) -> bytes:
        return (json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")) + "\n").encode()

    @classmethod
    def from_json(cls, obj: dict) -> Keyring:
        if obj.get("type") != "voicemarket/keyring" or obj.get("version") != 1 or obj.get("scheme") != KEYRING_SCHEME:
            raise ValueError("not a voicemarket keyring (type/version/scheme)")
        return cls(_as_bytes(obj["keyId"], "keyId"), tuple(WrappedKey.from_json(r) for r in obj["recipients"]))

    @classmethod
    def from_bytes(cls, data: bytes) -> Keyring:
        try:
            return cls.from_json(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"not a valid keyring document: {exc}") from None


# ---------------------------------------------------------------- sealed boxes (one recipient)

BOX_MAGIC = b"VMB\x01"
_BOX_PREFIX = struct.Struct(">4s33s12s48s")
BOX_OVERHEAD = _BOX_PREFIX.size + HEADER_SIZE + TAG_SIZE
"""Bytes a sealed box adds to a message of at most one chunk: 153."""


def seal_box(message: bytes, public_key: bytes | str) -> bytes:
    """``message`` sealed so that only the holder of ``public_key``'s private key can read it.

    A fresh data key per box, wrapped to ``public_key`` (:func:`wrap_key`), the message sealed
    under it (:func:`seal_bytes`); the format is in the module docstring.
    """
    data_key = new_data_key()
    wrapped = wrap_key(data_key, public_key)
    ephemeral = coincurve.PublicKey(b"\x04" + wrapped.ephemeral_public_key).format(compressed=True)
    prefix = _BOX_PREFIX.pack(BOX_MAGIC, ephemeral, wrapped.nonce, wrapped.ciphertext)
    return prefix + seal_bytes(bytes(message), data_key)


def _box_parts(box: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(ephemeral public key, wrap nonce, wrapped key, sealed stream) of a box, or IntegrityError."""
    if len(box) < BOX_OVERHEAD or box[:4] != BOX_MAGIC:
        raise IntegrityError("not a voicemarket sealed box (bad or missing header)")
    _, ephemeral, nonce, ciphertext = _BOX_PREFIX.unpack_from(box)
    try:
        ephemeral = normalise_public_key(ephemeral)
    except ValueError:
        raise IntegrityError("the sealed box's ephemeral key is not a point on secp256k1") from None
    return ephemeral, nonce, ciphertext, box[_BOX_PREFIX.size :]


def box_data_key(box: bytes, private_key: bytes | str) -> bytes:
    """The data key of a box, for the holder of its recipient's private key (:class:`DecryptionError`
    otherwise). It opens this box and nothing else: what a buyer may show an arbiter to prove what a
    delivery held, without giving away their key (:func:`open_box_with_key`)."""
    ephemeral, nonce, ciphertext, sealed = _box_parts(bytes(box))
    own = public_key_from_private(private_key)
    wrapped = WrappedKey(address_from_public_key(own), own, ephemeral, nonce, ciphertext)
    _, _, kid, _ = read_header(io.BytesIO(sealed))
    try:
        return unwrap_key(wrapped, private_key, kid)
    except DecryptionError:
        raise DecryptionError(
            f"this sealed box is not for account key {address_from_public_key(own)} (another recipient's, or altered)"
        ) from None


def open_box_with_key(box: bytes, data_key: bytes) -> bytes:
    """The message of a box, given its data key (:func:`box_data_key`); IntegrityError if altered."""
    return unseal_bytes(_box_parts(bytes(box))[3], data_key)


def open_box(box: bytes, private_key: bytes | str) -> bytes:
    """The message of a box sealed to ``private_key``'s public key.

    :class:`DecryptionError`: sealed to another key; :class:`IntegrityError`: not a box, or altered.
    """
    return open_box_with_key(box, box_data_key(box, private_key))

"""The small encodings under IPFS content ids: varints, base58btc, base32, multihash, CID.

Only what voicemarket needs: SHA2-256 multihashes, the dag-pb (0x70) and raw (0x55)
codecs, CIDv0 (base58btc, bare multihash) and CIDv1 (multibase ``b`` = base32, lower case,
no padding), as Kubo prints them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from voicemarket.errors import InvalidCID

SHA2_256 = 0x12
DAG_PB = 0x70
RAW = 0x55
DAG_CBOR = 0x71
_CODEC_NAMES = {DAG_PB: "dag-pb", RAW: "raw", DAG_CBOR: "dag-cbor"}

_B58_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


# ---------------------------------------------------------------- varints (unsigned LEB128)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as multiformats and protobuf use it."""
    if value < 0:
        raise ValueError(f"varints are unsigned, got {value}")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read one varint at ``offset``; returns (value, offset after it). Rejects non-minimal forms."""
    value = 0
    shift = 0
    start = offset
    while True:
        if offset >= len(data):
            raise ValueError(f"truncated varint at byte {start}")
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and offset - start > 1:
                raise ValueError(f"non-minimal varint at byte {start}")
            return value, offset
        shift += 7
        if shift > 63:
            raise ValueError(f"varint longer than 9 bytes at byte {start}")


# ---------------------------------------------------------------- base58btc and base32


def b58encode(data: bytes) -> str:
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    out = bytearray()
    while number:
        number, rem = divmod(number, 58)
        out.append(_B58_ALPHABET[rem])
    out.extend(b"1" * zeros)
    out.reverse()
    return out.decode("ascii")


def b58decode(text: str) -> bytes:
    raw = text.encode("ascii", "replace")
    number = 0
    for char in raw:
        try:
            number = number * 58 + _B58_INDEX[char]
        except KeyError:
            raise ValueError(f"{text!r} is not base58btc: bad character {chr(char)!r}") from None
    zeros = len(raw) - len(raw.lstrip(b"1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase ``b``)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32decode(text: str) -> bytes:
    if text != text.lower():
        raise ValueError(f"{text!r}: multibase 'b' is lower-case base32")
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not base32: {exc}") from None


# ---------------------------------------------------------------- multihash and CID


def sha256_multihash(digest: bytes) -> bytes:
    if len(digest) != 32:
        raise ValueError(f"a SHA2-256 digest is 32 bytes, got {len(digest)}")
    return bytes((SHA2_256, 32)) + digest


@dataclass(frozen=True, slots=True)
class CID:
    """A content id over a SHA2-256 digest.

    ``version`` 0 is always dag-pb and prints as base58btc (``Qm...``); version 1 prints as
    multibase base32 (``bafy...`` for dag-pb, ``bafk...`` for raw).
    """

    version: int
    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise InvalidCID(f"CID version {self.version} is not 0 or 1")
        if self.version == 0 and self.codec != DAG_PB:
            raise InvalidCID("a CIDv0 is always dag-pb")
        if len(self.digest) != 32:
            raise InvalidCID(f"a SHA2-256 digest is 32 bytes, got {len(self.digest)}")

    @property
    def multihash(self) -> bytes:
        return sha256_multihash(self.digest)

    @property
    def codec_name(self) -> str:
        return _CODEC_NAMES.get(self.codec, hex(self.codec))

    def to_bytes(self) -> bytes:
        """The binary form (what dag-pb links and CAR sections carry)."""
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({self})"

    def to_v1(self) -> CID:
        return CID(1, self.codec, self.digest)

    @classmethod
    def parse(cls, value: str | bytes | CID) -> CID:
        """Read a CID from its text form (``Qm...``, ``b...``), its binary form, or a CID."""
        if isinstance(value, CID):
            return value
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls.from_bytes(bytes(value))
        text = value.strip()
        if not text:
            raise InvalidCID("an empty string is not a CID")
        if len(text) == 46 and text.startswith("Qm"):
            try:
                return cls.from_bytes(b58decode(text))
            except ValueError as exc:
                raise InvalidCID(f"{text!r} is not a CIDv0: {exc}") from None
        if text[0] == "b":
            try:
                return cls.from_bytes(b32decode(text[1:]))
            except ValueError as exc:
                raise InvalidCID(f"{text!r} is not a base32 CIDv1: {exc}") from None
        if text[0] == "z":
            try:
                return cls.from_bytes(b58decode(text[1:]))
            except ValueError as exc:
                raise InvalidCID(f"{text!r} is not a base58btc CIDv1: {exc}") from None
        raise InvalidCID(
            f"{text!r} is not a CID this project reads: expected 'Qm...' (CIDv0) or 'b...' (CIDv1, base32)"
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        cid, end = cls.read(data, 0)
        if end != len(data):
            raise InvalidCID(f"{len(data) - end} stray bytes after the CID")
        return cls(cid.version, cid.codec, cid.digest)

    @classmethod
    def read(cls, data: bytes | memoryview, offset: int) -> tuple[CID, int]:
        """Read a binary CID at ``offset`` (as CAR sections hold them); returns (cid, end)."""
        try:
            if data[offset : offset + 2] == b"\x12\x20":
                return cls(0, DAG_PB, bytes(data[offset + 2 : offset + 34])), offset + 34
            version, pos = decode_varint(data, offset)
            if version != 1:
                raise InvalidCID(f"CID version {version} is not supported")
            codec, pos = decode_varint(data, pos)
            hash_code, pos = decode_varint(data, pos)
            length, pos = decode_varint(data, pos)
        except ValueError as exc:
            raise InvalidCID(f"malformed binary CID: {exc}") from None
        if hash_code != SHA2_256 or length != 32:
            raise InvalidCID(f"only SHA2-256 multihashes are supported (got code {hash_code:#x}, length {length})")
        digest = bytes(data[pos : pos + 32])
        if len(digest) != 32:
            raise InvalidCID("truncated multihash digest")
        return cls(1, codec, digest), pos + 32

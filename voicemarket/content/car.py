"""CAR v1 (Content ARchive) files: a file's whole UnixFS DAG in one file.

``ipfs dag import model.car`` on any Kubo node then holds the file under exactly the CID
that :mod:`voicemarket.content.cid` computed, without re-chunking. Layout (CARv1 spec)::

    varint(len(header)) | header: dag-cbor {"roots": [CID], "version": 1}
    varint(len(cid) + len(block)) | cid (binary) | block      ... one section per block

Blocks are written as the builder makes them: leaves before their parents (any order is
valid in a CAR; Kubo's own export happens to be root first).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from voicemarket.content.cid import READ_SIZE, UNIXFS_FILE, UnixFSBuilder, cid_of_file, decode_dag_pb, decode_unixfs
from voicemarket.content.files import atomic_output
from voicemarket.content.multiformats import CID, DAG_PB, RAW, decode_varint, encode_varint
from voicemarket.errors import CarError, IntegrityError, InvalidCID

_CID_TAG = 42


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise ValueError("CBOR length too large")


def car_header(root: CID) -> bytes:
    """The varint-prefixed dag-cbor header ``{"roots": [root], "version": 1}`` (keys in dag-cbor order)."""
    link = b"\x00" + root.to_bytes()
    body = (
        _cbor_head(5, 2)
        + _cbor_head(3, 5)
        + b"roots"
        + _cbor_head(4, 1)
        + _cbor_head(6, _CID_TAG)
        + _cbor_head(2, len(link))
        + link
        + _cbor_head(3, 7)
        + b"version"
        + _cbor_head(0, 1)
    )
    return encode_varint(len(body)) + body


def write_car(source: str | Path, dest: str | Path, *, cid_version: int = 1) -> CID:
    """Write ``source``'s DAG as a CAR v1 file at ``dest`` (atomically); returns the root CID.

    Two reads of ``source``: one for the root (the header comes first), one for the blocks.
    """
    root = cid_of_file(source, cid_version)
    with atomic_output(dest) as out:
        out.write(car_header(root))

        def section(cid: CID, block: bytes) -> None:
            raw = cid.to_bytes()
            out.write(encode_varint(len(raw) + len(block)))
            out.write(raw)
            out.write(block)

        builder = UnixFSBuilder(cid_version, on_block=section)
        with open(source, "rb") as handle:
            while piece := handle.read(READ_SIZE):
                builder.update(piece)
        if builder.finish() != root:
            raise IntegrityError(f"{source} changed while it was being exported; export again")
    return root


# ---------------------------------------------------------------- reading


def _cbor_item(data: bytes, pos: int):
    """A minimal dag-cbor reader: enough for CAR headers (maps, arrays, text, bytes, ints, tag 42)."""
    if pos >= len(data):
        raise CarError("truncated CAR header")
    first = data[pos]
    major, info = first >> 5, first & 31
    pos += 1
    if info < 24:
        value = info
    elif info in (24, 25, 26, 27):
        size = 1 << (info - 24)
        value = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    else:
        raise CarError("unsupported CBOR item in CAR header")
    if major == 0:
        return value, pos
    if major in (2, 3):
        raw = data[pos : pos + value]
        return (raw if major == 2 else raw.decode("utf-8")), pos + value
    if major == 4:
        items = []
        for _ in range(value):
            item, pos = _cbor_item(data, pos)
            items.append(item)
        return items, pos
    if major == 5:
        mapping = {}
        for _ in range(value):
            key, pos = _cbor_item(data, pos)
            mapping[key], pos = _cbor_item(data, pos)
        return mapping, pos
    if major == 6 and value == _CID_TAG:
        raw, pos = _cbor_item(data, pos)
        if not isinstance(raw, bytes) or raw[:1] != b"\x00":
            raise CarError("malformed CID link in CAR header")
        return CID.from_bytes(raw[1:]), pos
    raise CarError("unsupported CBOR item in CAR header")


def _read_varint(handle: BinaryIO) -> int | None:
    raw = bytearray()
    while True:
        byte = handle.read(1)
        if not byte:
            if raw:
                raise CarError("truncated varint in CAR file")
            return None
        raw += byte
        if not byte[0] & 0x80:
            return decode_varint(bytes(raw))[0]
        if len(raw) > 9:
            raise CarError("varint too long in CAR file")


def read_car(handle: BinaryIO) -> tuple[list[CID], Iterator[tuple[CID, bytes]]]:
    """The roots of a CAR v1 stream and an iterator over its (cid, block) sections, each verified."""
    length = _read_varint(handle)
    if length is None or length > 1 << 20:
        raise CarError("not a CAR file (no header)")
    header, end = _cbor_item(handle.read(length), 0)
    if end != length or not isinstance(header, dict) or header.get("version") != 1:
        raise CarError("not a CAR v1 file")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CarError("CAR header without roots")

    def sections() -> Iterator[tuple[CID, bytes]]:
        while (size := _read_varint(handle)) is not None:
            section = handle.read(size)
            if len(section) != size:
                raise CarError("truncated CAR section")
            try:
                cid, start = CID.read(section, 0)
            except InvalidCID as exc:
                raise CarError(f"bad CID in CAR section: {exc}") from None
            block = section[start:]
            if hashlib.sha256(block).digest() != cid.digest:
                raise CarError(f"block {cid} in the CAR file does not match its CID")
            yield cid, block

    return roots, sections()


def car_to_file(car: str | Path, dest: str | Path) -> CID:
    """Rebuild the file a single-root UnixFS CAR holds (every block verified); returns the root."""
    with open(car, "rb") as handle:
        roots, sections = read_car(handle)
        if len(roots) != 1:
            raise CarError(f"expected one root, found {len(roots)}")
        offsets: dict[CID, tuple[int, int]] = {}
        while True:
            try:
                cid, block = next(sections)
            except StopIteration:
                break
            offsets[cid] = (handle.tell() - len(block), len(block))

        def block_of(cid: CID) -> bytes:
            if cid not in offsets:
                raise CarError(f"the CAR file lacks block {cid}")
            offset, size = offsets[cid]
            handle.seek(offset)
            return handle.read(size)

        def emit(cid: CID, out: BinaryIO) -> None:
            block = block_of(cid)
            if cid.codec == RAW:
                out.write(block)
                return
            if cid.codec != DAG_PB:
                raise CarError(f"block {cid} is neither dag-pb nor raw")
            node = decode_dag_pb(block)
            unixfs = decode_unixfs(node.data or b"")
            if unixfs.type not in (UNIXFS_FILE, 0):
                raise CarError(f"block {cid} is not part of a UnixFS file")
            if unixfs.data:
                out.write(unixfs.data)
            for link in node.links:
                emit(link.cid, out)

        with atomic_output(dest) as out:
            emit(roots[0], out)
    return roots[0]

"""IPFS content ids for files, exactly as Kubo's ``ipfs add`` computes them.

Kubo's defaults (``ipfs add FILE``): fixed 256 KiB chunks, a balanced DAG of dag-pb nodes
with at most 174 links each, UnixFS ``File`` leaves, CIDv0. With ``--cid-version 1`` the
leaves become raw blocks and the CIDs print in base32. A file that fits in one chunk is
its own root (a single leaf), and an empty file is one empty leaf.

The builder is a stream: feed it bytes in pieces of any size and it keeps only the chunk
being filled plus one pending list of links per tree level, so hashing a file of any size
costs a few hundred KiB of memory. It can also hand every block to a callback (a CAR
writer, a block store).

The balanced layout, bottom up: leaves are grouped 174 at a time under a parent; parents
are grouped 174 at a time under a grandparent; and so on until one node remains. Kubo
builds the same tree top down (each new root takes the full old root as its first child),
which gives identical nodes, including a parent with a single child when the last group
at a level holds one node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from voicemarket.content.multiformats import CID, DAG_PB, RAW, decode_varint, encode_varint
from voicemarket.errors import DagError

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
READ_SIZE = 4 * 1024 * 1024

# UnixFS Data.DataType values
UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2

BlockSink = Callable[[CID, bytes], None]
"""Receives each block as it is made: (its CID, its bytes). Leaves come before their parents."""


@dataclass(frozen=True, slots=True)
class _Link:
    cid: CID
    tsize: int  # the whole subtree's encoded size (dag-pb's Tsize)
    filesize: int  # the file bytes under it (UnixFS blocksizes)


class UnixFSBuilder:
    """Computes the root CID of a file fed in pieces, with Kubo's ``ipfs add`` layout.

    ``cid_version`` 0 (Kubo's default) or 1 (``--cid-version 1``, which implies raw leaves
    unless ``raw_leaves=False``).
    """

    def __init__(
        self,
        cid_version: int = 0,
        *,
        raw_leaves: bool | None = None,
        on_block: BlockSink | None = None,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
    ) -> None:
        if cid_version not in (0, 1):
            raise ValueError(f"cid_version must be 0 or 1, got {cid_version}")
        if raw_leaves is None:
            raw_leaves = cid_version == 1
        if raw_leaves and cid_version == 0:
            raise ValueError("raw leaves need CIDv1 (Kubo refuses --raw-leaves with CIDv0 as well)")
        if chunk_size < 1 or max_links < 2:
            raise ValueError("chunk_size must be >= 1 and max_links >= 2")
        self.cid_version = cid_version
        self.raw_leaves = raw_leaves
        self.chunk_size = chunk_size
        self.max_links = max_links
        self._on_block = on_block
        self._pending = bytearray()
        self._levels: list[list[_Link]] = []
        self._leaves = 0
        self.size = 0
        self._root: CID | None = None

    # ------------------------------------------------------------ feeding
    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the file."""
        if self._root is not None:
            raise RuntimeError("this builder is finished; make a new one")
        view = memoryview(data).cast("B")
        self.size += len(view)
        pos = 0
        if self._pending:
            take = min(self.chunk_size - len(self._pending), len(view))
            self._pending += view[:take]
            pos = take
            if len(self._pending) == self.chunk_size:
                self._add_leaf(self._pending)
                self._pending = bytearray()
        while len(view) - pos >= self.chunk_size:
            self._add_leaf(view[pos : pos + self.chunk_size])
            pos += self.chunk_size
        if pos < len(view):
            self._pending += view[pos:]

    def finish(self) -> CID:
        """The root CID. The builder takes no more data afterwards."""
        if self._root is not None:
            return self._root
        if self._pending or self._leaves == 0:
            self._add_leaf(self._pending)
            self._pending = bytearray()
        level = 0
        while True:
            links = self._levels[level]
            higher = any(self._levels[level + 1 :])
            if len(links) == 1 and not higher:
                self._root = links[0].cid
                return self._root
            if links:
                self._push(level + 1, self._make_parent(links))
                self._levels[level] = []
            level += 1

    # ------------------------------------------------------------ blocks
    def _add_leaf(self, chunk: bytes | bytearray | memoryview) -> None:
        self._leaves += 1
        size = len(chunk)
        digest = hashlib.sha256()
        if self.raw_leaves:
            digest.update(chunk)
            cid = CID(1, RAW, digest.digest())
            tsize = size
            if self._on_block:
                self._on_block(cid, bytes(chunk))
        else:
            # PBNode{Data: Data{Type: File, Data: chunk, filesize}}; an empty file has no Data field.
            inner_head = b"\x08\x02" + (b"\x12" + encode_varint(size) if size else b"")
            inner_tail = b"\x18" + encode_varint(size)
            inner_len = len(inner_head) + size + len(inner_tail)
            head = b"\x0a" + encode_varint(inner_len) + inner_head
            digest.update(head)
            digest.update(chunk)
            digest.update(inner_tail)
            cid = CID(self.cid_version, DAG_PB, digest.digest())
            tsize = len(head) + size + len(inner_tail)
            if self._on_block:
                self._on_block(cid, head + bytes(chunk) + inner_tail)
        self._push(0, _Link(cid, tsize, size))

    def _push(self, level: int, link: _Link) -> None:
        while len(self._levels) <= level:
            self._levels.append([])
        links = self._levels[level]
        links.append(link)
        if len(links) == self.max_links:
            self._levels[level] = []
            self._push(level + 1, self._make_parent(links))

    def _make_parent(self, links: list[_Link]) -> _Link:
        block = encode_file_node(links)
        cid = CID(self.cid_version, DAG_PB, hashlib.sha256(block).digest())
        if self._on_block:
            self._on_block(cid, block)
        return _Link(cid, len(block) + sum(link.tsize for link in links), sum(link.filesize for link in links))


def encode_file_node(links: Iterable[_Link]) -> bytes:
    """An internal UnixFS file node: dag-pb links (unnamed) then Data{File, filesize, blocksizes}."""
    links = list(links)
    out = bytearray()
    for link in links:
        cid_bytes = link.cid.to_bytes()
        body = b"\x0a" + encode_varint(len(cid_bytes)) + cid_bytes + b"\x12\x00" + b"\x18" + encode_varint(link.tsize)
        out += b"\x12" + encode_varint(len(body)) + body
    unixfs = bytearray(b"\x08\x02\x18" + encode_varint(sum(link.filesize for link in links)))
    for link in links:
        unixfs += b"\x20" + encode_varint(link.filesize)
    out += b"\x0a" + encode_varint(len(unixfs)) + unixfs
    return bytes(out)


# ---------------------------------------------------------------- convenience


def cid_of_bytes(data: bytes, cid_version: int = 0) -> CID:
    builder = UnixFSBuilder(cid_version)
    builder.update(data)
    return builder.finish()


def cids_of_file(path: str | Path, versions: Iterable[int] = (0, 1)) -> dict[int, CID]:
    """The CIDs of a file under each requested version, in one read of the file."""
    builders = {version: UnixFSBuilder(version) for version in versions}
    with open(path, "rb") as handle:
        while piece := handle.read(READ_SIZE):
            for builder in builders.values():
                builder.update(piece)
    return {version: builder.finish() for version, builder in builders.items()}


def cid_of_file(path: str | Path, cid_version: int = 0) -> CID:
    return cids_of_file(path, (cid_version,))[cid_version]


def builder_for(cid: CID, on_block: BlockSink | None = None) -> UnixFSBuilder:
    """The builder whose output can be compared with ``cid`` (v0: UnixFS leaves; v1: raw leaves)."""
    return UnixFSBuilder(cid.version, on_block=on_block)


def candidate_builders(cid: CID) -> list[UnixFSBuilder]:
    """Builders for every Kubo layout that can produce ``cid``.

    A CIDv1 dag-pb root names either a ``--cid-version 1`` DAG (raw leaves) or a CIDv0 DAG
    re-expressed as CIDv1 (as the contracts return every CID), which the CID alone does not
    tell apart; a match with either proves the bytes. Compare with :func:`matches`.
    """
    if cid.version == 1 and cid.codec == DAG_PB:
        return [UnixFSBuilder(1), UnixFSBuilder(0)]
    return [builder_for(cid)]


def matches(cid: CID, builders: Iterable[UnixFSBuilder]) -> bool:
    """Whether any finished builder's root has ``cid``'s codec and digest (version aside)."""
    return any((root := b.finish()).digest == cid.digest and root.codec == cid.codec for b in builders)


# ---------------------------------------------------------------- decoding (CAR import, checks)


@dataclass(frozen=True, slots=True)
class PBLink:
    cid: CID
    name: str | None
    tsize: int | None


@dataclass(frozen=True, slots=True)
class PBNode:
    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    type: int
    data: bytes | None
    filesize: int | None
    blocksizes: tuple[int, ...]


def _fields(buf: bytes) -> Iterable[tuple[int, int, int | bytes]]:
    pos = 0
    while pos < len(buf):
        try:
            key, pos = decode_varint(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                value, pos = decode_varint(buf, pos)
            elif wire == 2:
                length, pos = decode_varint(buf, pos)
                if pos + length > len(buf):
                    raise DagError("length-delimited field runs past the end of the block")
                value = bytes(buf[pos : pos + length])
                pos += length
            else:
                raise DagError(f"unexpected protobuf wire type {wire}")
        except ValueError as exc:
            raise DagError(f"malformed protobuf: {exc}") from None
        yield number, wire, value


def decode_dag_pb(block: bytes) -> PBNode:
    links: list[PBLink] = []
    data: bytes | None = None
    for number, wire, value in _fields(block):
        if number == 2 and wire == 2:
            cid = name = tsize = None
            for lnum, lwire, lval in _fields(value):  # type: ignore[arg-type]
                if lnum == 1 and lwire == 2:
                    cid = CID.from_bytes(lval)  # type: ignore[arg-type]
                elif lnum == 2 and lwire == 2:
                    name = lval.decode("utf-8")  # type: ignore[union-attr]
                elif lnum == 3 and lwire == 0:
                    tsize = lval  # type: ignore[assignment]
                else:
                    raise DagError(f"unexpected field {lnum} in a dag-pb link")
            if cid is None:
                raise DagError("dag-pb link without a hash")
            links.append(PBLink(cid, name, tsize))
        elif number == 1 and wire == 2:
            data = value  # type: ignore[assignment]
        else:
            raise DagError(f"unexpected field {number} in a dag-pb node")
    return PBNode(tuple(links), data)


def decode_unixfs(data: bytes) -> UnixFSData:
    kind = None
    payload = None
    filesize = None
    blocksizes: list[int] = []
    for number, wire, value in _fields(data):
        if number == 1 and wire == 0:
            kind = value
        elif number == 2 and wire == 2:
            payload = value
        elif number == 3 and wire == 0:
            filesize = value
        elif number == 4 and wire == 0:
            blocksizes.append(value)  # type: ignore[arg-type]
        elif number == 4 and wire == 2:  # packed form, allowed by protobuf readers
            pos = 0
            while pos < len(value):  # type: ignore[arg-type]
                size, pos = decode_varint(value, pos)  # type: ignore[arg-type]
                blocksizes.append(size)
        elif number in (5, 6, 7, 8):
            continue  # hashType, fanout, mode, mtime: not used by plain files
        else:
            raise DagError(f"unexpected field {number} in UnixFS data")
    if kind is None:
        raise DagError("UnixFS data without a type")
    return UnixFSData(kind, payload, filesize, tuple(blocksizes))  # type: ignore[arg-type]

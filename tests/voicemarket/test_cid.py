"""Content ids: identical to Kubo's `ipfs add` (CIDv0 defaults and --cid-version 1).

Two independent computations stand beside ours: the reference JavaScript importer
(ipfs-unixfs-importer from npm, configured as Kubo) and, inside this file, a direct
transcription of Kubo's top-down balanced layout, written without the streaming tricks.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.cid import (
    CHUNK_SIZE,
    MAX_LINKS,
    UNIXFS_FILE,
    UnixFSBuilder,
    cid_of_bytes,
    cids_of_file,
    decode_dag_pb,
    decode_unixfs,
)
from voicemarket.content.multiformats import (
    CID,
    DAG_PB,
    RAW,
    InvalidCID,
    b32decode,
    b32encode,
    b58decode,
    b58encode,
    decode_varint,
    encode_varint,
)

C = CHUNK_SIZE


def test_public_vector_hello():
    assert str(cid_of_bytes(b"hello\n")) == "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN"
    v1 = cid_of_bytes(b"hello\n", 1)
    assert v1.codec == RAW and v1.digest == hashlib.sha256(b"hello\n").digest()
    assert str(v1) == "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"


def test_empty_file_is_the_well_known_empty_unixfs_file():
    assert str(cid_of_bytes(b"")) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    assert str(cid_of_bytes(b"", 1)) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


@pytest.mark.slow
def test_kubo_defaults_match_the_reference_importer_at_every_boundary(tmp_path, js_importer):
    """Empty, one byte, around one chunk, around 174 chunks (one full node) and past it (two levels)."""
    rng = random.Random(6)
    sizes = [
        0,
        1,
        6,
        C - 1,
        C,
        C + 1,
        2 * C,
        3 * C + 17,
        MAX_LINKS * C - 1,
        MAX_LINKS * C,
        MAX_LINKS * C + 1,
        (MAX_LINKS + 1) * C + 12345,
    ]
    files = []
    for size in sizes:
        path = tmp_path / f"f{size}"
        path.write_bytes(rng.randbytes(size))
        files.append({"path": path})
    for expected in js_importer(files):
        ours = cids_of_file(expected["path"])
        assert (str(ours[0]), str(ours[1])) == (expected["v0"], expected["v1"]), expected["path"]


def test_deep_trees_and_every_block_match_the_reference_importer(tmp_path, js_importer):
    """With tiny chunks and fan-outs, a few hundred files reach 4-6 levels; roots and the set of blocks agree."""
    rng = random.Random(61)
    cases = []
    for i in range(160):
        chunk = rng.choice([1, 2, 3, 7, 16])
        links = rng.choice([2, 3, 4, 5, 174])
        levels = rng.choice([k for k in range(4) if links**k <= 800])
        size = max(0, chunk * links**levels + rng.choice([-1, 0, 1, rng.randint(0, 300)]))
        path = tmp_path / f"case{i}"
        path.write_bytes(rng.randbytes(size))
        cases.append({"path": path, "chunkSize": chunk, "maxLinks": links})
    for case, expected in zip(cases, js_importer(cases, blocks=True), strict=True):
        data = case["path"].read_bytes()
        for version in (0, 1):
            blocks: dict[str, bytes] = {}
            builder = UnixFSBuilder(
                version,
                chunk_size=case["chunkSize"],
                max_links=case["maxLinks"],
                on_block=lambda cid, block, blocks=blocks: blocks.__setitem__(str(cid), block),
            )
            builder.update(data)
            root = builder.finish()
            assert str(root) == expected[f"v{version}"], (case, version)
            assert sorted(blocks) == expected[f"blocks_v{version}"], (case, version)
            for text, block in blocks.items():
                assert CID.parse(text).digest == hashlib.sha256(block).digest()


# ---------------------------------------------------------------- Kubo's layout, transcribed top down


def _kubo_reference(data: bytes, version: int, chunk: int, max_links: int) -> CID:
    """Kubo's balanced.Layout: the first leaf is the root; while data remains, a new root takes the
    old one as its first child and is filled to ``max_links`` children with subtrees of the old depth."""
    chunks = [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    position = 0

    def leaf() -> tuple[CID, int, int]:
        nonlocal position
        piece = chunks[position]
        position += 1
        if version == 1:
            return CID(1, RAW, hashlib.sha256(piece).digest()), len(piece), len(piece)
        unixfs = b"\x08\x02" + (b"\x12" + encode_varint(len(piece)) + piece if piece else b"")
        unixfs += b"\x18" + encode_varint(len(piece))
        block = b"\x0a" + encode_varint(len(unixfs)) + unixfs
        return CID(0, DAG_PB, hashlib.sha256(block).digest()), len(block), len(piece)

    def node(children: list[tuple[CID, int, int]]) -> tuple[CID, int, int]:
        links = b""
        for cid, tsize, _ in children:
            raw = cid.to_bytes()
            body = b"\x0a" + encode_varint(len(raw)) + raw + b"\x12\x00\x18" + encode_varint(tsize)
            links += b"\x12" + encode_varint(len(body)) + body
        unixfs = b"\x08\x02\x18" + encode_varint(sum(c[2] for c in children))
        unixfs += b"".join(b"\x20" + encode_varint(c[2]) for c in children)
        block = links + b"\x0a" + encode_varint(len(unixfs)) + unixfs
        return (
            CID(version, DAG_PB, hashlib.sha256(block).digest()),
            len(block) + sum(c[1] for c in children),
            sum(c[2] for c in children),
        )

    def fill(depth: int, first: tuple | None) -> tuple[CID, int, int]:
        children = [first] if first else []
        while len(children) < max_links and position < len(chunks):
            children.append(leaf() if depth == 1 else fill(depth - 1, None))
        return node(children)

    root = leaf()
    depth = 1
    while position < len(chunks):
        root = fill(depth, root)
        depth += 1
    return root[0]


@given(
    data=st.binary(max_size=700),
    chunk=st.integers(1, 9),
    max_links=st.integers(2, 6),
    version=st.sampled_from([0, 1]),
    cuts=st.lists(st.integers(0, 700), max_size=6),
)
def test_streaming_builder_equals_kubo_layout_for_any_split(data, chunk, max_links, version, cuts):
    """However the bytes are split into update() calls, the root is Kubo's top-down layout's root."""
    builder = UnixFSBuilder(version, chunk_size=chunk, max_links=max_links)
    previous = 0
    for cut in sorted(c for c in cuts if c <= len(data)) + [len(data)]:
        builder.update(data[previous:cut])
        previous = cut
    assert builder.finish() == _kubo_reference(data, version, chunk, max_links)
    assert builder.size == len(data)


@given(data=st.binary(max_size=2000), chunk=st.integers(1, 64), max_links=st.integers(2, 5))
def test_every_internal_node_describes_its_children(data, chunk, max_links):
    """Each parent's blocksizes sum to its filesize, its links are unnamed with Tsize set, and leaves hold the data."""
    blocks: dict[CID, bytes] = {}
    builder = UnixFSBuilder(
        0, chunk_size=chunk, max_links=max_links, on_block=lambda cid, block: blocks.__setitem__(cid, block)
    )
    builder.update(data)
    root = builder.finish()

    def read(cid: CID) -> bytes:
        node = decode_dag_pb(blocks[cid])
        unixfs = decode_unixfs(node.data)
        assert unixfs.type == UNIXFS_FILE
        if not node.links:
            assert unixfs.filesize == len(unixfs.data or b"")
            return unixfs.data or b""
        assert len(node.links) <= max_links and len(node.links) == len(unixfs.blocksizes)
        assert sum(unixfs.blocksizes) == unixfs.filesize
        assert all(link.name == "" and link.tsize for link in node.links)
        return b"".join(read(link.cid) for link in node.links)

    assert read(root) == data


# ---------------------------------------------------------------- encodings


@given(st.integers(0, 2**63 - 1))
def test_varint_round_trip(value):
    encoded = encode_varint(value)
    assert decode_varint(encoded) == (value, len(encoded))


@given(st.binary(max_size=64))
def test_base58_and_base32_round_trip(data):
    assert b58decode(b58encode(data)) == data
    assert b32decode(b32encode(data)) == data


@given(st.binary(min_size=32, max_size=32), st.sampled_from([(0, DAG_PB), (1, DAG_PB), (1, RAW)]))
def test_cid_text_and_binary_round_trip(digest, form):
    cid = CID(form[0], form[1], digest)
    assert CID.parse(str(cid)) == cid
    assert CID.from_bytes(cid.to_bytes()) == cid
    assert str(cid).startswith("Qm" if form[0] == 0 else "b")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Qm123",
        "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXE0",
        "bafyBEI",
        "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6a",
    ],
)
def test_malformed_cids_are_refused_clearly(text):
    with pytest.raises(InvalidCID):
        CID.parse(text)

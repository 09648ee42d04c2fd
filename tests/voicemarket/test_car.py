"""CAR v1 export: every block of the file's DAG, verifiable, and enough to rebuild the file."""

from __future__ import annotations

import io
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.car import car_header, car_to_file, read_car, write_car
from voicemarket.content.cid import CHUNK_SIZE, cid_of_file
from voicemarket.content.multiformats import CID
from voicemarket.errors import CarError


@pytest.mark.parametrize("version", [0, 1])
def test_car_holds_the_dag_under_kubos_cid(tmp_path, version, js_importer):
    """The root matches `ipfs add`; the CAR's blocks are exactly the reference importer's; the file comes back."""
    data = random.Random(version).randbytes(5 * CHUNK_SIZE + 99)
    (tmp_path / "model.bin").write_bytes(data)
    root = write_car(tmp_path / "model.bin", tmp_path / "model.car", cid_version=version)
    assert root == cid_of_file(tmp_path / "model.bin", version)
    with open(tmp_path / "model.car", "rb") as handle:
        roots, sections = read_car(handle)
        blocks = sorted(str(cid) for cid, _ in sections)
    assert roots == [root]
    expected = js_importer([{"path": tmp_path / "model.bin"}], blocks=True)[0]
    assert blocks == expected[f"blocks_v{version}"] and str(root) == expected[f"v{version}"]
    assert car_to_file(tmp_path / "model.car", tmp_path / "back.bin") == root
    assert (tmp_path / "back.bin").read_bytes() == data


def test_header_is_the_canonical_dag_cbor_map():
    root = CID.parse("QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN")
    header = car_header(root)
    # varint 0x38 = 56 bytes: a2 65 "roots" 81 d8 2a 58 23 00 <34-byte CIDv0> 67 "version" 01
    assert header[:12] == bytes.fromhex("38a265726f6f747381d82a58")
    assert header[12:14] == b"\x23\x00" and header[14:48] == root.to_bytes()
    assert header[48:] == b"\x67version\x01"


@given(data=st.binary(max_size=3000), where=st.integers(0), value=st.integers(1, 255))
def test_a_damaged_car_is_refused(tmp_path_factory, data, where, value):
    """Changing any byte of a CAR file makes reading or rebuilding it fail, never return other bytes."""
    folder = tmp_path_factory.mktemp("car")
    (folder / "f").write_bytes(data)
    write_car(folder / "f", folder / "f.car")
    damaged = bytearray((folder / "f.car").read_bytes())
    damaged[where % len(damaged)] ^= value
    (folder / "bad.car").write_bytes(bytes(damaged))
    try:
        car_to_file(folder / "bad.car", folder / "out")
    except (CarError, ValueError, UnicodeDecodeError):
        assert not (folder / "out").exists()
    else:  # only a change that leaves every block and the root intact could pass; none exists here
        pytest.fail("a damaged CAR file was accepted")


def test_not_a_car():
    with pytest.raises(CarError):
        read_car(io.BytesIO(b"\x05hello"))

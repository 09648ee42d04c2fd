"""Streamed AES-256-GCM sealing and the keyring of operator keys."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.sealing import (
    HEADER_SIZE,
    TAG_SIZE,
    Keyring,
    address_from_public_key,
    iter_unsealed,
    new_data_key,
    public_key_from_private,
    seal_bytes,
    seal_file,
    unseal_bytes,
    unseal_file,
)
from voicemarket.errors import DecryptionError, IntegrityError, PackageError

KEY = bytes(range(32))
# Anvil's first account (the "test test ... junk" mnemonic), a public vector.
ANVIL0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
ANVIL0_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
private_keys = st.integers(1, SECP256K1_ORDER - 1).map(lambda n: n.to_bytes(32, "big"))


@given(data=st.binary(max_size=600), chunk=st.integers(1, 64))
def test_seal_round_trip(data, chunk):
    """Whatever the data and chunk size, unsealing gives back exactly the data."""
    sealed = seal_bytes(data, KEY, chunk_size=chunk)
    chunks = max(1, -(-len(data) // chunk))
    assert len(sealed) == HEADER_SIZE + len(data) + chunks * TAG_SIZE
    assert unseal_bytes(sealed, KEY) == data


@given(data=st.binary(max_size=200), chunk=st.integers(1, 32), where=st.integers(0), bit=st.integers(0, 7))
def test_any_flipped_bit_is_caught(data, chunk, where, bit):
    """A change to any single bit of a sealed stream makes unsealing fail; no plaintext is accepted."""
    sealed = bytearray(seal_bytes(data, KEY, chunk_size=chunk))
    sealed[where % len(sealed)] ^= 1 << bit
    with pytest.raises(PackageError):
        unseal_bytes(bytes(sealed), KEY)


@given(data=st.binary(max_size=200), chunk=st.integers(1, 32), cut=st.integers(0))
def test_any_truncation_is_caught(data, chunk, cut):
    """A sealed stream cut short anywhere, even exactly at a chunk boundary, fails as truncated/tampered."""
    sealed = seal_bytes(data, KEY, chunk_size=chunk)
    with pytest.raises(IntegrityError):
        unseal_bytes(sealed[: cut % len(sealed)], KEY)


@given(data=st.binary(min_size=2, max_size=200), chunk=st.integers(1, 16), extra=st.binary(min_size=1, max_size=40))
def test_reordered_or_extended_streams_are_caught(data, chunk, extra):
    """Swapping two sealed chunks, or appending bytes after the final chunk, fails."""
    sealed = seal_bytes(data, KEY, chunk_size=chunk)
    with pytest.raises(IntegrityError):
        unseal_bytes(sealed + extra, KEY)
    size = chunk + TAG_SIZE
    body = sealed[HEADER_SIZE:]
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    if len(pieces) >= 2 and pieces[0] != pieces[1]:
        swapped = sealed[:HEADER_SIZE] + pieces[1] + pieces[0] + b"".join(pieces[2:])
        with pytest.raises(IntegrityError, match="chunk 0 failed authentication"):
            unseal_bytes(swapped, KEY)


def test_wrong_key_is_told_apart_from_tampering():
    sealed = seal_bytes(b"secret model", KEY)
    with pytest.raises(DecryptionError, match="does not open this sealed file"):
        unseal_bytes(sealed, new_data_key())
    with pytest.raises(IntegrityError, match="not a voicemarket sealed file"):
        unseal_bytes(b"PK\x03\x04 not sealed at all" * 3, KEY)


def test_unseal_file_leaves_nothing_behind_on_failure(tmp_path):
    data = os.urandom(10_000)
    (tmp_path / "plain").write_bytes(data)
    seal_file(tmp_path / "plain", tmp_path / "sealed", KEY, chunk_size=1000)
    assert unseal_file(tmp_path / "sealed", tmp_path / "out", KEY) == len(data)
    assert (tmp_path / "out").read_bytes() == data

    sealed = (tmp_path / "sealed").read_bytes()
    (tmp_path / "cut").write_bytes(sealed[:-1])
    with pytest.raises(IntegrityError):
        unseal_file(tmp_path / "cut", tmp_path / "half", KEY)
    assert not (tmp_path / "half").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "out", "plain", "sealed"]


def test_plaintext_is_released_only_after_its_chunk_authenticates():
    """The generator authenticates each chunk before yielding it; the tampered chunk is never yielded."""
    data = os.urandom(50)
    sealed = bytearray(seal_bytes(data, KEY, chunk_size=10))
    sealed[HEADER_SIZE + 2 * (10 + TAG_SIZE) + 3] ^= 0xFF  # third chunk
    received = []
    with pytest.raises(IntegrityError, match="chunk 2"):
        for chunk in iter_unsealed(io.BytesIO(bytes(sealed)), KEY):
            received.append(chunk)
    assert b"".join(received) == data[:20]


# ---------------------------------------------------------------- operator keys


def test_public_key_and_address_of_an_ethereum_account():
    public = public_key_from_private(ANVIL0_KEY)
    assert len(public) == 64
    assert address_from_public_key(public) == ANVIL0_ADDRESS
    assert address_from_public_key(b"\x04" + public) == ANVIL0_ADDRESS


@given(operators=st.lists(private_keys, min_size=1, max_size=4, unique=True), outsider=private_keys)
def test_every_recipient_and_no_one_else_unwraps_the_key(operators, outsider):
    """Each operator the keyring names recovers the data key, from the JSON form too; anyone else is refused."""
    data_key = new_data_key()
    keyring = Keyring.create(data_key, [public_key_from_private(k) for k in operators])
    stored = Keyring.from_bytes(keyring.to_bytes())
    for operator in operators:
        assert stored.unwrap(operator) == data_key
    if outsider not in operators:
        with pytest.raises(DecryptionError, match="not a recipient"):
            stored.unwrap(outsider)


def test_a_recipient_can_be_added_and_a_forged_entry_is_refused():
    alice, bob = os.urandom(32), os.urandom(32)
    data_key = new_data_key()
    keyring = Keyring.create(data_key, [public_key_from_private(alice)])
    keyring = keyring.with_recipient(data_key, public_key_from_private(bob))
    assert keyring.unwrap(bob) == data_key
    assert keyring.addresses == (
        address_from_public_key(public_key_from_private(alice)),
        address_from_public_key(public_key_from_private(bob)),
    )
    obj = keyring.to_json()
    obj["recipients"][1]["wrappedKey"] = "0x" + bytes(48).hex()
    with pytest.raises(DecryptionError):
        Keyring.from_json(obj).unwrap(bob)


def test_keyrings_refuse_bad_public_keys():
    with pytest.raises(ValueError, match="64 bytes"):
        Keyring.create(new_data_key(), [b"\x01" * 20])
    with pytest.raises(ValueError, match="at least one recipient"):
        Keyring.create(new_data_key(), [])

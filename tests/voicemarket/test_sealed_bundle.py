"""The creator-to-operator trip: publish (pack + encrypt + CID + store) and open (fetch + verify + decrypt + unpack)."""

from __future__ import annotations

import json
import os

import pytest

from voicemarket.content.bundle import write_bundle
from voicemarket.content.cid import cid_of_file
from voicemarket.content.multiformats import CID
from voicemarket.content.sealed_bundle import open_bundle, publish_bundle, seal_bundle
from voicemarket.content.sealing import Keyring, address_from_public_key, public_key_from_private, unseal_file
from voicemarket.content.store import LocalStore
from voicemarket.errors import ContentNotFound, DecryptionError, IntegrityError

OPERATOR = bytes.fromhex("59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d")  # anvil account 1
OTHER_OPERATOR = os.urandom(32)
OUTSIDER = os.urandom(32)


@pytest.fixture
def store(tmp_path):
    return LocalStore(tmp_path / "store")


@pytest.fixture
def published(make_model, store):
    model = make_model(gpt=300_000, sovits=200_000)
    recipients = [public_key_from_private(OPERATOR), public_key_from_private(OTHER_OPERATOR)]
    return model, publish_bundle(model, store, recipients, chunk_size=64 * 1024)


def test_seal_bundle_is_one_pass_over_pack_encrypt_and_cid(tmp_path, make_model):
    model = make_model(gpt=700_000, sovits=100_000)
    sealed = seal_bundle(model, tmp_path / "model.sealed", [public_key_from_private(OPERATOR)], chunk_size=100_000)
    plain = write_bundle(model, tmp_path / "model.tar")
    assert sealed.digest == plain.digest and sealed.size == plain.size
    assert sealed.cid == cid_of_file(tmp_path / "model.sealed", 1)
    assert sealed.sealed_size == (tmp_path / "model.sealed").stat().st_size
    unseal_file(tmp_path / "model.sealed", tmp_path / "again.tar", sealed.keyring.unwrap(OPERATOR))
    assert (tmp_path / "again.tar").read_bytes() == (tmp_path / "model.tar").read_bytes()
    # Encryption is randomised, the digest is not: sealing twice gives two CIDs for one digest.
    second = seal_bundle(model, tmp_path / "second.sealed", [public_key_from_private(OPERATOR)])
    assert second.digest == sealed.digest and second.cid != sealed.cid


def test_each_authorised_operator_opens_the_bundle(published, store, tmp_path):
    model, result = published
    for number, key in enumerate((OPERATOR, OTHER_OPERATOR)):
        unpacked = open_bundle(
            store, result.bundle_cid, result.keyring_cid, key, result.digest, tmp_path / f"op{number}"
        )
        assert unpacked.gpt_checkpoint.read_bytes() == model.gpt_checkpoint.read_bytes()
        assert unpacked.sovits_checkpoint.read_bytes() == model.sovits_checkpoint.read_bytes()
        assert unpacked.manifest.reference_text == model.reference_text


def test_the_public_parts_are_in_the_store(published, store):
    model, result = published
    keyring = Keyring.from_bytes(store.get_bytes(result.keyring_cid))
    assert set(keyring.addresses) == {
        address_from_public_key(public_key_from_private(k)) for k in (OPERATOR, OTHER_OPERATOR)
    }
    assert store.get_bytes(result.preview_cid) == model.preview_audio.read_bytes()
    metadata = json.loads(store.get_bytes(result.metadata_cid))
    assert metadata["name"] == model.name and metadata["animation_url"] == f"ipfs://{result.preview_cid}"
    assert {"trait_type": "Bundle SHA-256", "value": "0x" + result.digest.hex()} in metadata["attributes"]
    assert result.token_uri == f"ipfs://{result.metadata_cid}"


def test_an_outsider_cannot_open_it(published, store, tmp_path):
    _, result = published
    with pytest.raises(DecryptionError, match="not a recipient"):
        open_bundle(store, result.bundle_cid, result.keyring_cid, OUTSIDER, result.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_digest_missing_or_tampered_bundle_leave_nothing(published, store, tmp_path):
    _, result = published
    with pytest.raises(IntegrityError, match="not the registered one"):
        open_bundle(store, result.bundle_cid, result.keyring_cid, OPERATOR, bytes(32), tmp_path / "a")
    absent = CID(1, result.bundle_cid.codec, bytes(32))
    with pytest.raises(ContentNotFound):
        open_bundle(store, absent, result.keyring_cid, OPERATOR, result.digest, tmp_path / "b")
    stored = store.path_of(result.bundle_cid)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0x40
    stored.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        open_bundle(store, result.bundle_cid, result.keyring_cid, OPERATOR, result.digest, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "store"]


CREATOR = "0x" + "11" * 20  # make_model's creator
SQUATTER = "0x" + "33" * 20


def test_a_registered_model_opens_only_with_its_creators_id_and_a_bundle_naming_that_creator(
    make_model, store, tmp_path
):
    """The id binds the bundle to whoever registered it; the bundle's own records must name that creator."""
    from eth_utils import to_checksum_address

    from voicemarket.content.sealed_bundle import RegisteredModel
    from voicemarket.errors import CreatorMismatch
    from voicemarket.protocol import model_id

    recipients = [public_key_from_private(OPERATOR)]
    result = publish_bundle(make_model(), store, recipients)
    own = RegisteredModel(model_id(CREATOR, result.digest), to_checksum_address(CREATOR))
    unpacked = open_bundle(store, result.bundle_cid, result.keyring_cid, OPERATOR, own, tmp_path / "own")
    assert unpacked.manifest.creator == to_checksum_address(CREATOR)

    # Anyone may register the public digest under their own address: a valid id, an intact bundle, not served.
    copied = RegisteredModel(model_id(SQUATTER, result.digest), to_checksum_address(SQUATTER))
    with pytest.raises(
        CreatorMismatch,
        match=f"registered by {to_checksum_address(SQUATTER)}, but its bundle's "
        f"manifest names the creator {to_checksum_address(CREATOR)}",
    ):
        open_bundle(store, result.bundle_cid, result.keyring_cid, OPERATOR, copied, tmp_path / "copied")
    # The creator's id claimed for someone else does not match the digest.
    with pytest.raises(IntegrityError, match="gives model id"):
        open_bundle(
            store,
            result.bundle_cid,
            result.keyring_cid,
            OPERATOR,
            RegisteredModel(own.model_id, to_checksum_address(SQUATTER)),
            tmp_path / "claimed",
        )
    # A consent record naming another creator than the manifest is refused too.
    odd = publish_bundle(
        make_model(folder="odd", consent={"creator": SQUATTER, "statement": "I consent."}), store, recipients
    )
    with pytest.raises(CreatorMismatch, match="its bundle's consent record names the creator"):
        open_bundle(
            store,
            odd.bundle_cid,
            odd.keyring_cid,
            OPERATOR,
            RegisteredModel(model_id(CREATOR, odd.digest), CREATOR),
            tmp_path / "odd-out",
        )
    assert not any((tmp_path / name).exists() for name in ("copied", "claimed", "odd-out"))

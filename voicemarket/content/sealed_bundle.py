"""The whole trip of a voice model: pack + encrypt + content id in one pass, store, and back.

Creators (the ``mint`` command) call :func:`publish_bundle`; oracle operators call
:func:`open_bundle`. In between, the store holds four things per model:

- the sealed bundle (encrypted; its CID is the model's on-chain content id),
- the keyring (the data key wrapped to each authorised operator; public),
- the preview clip (public, unencrypted; the metadata's ``animation_url``),
- the ERC-721 metadata JSON (the token URI is ``ipfs://<its CID>``).

The bundle's SHA-256 (of the plain archive, before encryption) is the on-chain digest: it
is the same however often the model is encrypted, and :func:`open_bundle` checks it after
decryption, before anything is extracted. The model id binds that digest to the creator who
registered it (``keccak256(abi.encode(creator, digest))``): an operator opens a registered model
with a :class:`RegisteredModel`, which checks the id and that the bundle itself names that creator.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from voicemarket.content.bundle import (
    Manifest,
    PackedBundle,
    UnpackedBundle,
    VoiceModelFiles,
    _check_digest,
    pack_bundle,
    read_records,
    unpack_bundle,
)
from voicemarket.content.cid import UnixFSBuilder
from voicemarket.content.files import atomic_output
from voicemarket.content.metadata import ipfs_uri, metadata_bytes, model_metadata
from voicemarket.content.multiformats import CID
from voicemarket.content.sealing import DEFAULT_CHUNK_SIZE, Keyring, SealWriter, new_data_key, unseal_file
from voicemarket.content.store import ContentStore, LocalStore
from voicemarket.errors import CreatorMismatch, IntegrityError


@dataclass(frozen=True)
class SealedBundle:
    """The result of :func:`seal_bundle`."""

    path: Path | None
    digest: bytes  # SHA-256 of the plain bundle: the on-chain digest
    size: int  # bytes of the plain bundle
    cid: CID  # of the sealed file
    sealed_size: int
    manifest: Manifest
    keyring: Keyring
    data_key: bytes = field(repr=False)  # keep it secret; needed only to add operators later

    @property
    def digest_hex(self) -> str:
        return "0x" + self.digest.hex()


def _seal_stream(
    model: VoiceModelFiles,
    write,
    recipients: Iterable[bytes | str],
    *,
    cid_version: int,
    chunk_size: int,
    data_key: bytes | None,
) -> tuple[PackedBundle, CID, int, Keyring, bytes]:
    key = new_data_key() if data_key is None else data_key
    keyring = Keyring.create(key, recipients)  # validates the recipients before any work
    builder = UnixFSBuilder(cid_version)

    def sealed_sink(data: bytes) -> None:
        builder.update(data)
        write(data)

    writer = SealWriter(key, sealed_sink, chunk_size=chunk_size)
    packed = pack_bundle(model, writer.write)
    writer.close()
    return packed, builder.finish(), writer.sealed_size, keyring, key


def seal_bundle(
    model: VoiceModelFiles,
    dest: str | Path,
    recipients: Iterable[bytes | str],
    *,
    cid_version: int = 1,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    data_key: bytes | None = None,
) -> SealedBundle:
    """Pack, encrypt and compute the CID of a bundle in one read of its inputs; write it to ``dest``.

    ``recipients`` are the operators' public keys (64-byte secp256k1, as their Ethereum
    accounts have; include the creator's own to be able to open it again).
    """
    with atomic_output(dest) as out:
        packed, cid, sealed_size, keyring, key = _seal_stream(
            model, out.write, recipients, cid_version=cid_version, chunk_size=chunk_size, data_key=data_key
        )
    return SealedBundle(Path(dest), packed.digest, packed.size, cid, sealed_size, packed.manifest, keyring, key)


@dataclass(frozen=True)
class PublishedBundle:
    """What the ``mint`` command registers on-chain and keeps."""

    sealed: SealedBundle
    bundle_cid: CID
    keyring_cid: CID
    preview_cid: CID
    metadata_cid: CID

    @property
    def digest(self) -> bytes:
        return self.sealed.digest

    @property
    def token_uri(self) -> str:
        return ipfs_uri(self.metadata_cid)


def publish_bundle(
    model: VoiceModelFiles,
    store: ContentStore,
    recipients: Iterable[bytes | str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    image: str | None = None,
    external_url: str | None = None,
) -> PublishedBundle:
    """Seal the bundle straight into ``store`` (one pass), then store its keyring, preview and metadata."""
    with store.writer() as writer:
        packed, cid, sealed_size, keyring, key = _seal_stream(
            model, writer.write, recipients, cid_version=store.cid_version, chunk_size=chunk_size, data_key=None
        )
    if writer.cid != cid:
        raise IntegrityError(f"the store computed {writer.cid} for the sealed bundle, the packer {cid}")
    sealed = SealedBundle(None, packed.digest, packed.size, cid, sealed_size, packed.manifest, keyring, key)
    keyring_cid = store.put_bytes(keyring.to_bytes())
    preview_cid = store.put_file(model.preview_audio)
    document = model_metadata(
        packed.manifest, digest=packed.digest, preview=preview_cid, image=image, external_url=external_url
    )
    metadata_cid = store.put_bytes(metadata_bytes(document))
    return PublishedBundle(sealed, cid, keyring_cid, preview_cid, metadata_cid)


@dataclass(frozen=True)
class RegisteredModel:
    """A model as the registry records it: its id and the creator who registered it.

    A bundle opens as this model only if ``keccak256(abi.encode(creator, sha256(bundle)))`` is
    the id (:class:`IntegrityError` otherwise), and only if the bundle's own records (its
    manifest, and its consent record when that names one) name the same creator
    (:class:`CreatorMismatch`): anyone can register a public bundle's digest under their own
    address, and such a copy must not be served.
    """

    model_id: int
    creator: str

    def check_digest(self, digest: bytes, what: str) -> None:
        from voicemarket.protocol import model_id

        if model_id(self.creator, digest) != self.model_id:
            raise IntegrityError(
                f"{what} has SHA-256 0x{digest.hex()}, which with creator {self.creator} gives model id "
                f"{model_id(self.creator, digest):#066x}, not {self.model_id:#066x}: the bundle is corrupt or is not "
                "the registered one"
            )

    def check_creator(self, manifest: Manifest, consent: dict) -> None:
        named = {("manifest", str(manifest.creator))}
        if isinstance(consent.get("creator"), str):
            named.add(("consent record", consent["creator"]))
        for where, creator in sorted(named):
            if creator.lower() != self.creator.lower():
                raise CreatorMismatch(
                    f"model {self.model_id:#x} was registered by {self.creator}, but its bundle's {where} names the "
                    f"creator {creator}: a copy of another creator's bundle, not served"
                )


def load_keyring(store: ContentStore, keyring: Keyring | CID | str) -> Keyring:
    if isinstance(keyring, Keyring):
        return keyring
    return Keyring.from_bytes(store.get_bytes(keyring, max_bytes=4 * 1024 * 1024))


def open_bundle(
    store: ContentStore,
    bundle_cid: CID | str,
    keyring: Keyring | CID | str,
    private_key: bytes | str,
    expected_digest: bytes | str | RegisteredModel,
    dest: str | Path,
) -> UnpackedBundle:
    """Fetch, verify, decrypt and extract a bundle into the new directory ``dest``.

    In order: the keyring is read (by CID, verified) and the data key unwrapped with the
    operator's private key (:class:`DecryptionError` if this operator is not a recipient);
    the sealed file is fetched and its CID checked (:class:`ContentNotFound`,
    :class:`IntegrityError`); it is decrypted chunk by chunk (any tampering or truncation:
    :class:`IntegrityError`); the plain bundle's SHA-256 must equal ``expected_digest``, or,
    given a :class:`RegisteredModel`, give its model id with its creator, whom the bundle's
    records must name (:class:`CreatorMismatch`); only then is it extracted, atomically, into
    ``dest``. Temporary files live beside ``dest`` and are removed in every case.
    """
    data_key = load_keyring(store, keyring).unwrap(private_key)
    return open_bundle_with_key(store, bundle_cid, data_key, expected_digest, dest)


def open_bundle_with_key(
    store: ContentStore,
    bundle_cid: CID | str,
    data_key: bytes,
    expected_digest: bytes | str | RegisteredModel,
    dest: str | Path,
) -> UnpackedBundle:
    """:func:`open_bundle` for a caller that already holds the data key (a local-use licence's)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", suffix=".fetch", dir=dest.parent) as scratch:
        if isinstance(store, LocalStore):
            # Verified in place, then read once more while decrypting: every chunk's GCM tag and the
            # final digest check still catch a change made between the two reads.
            sealed = store.local_path(bundle_cid)
        else:
            sealed = store.get_to_file(bundle_cid, Path(scratch) / "sealed")
        digest = hashlib.sha256()
        plain = Path(scratch) / "bundle.tar"
        unseal_file(sealed, plain, data_key, on_plaintext=digest.update)
        if not isinstance(store, LocalStore):
            sealed.unlink()
        what = f"the decrypted bundle {bundle_cid}"
        if isinstance(expected_digest, RegisteredModel):
            expected_digest.check_digest(digest.digest(), what)
            expected_digest.check_creator(*read_records(plain))
            expected_digest = digest.digest()
        else:
            _check_digest(digest.digest(), expected_digest, what)
        return unpack_bundle(plain, dest, expected_digest=expected_digest, _digest_verified=True)

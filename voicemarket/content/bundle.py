"""Voice bundles: one deterministic archive per voice model.

A bundle is a POSIX ustar archive whose members always come in this order::

    manifest.json     what the model is (canonical JSON, see :class:`Manifest`)
    consent.json      the voice owner's consent record (canonical JSON, as the creator gave it)
    reference.<ext>   the default prompt clip (its transcript is in the manifest)
    preview.<ext>     a short public preview clip (never the reference: see content/previews.py)
    gpt.ckpt          the GPT-SoVITS GPT checkpoint (opaque bytes)
    sovits.pth        the GPT-SoVITS SoVITS checkpoint (opaque bytes)

Every header has mtime 0, uid/gid 0, no owner names and mode 0644, so the same inputs
always give the same bytes and the same SHA-256 (the model's on-chain digest). Any tar
tool lists and extracts a bundle. The shared HuBERT and BERT folders are not part of a
voice bundle; operators install them once.

The voice owner's EIP-712 consent signature is over the bundle digest, so it cannot live
inside the bundle (it would change the digest it signs); ``consent.json`` is the record
the creator keeps with the model (who consented, to what, when), and the signature is
registered on-chain beside the digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from eth_utils import is_address, to_checksum_address

from voicemarket.content.canonical import canonical_json
from voicemarket.content.files import atomic_output, sha256_file
from voicemarket.content.previews import check_preview
from voicemarket.errors import BundleError, CanonicalJSONError, IntegrityError

BUNDLE_TYPE = "voicemarket/voice-bundle"
FORMAT_VERSION = 1
BLOCK = 512
READ_SIZE = 4 * 1024 * 1024
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
GPT_NAME = "gpt.ckpt"
SOVITS_NAME = "sovits.pth"
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class VoiceModelFiles:
    """Everything a creator packs into a bundle."""

    name: str
    description: str
    languages: tuple[str, ...]
    gpt_checkpoint: Path
    sovits_checkpoint: Path
    reference_audio: Path
    reference_text: str
    reference_language: str
    preview_audio: Path
    creator: str
    voice_owner: str
    consent: Mapping[str, Any]
    architecture: str = "GPT-SoVITS"
    architecture_version: str = "v2"
    sample_rate: int = 32000
    version: str = "1"


@dataclass(frozen=True)
class Manifest:
    """What ``manifest.json`` says. ``files`` lists (path, role, size) in archive order."""

    name: str
    description: str
    languages: tuple[str, ...]
    architecture: str
    architecture_version: str
    sample_rate: int
    version: str
    reference_path: str
    reference_text: str
    reference_language: str
    preview_path: str
    creator: str
    voice_owner: str
    files: tuple[tuple[str, str, int], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "type": BUNDLE_TYPE,
            "formatVersion": FORMAT_VERSION,
            "name": self.name,
            "description": self.description,
            "languages": list(self.languages),
            "architecture": {
                "name": self.architecture,
                "version": self.architecture_version,
                "sampleRate": self.sample_rate,
            },
            "version": self.version,
            "reference": {
                "path": self.reference_path,
                "transcript": self.reference_text,
                "language": self.reference_language,
            },
            "preview": {"path": self.preview_path},
            "creator": self.creator,
            "voiceOwner": self.voice_owner,
            "consent": {"path": "consent.json"},
            "files": [{"path": p, "role": r, "size": s} for p, r, s in self.files],
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Manifest:
        try:
            if obj["type"] != BUNDLE_TYPE or obj["formatVersion"] != FORMAT_VERSION:
                raise BundleError(f"not a format-{FORMAT_VERSION} voice bundle manifest")
            return cls(
                name=obj["name"],
                description=obj["description"],
                languages=tuple(obj["languages"]),
                architecture=obj["architecture"]["name"],
                architecture_version=obj["architecture"]["version"],
                sample_rate=int(obj["architecture"]["sampleRate"]),
                version=obj["version"],
                reference_path=obj["reference"]["path"],
                reference_text=obj["reference"]["transcript"],
                reference_language=obj["reference"]["language"],
                preview_path=obj["preview"]["path"],
                creator=obj["creator"],
                voice_owner=obj["voiceOwner"],
                files=tuple((f["path"], f["role"], int(f["size"])) for f in obj["files"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, BundleError):
                raise
            raise BundleError(f"the bundle's manifest.json is malformed: {exc!r}") from None


@dataclass(frozen=True)
class PackedBundle:
    """A bundle's identity: its SHA-256 (the on-chain digest), size and manifest."""

    digest: bytes
    size: int
    manifest: Manifest

    @property
    def digest_hex(self) -> str:
        return "0x" + self.digest.hex()


def _member_plan(model: VoiceModelFiles) -> tuple[Manifest, bytes, list[tuple[str, str, Path]]]:
    """Validate the inputs; return the manifest, consent bytes and (name, role, path) of each file member."""
    for label, value in (("name", model.name), ("reference_text", model.reference_text)):
        if not isinstance(value, str) or not value.strip():
            raise BundleError(f"the model's {label} must be a non-empty string")
    if not model.languages or len(set(model.languages)) != len(model.languages):
        raise BundleError("languages must be a non-empty list without duplicates, e.g. ('en', 'zh')")
    for language in (*model.languages, model.reference_language):
        if not isinstance(language, str) or not _LANGUAGE.match(language):
            raise BundleError(f"{language!r} is not a language code (BCP 47, lower case: 'en', 'zh', 'yue')")
    if model.reference_language not in model.languages:
        raise BundleError(f"the reference clip's language {model.reference_language!r} is not among {model.languages}")
    if not isinstance(model.sample_rate, int) or model.sample_rate <= 0:
        raise BundleError("sample_rate must be a positive integer (Hz)")
    parties = {}
    for label, address in (("creator", model.creator), ("voice_owner", model.voice_owner)):
        if not isinstance(address, str) or not is_address(address):
            raise BundleError(f"{label} must be an Ethereum address (0x + 40 hex digits), got {address!r}")
        parties[label] = to_checksum_address(address)
    try:
        consent = canonical_json(dict(model.consent))
    except (CanonicalJSONError, TypeError, ValueError) as exc:
        raise BundleError(f"the consent record must be a JSON object: {exc}") from None

    files: list[tuple[str, str, Path]] = []
    for role, path, name in (
        ("reference", model.reference_audio, None),
        ("preview", model.preview_audio, None),
        ("gpt", model.gpt_checkpoint, GPT_NAME),
        ("sovits", model.sovits_checkpoint, SOVITS_NAME),
    ):
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"the {role} file {path} does not exist or is not a regular file")
        if name is None:
            suffix = path.suffix.lower()
            if suffix not in AUDIO_SUFFIXES:
                raise BundleError(f"the {role} clip must be one of {', '.join(AUDIO_SUFFIXES)}, got {path.name}")
            name = role + suffix
        files.append((name, role, path))
    check_preview(files[1][2], [files[0][2]], max_seconds=float("inf"))  # PreviewError: a BundleError

    manifest = Manifest(
        name=model.name,
        description=model.description,
        languages=tuple(model.languages),
        architecture=model.architecture,
        architecture_version=model.architecture_version,
        sample_rate=model.sample_rate,
        version=model.version,
        reference_path=files[0][0],
        reference_text=model.reference_text,
        reference_language=model.reference_language,
        preview_path=files[1][0],
        creator=parties["creator"],
        voice_owner=parties["voice_owner"],
        files=tuple((name, role, path.stat().st_size) for name, role, path in files),
    )
    return manifest, consent, files


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def pack_bundle(model: VoiceModelFiles, sink: Callable[[bytes], object], *, read_size: int = READ_SIZE) -> PackedBundle:
    """Stream the bundle's bytes into ``sink`` in one pass over the inputs; returns its digest.

    Memory use is one read buffer (``read_size``), whatever the checkpoints weigh.
    """
    manifest, consent, files = _member_plan(model)
    digest = hashlib.sha256()
    total = 0

    def emit(data: bytes) -> None:
        nonlocal total
        digest.update(data)
        total += len(data)
        sink(data)

    for name, data in (("manifest.json", manifest.to_bytes()), ("consent.json", consent)):
        emit(_header(name, len(data)) + data + _padding(len(data)))
    for (name, role, path), (_, _, size) in zip(files, manifest.files, strict=True):
        emit(_header(name, size))
        copied = 0
        with open(path, "rb") as handle:
            while piece := handle.read(min(read_size, size - copied) or 1):
                copied += len(piece)
                if copied > size:
                    break
                emit(piece)
        if copied != size:
            raise BundleError(f"the {role} file {path} changed size while it was being packed; pack again")
        emit(_padding(size))
    emit(b"\0" * (2 * BLOCK))
    return PackedBundle(digest.digest(), total, manifest)


def write_bundle(model: VoiceModelFiles, dest: str | Path) -> PackedBundle:
    """Pack into a plain (unencrypted) bundle file, written atomically."""
    with atomic_output(dest) as out:
        return pack_bundle(model, out.write)


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class UnpackedBundle:
    """A bundle extracted into ``directory``, with the paths the synthesiser needs."""

    directory: Path
    manifest: Manifest
    consent: dict[str, Any]

    def _path(self, role: str) -> Path:
        return self.directory / next(p for p, r, _ in self.manifest.files if r == role)

    @property
    def gpt_checkpoint(self) -> Path:
        return self._path("gpt")

    @property
    def sovits_checkpoint(self) -> Path:
        return self._path("sovits")

    @property
    def reference_audio(self) -> Path:
        return self._path("reference")

    @property
    def preview_audio(self) -> Path:
        return self._path("preview")


def _check_digest(actual: bytes, expected: bytes | str, what: str) -> None:
    if isinstance(expected, str):
        expected = bytes.fromhex(expected.removeprefix("0x"))
    if actual != expected:
        raise IntegrityError(
            f"{what} has SHA-256 0x{actual.hex()}, but 0x{expected.hex()} was expected: "
            "the bundle is corrupt or is not the registered one"
        )


def read_manifest(source: str | Path | BinaryIO) -> Manifest:
    """The manifest of a plain bundle (its first member), without reading the rest."""
    handle = open(source, "rb") if isinstance(source, (str, Path)) else source
    try:
        header = handle.read(BLOCK)
        try:
            info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")
        except tarfile.TarError as exc:
            raise BundleError(f"not a voice bundle: {exc}") from None
        if info.name != "manifest.json" or not info.isreg() or info.size > 1024 * 1024:
            raise BundleError("not a voice bundle: the first member must be manifest.json")
        return _parse_manifest(handle.read(info.size))
    finally:
        if handle is not source:
            handle.close()


def read_records(source: str | Path) -> tuple[Manifest, dict[str, Any]]:
    """The manifest and the consent record of a plain bundle (its first two members), without
    reading the rest: who the bundle says made it and who consented, before anything is extracted."""
    with open(source, "rb") as handle:
        manifest = read_manifest(handle)
        handle.seek(0)
        try:
            archive = tarfile.open(fileobj=handle, mode="r|")
            members = iter(archive)
            next(members)  # manifest.json, parsed above
            member = next(members, None)
            if member is None or member.name != "consent.json" or not member.isreg() or member.size > 1024 * 1024:
                raise BundleError("not a voice bundle: the second member must be consent.json")
            consent = json.loads(archive.extractfile(member).read())
        except tarfile.TarError as exc:
            raise BundleError(f"the bundle archive is damaged: {exc}") from None
        except ValueError as exc:
            raise BundleError(f"consent.json is not JSON: {exc}") from None
    if not isinstance(consent, dict):
        raise BundleError("consent.json must hold a JSON object")
    return manifest, consent


def _parse_manifest(data: bytes) -> Manifest:
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise BundleError(f"manifest.json is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BundleError("manifest.json must hold a JSON object")
    manifest = Manifest.from_json(obj)
    if manifest.to_bytes() != data:
        raise BundleError("manifest.json is not in canonical form: this bundle was not made by voicemarket")
    return manifest


def unpack_bundle(
    bundle: str | Path, dest: str | Path, *, expected_digest: bytes | str | None = None, _digest_verified: bool = False
) -> UnpackedBundle:
    """Extract a plain bundle into the new directory ``dest``.

    With ``expected_digest`` the whole file's SHA-256 is checked first. The members must be
    exactly the manifest's, in order, as regular files with the sizes it states. Extraction
    goes to a temporary directory beside ``dest`` that is renamed into place at the end, so
    ``dest`` either holds the complete bundle or does not exist.
    """
    bundle, dest = Path(bundle), Path(dest)
    if expected_digest is not None and not _digest_verified:
        _check_digest(sha256_file(bundle), expected_digest, f"bundle {bundle}")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BundleError(f"{dest} already exists and is not an empty directory; choose a new destination")
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    try:
        with open(bundle, "rb") as handle:
            manifest = read_manifest(handle)
            handle.seek(0)
            expected = [("manifest.json", "manifest", None), ("consent.json", "consent", None)]
            expected += [(p, r, s) for p, r, s in manifest.files]
            try:
                archive = tarfile.open(fileobj=handle, mode="r|")
                members = iter(archive)
                consent: dict[str, Any] = {}
                for name, role, size in expected:
                    member = next(members, None)
                    if member is None:
                        raise BundleError(f"the bundle ends before {name}: it is truncated")
                    if member.name != name or not member.isreg() or (size is not None and member.size != size):
                        raise BundleError(f"unexpected member {member.name!r} where {name} ({role}) belongs")
                    source = archive.extractfile(member)
                    with open(staging / name, "wb") as out:
                        shutil.copyfileobj(source, out, READ_SIZE)
                    if role == "consent":
                        consent = json.loads((staging / name).read_bytes())
                if next(members, None) is not None:
                    raise BundleError("the bundle holds members its manifest does not list")
            except tarfile.TarError as exc:
                raise BundleError(f"the bundle archive is damaged: {exc}") from None
        if dest.exists():
            dest.rmdir()
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return UnpackedBundle(dest, manifest, consent)

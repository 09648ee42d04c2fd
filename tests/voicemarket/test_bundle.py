"""Deterministic voice bundles: packing, reading back, and refusing what is not a bundle."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.bundle import pack_bundle, read_manifest, unpack_bundle, write_bundle
from voicemarket.errors import BundleError, IntegrityError


def _pack(model) -> tuple[bytes, object]:
    out = io.BytesIO()
    packed = pack_bundle(model, out.write, read_size=1000)
    return out.getvalue(), packed


def test_same_inputs_give_the_same_bytes_and_digest(make_model):
    first, packed = _pack(make_model(seed=3))
    second, again = _pack(make_model(seed=3))
    assert first == second and packed.digest == again.digest == hashlib.sha256(first).digest()
    assert packed.size == len(first)
    _changed, other = _pack(make_model(seed=3, consent={"statement": "something else"}))
    assert other.digest != packed.digest


def test_a_bundle_is_a_plain_tar_in_a_fixed_order(make_model):
    data, packed = _pack(make_model())
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == [
        "manifest.json",
        "consent.json",
        "reference.wav",
        "preview.wav",
        "gpt.ckpt",
        "sovits.pth",
    ]
    assert all(m.mtime == 0 and m.uid == 0 and m.mode == 0o644 and m.isreg() for m in members)
    manifest = read_manifest(io.BytesIO(data))
    assert manifest == packed.manifest
    assert manifest.languages == ("en", "zh") and manifest.reference_text == "Hello there."
    assert manifest.creator == "0x" + "11" * 20


@given(
    gpt=st.binary(max_size=3000),
    sovits=st.binary(max_size=3000),
    name=st.text(min_size=1, max_size=30).filter(str.strip),
    transcript=st.text(min_size=1, max_size=60).filter(str.strip),
)
def test_pack_then_unpack_gives_back_every_file(tmp_path_factory, make_model, gpt, sovits, name, transcript):
    """For any checkpoint bytes and any Unicode name/transcript, unpacking yields the same files and manifest."""
    folder = tmp_path_factory.mktemp("round")
    model = make_model(gpt, sovits, name=name, reference_text=transcript)
    packed = write_bundle(model, folder / "bundle.tar")
    unpacked = unpack_bundle(folder / "bundle.tar", folder / "out", expected_digest=packed.digest)
    assert unpacked.gpt_checkpoint.read_bytes() == gpt
    assert unpacked.sovits_checkpoint.read_bytes() == sovits
    assert unpacked.reference_audio.read_bytes() == model.reference_audio.read_bytes()
    assert unpacked.preview_audio.read_bytes() == model.preview_audio.read_bytes()
    assert unpacked.manifest == packed.manifest and unpacked.manifest.name == name
    assert unpacked.consent == dict(model.consent)


def test_wrong_digest_or_damage_leaves_no_destination(tmp_path, make_model):
    packed = write_bundle(make_model(), tmp_path / "bundle.tar")
    with pytest.raises(IntegrityError, match="expected"):
        unpack_bundle(tmp_path / "bundle.tar", tmp_path / "out", expected_digest=bytes(32))
    data = (tmp_path / "bundle.tar").read_bytes()
    (tmp_path / "short.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError):
        unpack_bundle(tmp_path / "short.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.tar", "model", "short.tar"]
    unpack_bundle(tmp_path / "bundle.tar", tmp_path / "out", expected_digest=packed.digest_hex)
    with pytest.raises(BundleError, match="already exists"):
        unpack_bundle(tmp_path / "bundle.tar", tmp_path / "out")


def test_an_archive_with_other_members_is_not_a_bundle(tmp_path, make_model):
    data, _ = _pack(make_model())
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as source, tarfile.open(fileobj=out, mode="w") as target:
        for member in source.getmembers():
            target.addfile(member, source.extractfile(member))
        extra = tarfile.TarInfo("../../evil.sh")
        extra.size = 4
        target.addfile(extra, io.BytesIO(b"boom"))
    (tmp_path / "evil.tar").write_bytes(out.getvalue())
    with pytest.raises(BundleError, match="does not list"):
        unpack_bundle(tmp_path / "evil.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.sh").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"languages": ()}, "non-empty"),
        ({"languages": ("en", "en")}, "duplicates"),
        ({"languages": ("English",)}, "language code"),
        ({"reference_language": "ja"}, "not among"),
        ({"creator": "alice"}, "Ethereum address"),
        ({"name": "  "}, "non-empty"),
        ({"consent": {"when": float("nan")}}, "consent record"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(make_model, fields, message):
    with pytest.raises(BundleError, match=message):
        _pack(make_model(**fields))


def test_missing_or_odd_files_are_refused(make_model, tmp_path):
    model = make_model()
    with pytest.raises(BundleError, match="does not exist"):
        _pack(make_model(gpt_checkpoint=tmp_path / "nope.ckpt"))
    odd = tmp_path / "clip.txt"
    odd.write_text("not audio")
    with pytest.raises(BundleError, match="must be one of"):
        _pack(make_model(preview_audio=odd))
    assert model.gpt_checkpoint.exists()

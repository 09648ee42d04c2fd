"""voicemarket.content.files: files appear whole or not at all, with the right permissions."""

from __future__ import annotations

import os

import pytest

from voicemarket.content.files import atomic_output, sha256_file


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_permissions_follow_the_umask_or_are_private(tmp_path, umask_027):
    with atomic_output(tmp_path / "speech.wav") as out:
        out.write(b"x")
    with atomic_output(tmp_path / "voice.bundle", private=True) as out:
        out.write(b"y")
    assert (tmp_path / "speech.wav").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "voice.bundle").stat().st_mode & 0o777 == 0o600


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as out:
        out.write(b"half of the new")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_sha256_file(tmp_path):
    import hashlib

    data = os.urandom(5 * 1024 * 1024 + 3)
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).digest()

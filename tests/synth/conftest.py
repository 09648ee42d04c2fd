"""Fixtures for the synth tests: one tiny random voice and espeak-ng reference clips per session."""

from __future__ import annotations

import pytest

from synth.random_model import ModelFiles, write_random_model
from synth.testing import make_reference_wav

PROMPT_TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory) -> ModelFiles:
    return write_random_model(tmp_path_factory.mktemp("tiny-voice"), "tiny", seed=0)


@pytest.fixture(scope="session")
def tts(tiny_files):
    return tiny_files.load()


@pytest.fixture(scope="session")
def reference_wav(tmp_path_factory):
    return make_reference_wav(tmp_path_factory.mktemp("ref") / "ref.wav", seconds=5.0)

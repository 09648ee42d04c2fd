"""Errors a caller can cause, each with a message that says what to do."""

from __future__ import annotations


class SynthError(Exception):
    """Base class of every error raised on purpose by ``synth``."""


class CheckpointError(SynthError):
    """A model file cannot be used."""


class CorruptCheckpointError(CheckpointError):
    """The file is not a readable PyTorch checkpoint (truncated, wrong type, damaged)."""


class UnsafeCheckpointError(CheckpointError):
    """The file's pickle asks for a class or function that is not on the allow-list."""


class UnsupportedModelError(CheckpointError):
    """The file is a GPT-SoVITS model of a version this engine does not run (v1, v3, v4, v2Pro...)."""


class ReferenceAudioError(SynthError):
    """The reference clip is missing, unreadable, too short or too long."""


class TextError(SynthError):
    """The text to speak cannot be used (empty, nothing pronounceable)."""


class UnknownLanguageError(SynthError):
    """The language code is not one GPT-SoVITS v2 knows."""


class LanguageNotInstalledError(SynthError):
    """The language is part of GPT-SoVITS v2 but its text front end is not installed here."""


class TrainingDataError(SynthError):
    """Recordings or transcripts that cannot train a voice (too little, clipped, too quiet, mismatched)."""


class BaseModelError(SynthError):
    """The pretrained folder to fine-tune from is missing a part or holds the wrong kind of model."""


class TrainingSettingsError(SynthError):
    """A training settings file (``python -m synth train --settings``) that cannot be read or names unknown fields."""


class RecognizerError(SynthError):
    """The speech recogniser for transcribing recordings is not installed, or its model folder is unusable."""

"""Voices a worker process has ready: fetched by CID, verified, decrypted with the operator's key,
extracted once per machine, and loaded once per process (lazily, least recently used first out).

Only synth's public API is used (``Synthesizer.from_files(...).synthesize(...)``, and
``synth.text.frontend.load_language`` for the voice's languages as it loads); torch and synth are
imported on the first request that needs a voice, so that workers start fast.
"""

from __future__ import annotations

import fcntl
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oracle.errors import FailReason, RequestFailure, TransientError
from oracle.router import RouterClient
from oracle.settings import OracleSettings

log = logging.getLogger("oracle.voices")


@dataclass(frozen=True)
class Voice:
    """A loaded voice and its default prompt (the bundle's reference clip and transcript)."""

    model_id: int
    synthesizer: Any  # synth.Synthesizer
    reference: Path
    prompt_text: str
    prompt_language: str
    languages: tuple[str, ...]


def load_languages(model_id: int, languages: tuple[str, ...] | list[str]) -> list[str]:
    """Load the text front ends (dictionaries, models) of a voice's languages now, when the voice
    loads, so that its first request in each language does not pay for them. Returns the languages
    made ready; one that synth does not know or cannot load is logged and left out (a request in it
    fails with UnsupportedLanguage)."""
    from synth.errors import LanguageNotInstalledError, UnknownLanguageError
    from synth.text.frontend import load_language

    ready = []
    for language in languages:
        try:
            load_language(language)
        except (UnknownLanguageError, LanguageNotInstalledError) as exc:
            log.warning(
                "a language of the voice cannot be spoken here",
                extra={"model_id": hex(model_id), "language": language, "detail": str(exc)},
            )
        else:
            ready.append(language)
    return ready


class VoiceCache:
    """Voices by model id for one worker process."""

    def __init__(self, settings: OracleSettings, router: RouterClient, private_key: bytes, store) -> None:  # noqa: ANN001
        self.settings = settings
        self.router = router
        self._private_key = private_key
        self.store = store
        self._voices: OrderedDict[int, Voice] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[int, threading.Lock] = {}

    def get(self, model_id: int) -> Voice:
        with self._lock:
            voice = self._voices.get(model_id)
            if voice is not None:
                self._voices.move_to_end(model_id)
                return voice
            loading = self._loading.setdefault(model_id, threading.Lock())
        with loading:  # a threads pool: one load per voice, the other tasks wait for it
            with self._lock:
                voice = self._voices.get(model_id)
            if voice is None:
                voice = self._load(model_id)
        with self._lock:
            self._voices[model_id] = voice
            while len(self._voices) > self.settings.voice_cache_size:
                evicted, _ = self._voices.popitem(last=False)
                log.info("voice unloaded", extra={"model_id": hex(evicted)})
        return voice

    def directory(self, model_id: int) -> Path:
        return self.settings.models_dir / f"{model_id:064x}"

    def _load(self, model_id: int) -> Voice:
        served = self.settings.served(model_id)
        if served is None:
            raise RequestFailure(
                FailReason.MODEL_UNAVAILABLE, f"this operator does not serve model {model_id:#x} (not in `models`)"
            )
        record = self.router.model(model_id)
        if record is None:
            raise RequestFailure(FailReason.MODEL_UNAVAILABLE, f"model {model_id:#x} is not registered")
        unpacked = self._unpacked(model_id, record, served.keyring)
        from synth import Synthesizer
        from synth.errors import CheckpointError, UnsupportedModelError

        if self.settings.torch_threads is not None:
            import torch

            torch.set_num_threads(self.settings.torch_threads)

        try:
            synthesizer = Synthesizer.from_files(
                unpacked.gpt_checkpoint,
                unpacked.sovits_checkpoint,
                hubert_dir=self.settings.hubert_dir,
                bert_dir=self.settings.bert_dir,
                device=self.settings.device,
                precision=self.settings.precision,
            )
        except UnsupportedModelError as exc:
            raise RequestFailure(FailReason.MODEL_UNAVAILABLE, f"model {model_id:#x}: {exc}") from None
        except CheckpointError as exc:
            raise RequestFailure(FailReason.BUNDLE_CORRUPT, f"model {model_id:#x}: {exc}") from None
        manifest = unpacked.manifest
        started = time.perf_counter()
        ready = load_languages(model_id, manifest.languages)
        log.info(
            "voice loaded",
            extra={
                "model_id": hex(model_id),
                "languages": list(manifest.languages),
                "front_ends_ready": ready,
                "front_ends_s": round(time.perf_counter() - started, 3),
            },
        )
        return Voice(
            model_id,
            synthesizer,
            unpacked.reference_audio,
            manifest.reference_text,
            manifest.reference_language,
            tuple(manifest.languages),
        )

    def _unpacked(self, model_id: int, record, keyring_cid: str):  # noqa: ANN001, ANN202 - voicemarket types
        from voicemarket.content.bundle import Manifest, UnpackedBundle
        from voicemarket.content.sealed_bundle import load_keyring, open_bundle
        from voicemarket.errors import (
            BundleError,
            ContentNotFound,
            CreatorMismatch,
            DecryptionError,
            IntegrityError,
            StoreError,
        )

        directory = self.directory(model_id)
        directory.parent.mkdir(parents=True, exist_ok=True)
        # One extraction per machine, even with many worker processes.
        with open(directory.parent / f".{directory.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if (directory / "manifest.json").is_file():
                manifest = Manifest.from_json(json.loads((directory / "manifest.json").read_text()))
                return UnpackedBundle(directory, manifest, {})
            try:
                keyring = load_keyring(self.store, keyring_cid)
            except ContentNotFound as exc:
                raise RequestFailure(
                    FailReason.BUNDLE_UNDECRYPTABLE,
                    f"the keyring {keyring_cid} of model {model_id:#x} is not in the store: {exc}",
                ) from None
            except (IntegrityError, ValueError) as exc:
                raise RequestFailure(
                    FailReason.BUNDLE_UNDECRYPTABLE,
                    f"the keyring {keyring_cid} of model {model_id:#x} is unreadable: {exc}",
                ) from None
            except StoreError as exc:
                raise TransientError(f"cannot fetch the keyring of model {model_id:#x}: {exc}") from None
            try:
                unpacked = open_bundle(
                    self.store,
                    record.bundle_cid,
                    keyring,
                    self._private_key,
                    expected_digest=record.registered,
                    dest=directory,
                )
            except CreatorMismatch as exc:  # intact, but another creator's bundle registered again: never served
                raise RequestFailure(FailReason.MODEL_UNAVAILABLE, str(exc)) from None
            except ContentNotFound as exc:
                raise RequestFailure(FailReason.BUNDLE_UNAVAILABLE, f"model {model_id:#x}: {exc}") from None
            except DecryptionError as exc:
                raise RequestFailure(FailReason.BUNDLE_UNDECRYPTABLE, f"model {model_id:#x}: {exc}") from None
            except (IntegrityError, BundleError) as exc:
                raise RequestFailure(FailReason.BUNDLE_CORRUPT, f"model {model_id:#x}: {exc}") from None
            except StoreError as exc:
                raise TransientError(f"cannot fetch the bundle of model {model_id:#x}: {exc}") from None
            log.info("voice extracted", extra={"model_id": hex(model_id), "directory": str(directory)})
            return unpacked

"""Transcripts for recordings that have none, by a Whisper model the creator already has on disk
(``python -m synth train RECORDINGS --asr-model WHISPER_DIR --language en --out VOICE_DIR``).

Nothing is downloaded: the folder is a Hugging Face Whisper model (``config.json``, the weights,
``preprocessor_config.json`` and the tokenizer files, e.g. a copy of ``openai/whisper-small``),
loaded with ``local_files_only`` by ``transformers``, which synth already uses for HuBERT and BERT.
Like the original's web UI (its slicer, then its recogniser), each recording is first cut at its
pauses into clips of 3-10 s (:func:`synth.train.prepare.slice_at_pauses`); each clip is transcribed
into a line of a ``.list`` file that the creator can read, correct and train from with
``--transcripts``. A recogniser makes mistakes: check the lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from synth.audio import read_wav, resample, write_wav
from synth.errors import RecognizerError, ReferenceAudioError
from synth.files import atomic_write_bytes
from synth.train.prepare import LANGUAGE_CODES, slice_at_pauses

WHISPER_RATE = 16000
WHISPER_LANGUAGES = {"zh": "zh", "en": "en", "ja": "ja", "ko": "ko", "yue": "yue"}
"""Our language codes -> Whisper's (``yue``: Whisper large-v3 and later; older models answer an error)."""
LIST_NAME = "transcripts.list"
NO_TEXT = "# no speech recognised (write its text and remove the #)"


def _load(model_dir: Path, device: str):  # noqa: ANN202 - transformers types
    if not model_dir.is_dir():
        raise RecognizerError(
            f"speech recogniser folder {model_dir} does not exist; give --asr-model a Whisper model folder you "
            "have on disk (Hugging Face format: config.json, model weights, preprocessor_config.json, tokenizer "
            "files), or write the transcripts yourself and pass --transcripts"
        )
    config = model_dir / "config.json"
    if not config.is_file() or '"whisper"' not in config.read_text(encoding="utf-8", errors="replace"):
        raise RecognizerError(
            f"{model_dir} is not a Whisper model folder (its config.json must say model_type whisper); "
            "nothing is downloaded: copy a Whisper model there, or pass --transcripts"
        )
    try:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor
    except ImportError as exc:  # pragma: no cover - transformers is one of synth's dependencies
        raise RecognizerError(f"transformers cannot load Whisper here: {exc}") from None
    try:
        processor = WhisperProcessor.from_pretrained(model_dir, local_files_only=True)
        model = WhisperForConditionalGeneration.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise RecognizerError(f"cannot load the Whisper model in {model_dir}: {exc}") from None
    return processor, model.to(device).eval()


def transcribe_recordings(
    recordings: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    language: str,
    out: str | os.PathLike[str],
    speaker: str = "creator",
    device: str = "cpu",
    on_clip: Callable[[], None] = lambda: None,
) -> Path:
    """Cut every ``*.wav`` of ``recordings`` into 3-10 s clips at its pauses (``out/clips/``), transcribe each
    with the Whisper model in ``model_dir`` and write ``out/transcripts.list`` (path|speaker|language|text).
    Returns the ``.list``; one already there is returned as it is (the creator may have corrected it)."""
    import torch

    recordings, model_dir, out = Path(recordings), Path(model_dir).expanduser(), Path(out)
    listing = out / LIST_NAME
    if listing.is_file():
        return listing
    code = LANGUAGE_CODES.get(language.lower())
    if code is None:
        raise RecognizerError(f"--language {language!r} is not one of zh, en, ja, ko, yue")
    if not recordings.is_dir():
        raise RecognizerError(f"recordings folder {recordings} does not exist")
    files = sorted(recordings.glob("*.wav"))
    if not files:
        raise RecognizerError(f"{recordings} holds no .wav recordings to transcribe")
    processor, model = _load(model_dir, device)
    rows = []
    (out / "clips").mkdir(parents=True, exist_ok=True)
    for path in files:
        try:
            rate, audio = read_wav(path)
        except ReferenceAudioError as exc:
            raise RecognizerError(f"{path.name}: {str(exc).replace('reference audio', 'recording')}") from None
        for k, clip in enumerate(slice_at_pauses(audio, rate)):
            features = processor(
                resample(clip, rate, WHISPER_RATE), sampling_rate=WHISPER_RATE, return_tensors="pt"
            ).input_features.to(device)
            try:
                with torch.inference_mode():
                    ids = model.generate(features, language=WHISPER_LANGUAGES[code], task="transcribe")
            except ValueError as exc:
                raise RecognizerError(f"the Whisper model in {model_dir} cannot transcribe {code}: {exc}") from None
            text = " ".join(processor.batch_decode(ids, skip_special_tokens=True)[0].split())
            clip_path = write_wav(out / "clips" / f"{path.stem}_{k:03d}.wav", rate, clip)
            row = f"{clip_path}|{speaker}|{code}|{text}"
            rows.append(row if text else f"{NO_TEXT}: {row}")
            on_clip()
    atomic_write_bytes(listing, ("\n".join(rows) + "\n").encode("utf-8"))
    return listing


def command_transcripts(
    recordings: str | os.PathLike[str],
    transcripts: str | os.PathLike[str] | None,
    asr_model: str | os.PathLike[str] | None,
    language: str | None,
    out: str | os.PathLike[str],
    device: str = "cpu",
    report: Callable[[str], None] = print,
) -> Path:
    """The ``.list`` that ``python -m synth train`` trains from: ``--transcripts``, or one transcribed by
    ``--asr-model`` (in ``VOICE_DIR.asr/``, kept for the creator to check; reused when run again)."""
    if (transcripts is None) == (asr_model is None):
        raise RecognizerError(
            "give either --transcripts FILE (path|speaker|language|text lines) or --asr-model WHISPER_DIR with "
            "--language, to have a speech recogniser you have on disk write them"
        )
    if transcripts is not None:
        return Path(transcripts)
    if language is None:
        raise RecognizerError("--asr-model needs --language (zh, en, ja, ko or yue): the language of the recordings")
    out = Path(out)
    listing = transcribe_recordings(recordings, asr_model, language, out.with_name(out.name + ".asr"), device=device)
    lines = listing.read_text(encoding="utf-8").splitlines()
    silent = sum(line.startswith(NO_TEXT) for line in lines)
    clips = silent + sum(bool(line.strip()) and not line.startswith("#") for line in lines)
    report(
        f"transcripts: {listing} ({clips} clips, {silent} without text) "
        "by the speech recogniser; read them: a wrong line trains a wrong voice. To correct one, edit the file "
        f"and run again with --transcripts {listing}"
    )
    return listing

"""Step 0 of training: recordings + transcripts -> checked, sliced, loudness-normalised 32 kHz clips.

Transcripts come in GPT-SoVITS's ``.list`` format, one clip or recording a line::

    path|speaker|language|text          e.g.  take1.wav|me|en|Hello there. How are you?

``path`` is absolute or relative to the recordings folder (GPT-SoVITS also looks the file's name
up in the folder); ``language`` is one of GPT-SoVITS's codes (``zh en ja ko yue``, also the upper-case
``ZH EN JA JP KO YUE`` its annotation tools write). Clips are 3 to 10 s (:data:`MIN_CLIP_S`,
:data:`MAX_CLIP_S`: the issue's range, and the original's for reference clips). A recording longer than
:data:`MAX_CLIP_S` is cut at its longest silences between sentences (one cut per sentence break), and
neighbouring sentences are joined again into pieces of 3-10 s where they can be: a transcript per
recording is enough when its sentences are separated by pauses. Recordings without transcripts can be
transcribed first by a Whisper model the user has on disk (:mod:`synth.train.asr`).

Every clip is checked, and what cannot train well is left out with its reason
(:class:`Rejection`): clipping, speech too quiet, a clip too short or too long, a transcript
whose length does not fit its clip (phones per second outside 3..25, the filter GPT-SoVITS's
GPT trainer applies), text the front end cannot read. Too little accepted speech in total
raises :class:`~synth.errors.TrainingDataError` with the whole report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from synth.audio import read_wav, resample, write_wav
from synth.errors import ReferenceAudioError, SynthError, TrainingDataError
from synth.files import atomic_write_bytes

SAMPLE_RATE = 32000
MIN_CLIP_S = 3.0
MAX_CLIP_S = 10.0
MIN_TOTAL_S = 30.0
CLIPPED_LEVEL = 0.999  # |sample| at or above this (of full scale) counts as clipped
MAX_CLIPPED_FRACTION = 0.001  # 0.1 % of the samples
MIN_SPEECH_DBFS = -40.0  # RMS of the speech frames
TARGET_SPEECH_DBFS = -20.0  # loudness the clips are normalised to
PEAK_LIMIT = 0.95
SILENCE_BELOW_DB = -40.0  # a 20 ms frame this far below the recording's loudest frame is silence
MIN_PAUSE_S = 0.25
KEEP_EDGE_S = 0.15  # silence kept before and after the speech of a clip
MIN_PHONES_PER_S = 3.0  # GPT-SoVITS's s1 dataset drops clips outside 3..25 phones a second
MAX_PHONES_PER_S = 25.0
LANGUAGE_CODES = {
    "zh": "zh",
    "en": "en",
    "ja": "ja",
    "jp": "ja",
    "ko": "ko",
    "yue": "yue",
}
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;…])\s*")

PhoneCounter = Callable[[str, str], int]


@dataclass(frozen=True)
class TranscriptLine:
    """One line of a ``.list`` file."""

    audio: Path
    speaker: str
    language: str
    text: str
    line: int


@dataclass(frozen=True)
class Clip:
    """An accepted training clip (32 kHz mono 16-bit WAV)."""

    name: str
    path: str
    speaker: str
    language: str
    text: str
    seconds: float
    phones: int
    speech_dbfs: float


@dataclass(frozen=True)
class Rejection:
    """Something left out, and why (a sentence that says what to do)."""

    source: str
    reason: str


@dataclass
class PreparedData:
    """What :func:`prepare` made: the clips, what it left out, and where the ``.list`` is."""

    folder: Path
    clips: list[Clip] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(c.seconds for c in self.clips)

    @property
    def list_path(self) -> Path:
        return self.folder / "train.list"

    def summary(self) -> str:
        """A plain report: minutes used, clips, and each rejection with its reason."""
        lines = [
            f"training data: {self.seconds / 60:.2f} min in {len(self.clips)} clips, {len(self.rejected)} left out"
        ]
        lines += [f"  left out {r.source}: {r.reason}" for r in self.rejected]
        return "\n".join(lines)

    def save(self) -> None:
        rows = [f"{c.path}|{c.speaker}|{c.language}|{c.text}" for c in self.clips]
        atomic_write_bytes(self.list_path, ("\n".join(rows) + "\n").encode())
        report = {"clips": [asdict(c) for c in self.clips], "rejected": [asdict(r) for r in self.rejected]}
        atomic_write_bytes(self.folder / "report.json", json.dumps(report, ensure_ascii=False, indent=1).encode())

    @classmethod
    def load(cls, folder: Path) -> PreparedData:
        report = json.loads((folder / "report.json").read_text())
        return cls(
            folder=folder,
            clips=[Clip(**c) for c in report["clips"]],
            rejected=[Rejection(**r) for r in report["rejected"]],
        )


def read_transcripts(path: str | os.PathLike[str], recordings: str | os.PathLike[str]) -> list[TranscriptLine]:
    """Parse a ``.list`` file; every line must name a file that exists and a known language."""
    path, recordings = Path(path), Path(recordings)
    if not path.is_file():
        raise TrainingDataError(
            f"transcripts file {path} does not exist; write one line per clip: path|speaker|language|text"
        )
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = raw.split("|", 3)
        if len(parts) != 4 or not parts[3].strip():
            raise TrainingDataError(
                f"{path}:{number}: expected path|speaker|language|text (GPT-SoVITS's .list format), got {raw!r}"
            )
        audio_name, speaker, language, text = (p.strip() for p in parts)
        code = LANGUAGE_CODES.get(language.lower())
        if code is None:
            raise TrainingDataError(
                f"{path}:{number}: language {language!r} is not one of zh, en, ja, ko, yue (GPT-SoVITS's codes)"
            )
        audio = Path(audio_name)
        if not audio.is_absolute():
            audio = recordings / audio
        if not audio.is_file():
            # GPT-SoVITS falls back to the file's name inside the recordings folder.
            audio = recordings / Path(audio_name.replace("\\", "/")).name
        if not audio.is_file():
            raise TrainingDataError(f"{path}:{number}: recording {audio_name} is not in {recordings}")
        out.append(TranscriptLine(audio, speaker or "speaker", code, text, number))
    if not out:
        raise TrainingDataError(
            f"transcripts file {path} holds no lines; write one line per clip: path|speaker|language|text"
        )
    return out


def _frame_db(audio: np.ndarray, rate: int) -> np.ndarray:
    """Level of each 20 ms frame (10 ms hop) in dBFS."""
    win, hop = int(0.02 * rate), int(0.01 * rate)
    if audio.size < win:
        return np.array([20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-9)])
    frames = np.lib.stride_tricks.sliding_window_view(audio, win)[::hop]
    return 20 * np.log10(np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) + 1e-9)


def _pauses(levels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of silent frames at least :data:`MIN_PAUSE_S` long, inside the speech: [(start, end)) frames."""
    silent = levels < levels.max() + SILENCE_BELOW_DB
    runs, start = [], None
    for i, s in enumerate(np.append(silent, False)):
        if s and start is None:
            start = i
        elif not s and start is not None:
            if start > 0 and i < len(silent) and i - start >= MIN_PAUSE_S * 100:
                runs.append((start, i))
            start = None
    return runs


def _trim(audio: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading and trailing silence, keeping :data:`KEEP_EDGE_S` of it."""
    levels = _frame_db(audio, rate)
    loud = np.nonzero(levels >= levels.max() + SILENCE_BELOW_DB)[0]
    if loud.size == 0:
        return audio
    hop, keep = int(0.01 * rate), int(KEEP_EDGE_S * rate)
    start = max(loud[0] * hop - keep, 0)
    end = min((loud[-1] + 2) * hop + keep, audio.size)
    return audio[start:end]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence of ``text`` (split after . ! ? 。 ！ ？ ; …)."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        if match.start() > start and text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans


def split_sentences(text: str) -> list[str]:
    """A transcript's sentences (split after . ! ? 。 ！ ？ ; …)."""
    return [text[a:b].strip() for a, b in _sentence_spans(text)]


def _group(durations: list[list[float]], count: int) -> list[tuple[int, int]]:
    """Contiguous groups [(first, last + 1)] of ``count`` pieces, ``durations[a][b - 1]`` seconds for
    pieces a..b-1 joined: fewest groups outside :data:`MIN_CLIP_S`..:data:`MAX_CLIP_S`, then most groups."""
    best: list[tuple[int, int, list[tuple[int, int]]]] = [(0, 0, [])]  # (bad groups, -groups, groups) to piece i
    for end in range(1, count + 1):
        options = []
        for start in range(end):
            bad, negative, groups = best[start]
            outside = not MIN_CLIP_S <= durations[start][end - 1] <= MAX_CLIP_S
            options.append((bad + outside, negative - 1, [*groups, (start, end)]))
        best.append(min(options, key=lambda o: (o[0], o[1])))
    return best[count][2]


def slice_recording(audio: np.ndarray, rate: int, text: str) -> list[tuple[np.ndarray, str]]:
    """A recording and its transcript -> [(clip, text)].

    Up to :data:`MAX_CLIP_S` (or a one-sentence transcript): one clip. Longer: cut at the ``n - 1``
    longest pauses, ``n`` being the number of sentences, each piece taking its sentence, then
    neighbouring pieces joined (with the pause between them) where that makes clips of 3-10 s of
    sentences too short alone. Raises TrainingDataError when the recording has fewer pauses than
    sentence breaks."""
    seconds = audio.size / rate
    spans = _sentence_spans(text)
    if seconds <= MAX_CLIP_S or len(spans) <= 1:
        return [(_trim(audio, rate), text)]
    pauses = _pauses(_frame_db(audio, rate))
    if len(pauses) < len(spans) - 1:
        raise TrainingDataError(
            f"{seconds:.1f} s long with {len(spans)} sentences but only {len(pauses)} pauses of "
            f"{MIN_PAUSE_S:g} s or more to cut at; pause between sentences, or cut it into "
            f"{MIN_CLIP_S:g}-{MAX_CLIP_S:g} s clips with one .list line each"
        )
    longest = sorted(pauses, key=lambda p: p[1] - p[0], reverse=True)[: len(spans) - 1]
    hop = int(0.01 * rate)
    cuts = [0] + sorted(((a + b) // 2) * hop for a, b in longest) + [audio.size]
    n = len(spans)
    durations = [[0.0] * n for _ in range(n)]
    for a in range(n):
        for b in range(a, n):
            durations[a][b] = _trim(audio[cuts[a] : cuts[b + 1]], rate).size / rate
    return [
        (_trim(audio[cuts[a] : cuts[b]], rate), text[spans[a][0] : spans[b - 1][1]].strip())
        for a, b in _group(durations, n)
    ]


def slice_at_pauses(audio: np.ndarray, rate: int) -> list[np.ndarray]:
    """A recording without a transcript -> clips of 3-10 s where it can: cut at its pauses (runs of
    :data:`MIN_PAUSE_S` or more of silence), the pieces between them joined into 3-10 s clips, each
    trimmed (what the original's slicer does before its speech recogniser)."""
    if audio.size / rate <= MAX_CLIP_S:
        return [_trim(audio, rate)]
    hop = int(0.01 * rate)
    cuts = [0] + [((a + b) // 2) * hop for a, b in _pauses(_frame_db(audio, rate))] + [audio.size]
    n = len(cuts) - 1
    durations = [[0.0] * n for _ in range(n)]
    for a in range(n):
        for b in range(a, n):
            durations[a][b] = _trim(audio[cuts[a] : cuts[b + 1]], rate).size / rate if b - a < 40 else 1e9
    return [_trim(audio[cuts[a] : cuts[b]], rate) for a, b in _group(durations, n)]


def check_clip(audio: np.ndarray, rate: int) -> tuple[str | None, float]:
    """(reason to leave it out or None, speech level in dBFS) for a clip at its original level."""
    seconds = audio.size / rate
    if seconds < MIN_CLIP_S:
        return (
            f"only {seconds:.1f} s of speech; clips need {MIN_CLIP_S:g} to {MAX_CLIP_S:g} s "
            "(say a longer sentence, or join this one to its neighbour in one recording and one .list line)",
            -120.0,
        )
    if seconds > MAX_CLIP_S:
        return (
            f"{seconds:.1f} s long; clips need {MIN_CLIP_S:g} to {MAX_CLIP_S:g} s: pause between sentences, or "
            f"cut it into clips of {MIN_CLIP_S:g} to {MAX_CLIP_S:g} s at pauses",
            -120.0,
        )
    clipped = float(np.mean(np.abs(audio) >= CLIPPED_LEVEL))
    levels = _frame_db(audio, rate)
    speech = levels[levels >= levels.max() + SILENCE_BELOW_DB]
    speech_db = float(10 * np.log10(np.mean(10 ** (speech / 10)) + 1e-12))
    if clipped > MAX_CLIPPED_FRACTION:
        return (
            f"clipped ({clipped:.2%} of the samples at full scale); record again with the input gain lower",
            speech_db,
        )
    if speech_db < MIN_SPEECH_DBFS:
        return (
            f"too quiet (speech at {speech_db:.0f} dBFS, needs {MIN_SPEECH_DBFS:g} or louder); "
            "record closer to the microphone or raise the input gain",
            speech_db,
        )
    return None, speech_db


def normalise_loudness(audio: np.ndarray, speech_dbfs: float) -> np.ndarray:
    """Bring the speech to :data:`TARGET_SPEECH_DBFS`, then limit the peak to :data:`PEAK_LIMIT`."""
    out = audio * np.float32(10 ** ((TARGET_SPEECH_DBFS - speech_dbfs) / 20))
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > PEAK_LIMIT:
        out = out * np.float32(PEAK_LIMIT / peak)
    return out.astype(np.float32)


def prepare(
    recordings: str | os.PathLike[str],
    transcripts: str | os.PathLike[str],
    out: str | os.PathLike[str],
    count_phones: PhoneCounter,
    min_total_s: float = MIN_TOTAL_S,
) -> PreparedData:
    """Check, slice, resample and normalise; write ``out/wavs/*.wav``, ``out/train.list``, ``out/report.json``.

    ``count_phones(text, language)`` gives the phones of a transcript (raises SynthError for text
    the front end cannot read). Raises TrainingDataError when under ``min_total_s`` seconds pass."""
    lines = read_transcripts(transcripts, recordings)
    folder = Path(out)
    (folder / "wavs").mkdir(parents=True, exist_ok=True)
    data = PreparedData(folder=folder)
    used_names: set[str] = set()
    for line in lines:
        source = f"{line.audio.name} (line {line.line})"
        try:
            rate, audio = read_wav(line.audio)
        except ReferenceAudioError as exc:
            data.rejected.append(Rejection(source, str(exc).replace("reference audio", "recording")))
            continue
        try:
            pieces = slice_recording(audio, rate, line.text)
        except TrainingDataError as exc:
            data.rejected.append(Rejection(source, str(exc)))
            continue
        for k, (piece, text) in enumerate(pieces):
            where = source if len(pieces) == 1 else f"{line.audio.name} piece {k + 1} (line {line.line})"
            reason, speech_db = check_clip(piece, rate)
            phones = 0
            if reason is None:
                try:
                    phones = count_phones(text, line.language)
                except SynthError as exc:
                    reason = f"transcript cannot be read as {line.language}: {exc}"
            seconds = piece.size / rate
            if reason is None and not MIN_PHONES_PER_S <= phones / seconds <= MAX_PHONES_PER_S:
                reason = (
                    f"transcript does not fit the clip: {phones} phones in {seconds:.1f} s "
                    f"({phones / seconds:.1f} a second; speech has {MIN_PHONES_PER_S:g} to {MAX_PHONES_PER_S:g}); "
                    "check that the line belongs to this recording and is complete"
                )
            if reason is not None:
                data.rejected.append(Rejection(where, reason))
                continue
            name = _unique(f"{line.audio.stem}_{k:02d}" if len(pieces) > 1 else line.audio.stem, used_names)
            clip = resample(normalise_loudness(piece, speech_db), rate, SAMPLE_RATE)
            path = write_wav(folder / "wavs" / f"{name}.wav", SAMPLE_RATE, clip)
            data.clips.append(
                Clip(name, str(path), line.speaker, line.language, text, round(seconds, 3), phones, round(speech_db, 1))
            )
    data.save()
    if data.seconds < min_total_s:
        raise TrainingDataError(
            f"only {data.seconds:.1f} s of usable speech ({len(data.clips)} clips); fine-tuning needs at least "
            f"{min_total_s:g} s (about a minute is recommended): record more.\n{data.summary()}"
        )
    return data


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate

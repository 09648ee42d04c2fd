"""synth.train.prepare: what cannot train well is left out with a reason that says what to do.

Speech is made on the spot with espeak-ng and altered with sox (louder until it clips, quieter,
joined with pauses)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from synth.__main__ import main
from synth.audio import read_wav
from synth.errors import TrainingDataError
from synth.testing import TRAINING_SENTENCES, make_speech_wav
from synth.train.asr import command_transcripts, transcribe_recordings
from synth.train.features import count_phones
from synth.train.pipeline import command_settings
from synth.train.prepare import prepare, read_transcripts, slice_recording
from synth.train.tiny import write_tiny_whisper

SENTENCES = list(TRAINING_SENTENCES[:3])  # about 4 s each
SHORT = "Hi there."  # about 1 s: too short alone, joined to a neighbour when sliced from a long recording
BREATHLESS = (
    "The quick brown fox jumps over the lazy dog and then it runs back home again and again until the sun goes "
    "down behind the hills and the first stars come out over the quiet little town by the river"
)


def espeak(path: Path, text: str, *sox_effects: str) -> Path:
    return make_speech_wav(path, text, *sox_effects)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("recordings")
    espeak(folder / "good.wav", SENTENCES[0])
    espeak(folder / "loud.wav", SENTENCES[1], "gain", "25")  # driven far past full scale: clipped
    espeak(folder / "quiet.wav", SENTENCES[2], "vol", "0.004")  # about -55 dBFS
    espeak(folder / "short.wav", "Hi.")
    # Four sentences (one of 1 s) with a second of silence between them, 16+ s in all: cut into three clips.
    spoken = [SENTENCES[0], SHORT, *SENTENCES[1:]]
    parts = [espeak(folder / f"part{i}.wav", s, "pad", "0", "1.2") for i, s in enumerate(spoken)]
    subprocess.run(["sox", *map(str, parts), str(folder / "long.wav"), "pad", "0", "2"], check=True)
    for p in parts:
        p.unlink()
    espeak(folder / "breathless.wav", BREATHLESS)  # one sentence of 12+ s without a pause to cut at
    (folder / "notes.wav").write_text("not audio")
    return folder


def write_list(folder: Path, rows: list[str]) -> Path:
    path = folder / "t.list"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_prepare_keeps_good_clips_and_says_why_it_left_the_others_out(recordings, tmp_path):
    transcripts = write_list(
        tmp_path,
        [
            f"good.wav|me|EN|{SENTENCES[0]}",
            f"loud.wav|me|en|{SENTENCES[1]}",
            f"quiet.wav|me|en|{SENTENCES[2]}",
            "short.wav|me|en|Hi.",
            f"{recordings}/good.wav|me|en|Yes.",  # a transcript far too short for the clip
            f"long.wav|me|en|{SENTENCES[0]} {SHORT} {' '.join(SENTENCES[1:])}",
            "good.wav|me|en|...",  # nothing the front end can read
            f"breathless.wav|me|en|{BREATHLESS}.",
            "notes.wav|me|en|Not a recording.",
        ],
    )
    data = prepare(recordings, transcripts, tmp_path / "prepared", count_phones, min_total_s=5)
    reasons = {r.source: r.reason for r in data.rejected}
    assert [c.name for c in data.clips] == ["good", "long_00", "long_01", "long_02"]
    assert "clipped" in reasons["loud.wav (line 2)"] and "input gain lower" in reasons["loud.wav (line 2)"]
    assert "too quiet" in reasons["quiet.wav (line 3)"] and "closer to the microphone" in reasons["quiet.wav (line 3)"]
    assert "only" in reasons["short.wav (line 4)"] and "3 to 10 s" in reasons["short.wav (line 4)"]
    assert "does not fit the clip" in reasons["good.wav (line 5)"]
    assert reasons["good.wav (line 7)"].startswith("transcript cannot be read as en: nothing to pronounce")
    assert "clips need 3 to 10 s: pause between sentences" in reasons["breathless.wav (line 8)"]
    assert "is not a readable WAV file" in reasons["notes.wav (line 9)"] and len(data.rejected) == 7
    # The long recording was cut at its pauses, each piece with its sentence, the 1 s one joined to a
    # neighbour (pause included, one .list line of both sentences), each clip 3-10 s.
    texts = [c.text for c in data.clips[1:]]
    assert texts in (
        [f"{SENTENCES[0]} {SHORT}", *SENTENCES[1:]],
        [SENTENCES[0], f"{SHORT} {SENTENCES[1]}", SENTENCES[2]],
    )
    assert all(3.0 <= c.seconds <= 10.0 for c in data.clips)
    # Clips are 32 kHz, loudness-normalised (speech near -20 dBFS, peak at most 0.95), listed in .list format.
    rate, audio = read_wav(data.clips[0].path)
    assert rate == 32000 and np.abs(audio).max() <= 0.951
    rms = np.sqrt(np.mean(audio[np.abs(audio) > 0.01] ** 2))
    assert -26 < 20 * np.log10(rms) < -14
    rows = data.list_path.read_text().splitlines()
    assert rows[0] == f"{data.clips[0].path}|me|en|{SENTENCES[0]}"
    assert "left out quiet.wav (line 3): too quiet" in data.summary()


def test_too_little_speech_in_total_is_an_error_with_the_report(recordings, tmp_path):
    transcripts = write_list(tmp_path, [f"good.wav|me|en|{SENTENCES[0]}", "short.wav|me|en|Hi."])
    with pytest.raises(TrainingDataError, match=r"(?s)only \d\.\d s of usable speech.*record more.*short\.wav"):
        prepare(recordings, transcripts, tmp_path / "prepared", count_phones, min_total_s=30)


def test_transcript_file_errors_name_the_line(recordings, tmp_path):
    cases = {
        "good.wav|me|en": r"t\.list:1: expected path\|speaker\|language\|text",
        "good.wav|me|fr|Bonjour.": r"t\.list:1: language 'fr' is not one of zh, en, ja, ko, yue",
        "missing.wav|me|en|Hello there.": r"t\.list:1: recording missing\.wav is not in",
    }
    for row, message in cases.items():
        with pytest.raises(TrainingDataError, match=message):
            read_transcripts(write_list(tmp_path, [row]), recordings)
    with pytest.raises(TrainingDataError, match="does not exist"):
        read_transcripts(tmp_path / "nope.list", recordings)


def test_a_long_recording_with_too_few_pauses_is_refused(recordings):
    rate, audio = read_wav(recordings / "good.wav")
    audio = np.tile(audio[: rate * 2], 7)  # 14 s of speech without the pauses four sentences need
    with pytest.raises(TrainingDataError, match="pauses"):
        slice_recording(audio, rate, "One. Two. Three. Four.")


def test_a_speech_recogniser_on_disk_transcribes_clips_cut_at_pauses(recordings, tmp_path):
    # A random tiny Whisper in Hugging Face's format: it transcribes nothing meaningful, but loads from the
    # folder alone (nothing downloaded) and writes a line per clip of 3-10 s for the creator to check.
    whisper = write_tiny_whisper(tmp_path / "whisper")
    folder = tmp_path / "takes"
    folder.mkdir()
    for name in ("good.wav", "long.wav"):
        shutil.copy(recordings / name, folder / name)
    listing = transcribe_recordings(folder, whisper, "EN", tmp_path / "ada.asr")
    rows = listing.read_text().splitlines()
    clips = [Path(row.split("|", 3)[0]) for row in rows]
    assert [c.name for c in clips] == ["good_000.wav", "long_000.wav", "long_001.wav", "long_002.wav"]
    assert all(row.split("|", 3)[1:3] == ["creator", "en"] and row.split("|", 3)[3] for row in rows)
    for clip in clips:
        rate, audio = read_wav(clip)
        assert 3.0 <= audio.size / rate <= 10.0, clip.name
    # Run again (after an interrupt, or after the creator corrected a line): the file is kept as it is.
    listing.write_text(listing.read_text() + "# corrected by hand\n")
    assert transcribe_recordings(folder, tmp_path / "gone", "en", tmp_path / "ada.asr").read_text().endswith("hand\n")
    # What the command trains from, and what it tells the creator to do with the file.
    said = []
    assert command_transcripts(folder, None, tmp_path / "gone", "en", tmp_path / "ada", report=said.append) == listing
    assert f"transcripts: {listing} (4 clips, 0 without text)" in said[0] and f"--transcripts {listing}" in said[0]


def test_command_line_transcript_and_settings_errors(recordings, tmp_path):
    base = ["train", str(recordings), "--out", str(tmp_path / "ada"), "--base", str(tmp_path)]
    (tmp_path / "hubert").mkdir()
    (tmp_path / "hubert" / "config.json").write_text('{"model_type": "hubert"}')
    (tmp_path / "bad.yaml").write_text("s2: {learning_rate: 0.001, epochs_per_day: 3}\n")
    (tmp_path / "wrong.yaml").write_text("s2: {batch_size: many}\n")
    cases = {
        (): "give either --transcripts FILE",
        ("--transcripts", "t.list", "--asr-model", str(tmp_path)): "give either --transcripts FILE",
        ("--asr-model", str(tmp_path / "hubert")): "--asr-model needs --language",
        ("--asr-model", str(tmp_path / "none"), "--language", "en"): "speech recogniser folder .*none does not exist",
        ("--asr-model", str(tmp_path / "hubert"), "--language", "en"): "hubert is not a Whisper model folder",
        ("--asr-model", str(tmp_path / "hubert"), "--language", "fr"): "--language 'fr' is not one of zh, en",
        ("--transcripts", "t.list", "--settings", str(tmp_path / "bad.yaml")): r"s2: unknown field\(s\) epochs_per_day",
        ("--transcripts", "t.list", "--settings", str(tmp_path / "wrong.yaml")): r"s2.batch_size must be a int",
        ("--transcripts", "t.list", "--settings", str(tmp_path / "no.yaml")): "cannot read the settings file",
    }
    for options, message in cases.items():
        result = CliRunner().invoke(main, [*base, *options])
        assert result.exit_code == 1 and re.search(message, result.output), (options, result.output)


def test_the_settings_file_fills_in_and_the_options_win(tmp_path):
    path = tmp_path / "more.yaml"
    path.write_text("s2: {epochs: 5, learning_rate: 2.0e-4, betas: [0.5, 0.9]}\ns1: {batch_size: 7}\nmin_total_s: 20\n")
    from_file = command_settings(path, {}, default_batch_size=lambda: 3)
    assert (from_file.s2.epochs, from_file.s2.learning_rate, from_file.s2.betas) == (5, 2.0e-4, (0.5, 0.9))
    assert (from_file.s2.batch_size, from_file.s1.batch_size, from_file.s1.epochs) == (3, 7, 15)  # 3: from memory
    assert from_file.min_total_s == 20.0
    given = command_settings(path, {"s2_epochs": 2, "batch_size": 4, "min_seconds": 40}, default_batch_size=lambda: 3)
    assert (given.s2.epochs, given.s2.batch_size, given.s1.batch_size, given.min_total_s) == (2, 4, 4, 40.0)

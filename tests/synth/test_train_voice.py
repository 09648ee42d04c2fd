"""python -m synth train end to end on a tiny random base and espeak-ng speech, run as a creator runs it (a
subprocess): it exits 0 and says what it did; the voice folder's files are in the original's formats and speak
in our engine; an interrupted run leaves no voice folder and resumes to the very weights of the command's
uninterrupted run; bad inputs get clear errors.

The tiny trial (synth.train.tiny) runs once per test session: tests/oracle/test_trained_voice.py mints and
serves the same voice."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
import yaml
from click.testing import CliRunner

from synth.__main__ import main
from synth.checkpoints import load_gpt, load_sovits, read_checkpoint
from synth.errors import BaseModelError, CheckpointError, TrainingDataError
from synth.random_model import ModelFiles
from synth.testing import torch_threads
from synth.train import Progress, train_voice
from synth.train.pipeline import command_settings
from synth.train.tiny import TinyModel, TinyTraining, train_tiny_voice
from synth.train.voice import PREVIEW_LINES, choose_reference


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_files) -> TinyTraining:
    """`python -m synth train` on the tiny trial (once per session: the oracle's test shares it)."""
    model = TinyModel(tiny_files.gpt_path, tiny_files.sovits_path, tiny_files.hubert_dir, tiny_files.bert_dir)
    return train_tiny_voice(tmp_path_factory.getbasetemp() / "tiny-training", model)


@pytest.fixture(scope="module")
def settings(tiny):
    """The settings the command trained with, for runs in this process."""
    return command_settings(tiny.settings_file, tiny.given(), default_batch_size=lambda: 1)


@pytest.fixture(scope="module")
def data(tiny):
    return tiny.recordings, tiny.transcripts


@pytest.fixture(scope="module")
def base(tiny):
    return tiny.base


@pytest.fixture(scope="module")
def trained(tiny):
    spec = yaml.safe_load((tiny.voice / "voice.yaml").read_text())
    return dataclasses.make_dataclass("Trained", ["folder", "gpt", "sovits", "preview"])(
        tiny.voice, tiny.voice / spec["gpt"], tiny.voice / spec["sovits"], tiny.voice / "training" / "preview-check.wav"
    )


def test_the_command_trains_reports_and_exits_0(tiny, settings):
    assert tiny.returncode == 0
    lines = tiny.output.splitlines()
    assert "training data: 0.2" in lines[0] and "in 3 clips, 0 left out" in lines[0]
    assert f"wrote {tiny.voice}: ada-e2.ckpt, ada_e2_s2.pth, reference.wav, voice.yaml" in lines
    assert any(line.startswith("time: prepare ") and " s2 " in line for line in lines)
    assert f"mint it: ape run mint {tiny.voice} ..." in lines
    assert "SoVITS: 100%" in tiny.output and "GPT: 100%" in tiny.output  # progress bars with the time left
    # The --settings file reached the stages; the options given on the command line won over the defaults.
    assert settings.s2.segment_size == 6400 and settings.s2.discriminator_width_divisor == 16
    assert (settings.s2.epochs, settings.s1.epochs, settings.s2.batch_size, settings.s1.batch_size) == (2, 2, 3, 2)
    assert settings.min_total_s == 5


def test_the_voice_folder_holds_the_original_formats(trained, tiny):
    folder = trained.folder
    assert sorted(p.name for p in folder.iterdir()) == [
        "ada-e2.ckpt",
        "ada_e2_s2.pth",
        "reference.wav",
        "training",
        "voice.yaml",
    ]
    gpt_raw = read_checkpoint(trained.gpt).payload
    assert gpt_raw["info"] == "GPT-e2" and all(k.startswith("model.") for k in gpt_raw["weight"])
    assert {t.dtype for t in gpt_raw["weight"].values()} == {torch.float16}
    assert gpt_raw["config"]["train"]["epochs"] == 2 and gpt_raw["config"]["pretrained_s1"].endswith(".ckpt")
    sovits_raw = read_checkpoint(trained.sovits)
    assert sovits_raw.head == b"PK"  # a plain zip: v2, no version bytes
    payload = sovits_raw.payload
    assert payload["info"] == "2epoch_2iteration" and not any("enc_q" in k for k in payload["weight"])
    assert {t.dtype for t in payload["weight"].values() if t.is_floating_point()} == {torch.float16}
    assert type(payload["config"]).__name__ == "HParams"  # pickled as utils.HParams, as the original's savee
    config = load_sovits(trained.sovits).config
    assert config["train"]["epochs"] == 2 and config["model"]["version"] == "v2" and config["name"] == "ada"
    assert load_gpt(trained.gpt).config["model"]["n_layer"] == 2
    spec = yaml.safe_load((folder / "voice.yaml").read_text())
    assert spec["reference"]["audio"] == "reference.wav" and spec["reference"]["language"] == "en"
    assert spec["reference"]["text"] in tiny.transcripts.read_text()
    assert spec["preview"] == {"text": PREVIEW_LINES["en"], "language": "en"}
    assert spec["gpt"] == "ada-e2.ckpt" and spec["sovits"] == "ada_e2_s2.pth" and spec["languages"] == ["en"]
    s2_rows = (folder / "training" / "losses-s2.csv").read_text().splitlines()
    assert (
        s2_rows[0].startswith("epoch,step,loss_disc,loss_gen,loss_fm,loss_mel,loss_commit,loss_kl,lr")
        and len(s2_rows) == 3
    )
    assert (folder / "training" / "losses.png").read_bytes().startswith(b"\x89PNG")
    assert not folder.with_name("ada.work").exists() and not folder.with_name("ada.partial").exists()


def test_the_trained_voice_speaks_in_our_engine(trained, base):
    # The trainer already had the new voice say its preview line; load the files again and speak.
    assert trained.preview is not None and trained.preview.stat().st_size > 40 * 640 * 2
    tts = ModelFiles(
        trained.gpt, trained.sovits, base / "chinese-hubert-base", base / "chinese-roberta-wwm-ext-large", "tiny"
    ).load()
    rate, wave = tts.synthesize(
        "A new sentence.", "en", trained.folder / "reference.wav", prompt_text="Hello.", max_semantic_tokens=25
    )
    assert rate == 32000 and wave.shape[0] >= 25 * 640 and float(abs(wave).max()) > 0


def test_an_interrupted_run_resumes_to_the_same_weights(trained, data, base, settings, tmp_path):
    recordings, transcripts = data
    out = tmp_path / "ada"

    def stop_after_first_sovits_epoch(stage: str, epoch: int) -> None:
        if stage == "SoVITS" and epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_voice(
            recordings,
            transcripts,
            out,
            base,
            settings,
            progress=Progress(on_epoch_end=stop_after_first_sovits_epoch),
            report=str,
        )
    assert not out.exists()  # nothing half-written looks like a voice
    assert (tmp_path / "ada.work" / "s2-state.pt").is_file()
    quiet = dataclasses.replace(settings, speak_preview=False)  # not part of what resumes
    resumed = train_voice(recordings, transcripts, out, base, quiet, report=str)
    for path_a, path_b in ((trained.sovits, resumed.sovits), (trained.gpt, resumed.gpt)):
        a, b = read_checkpoint(path_a).payload["weight"], read_checkpoint(path_b).payload["weight"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), path_a.name


def test_bad_inputs_get_clear_errors(data, base, settings, tmp_path):
    recordings, transcripts = data
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(TrainingDataError, match="already holds files; choose a new --out folder"):
        train_voice(recordings, transcripts, tmp_path / "taken", base, settings, report=str)
    with pytest.raises(BaseModelError, match="has no chinese-hubert-base/ folder"):
        train_voice(recordings, transcripts, tmp_path / "v", tmp_path, settings, report=str)
    with pytest.raises(TrainingDataError, match=r"recordings folder .*nothing does not exist"):
        train_voice(tmp_path / "nothing", transcripts, tmp_path / "v", base, settings, report=str)
    with pytest.raises(BaseModelError, match=r"base folder .*nope does not exist; pass --base"):
        train_voice(recordings, transcripts, tmp_path / "v", tmp_path / "nope", settings, report=str)
    broken = tmp_path / "broken"
    shutil.copytree(base, broken)
    models = broken / "gsv-v2final-pretrained"
    (models / "s1bert25hz-tiny.ckpt").rename(models / "s2G-tiny-2.pth")  # a GPT file where a .pth goes
    with pytest.raises(BaseModelError, match=r"must hold exactly one GPT \.ckpt"):
        train_voice(recordings, transcripts, tmp_path / "v", broken, settings, report=str)
    (models / "s2G-tiny.pth").unlink()
    (models / "s2G-tiny-2.pth").rename(models / "s2G-tiny.pth")
    shutil.copy(models / "s2G-tiny.pth", models / "s1.ckpt")
    with pytest.raises(CheckpointError, match=r"this is a GPT \.ckpt file, not a SoVITS \.pth"):
        train_voice(recordings, transcripts, tmp_path / "v", broken, settings, report=str)
    too_much = dataclasses.replace(settings, min_total_s=600)
    with pytest.raises(TrainingDataError, match="fine-tuning needs at least 600 s"):
        train_voice(recordings, transcripts, tmp_path / "v", base, too_much, report=str)
    with pytest.raises(TrainingDataError, match="no clip is 3 to 10 s long"):
        choose_reference([])  # prepare keeps only 3-10 s clips: the check stands behind it
    result = CliRunner().invoke(
        main,
        [
            "train",
            str(recordings),
            "--transcripts",
            str(tmp_path / "none.list"),
            "--out",
            str(tmp_path / "v2"),
            "--base",
            str(base),
        ],
    )
    assert (
        result.exit_code == 1
        and "Error: transcripts file" in result.output
        and "path|speaker|language|text" in result.output
    )

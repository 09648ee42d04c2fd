"""python -m synth train end to end on a tiny random base and espeak-ng speech: the voice folder's files
are in the original's formats and speak in our engine; an interrupted run leaves no voice folder and
resumes to the very weights of an uninterrupted one; bad inputs get clear errors."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch
import yaml
from click.testing import CliRunner

from synth.__main__ import main
from synth.checkpoints import load_gpt, load_sovits, read_checkpoint
from synth.errors import BaseModelError, TrainingDataError
from synth.random_model import ModelFiles
from synth.testing import make_training_set, torch_threads
from synth.train import Progress, S1Settings, S2Settings, TrainSettings, train_voice

SENTENCES = (
    "The quick brown fox jumps over the lazy dog, then runs home.",
    "Please call me back in a moment.",
    "She sells sea shells by the shore.",
)
SETTINGS = TrainSettings(
    s2=S2Settings(epochs=2, batch_size=3, segment_size=6400, discriminator_width_divisor=16, min_items=1),
    s1=S1Settings(epochs=2, batch_size=2, min_items=1),
    min_total_s=5,
    preview_max_tokens=40,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("train-data"), count=3, sentences=SENTENCES)


@pytest.fixture(scope="module")
def base(tiny_files: ModelFiles, tmp_path_factory):
    """GPT-SoVITS's pretrained_models layout holding the tiny random voice."""
    folder = tmp_path_factory.mktemp("pretrained_models")
    (folder / "gsv-v2final-pretrained").mkdir()
    shutil.copy(tiny_files.gpt_path, folder / "gsv-v2final-pretrained" / "s1bert25hz-tiny.ckpt")
    shutil.copy(tiny_files.sovits_path, folder / "gsv-v2final-pretrained" / "s2G-tiny.pth")
    shutil.copytree(tiny_files.hubert_dir, folder / "chinese-hubert-base")
    shutil.copytree(tiny_files.bert_dir, folder / "chinese-roberta-wwm-ext-large")
    return folder


@pytest.fixture(scope="module")
def trained(data, base, tmp_path_factory):
    recordings, transcripts = data
    return train_voice(recordings, transcripts, tmp_path_factory.mktemp("out") / "ada", base, SETTINGS, report=str)


def test_the_voice_folder_holds_the_original_formats(trained, base):
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
    assert (
        spec["reference"]["text"] in (folder / "training" / "data-report.txt").read_text() or spec["reference"]["text"]
    )
    assert spec["preview"] == {"text": SETTINGS.preview_text or spec["preview"]["text"], "language": "en"}
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


def test_an_interrupted_run_resumes_to_the_same_weights(trained, data, base, tmp_path):
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
            SETTINGS,
            progress=Progress(on_epoch_end=stop_after_first_sovits_epoch),
            report=str,
        )
    assert not out.exists()  # nothing half-written looks like a voice
    assert (tmp_path / "ada.work" / "s2-state.pt").is_file()
    quiet = dataclasses.replace(SETTINGS, speak_preview=False)  # not part of what resumes
    resumed = train_voice(recordings, transcripts, out, base, quiet, report=str)
    for path_a, path_b in ((trained.sovits, resumed.sovits), (trained.gpt, resumed.gpt)):
        a, b = read_checkpoint(path_a).payload["weight"], read_checkpoint(path_b).payload["weight"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), path_a.name


def test_bad_inputs_get_clear_errors(data, base, tmp_path):
    recordings, transcripts = data
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(TrainingDataError, match="already holds files; choose a new --out folder"):
        train_voice(recordings, transcripts, tmp_path / "taken", base, SETTINGS, report=str)
    with pytest.raises(BaseModelError, match="has no chinese-hubert-base/ folder"):
        train_voice(recordings, transcripts, tmp_path / "v", tmp_path, SETTINGS, report=str)
    too_much = dataclasses.replace(SETTINGS, min_total_s=600)
    with pytest.raises(TrainingDataError, match="fine-tuning needs at least 600 s"):
        train_voice(recordings, transcripts, tmp_path / "v", base, too_much, report=str)
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

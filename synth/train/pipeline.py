"""``python -m synth train``: recordings -> checked clips -> features -> SoVITS and GPT fine-tuning -> voice folder.

Work goes into ``VOICE_DIR.work/`` (the prepared clips, the features, each stage's state after
every epoch, the loss curves). Running the same command again after an interrupt resumes from
the last finished epoch; a run with other inputs or settings starts that folder afresh. The voice
folder is assembled in ``VOICE_DIR.partial/`` and renamed into place only when complete, so a
``VOICE_DIR`` that exists is always a whole voice.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from synth.errors import TrainingDataError, TrainingSettingsError
from synth.files import atomic_write_bytes
from synth.train import plot
from synth.train.base import BaseModel, find_base
from synth.train.features import FEATURES_FILE, count_phones, extract, load_features, save_features
from synth.train.prepare import MIN_TOTAL_S, PreparedData, prepare
from synth.train.s1 import LOSS_COLUMNS as S1_COLUMNS
from synth.train.s1 import S1Settings, S1Trainer, train_s1
from synth.train.s1 import steps_per_epoch as s1_steps
from synth.train.s2 import LOSS_COLUMNS as S2_COLUMNS
from synth.train.s2 import S2Settings, S2Trainer, train_s2
from synth.train.s2 import steps_per_epoch as s2_steps
from synth.train.voice import PREVIEW_LINES, choose_reference, gpt_config, sovits_config, write_voice_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    s2: S2Settings = field(default_factory=S2Settings)
    s1: S1Settings = field(default_factory=S1Settings)
    min_total_s: float = MIN_TOTAL_S
    name: str | None = None  # default: the voice folder's name
    preview_text: str | None = None  # default: PREVIEW_LINES[language of the reference]
    preview_max_tokens: int = 250
    speak_preview: bool = True


SETTINGS_FILE_HELP = """A YAML mapping of TrainSettings fields, with the stages' under ``s2:`` and ``s1:``::

    s2: {batch_size: 3, segment_size: 6400, discriminator_width_divisor: 16, min_items: 1}
    s1: {batch_size: 2, min_items: 1}
    preview_max_tokens: 40
"""


def read_settings_file(path: str | os.PathLike[str]) -> dict:
    """The mapping a ``--settings`` YAML file holds (checked by :func:`settings_with`)."""
    import yaml

    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise TrainingSettingsError(f"cannot read the settings file {path}: {exc}") from None
    if not isinstance(values, dict):
        raise TrainingSettingsError(f"{path} must hold a mapping, e.g.\n{SETTINGS_FILE_HELP}")
    return values


def _replace_fields(obj, values: dict, where: str):  # noqa: ANN001, ANN202 - a settings dataclass
    known = {f.name: f for f in fields(obj)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise TrainingSettingsError(
            f"{where}: unknown field(s) {', '.join(map(str, unknown))}; known: {', '.join(sorted(known))}"
        )
    changes = {}
    for key, value in values.items():
        current = getattr(obj, key)
        if isinstance(current, tuple):
            value = tuple(value) if isinstance(value, list | tuple) else value
        expected = type(current) if current is not None else str
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise TrainingSettingsError(f"{where}.{key} must be a {expected.__name__}, got {value!r}")
        changes[key] = value
    return replace(obj, **changes)


def settings_with(settings: TrainSettings, values: dict, where: str = "settings") -> TrainSettings:
    """``settings`` with the fields ``values`` names replaced (the stages' under ``s2`` and ``s1``);
    raises TrainingSettingsError naming an unknown field or a value of the wrong type."""
    values = dict(values)
    stages = {}
    for stage in ("s2", "s1"):
        part = values.pop(stage, None) or {}
        if not isinstance(part, dict):
            raise TrainingSettingsError(f"{where}.{stage} must be a mapping of {stage.upper()}Settings fields")
        stages[stage] = _replace_fields(getattr(settings, stage), part, f"{where}.{stage}")
    return replace(_replace_fields(settings, values, where), **stages)


def command_settings(
    settings_file: str | os.PathLike[str] | None, given: dict, default_batch_size: Callable[[], int]
) -> TrainSettings:
    """The settings of ``python -m synth train``: the defaults, then the ``--settings`` file, then the
    options the command line gave (``given``: s2_epochs, s1_epochs, batch_size, min_seconds, name,
    preview_text). A stage's batch size set by neither is ``default_batch_size()`` (the web UI's)."""
    values = read_settings_file(settings_file) if settings_file is not None else {}
    settings = settings_with(TrainSettings(), values, str(settings_file))
    stages = {"s2": {}, "s1": {}}
    for stage in stages:
        if given.get(f"{stage}_epochs") is not None:
            stages[stage]["epochs"] = given[f"{stage}_epochs"]
        if given.get("batch_size") is not None:
            stages[stage]["batch_size"] = given["batch_size"]
        elif "batch_size" not in (values.get(stage) or {}):
            stages[stage]["batch_size"] = default_batch_size()
    top = {"min_total_s": given.get("min_seconds"), "name": given.get("name")}
    top["preview_text"] = given.get("preview_text")
    top = {k: float(v) if k == "min_total_s" else v for k, v in top.items() if v is not None}
    return settings_with(settings, {**stages, **top}, "options")


@dataclass(frozen=True)
class TrainResult:
    folder: Path
    gpt: Path
    sovits: Path
    data: PreparedData
    seconds: dict[str, float]
    preview: Path | None


@dataclass
class Progress:
    """What the command line shows: a bar per stage (stage name, total steps), an advance per step."""

    start: Callable[[str, int], None] = lambda stage, total: None
    advance: Callable[[dict[str, float]], None] = lambda row: None
    done: Callable[[], None] = lambda: None
    on_epoch_end: Callable[[str, int], None] = lambda stage, epoch: None


def _fingerprint(recordings: Path, transcripts: Path, base: BaseModel, settings: TrainSettings) -> str:
    h = hashlib.sha256(transcripts.read_bytes())
    for path in sorted(p for p in recordings.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(recordings)}:{st.st_size}:{st.st_mtime_ns}".encode())
    for path in (base.gpt, base.sovits, base.discriminator):
        if path is not None:
            st = path.stat()
            h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}".encode())
    settings_dict = asdict(settings)
    for key in ("preview_text", "speak_preview", "preview_max_tokens", "name"):
        settings_dict.pop(key)
    h.update(json.dumps(settings_dict, sort_keys=True, default=str).encode())
    return h.hexdigest()


class _LossLog:
    """Loss rows of a stage as CSV (epoch, step, losses...), kept to the epochs its state holds."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.columns = path, ("epoch", "step", *columns)
        self.rows: list[dict] = []
        if path.is_file():
            with path.open() as f:
                self.rows = list(csv.DictReader(f))

    def keep_epochs(self, finished: int) -> None:
        self.rows = [r for r in self.rows if int(r["epoch"]) <= finished]

    def add(self, epoch: int, step: int, row: dict[str, float]) -> None:
        self.rows.append({"epoch": epoch, "step": step, **{k: f"{row[k]:.6g}" for k in self.columns[2:]}})

    def write(self) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buffer.getvalue().encode())


@dataclass
class _Stage:
    """A training stage run with its state file, loss log and progress bar (resumed when its state exists)."""

    label: str
    trainer: S1Trainer | S2Trainer
    state_path: Path
    log: _LossLog
    progress: Progress

    def run(self, train: Callable, features: list, epochs: int, steps_per_epoch: int) -> None:
        if self.state_path.is_file():
            self.trainer.load_state(self.state_path)
        self.log.keep_epochs(self.trainer.epoch)
        if epochs > self.trainer.epoch:
            self.progress.start(self.label, (epochs - self.trainer.epoch) * steps_per_epoch)
        train(self.trainer, features, self.state_path, on_step=self._step, on_epoch_end=self._epoch_end)
        self.progress.done()

    def _step(self, epoch: int, step: int, row: dict[str, float]) -> None:
        self.log.add(epoch, step, row)
        self.progress.advance(row)

    def _epoch_end(self, epoch: int) -> None:
        self.log.write()
        self.progress.on_epoch_end(self.label, epoch)


def train_voice(
    recordings: str | os.PathLike[str],
    transcripts: str | os.PathLike[str],
    out: str | os.PathLike[str],
    base: str | os.PathLike[str],
    settings: TrainSettings | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    report: Callable[[str], None] = print,
) -> TrainResult:
    """Train a voice from ``recordings`` (+ ``transcripts`` in the .list format) into the folder ``out``."""
    settings = settings or TrainSettings()
    progress = progress or Progress()
    device = torch.device(device)
    recordings, transcripts, out = Path(recordings), Path(transcripts), Path(out)
    if not recordings.is_dir():
        raise TrainingDataError(f"recordings folder {recordings} does not exist")
    if not transcripts.is_file():
        raise TrainingDataError(
            f"transcripts file {transcripts} does not exist; write one line per clip: path|speaker|language|text"
        )
    if out.exists() and any(out.iterdir()):
        raise TrainingDataError(f"{out} already holds files; choose a new --out folder (or remove it)")
    base_model = find_base(base)
    name = settings.name or out.name
    work = out.with_name(out.name + ".work")
    stamp = work / "inputs.sha256"
    fingerprint = _fingerprint(recordings, transcripts, base_model, settings)
    if work.is_dir() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        report(f"{work} was made from other inputs or settings: starting afresh")
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    seconds: dict[str, float] = {}

    # ---- prepare
    t0 = time.perf_counter()
    prepared_dir = work / "prepared"
    if (prepared_dir / "report.json").is_file() and (work / FEATURES_FILE).is_file():
        data = PreparedData.load(prepared_dir)
    else:
        data = prepare(recordings, transcripts, prepared_dir, count_phones, settings.min_total_s)
    report(data.summary())
    reference = choose_reference(data.clips)  # before training: without a 3-10 s clip there is no voice
    seconds["prepare"] = time.perf_counter() - t0

    # ---- features
    t0 = time.perf_counter()
    features_path = work / FEATURES_FILE
    if features_path.is_file():
        features = load_features(features_path)
    else:
        from synth.checkpoints import load_sovits
        from synth.sovits import SoVITSConfig, SynthesizerTrn

        ckpt = load_sovits(base_model.sovits)
        sovits = SynthesizerTrn(SoVITSConfig.from_checkpoint_config(ckpt.config))
        sovits.load_state_dict({k: v.float() for k, v in ckpt.weights.items() if not k.startswith("enc_q.")})
        progress.start("features", len(data.clips))
        features = extract(
            data, sovits, base_model.hubert_dir, base_model.bert_dir, device, on_clip=lambda: progress.advance({})
        )
        progress.done()
        del sovits, ckpt
        save_features(features, features_path)
    seconds["features"] = time.perf_counter() - t0

    # ---- SoVITS, then the GPT
    t0 = time.perf_counter()
    s2 = S2Trainer(base_model.sovits, base_model.discriminator, settings.s2, device)
    s2_log = _LossLog(work / "losses-s2.csv", S2_COLUMNS)
    stage = _Stage("SoVITS", s2, work / "s2-state.pt", s2_log, progress)
    stage.run(train_s2, features, settings.s2.epochs, s2_steps(features, settings.s2))
    seconds["s2"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s1 = S1Trainer(base_model.gpt, settings.s1, device)
    s1_log = _LossLog(work / "losses-s1.csv", S1_COLUMNS)
    stage = _Stage("GPT", s1, work / "s1-state.pt", s1_log, progress)
    stage.run(train_s1, features, settings.s1.epochs, s1_steps(features, settings.s1))
    seconds["s1"] = time.perf_counter() - t0

    # ---- the voice folder, assembled aside and renamed into place
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    languages = sorted({c.language for c in data.clips}, key=lambda code: code != reference.language)
    preview_text = settings.preview_text or PREVIEW_LINES[reference.language]
    gpt_path, sovits_path = write_voice_folder(
        partial,
        name,
        s1.model.state_dict(),
        gpt_config(s1.base_config, name, settings.s1.epochs, settings.s1.batch_size, base_model.gpt),
        settings.s1.epochs,
        s2.net_g.state_dict(),
        sovits_config(
            s2.cfg.to_checkpoint_config(),
            name,
            settings.s2.epochs,
            settings.s2.batch_size,
            settings.s2.text_low_lr_rate,
            base_model.sovits,
            base_model.discriminator,
        ),
        settings.s2.epochs,
        s2.global_step,
        reference,
        languages,
        preview_text,
        reference.language,
    )
    del s1, s2
    training = partial / "training"
    training.mkdir()
    for f in ("losses-s2.csv", "losses-s1.csv"):
        shutil.copyfile(work / f, training / f)
    (training / "data-report.txt").write_text(data.summary() + "\n", encoding="utf-8")
    plot.loss_curves(training / "losses.png", s2_log.rows, s1_log.rows)
    preview = None
    if settings.speak_preview:
        t0 = time.perf_counter()
        preview = speak(
            partial,
            gpt_path.name,
            sovits_path.name,
            base_model,
            reference,
            preview_text,
            device,
            settings.preview_max_tokens,
        )
        seconds["preview"] = time.perf_counter() - t0
    if out.exists():
        out.rmdir()  # empty (checked above)
    os.replace(partial, out)
    shutil.rmtree(work)
    return TrainResult(
        folder=out,
        gpt=out / gpt_path.name,
        sovits=out / sovits_path.name,
        data=data,
        seconds=seconds,
        preview=None if preview is None else out / "training" / preview.name,
    )


def speak(folder: Path, gpt: str, sovits: str, base: BaseModel, reference, text: str, device, max_tokens: int) -> Path:
    """The new voice says ``text`` (reference clip and transcript as prompt) into ``training/preview-check.wav``."""
    from synth.audio import write_wav
    from synth.engine import Synthesizer

    tts = Synthesizer.from_files(
        folder / gpt, folder / sovits, hubert_dir=base.hubert_dir, bert_dir=base.bert_dir, device=device
    )
    rate, wave = tts.synthesize(
        text,
        reference.language,
        folder / "reference.wav",
        prompt_text=reference.text,
        prompt_language=reference.language,
        seed=0,
        max_semantic_tokens=max_tokens,
    )
    return write_wav(folder / "training" / "preview-check.wav", rate, wave)

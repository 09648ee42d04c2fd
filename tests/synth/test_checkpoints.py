"""Checkpoint files: the published formats round-trip, versions are told apart, hostile pickles never run."""

from __future__ import annotations

import io
import pickle
import zipfile

import pytest
import torch

from synth.checkpoints import load_gpt, load_sovits, read_checkpoint, save_gpt, save_sovits, to_plain, write_checkpoint
from synth.engine import Synthesizer
from synth.errors import CorruptCheckpointError, UnsafeCheckpointError, UnsupportedModelError
from synth.gpt import GPTConfig
from synth.sovits import SoVITSConfig


def test_gpt_file_round_trips(tiny_files, tmp_path):
    """What we write reads back with the same names, shapes (fp16, ``model.`` prefix) and config."""
    ckpt = load_gpt(tiny_files.gpt_path)
    assert ckpt.weights["ar_text_embedding.word_embeddings.weight"].shape == (732, 64)
    assert ckpt.weights["ar_audio_embedding.word_embeddings.weight"].shape == (1025, 64)
    assert ckpt.weights["h.layers.0.self_attn.in_proj_weight"].shape == (192, 64)
    assert all(t.dtype == torch.float16 for t in ckpt.weights.values())
    assert GPTConfig.from_checkpoint_config(ckpt.config).layers == 2
    again = save_gpt(tmp_path / "copy.ckpt", ckpt.weights, ckpt.config)
    raw = read_checkpoint(again).payload
    assert all(name.startswith("model.") for name in raw["weight"])
    assert set(load_gpt(again).weights) == set(ckpt.weights)


def test_sovits_file_round_trips_with_hparams_config(tiny_files, tmp_path):
    """The SoVITS config is pickled as GPT-SoVITS's ``utils.HParams`` and comes back as plain dicts."""
    ckpt = load_sovits(tiny_files.sovits_path)
    assert ckpt.version == "v2"
    assert ckpt.weights["enc_p.text_embedding.weight"].shape == (732, 192)
    assert ckpt.weights["quantizer.vq.layers.0._codebook.embed"].shape == (1024, 768)
    assert "dec.ups.0.weight_g" in ckpt.weights and "dec.ups.0.weight_v" in ckpt.weights
    assert SoVITSConfig.from_checkpoint_config(ckpt.config).upsample_rates == (10, 8, 2, 2, 2)
    with zipfile.ZipFile(tiny_files.sovits_path) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    assert b"utils\nHParams\n" in data
    again = save_sovits(tmp_path / "copy.pth", ckpt.weights, ckpt.config)
    assert to_plain(load_sovits(again).config) == ckpt.config


def _marked_copy(src, dst, mark: bytes):
    data = src.read_bytes()
    dst.write_bytes(mark + data[2:])
    return dst


@pytest.mark.parametrize(
    "mark,version", [(b"05", "v2Pro"), (b"06", "v2ProPlus"), (b"03", "v3-lora"), (b"04", "v4-lora"), (b"00", "v1")]
)
def test_version_marked_sovits_files_are_refused_by_name(tiny_files, tmp_path, mark, version):
    path = _marked_copy(tiny_files.sovits_path, tmp_path / "marked.pth", mark)
    assert read_checkpoint(path).version_mark == version  # the zip still reads with its magic overwritten
    with pytest.raises(UnsupportedModelError, match=version):
        load_sovits(path)


def test_v2_marked_file_loads(tiny_files, tmp_path):
    path = _marked_copy(tiny_files.sovits_path, tmp_path / "v2.pth", b"01")
    assert load_sovits(path).version == "v2"


def test_structural_versions_are_refused(tiny_files, tmp_path):
    """v3/v4 (a cfm decoder), v2Pro (sv_emb) and v1 (322 phones) are recognised from the weights."""
    ckpt = load_sovits(tiny_files.sovits_path)
    cases = {
        "v3/v4": {**ckpt.weights, "cfm.estimator.x": torch.zeros(1)},
        "v2Pro": {**ckpt.weights, "sv_emb.weight": torch.zeros(1)},
        "v1": {**ckpt.weights, "enc_p.text_embedding.weight": torch.zeros(322, 192)},
    }
    for version, weights in cases.items():
        path = save_sovits(tmp_path / f"{version.replace('/', '')}.pth", weights, ckpt.config)
        with pytest.raises(UnsupportedModelError, match=version.split("/")[0]):
            load_sovits(path)


def test_v1_gpt_is_refused(tiny_files, tmp_path):
    ckpt = load_gpt(tiny_files.gpt_path)
    weights = {**ckpt.weights, "ar_text_embedding.word_embeddings.weight": torch.zeros(512, 64)}
    path = save_gpt(tmp_path / "v1.ckpt", weights, ckpt.config)
    with pytest.raises(UnsupportedModelError, match="v1"):
        load_gpt(path)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_hostile_pickle_is_refused_before_it_runs(tmp_path):
    """A checkpoint whose pickle calls os.system is refused and the command never runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"weight": {"a": torch.zeros(1)}, "config": _Hostile(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_checkpoint(path)
    with pytest.raises(UnsafeCheckpointError):
        load_sovits(path)
    assert not marker.exists()


def test_hostile_global_in_hand_written_pickle_is_refused(tmp_path):
    """Even a bare GLOBAL of builtins.eval is refused (find_class never resolves it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", b"cbuiltins\neval\n(S'1+1'\ntR.")
    path = tmp_path / "eval.ckpt"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        read_checkpoint(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04truncated"])
def test_corrupt_files_get_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(CorruptCheckpointError):
        load_sovits(path)


def test_truncated_checkpoint_is_corrupt(tiny_files, tmp_path):
    data = tiny_files.gpt_path.read_bytes()
    path = tmp_path / "cut.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError):
        load_gpt(path)


def test_wrong_kind_and_missing_files(tiny_files, tmp_path):
    with pytest.raises(CorruptCheckpointError, match="SoVITS"):
        load_gpt(tiny_files.sovits_path)
    with pytest.raises(CorruptCheckpointError):
        load_sovits(tiny_files.gpt_path)
    with pytest.raises(CorruptCheckpointError, match="no such file"):
        load_gpt(tmp_path / "absent.ckpt")
    with pytest.raises(CorruptCheckpointError):
        write_checkpoint({"weight": [1, 2]}, tmp_path / "list.ckpt") and load_gpt(tmp_path / "list.ckpt")


def test_shape_mismatch_is_reported(tiny_files, tmp_path):
    ckpt = load_gpt(tiny_files.gpt_path)
    weights = dict(ckpt.weights)
    weights["bert_proj.weight"] = torch.zeros(64, 512)
    path = save_gpt(tmp_path / "odd.ckpt", weights, ckpt.config)
    with pytest.raises(CorruptCheckpointError, match=r"bert_proj\.weight"):
        Synthesizer.from_files(path, tiny_files.sovits_path, hubert_dir=tiny_files.hubert_dir)


def test_plain_pickle_protocol_bytes_are_allowed(tmp_path):
    """Protocol-2 pickles spell bytes through _codecs.encode, which is allowed with text encodings only."""
    path = write_checkpoint({"weight": {}, "config": {"blob": b"\x00\x01"}}, tmp_path / "bytes.ckpt")
    assert read_checkpoint(path).payload["config"]["blob"] == b"\x00\x01"
    assert pickle.DEFAULT_PROTOCOL >= 2

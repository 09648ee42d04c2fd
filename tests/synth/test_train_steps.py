"""synth.train on a tiny random base voice: feature shapes, the losses fall, ScaledAdam, the mel filters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from synth.testing import make_speech_wav, torch_threads
from synth.train.features import extract, text_features
from synth.train.losses import mel_filters
from synth.train.optim import ScaledAdam
from synth.train.prepare import Clip, PreparedData
from synth.train.s1 import S1Settings, S1Trainer, collate, make_items, training_loss
from synth.train.s2 import S2Settings, S2Trainer
from synth.train.s2 import collate as s2_collate
from synth.train.s2 import make_items as s2_items

TEXTS = ("The quick brown fox jumps over the lazy dog.", "Please call me back when you have a moment.")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def base(tiny_files):
    return tiny_files


@pytest.fixture(scope="module")
def features(base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("train-clips")
    clips = []
    for i, text in enumerate(TEXTS):
        path = make_speech_wav(folder / f"c{i}.wav", text)
        clips.append(Clip(f"c{i}", str(path), "me", "en", text, 3.0, 30, -20.0))
    from synth.checkpoints import load_sovits
    from synth.sovits import SoVITSConfig, SynthesizerTrn

    ckpt = load_sovits(base.sovits_path)
    sovits = SynthesizerTrn(SoVITSConfig.from_checkpoint_config(ckpt.config))
    sovits.load_state_dict({k: v.float() for k, v in ckpt.weights.items()})
    return extract(PreparedData(folder, clips), sovits, base.hubert_dir, None, torch.device("cpu"))


def test_features_have_the_shapes_training_needs(features, base):
    for f in features:
        samples = f.audio.shape[0]
        assert f.ssl.shape[0] == 768 and abs(f.ssl.shape[1] - samples / 640) <= 2  # HuBERT at 50 Hz
        assert f.semantic.shape == (f.ssl.shape[1] // 2,) and f.semantic.dtype == torch.long
        assert 0 <= int(f.semantic.min()) and int(f.semantic.max()) < 1024
        assert f.phone_ids.dim() == 1 and f.phone_ids.numel() > 20 and f.bert is None  # English: no BERT
        # The waveform SoVITS trains on: the clip mixed with its peak-normalised self (peak 0.475 + half the clip).
        assert 0.5 < float(f.audio.abs().max()) <= 0.96
    from synth.features import BertFeatures

    ids, bert = text_features("你好，欢迎使用。", "zh", BertFeatures(base.bert_dir, torch.device("cpu")))
    assert bert is not None and bert.shape == (1024, ids.numel())


def test_sovits_steps_reduce_the_reconstruction_loss(base, features):
    settings = S2Settings(segment_size=6400, discriminator_width_divisor=16)
    trainer = S2Trainer(base.sovits_path, None, settings, torch.device("cpu"))
    trainer.start_epoch_schedule()
    batch = s2_collate(s2_items(features, trainer.cfg))
    losses = []
    for _ in range(6):
        torch.manual_seed(0)  # the same slice and posterior noise every step: only the weights change
        row = trainer.step(batch)
        losses.append(row["loss_mel"] + row["loss_kl"])
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0], losses
    assert trainer.global_step == 6 and row["loss_commit"] == 0.0  # v2's frozen quantizer: no commitment loss


def test_gpt_steps_reduce_the_loss(base, features):
    trainer = S1Trainer(base.gpt_path, S1Settings(min_items=1), torch.device("cpu"))
    batch = collate(make_items(features, trainer.settings), trainer.cfg.eos)
    losses = []
    for _ in range(8):
        loss, _ = trainer.batch_loss(batch)
        trainer.optimizer_step()
        losses.append(loss)
    assert all(b < a for a, b in itertools.pairwise(losses)) and losses[-1] < 0.95 * losses[0], losses
    assert trainer.optimizer.param_groups[0]["lr"] == 0.002  # 0.01 for the first step, then locked at 0.002


def test_gpt_loss_is_the_decoders_own_prediction(base, features):
    """The teacher-forced loss equals the cross-entropy of the inference path's step-by-step logits."""
    trainer = S1Trainer(base.gpt_path, S1Settings(min_items=1), torch.device("cpu"))
    model = trainer.model.eval()
    f = features[0]
    phones, semantic = f.phone_ids, f.semantic[:12]
    bert = torch.zeros(1024, phones.numel())
    with torch.no_grad():
        loss, _ = training_loss(
            model, phones[None], torch.tensor([phones.numel()]), semantic[None], torch.tensor([12]), bert[None]
        )
        x = model.embed_text(phones, bert)
        expected = 0.0
        for t in range(13):  # the last text position predicts token 0, ..., token 11 predicts EOS
            y = model.ar_audio_position(model.ar_audio_embedding(semantic[None, :t]))
            h = torch.cat([x[None], y], 1)
            n, s = phones.numel(), h.shape[1]
            mask = torch.zeros(s, s, dtype=torch.bool)
            mask[:n, :n] = True
            mask[n:, :n] = True
            mask[n:, n:] = torch.ones(t, t, dtype=torch.bool).tril()
            for layer in model.h.layers:
                q, k, v = layer._qkv(h).view(1, s, 3, layer.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
                a = torch.nn.functional.scaled_dot_product_attention(q, k, v, mask)
                h = layer._finish(h, a.transpose(1, 2).reshape(1, s, -1))
            target = semantic[t] if t < 12 else torch.tensor(trainer.cfg.eos)
            expected += float(torch.nn.functional.cross_entropy(model.ar_predict_layer(h[0, -1]), target))
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_scaled_adam_moves_each_tensor_by_a_fraction_of_its_size():
    big, small = torch.nn.Parameter(torch.full((4, 4), 10.0)), torch.nn.Parameter(torch.full((4, 4), 0.1))
    scalar = torch.nn.Parameter(torch.tensor([1.0]))
    opt = ScaledAdam([big, small, scalar], lr=0.01, betas=(0.9, 0.95))
    for p in (big, small, scalar):
        p.grad = torch.ones_like(p)
    opt.step()
    # Adam's first direction is 1 everywhere; the step is lr * (1 - beta1) * rms of the tensor.
    assert torch.allclose(10.0 - big.detach(), torch.full((4, 4), 0.01 * 0.1 * 10.0), rtol=1e-4)
    assert torch.allclose(0.1 - small.detach(), torch.full((4, 4), 0.01 * 0.1 * 0.1), rtol=1e-4)
    assert float(1.0 - scalar.detach()) == pytest.approx(0.01 * 0.1 * 0.1, rel=1e-3)  # scalars: lr * 0.1


def test_mel_filters_are_slaney_triangles():
    fb = mel_filters(32000, 2048, 128)
    assert fb.shape == (128, 1025) and fb.dtype == np.float32 and (fb >= 0).all()
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all() and 950 < peaks[-1] < 1024
    # Slaney normalisation: each triangle's area (in Hz) is 1.
    hz_per_bin = 16000 / 1024
    areas = fb.sum(axis=1) * hz_per_bin
    assert np.allclose(areas[10:], 1.0, rtol=0.05)

"""Fine-tuning the SoVITS stage (the original's ``s2_train.py``), from the base generator and discriminator.

One step, as the original (float32; the original's fp16 autocast is off on a CPU, and here everywhere):

1. ``net_g`` forward (:meth:`SoVITSTrainModel.forward_train`) -> a generated slice of
   ``segment_size`` samples, the posterior/prior statistics, the quantizer's commitment loss;
2. discriminator step: LSGAN loss of the real slice against the detached generated one, AdamW;
3. generator step: ``loss_gen + loss_fm + 45 * L1(mel) + commit + 1 * KL``, AdamW with the text
   embedding, the text encoder and MRTE at ``text_low_lr_rate`` (0.4) times the rate.

Schedules: AdamW (betas 0.8/0.99, eps 1e-9, PyTorch's default weight decay 0.01), learning rate
1e-4 decayed by 0.999875 per epoch (``ExponentialLR``, stepped once before the first epoch as the
original does), batches from a bucket sampler over clip lengths reseeded by the epoch; the data set
is repeated to at least 100 items as the original does for small sets. Defaults for a minute of
speech: 8 epochs (the web UI's default for v2), batch size from the machine's memory as the web
UI computes it (:func:`default_batch_size`).

Every epoch ends with the whole state (weights, optimisers, step, random generator) written
atomically, so that an interrupted run resumes from its last epoch and ends with the same weights.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from synth.checkpoints import load_sovits
from synth.errors import BaseModelError
from synth.sovits import SoVITSConfig
from synth.train.base import discriminator_weights
from synth.train.common import EpochHook, StepHook, read_state, repeat_small, write_state
from synth.train.features import ClipFeatures
from synth.train.losses import (
    discriminator_loss,
    feature_loss,
    generator_loss,
    kl_loss,
    linear_spectrogram,
    mel_spectrogram,
    spec_to_mel,
)
from synth.train.modules import MultiPeriodDiscriminator, SoVITSTrainModel, slice_segments

log = logging.getLogger(__name__)

BUCKET_BOUNDARIES = [32, *range(300, 2000, 100)]  # frames (50 Hz), the original's
LOSS_COLUMNS = ("loss_disc", "loss_gen", "loss_fm", "loss_mel", "loss_commit", "loss_kl", "lr")


def default_batch_size(cuda_memory_gb: float | None = None) -> int:
    """The web UI's default: GPU memory / 2 (GB), or RAM / 4 without a GPU, halved when not in fp16 (CPU)."""
    if cuda_memory_gb is not None:
        return max(1, int(cuda_memory_gb // 2))
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return max(1, int(ram_gb / 4) // 2)


@dataclass(frozen=True)
class S2Settings:
    """``s2.json``'s train section as the web UI fills it for v2 (CPU: fp16 off)."""

    epochs: int = 8
    batch_size: int = 4
    learning_rate: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    eps: float = 1e-9
    lr_decay: float = 0.999875
    segment_size: int = 20480
    c_mel: float = 45.0
    c_kl: float = 1.0
    text_low_lr_rate: float = 0.4
    seed: int = 1234
    discriminator_width_divisor: int = 1  # 1 = the original's widths; tests shrink it
    min_items: int = 100  # a smaller data set is repeated up to this many items (the original: 100)


@dataclass
class S2Item:
    ssl: torch.Tensor  # [1, 768, T]
    spec: torch.Tensor  # [1025, T]
    wav: torch.Tensor  # [1, samples]
    text: torch.Tensor  # [N]


def make_items(features: list[ClipFeatures], cfg: SoVITSConfig) -> list[S2Item]:
    """The training items of every clip (``TextAudioSpeakerLoader``): spectrogram of the mixed waveform,
    HuBERT frames padded by one replicated frame when their count differs from the spectrogram's."""
    items = []
    for f in features:
        wav = f.audio.unsqueeze(0)
        spec = linear_spectrogram(wav, cfg.filter_length, cfg.hop_length, cfg.win_length)[0]
        ssl = f.ssl.unsqueeze(0)
        if ssl.shape[-1] != spec.shape[-1]:
            ssl = F.pad(ssl, (0, 1), mode="replicate")
        items.append(S2Item(ssl, spec, wav, f.phone_ids))
    return items


def bucket_batches(lengths: list[int], batch_size: int, epoch: int) -> list[list[int]]:
    """The original's ``DistributedBucketSampler`` (one process): items bucketed by frames, each bucket
    shuffled and filled up to whole batches by repeating itself, then the batches shuffled; seeded by the epoch."""
    buckets: list[list[int]] = [[] for _ in range(len(BUCKET_BOUNDARIES) - 1)]
    for i, n in enumerate(lengths):
        for b in range(len(BUCKET_BOUNDARIES) - 1):
            if BUCKET_BOUNDARIES[b] < n <= BUCKET_BOUNDARIES[b + 1]:
                buckets[b].append(i)
                break
    buckets = [b for b in buckets if b]
    g = torch.Generator().manual_seed(epoch)
    batches = []
    for bucket in buckets:
        order = torch.randperm(len(bucket), generator=g).tolist()
        total = -(-len(bucket) // batch_size) * batch_size
        rem = total - len(bucket)
        ids = order + order * (rem // len(bucket)) + order[: rem % len(bucket)]
        ids = [bucket[i] for i in ids]
        batches += [ids[k : k + batch_size] for k in range(0, len(ids), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def collate(items: list[S2Item]):
    """``TextAudioSpeakerCollate``: sorted by spectrogram length, zero-padded (ssl/spec to an even length + 2)."""
    order = sorted(range(len(items)), key=lambda i: -items[i].spec.shape[1])
    items = [items[i] for i in order]
    max_ssl = 2 * (max(x.ssl.shape[2] for x in items) // 2 + 1)
    max_spec = 2 * (max(x.spec.shape[1] for x in items) // 2 + 1)
    max_wav = max(x.wav.shape[1] for x in items)
    max_text = max(x.text.shape[0] for x in items)
    b = len(items)
    ssl = torch.zeros(b, 768, max_ssl)
    spec = torch.zeros(b, items[0].spec.shape[0], max_spec)
    wav = torch.zeros(b, 1, max_wav)
    text = torch.zeros(b, max_text, dtype=torch.long)
    lengths = {k: torch.zeros(b, dtype=torch.long) for k in ("ssl", "spec", "wav", "text")}
    for i, x in enumerate(items):
        ssl[i, :, : x.ssl.shape[2]] = x.ssl[0]
        spec[i, :, : x.spec.shape[1]] = x.spec
        wav[i, :, : x.wav.shape[1]] = x.wav
        text[i, : x.text.shape[0]] = x.text
        lengths["ssl"][i], lengths["spec"][i] = x.ssl.shape[2], x.spec.shape[1]
        lengths["wav"][i], lengths["text"][i] = x.wav.shape[1], x.text.shape[0]
    return ssl, spec, lengths["spec"], wav, lengths["wav"], text, lengths["text"]


class S2Trainer:
    """The generator, the discriminator, their optimisers and schedules; :meth:`step` is one batch."""

    def __init__(
        self,
        base_sovits: Path,
        base_discriminator: Path | None,
        settings: S2Settings,
        device: torch.device,
    ) -> None:
        torch.manual_seed(settings.seed)  # before the random parts (enc_q, D) are made, as the original
        ckpt = load_sovits(base_sovits)
        self.cfg = SoVITSConfig.from_checkpoint_config(ckpt.config)
        self.base_config = ckpt.config
        self.settings, self.device = settings, device
        self.net_g = SoVITSTrainModel(self.cfg, settings.segment_size // self.cfg.hop_length)
        missing, unexpected = self.net_g.load_state_dict({k: v.float() for k, v in ckpt.weights.items()}, strict=False)
        if unexpected or any(not k.startswith("enc_q.") for k in missing):
            raise BaseModelError(
                f"{base_sovits}: weights do not fit the v2 SoVITS model (missing {missing[:3]}, unexpected "
                f"{unexpected[:3]}); --base must hold GPT-SoVITS v2's s2G file"
            )
        if missing:
            log.warning("%s has no posterior encoder (enc_q): it starts from random weights", base_sovits.name)
        self.net_d = MultiPeriodDiscriminator(settings.discriminator_width_divisor)
        if base_discriminator is not None:
            self.net_d.load_state_dict(discriminator_weights(base_discriminator))
        else:
            log.warning("no pretrained discriminator (s2D*.pth): it starts from random weights")
        self.net_g.to(device).train()
        self.net_d.to(device).train()
        enc_p = self.net_g.enc_p
        low = {id(p) for m in (enc_p.text_embedding, enc_p.encoder_text, enc_p.mrte) for p in m.parameters()}
        base_params = [p for p in self.net_g.parameters() if id(p) not in low and p.requires_grad]
        lr, low_lr = settings.learning_rate, settings.learning_rate * settings.text_low_lr_rate
        self.optim_g = torch.optim.AdamW(
            [
                {"params": base_params, "lr": lr},
                {"params": list(enc_p.text_embedding.parameters()), "lr": low_lr},
                {"params": list(enc_p.encoder_text.parameters()), "lr": low_lr},
                {"params": list(enc_p.mrte.parameters()), "lr": low_lr},
            ],
            lr,
            betas=settings.betas,
            eps=settings.eps,
        )
        self.optim_d = torch.optim.AdamW(self.net_d.parameters(), lr, betas=settings.betas, eps=settings.eps)
        self.sched_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=settings.lr_decay)
        self.sched_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=settings.lr_decay)
        self.epoch = 0  # epochs finished
        self.global_step = 0

    def start_epoch_schedule(self) -> None:
        """Set the rates for epoch ``self.epoch + 1``: lr * decay ** (epoch + 1), as the original's
        ``for _ in range(epoch_str): scheduler.step()`` then one step per epoch gives."""
        for opt, sched in ((self.optim_g, self.sched_g), (self.optim_d, self.sched_d)):
            for group, base in zip(opt.param_groups, sched.base_lrs, strict=True):
                group["lr"] = base * self.settings.lr_decay ** (self.epoch + 1)

    def step(self, batch) -> dict[str, float]:
        """One discriminator and one generator update on a collated batch; returns the losses."""
        s, d = self.settings, self.device
        ssl, spec, spec_lengths, wav, _wav_lengths, text, text_lengths = (t.to(d) for t in batch)
        out = self.net_g.forward_train(ssl, spec, spec_lengths, text, text_lengths)
        frames = s.segment_size // self.cfg.hop_length
        mel = spec_to_mel(spec, self.cfg.sampling_rate, self.cfg.filter_length)
        y_mel = slice_segments(mel, out.slice_starts, frames)
        y_hat_mel = mel_spectrogram(
            out.audio.squeeze(1), self.cfg.sampling_rate, self.cfg.filter_length, self.cfg.hop_length
        )
        y = slice_segments(wav, out.slice_starts * self.cfg.hop_length, s.segment_size)

        real, fake, _, _ = self.net_d(y, out.audio.detach())
        loss_disc = discriminator_loss(real, fake)
        self.optim_d.zero_grad()
        loss_disc.backward()
        self.optim_d.step()

        real, fake, fmap_r, fmap_g = self.net_d(y, out.audio)
        loss_mel = F.l1_loss(y_mel, y_hat_mel) * s.c_mel
        loss_kl = kl_loss(out.z_p, out.logs_q, out.m_p, out.logs_p, out.mask) * s.c_kl
        loss_fm = feature_loss(fmap_r, fmap_g)
        loss_gen = generator_loss(fake)
        total = loss_gen + loss_fm + loss_mel + out.commit_loss + loss_kl
        self.optim_g.zero_grad()
        total.backward()
        self.optim_g.step()
        self.global_step += 1
        values = (loss_disc, loss_gen, loss_fm, loss_mel, out.commit_loss, loss_kl)
        row = {name: float(v.detach()) for name, v in zip(LOSS_COLUMNS, values, strict=False)}
        row["lr"] = self.optim_g.param_groups[0]["lr"]
        return row

    # ---------------------------------------------------------------- state

    def state(self) -> dict:
        return {
            "g": self.net_g.state_dict(),
            "d": self.net_d.state_dict(),
            "optim_g": self.optim_g.state_dict(),
            "optim_d": self.optim_d.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "rng": torch.get_rng_state(),
        }

    def load_state(self, path: Path) -> None:
        state = read_state(path, self.device)
        self.net_g.load_state_dict(state["g"])
        self.net_d.load_state_dict(state["d"])
        self.optim_g.load_state_dict(state["optim_g"])
        self.optim_d.load_state_dict(state["optim_d"])
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        torch.set_rng_state(state["rng"].cpu())


def train_s2(
    trainer: S2Trainer,
    features: list[ClipFeatures],
    state_path: Path,
    on_step: StepHook = None,
    on_epoch_end: EpochHook = None,
) -> S2Trainer:
    """Run the epochs after ``trainer.epoch`` (resume: :meth:`S2Trainer.load_state` first), saving the
    state to ``state_path`` after each."""
    s = trainer.settings
    items = [
        x for x in repeat_small(make_items(features, trainer.cfg), s.min_items) if 0.6 < x.wav.shape[1] / 32000 < 54
    ]
    lengths = [x.wav.shape[1] // trainer.cfg.hop_length for x in items]
    while trainer.epoch < s.epochs:
        epoch = trainer.epoch + 1
        trainer.start_epoch_schedule()
        batches = bucket_batches(lengths, s.batch_size, epoch)
        for k, ids in enumerate(batches):
            row = trainer.step(collate([items[i] for i in ids]))
            if on_step is not None:
                on_step(epoch, k, row)
        trainer.epoch = epoch
        write_state(state_path, trainer.state())
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    return trainer


def steps_per_epoch(features: list[ClipFeatures], settings: S2Settings, hop: int = 640) -> int:
    items = [f for f in repeat_small(features, settings.min_items) if 0.6 < f.audio.shape[0] / 32000 < 54]
    return len(bucket_batches([f.audio.shape[0] // hop for f in items], settings.batch_size, 1))

"""Few-shot fine-tuning of GPT-SoVITS v2 voices: ``python -m synth train`` (docs/training.md).

=============  ======================================================================
``prepare``    recordings + ``.list`` transcripts -> checked, sliced, normalised clips
``features``   phones (+BERT for Mandarin), HuBERT features, semantic tokens
``modules``    the training-only SoVITS parts: posterior encoder, multi-period discriminator
``losses``     mel reconstruction, KL, adversarial and feature-matching losses
``s2``         SoVITS fine-tuning (AdamW, the original's schedule)
``optim``      ScaledAdam, the GPT's optimiser
``s1``         GPT fine-tuning
``voice``      the voice folder: .ckpt/.pth in the original's formats, reference, voice.yaml
``pipeline``   all of it, resumable, written atomically; the command's settings (``--settings``)
``asr``        transcripts by a Whisper model folder on disk (``--asr-model``), nothing downloaded
``tiny``       a tiny trial of the command (tiny random base, espeak-ng takes), for tests and demos
=============  ======================================================================
"""

from synth.train.pipeline import Progress, TrainResult, TrainSettings, train_voice
from synth.train.s1 import S1Settings
from synth.train.s2 import S2Settings

__all__ = ["train_voice", "TrainSettings", "TrainResult", "Progress", "S1Settings", "S2Settings"]

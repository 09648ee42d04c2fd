"""GPT-SoVITS v2 text-to-speech in PyTorch: loads the published checkpoints, batches, streams.

Public API::

    from synth import Synthesizer
    tts = Synthesizer.from_files(gpt_path, sovits_path, hubert_dir=..., bert_dir=...)
    rate, wave = tts.synthesize("Hello.", "en", "ref.wav", prompt_text="...", seed=0)
    for chunk in tts.stream("Hello.", "en", "ref.wav", prompt_text="..."): ...

``synth`` knows nothing of chains or queues (no ape, web3 or celery imports).
"""

from synth.engine import Synthesizer
from synth.errors import (
    CheckpointError,
    CorruptCheckpointError,
    LanguageNotInstalledError,
    ReferenceAudioError,
    SynthError,
    TextError,
    UnknownLanguageError,
    UnsafeCheckpointError,
    UnsupportedModelError,
)

__all__ = [
    "Synthesizer",
    "SynthError",
    "CheckpointError",
    "CorruptCheckpointError",
    "UnsafeCheckpointError",
    "UnsupportedModelError",
    "ReferenceAudioError",
    "TextError",
    "UnknownLanguageError",
    "LanguageNotInstalledError",
]

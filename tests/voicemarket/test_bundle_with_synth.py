"""A real (tiny, randomly initialised) GPT-SoVITS voice makes the whole trip and speaks at the end.

Creator: pack + seal + store. Operator: fetch + verify + decrypt + unpack, then load the
checkpoints with synth and synthesise with the bundle's own reference clip and transcript.
The shared HuBERT/BERT folders stay outside the bundle, as on a real operator's machine.
"""

from __future__ import annotations

import pytest

from voicemarket.content.bundle import VoiceModelFiles
from voicemarket.content.sealed_bundle import open_bundle, publish_bundle
from voicemarket.content.sealing import public_key_from_private
from voicemarket.content.store import LocalStore

OPERATOR = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a"  # anvil account 2


@pytest.mark.slow
def test_a_tiny_voice_is_published_opened_and_speaks(tmp_path):
    from synth.random_model import write_random_model
    from synth.testing import make_reference_wav

    voice = write_random_model(tmp_path / "voice", "tiny", seed=1)
    reference = make_reference_wav(tmp_path / "ref.wav", "The quick brown fox jumps over the lazy dog.", seconds=4.0)
    preview = make_reference_wav(tmp_path / "preview.wav", "Hello.", seconds=3.0)
    model = VoiceModelFiles(
        name="Tiny",
        description="random weights",
        languages=("en",),
        gpt_checkpoint=voice.gpt_path,
        sovits_checkpoint=voice.sovits_path,
        reference_audio=reference,
        reference_text="The quick brown fox jumps over the lazy dog.",
        reference_language="en",
        preview_audio=preview,
        creator="0x" + "ab" * 20,
        voice_owner="0x" + "ab" * 20,
        consent={"self": True},
    )
    store = LocalStore(tmp_path / "store")
    published = publish_bundle(model, store, [public_key_from_private(OPERATOR)])

    unpacked = open_bundle(
        store, published.bundle_cid, published.keyring_cid, OPERATOR, published.digest, tmp_path / "operator" / "model"
    )
    from synth.engine import Synthesizer

    tts = Synthesizer.from_files(
        unpacked.gpt_checkpoint, unpacked.sovits_checkpoint, hubert_dir=voice.hubert_dir, bert_dir=voice.bert_dir
    )
    rate, audio = tts.synthesize(
        "Good morning.",
        "en",
        unpacked.reference_audio,
        prompt_text=unpacked.manifest.reference_text,
        max_semantic_tokens=20,
    )
    assert rate == unpacked.manifest.sample_rate == 32000
    assert audio.ndim == 1 and audio.size > 0

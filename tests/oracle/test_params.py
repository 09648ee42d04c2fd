"""The oracle reads a request's packed parameters in the router's layout (docs/contracts.md), including
the buyer's dispute-window floor in bits 88..111, and refuses reserved bits as BadInput."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.errors import FailReason, RequestFailure
from oracle.serve import synthesis_kwargs
from oracle.settings import OracleSettings
from oracle.voices import Voice
from voicemarket.market import chain as vm
from voicemarket.protocol import Language

VOICE = Voice(
    model_id=1,
    synthesizer=None,
    reference=Path("reference.wav"),
    prompt_text="Hello.",
    prompt_language="en",
    languages=("en", "zh"),
)
SETTINGS = OracleSettings(router="0x" + "11" * 20, test_account=2, max_semantic_tokens=40)


def test_parameters_with_a_dispute_window_floor_are_read_in_the_new_layout():
    packed = vm.SynthesisParams(
        Language.ZH, speed=1.25, top_k=7, seed=0xDEADBEEF, min_dispute_window=(1 << 24) - 1
    ).pack()
    assert packed >> 88 == (1 << 24) - 1
    language, kwargs = synthesis_kwargs(packed, VOICE, SETTINGS)
    assert language == "zh"
    assert kwargs == {
        "prompt_text": "Hello.",
        "prompt_language": "en",
        "seed": 0xDEADBEEF,
        "max_semantic_tokens": 40,
        "speed": 1.25,
        "top_k": 7,
    }


def test_reserved_bits_are_bad_input():
    packed = vm.SynthesisParams(Language.EN).pack() | 1 << 112
    with pytest.raises(RequestFailure) as refused:
        synthesis_kwargs(packed, VOICE, SETTINGS)
    assert refused.value.reason == FailReason.BAD_INPUT and "reserved bits" in refused.value.detail

"""From user text to what the GPT stage eats: sentences, then phones and phone-level BERT features.

Languages (GPT-SoVITS v2's codes): ``zh`` (Mandarin with English words read as English),
``all_zh`` (the same split), ``en``, ``auto`` (split by script), and ``ja``, ``ko``,
``yue``, ``all_ja``, ``all_ko``, ``all_yue``, ``auto_yue``, whose front ends need packages
that are not installed here (:class:`~synth.errors.LanguageNotInstalledError`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch

from synth.errors import LanguageNotInstalledError, TextError, UnknownLanguageError
from synth.text import chinese, english
from synth.text.symbols import phones_to_ids

SUPPORTED = ("zh", "all_zh", "en", "auto")
NOT_INSTALLED = ("ja", "all_ja", "ko", "all_ko", "yue", "all_yue", "auto_yue")
# Marks that end a sentence piece in GPT-SoVITS (``splits``); a piece without one gets "。" or ".".
SENTENCE_END = set("，。？！,.?!~:：—…")
_SPLIT_AFTER = "。！？!?；;…\n"


@dataclass(frozen=True)
class Segment:
    """A run of text in one language."""

    language: str
    text: str


@dataclass(frozen=True)
class PhoneSequence:
    """Phones of a text: ids [N], BERT features [1024, N] and the normalised text."""

    ids: list[int]
    phones: list[str]
    bert: torch.Tensor
    normalized: str


def check_language(language: str) -> str:
    lang = language.strip().lower()
    if lang in SUPPORTED:
        return lang
    if lang in NOT_INSTALLED:
        raise LanguageNotInstalledError(
            f"language {language!r} is part of GPT-SoVITS v2, but its text front end (Japanese: pyopenjtalk; "
            "Korean: g2pk2; Cantonese: ToJyutping) is not installed in this engine. Use zh, en, all_zh or auto."
        )
    raise UnknownLanguageError(
        f"unknown language {language!r}; use one of {', '.join(SUPPORTED)} "
        f"(or {', '.join(NOT_INSTALLED)} where installed)"
    )


def _script(ch: str) -> str | None:
    """'en' for Latin letters, 'zh' for Han, 'ja' for kana, 'ko' for Hangul, None if neutral."""
    o = ord(ch)
    if ch.isascii() and ch.isalpha():
        return "en"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0x20000 <= o <= 0x2EBEF:
        return "zh"
    if 0x3041 <= o <= 0x30FF:
        return "ja"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "ko"
    if ch.isalpha():
        return "en" if o < 0x0250 else "zh"
    return None


def split_languages(text: str, language: str) -> list[Segment]:
    """Cut text into runs by script; digits, spaces and punctuation stay with the run they follow.

    ``en``: one English run. ``zh``/``all_zh``: English runs and Mandarin runs (anything not
    Latin counts as Mandarin). ``auto``: kana and Hangul are recognised too (and refused).
    """
    lang = check_language(language)
    if lang == "en":
        return [Segment("en", text)]
    runs: list[list[str]] = []
    pending = ""
    for ch in text:
        script = _script(ch)
        if script is None:
            if runs:
                runs[-1][1] += ch
            else:
                pending += ch
            continue
        if lang != "auto" and script != "en":
            script = "zh"
        if runs and runs[-1][0] == script:
            runs[-1][1] += ch
        else:
            runs.append([script, pending + ch])
            pending = ""
    if not runs:
        return [Segment("zh" if lang != "auto" else "en", pending)] if pending.strip() else []
    for script, _ in runs:
        if script in ("ja", "ko"):
            check_language(script)
    return [Segment(s, t) for s, t in runs]


def split_sentences(text: str, language: str) -> list[str]:
    """Sentences at 。！？!?;… and line breaks; pieces under 5 characters join the one before;
    each ends with a mark (``。`` added, ``.`` for English), as GPT-SoVITS does before decoding."""
    text = text.strip("\n")
    pieces, current = [], ""
    for i, ch in enumerate(text):
        current += ch
        # "." ends a sentence only before a space or the end ("3.5" and "e.g." stay whole).
        if ch in _SPLIT_AFTER or (ch == "." and (i + 1 == len(text) or text[i + 1].isspace())):
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    pieces = [p for p in pieces if p.strip()]
    merged: list[str] = []
    buffer = ""
    for p in pieces:
        buffer += p
        if len(buffer.strip()) >= 5:
            merged.append(buffer)
            buffer = ""
    if buffer:
        if merged:
            merged[-1] += buffer
        else:
            merged.append(buffer)
    out = []
    for sentence in (m.strip() for m in merged):
        if not re.sub(r"\W+", "", sentence):
            continue  # only punctuation: nothing to say
        if sentence[-1] not in SENTENCE_END:
            sentence += "." if language == "en" else "。"
        out.append(sentence)
    return out


BertProvider = Callable[[str, list[int]], torch.Tensor]


def phones_and_bert(text: str, language: str, bert: BertProvider | None, _retry: bool = True) -> PhoneSequence:
    """One sentence -> :class:`PhoneSequence`. Chinese runs get BERT features (zeros if no BERT
    model is given), other runs zeros. Fewer than 6 phones: GPT-SoVITS prepends "." and retries."""
    text = re.sub(r" {2,}", " ", text)
    if not re.sub(r"\W+", "", text):
        raise TextError(f"nothing to pronounce in {text!r}; give words in the chosen language")
    phones: list[str] = []
    features: list[torch.Tensor] = []
    normalized = []
    for segment in split_languages(text, language):
        if segment.language == "zh":
            norm = chinese.normalize(segment.text)
            seg_phones, word2ph = chinese.g2p(norm)
            if bert is not None and seg_phones:
                feat = bert(norm, word2ph)
            else:
                feat = torch.zeros(1024, len(seg_phones))
        else:
            seg_phones, norm = english.phones_for(segment.text)
            feat = torch.zeros(1024, len(seg_phones))
        phones += seg_phones
        features.append(feat)
        normalized.append(norm)
    if len(phones) < 6 and _retry:
        return phones_and_bert("." + text, language, bert, _retry=False)
    if not phones:
        raise TextError(f"nothing to pronounce in {text!r}; give words in the chosen language")
    return PhoneSequence(ids=phones_to_ids(phones), phones=phones, bert=torch.cat(features, dim=1),
                         normalized="".join(normalized))


def prepare_prompt_text(prompt_text: str, language: str) -> str:
    """The reference transcript ends with a sentence mark, as GPT-SoVITS ensures."""
    prompt_text = prompt_text.strip("\n").strip()
    if prompt_text and prompt_text[-1] not in SENTENCE_END:
        prompt_text += "." if language == "en" else "。"
    return prompt_text

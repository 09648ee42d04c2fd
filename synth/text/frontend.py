"""From user text to what the GPT stage eats: sentences, then phones and phone-level BERT features.

Languages (GPT-SoVITS v2's codes): ``zh`` (Mandarin with English words read as English) and
``all_zh`` (the same split); ``en``; ``ja``, ``ko``, ``yue`` (English words read as English, the
rest in that language) and ``all_ja``, ``all_ko``, ``all_yue`` (only English runs of Latin
letters apart); ``auto`` (runs of Mandarin, Japanese, Korean and English found by
:mod:`synth.text.segmenter`) and ``auto_yue`` (the same with Cantonese for Chinese). Only
Mandarin runs get BERT features; the others get zeros, as in GPT-SoVITS.

Characters that no front end can say (emoji, control and private-use characters, pictographs)
are dropped with a warning that names them.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import torch

from synth.errors import TextError, UnknownLanguageError
from synth.text import chinese, english
from synth.text.symbols import SYMBOL_TO_ID, phones_to_ids

log = logging.getLogger(__name__)

SUPPORTED = ("zh", "all_zh", "en", "auto", "ja", "all_ja", "ko", "all_ko", "yue", "all_yue", "auto_yue")
NOT_INSTALLED: tuple[str, ...] = ()  # languages of GPT-SoVITS v2 this engine cannot speak: none
# Marks that end a sentence piece in GPT-SoVITS (``splits``); a piece without one gets "。" or ".".
SENTENCE_END = set("，。？！,.?!~:：—…")
_SPLIT_AFTER = "。！？!?；;…\n"
MAX_SENTENCE_CHARS = 510  # GPT-SoVITS cuts longer sentences (its BERT's limit) at marks
_FRONT_ENDS = {"ja": "japanese", "ko": "korean", "yue": "cantonese"}


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
    raise UnknownLanguageError(f"unknown language {language!r}; use one of {', '.join(SUPPORTED)}")


def load_language(language: str) -> None:
    """Load the dictionaries and models a language needs now, not on its first sentence.

    Raises :class:`LanguageNotInstalledError` naming what to install when a package or dictionary
    is missing."""
    lang = check_language(language).removeprefix("all_")
    modules = {
        "auto": ("japanese", "korean", "segmenter"),
        "auto_yue": ("cantonese", "japanese", "korean", "segmenter"),
    }.get(lang, ())
    if lang in _FRONT_ENDS:
        modules = (_FRONT_ENDS[lang], "segmenter")
    for name in modules:
        _module(name).load()
    # Every language reads English words with the CMU dictionary, and Mandarin runs need jieba's
    # dictionary and pypinyin: load them here (about 1 s each) rather than on the first request.
    english.word_phones("voice")
    if lang in ("zh", "auto"):
        chinese.g2p("声音")


def _module(name: str):
    import importlib

    return importlib.import_module(f"synth.text.{name}")


def _unsayable(ch: str) -> bool:
    category = unicodedata.category(ch)
    if ch in "\n\t":
        return False
    if category in ("Cc", "Cf", "Co", "Cs", "Cn"):
        return True
    o = ord(ch)
    if 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF or 0x1F3FB <= o <= 0x1F3FF:
        return True  # variation selectors, skin-tone modifiers
    return category == "So" and o >= 0x2190  # arrows, dingbats, pictographs, emoji (keeps ° and ℃)


def drop_unsayable(text: str) -> str:
    """Remove emoji, control, format and private-use characters, warning with their names."""
    dropped = [ch for ch in text if _unsayable(ch)]
    if not dropped:
        return text
    names = ", ".join(f"{ch!r} ({unicodedata.name(ch, f'U+{ord(ch):04X}')})" for ch in dict.fromkeys(dropped))
    log.warning("dropped characters no front end can say: %s", names)
    return "".join(ch for ch in text if not _unsayable(ch))


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


def _split_by_script(text: str) -> list[Segment]:
    """Mandarin (``zh``, ``all_zh``): Latin runs are English, everything else Mandarin; digits,
    spaces and punctuation stay with the run they follow."""
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
        script = "en" if script == "en" else "zh"
        if runs and runs[-1][0] == script:
            runs[-1][1] += ch
        else:
            runs.append([script, pending + ch])
            pending = ""
    if not runs:
        return [Segment("zh", pending)] if pending.strip() else []
    return [Segment(s, t) for s, t in runs]


def split_languages(text: str, language: str) -> list[Segment]:
    """Cut text into runs of one front end's language each.

    ``en``: one English run. ``zh``/``all_zh``: by script (:func:`_split_by_script`). ``ja``,
    ``ko``, ``yue``: GPT-SoVITS's segmenter; English runs stay English, all other runs merge
    into the chosen language. ``all_ja``, ``all_ko``, ``all_yue``: the segmenter with that
    language as its default. ``auto``: the segmenter's languages; ``auto_yue``: Chinese as Cantonese.
    """
    lang = check_language(language)
    if lang == "en":
        return [Segment("en", text)]
    if lang in ("zh", "all_zh"):
        return _split_by_script(text)
    from synth.text import segmenter

    base = lang.removeprefix("all_").removeprefix("auto_")
    if lang.startswith("all_"):
        runs = segmenter.split(text, default="zh" if base == "yue" else base)
    else:
        runs = segmenter.split(text)
    segments: list[Segment] = []
    for run in runs:
        if lang in ("auto", "all_ja", "all_ko"):
            run_lang = run.language
        elif lang in ("auto_yue", "all_yue"):
            run_lang = "yue" if run.language == "zh" else run.language
        else:  # ja, ko, yue: the user's language for everything not English
            run_lang = "en" if run.language == "en" else lang
        if segments and segments[-1].language == run_lang:
            segments[-1] = Segment(run_lang, segments[-1].text + run.text)
        else:
            segments.append(Segment(run_lang, run.text))
    return segments


def _cut_long(sentence: str) -> list[str]:
    """A sentence over MAX_SENTENCE_CHARS -> pieces at most that long: cut after marks where there
    are any (as GPT-SoVITS does), else after the last space, else anywhere."""
    pieces: list[str] = []
    current = ""
    for part in re.split(f"([{''.join(sorted(SENTENCE_END))}])", sentence):
        if len(current) + len(part) > MAX_SENTENCE_CHARS and current:
            pieces.append(current)
            current = ""
        current += part
        while len(current) > MAX_SENTENCE_CHARS:
            cut = current.rfind(" ", 0, MAX_SENTENCE_CHARS) + 1 or MAX_SENTENCE_CHARS
            pieces.append(current[:cut])
            current = current[cut:]
    if current:
        pieces.append(current)
    return [p for p in pieces if p.strip()]


def split_sentences(text: str, language: str) -> list[str]:
    """Sentences at 。！？!?;… and line breaks; pieces under 5 characters join the one before;
    each ends with a mark (``。`` added, ``.`` for English), as GPT-SoVITS does before decoding."""
    text = drop_unsayable(text).strip("\n")
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
        out += _cut_long(sentence) if len(sentence) > MAX_SENTENCE_CHARS else [sentence]
    return out


BertProvider = Callable[[str, list[int]], torch.Tensor]


def _segment_phones(segment: Segment, bert: BertProvider | None) -> tuple[list[str], torch.Tensor, str]:
    """One run -> (phones, BERT features [1024, phones], normalised text)."""
    if segment.language == "zh":
        norm = chinese.normalize(segment.text)
        phones, word2ph = chinese.g2p(norm)
        feat = bert(norm, word2ph) if bert is not None and phones else torch.zeros(1024, len(phones))
        return phones, feat, norm
    if segment.language == "en":
        phones, norm = english.phones_for(segment.text)
    elif segment.language == "ja":
        from synth.text import japanese

        norm = japanese.normalize(segment.text)
        phones = japanese.g2p(norm)
    elif segment.language == "ko":
        from synth.text import korean

        norm = segment.text
        phones = korean.g2p(norm)
    else:
        from synth.text import cantonese

        phones, _, norm = cantonese.g2p(cantonese.normalize(segment.text))
    phones = [p if p in SYMBOL_TO_ID else "UNK" for p in phones]
    return phones, torch.zeros(1024, len(phones)), norm


def phones_and_bert(text: str, language: str, bert: BertProvider | None, _retry: bool = True) -> PhoneSequence:
    """One sentence -> :class:`PhoneSequence`. Mandarin runs get BERT features (zeros if no BERT
    model is given), other runs zeros. Fewer than 6 phones: GPT-SoVITS prepends "." and retries."""
    text = re.sub(r" {2,}", " ", drop_unsayable(text))
    if not re.sub(r"\W+", "", text):
        raise TextError(f"nothing to pronounce in {text!r}; give words in the chosen language")
    phones: list[str] = []
    features: list[torch.Tensor] = []
    normalized = []
    for segment in split_languages(text, language):
        seg_phones, feat, norm = _segment_phones(segment, bert)
        phones += seg_phones
        features.append(feat)
        normalized.append(norm)
    if len(phones) < 6 and _retry:
        return phones_and_bert("." + text, language, bert, _retry=False)
    if not phones:
        raise TextError(f"nothing to pronounce in {text!r}; give words in the chosen language")
    return PhoneSequence(
        ids=phones_to_ids(phones), phones=phones, bert=torch.cat(features, dim=1), normalized="".join(normalized)
    )


def prepare_prompt_text(prompt_text: str, language: str) -> str:
    """The reference transcript ends with a sentence mark, as GPT-SoVITS ensures."""
    prompt_text = prompt_text.strip("\n").strip()
    if prompt_text and prompt_text[-1] not in SENTENCE_END:
        prompt_text += "." if language == "en" else "。"
    return prompt_text

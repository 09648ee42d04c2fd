"""Mandarin: normalisation and grapheme-to-phoneme (pypinyin + jieba + tone sandhi + erhua).

Each Hanzi becomes two phones, an initial and a toned final of GPT-SoVITS's opencpop-style
inventory (``n i3``, ``h ao3``; zero-initial syllables get ``AA``/``EE``/``OO`` or
``y``/``w``); punctuation stays one phone. ``word2ph`` counts phones per character, which
is how the BERT features (one vector per character) are spread over phones.

GPT-SoVITS picks readings with the g2pW neural model when its weights are present; this
engine uses its other documented path, pypinyin's phrase dictionary (no model needed).
Numbers, dates, times, phone numbers and units are read by GPT-SoVITS's normaliser
(:mod:`synth.text.zh_normalize`, PaddleSpeech's rules; traditional characters become simplified).
"""

from __future__ import annotations

import functools
import logging
import re

from pypinyin import Style, lazy_pinyin

from synth.text import tone_sandhi, zh_normalize
from synth.text.symbols import MARK_TO_PUNCTUATION

PUNCTUATION = ["!", "?", "…", ",", ".", "-"]
_PUNCT_CLASS = "".join(re.escape(p) for p in PUNCTUATION)

_REPLACE = {
    **MARK_TO_PUNCTUATION,
    "...": "…",
    "$": ".",
    "/": ",",
    "—": "-",
    "~": "…",
    "～": "…",
    "“": "",
    "”": "",
    "‘": "",
    "’": "",
    "《": "",
    "》": "",
    "【": "",
    "】": "",
    "（": "",
    "）": "",
    "(": "",
    ")": "",
    "「": "",
    "」": "",
}
_REPLACE_RE = re.compile("|".join(re.escape(k) for k in sorted(_REPLACE, key=len, reverse=True)))

_MUST_ERHUA = {"小院儿", "胡同儿", "范儿", "老汉儿", "撒欢儿", "寻老礼儿", "妥妥儿", "媳妇儿"}
_NOT_ERHUA = set(
    "虐儿 为儿 护儿 瞒儿 救儿 替儿 有儿 一儿 我儿 俺儿 妻儿 拐儿 聋儿 乞儿 患儿 幼儿 孤儿 婴儿 婴幼儿 连体儿 脑瘫儿 "
    "流浪儿 体弱儿 混血儿 蜜雪儿 舫儿 祖儿 美儿 应采儿 可儿 侄儿 孙儿 侄孙儿 女儿 男儿 红孩儿 花儿 虫儿 马儿 鸟儿 猪儿 "
    "猫儿 狗儿 少儿".split()
)

_INITIALS = ["zh", "ch", "sh", "b", "p", "m", "f", "d", "t", "n", "l", "g", "k", "h", "j", "q", "x", "r", "z", "c", "s"]
_ZERO_INITIAL = {"a": "AA", "e": "EE", "o": "OO"}


@functools.cache
def _jieba():
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.CRITICAL)
    return jieba.posseg


def syllable_phones(pinyin: str) -> tuple[str, str]:
    """Toneless pinyin syllable -> (initial, final) of the v2 table, e.g. ``shi`` -> ``sh ir``.

    This is the opencpop-strict mapping GPT-SoVITS ships as a 429-line table, rebuilt from
    its rules: y/w spellings keep ``y``/``w`` as the initial, ü after j/q/x/y is written ``v``,
    -i after zh/ch/sh/r is ``ir`` and after z/c/s ``i0``, and bare vowels get ``AA EE OO``.
    """
    p = pinyin
    if p[0] in "yw":
        initial, rest = p[0], p[1:]
        if initial == "y":
            rest = {"an": "En", "e": "E", "": "i"}.get(rest, rest)
            if rest.startswith("u"):
                rest = "v" + rest[1:]
            if rest == "i":
                pass
        else:
            rest = rest or "u"
        return initial, rest
    for initial in _INITIALS:
        if p.startswith(initial) and len(p) > len(initial):
            rest = p[len(initial) :]
            if initial in ("j", "q", "x") and rest.startswith("u"):
                rest = "v" + rest[1:]
            if rest == "i" and initial in ("zh", "ch", "sh", "r"):
                rest = "ir"
            elif rest == "i" and initial in ("z", "c", "s"):
                rest = "i0"
            return initial, rest
    return _ZERO_INITIAL[p[0]], p


def _normalise_spelling(initial: str, final_toneless: str) -> str:
    """pypinyin's (initial, final) -> the syllable spelling the table is keyed by (uei -> ui ...)."""
    if initial:
        final_toneless = {"uei": "ui", "iou": "iu", "uen": "un"}.get(final_toneless, final_toneless)
        return initial + final_toneless
    pinyin = {"ing": "ying", "i": "yi", "in": "yin", "u": "wu"}.get(final_toneless)
    if pinyin:
        return pinyin
    first = {"v": "yu", "e": "e", "i": "y", "u": "w"}.get(final_toneless[0])
    return (first + final_toneless[1:]) if first else final_toneless


def normalize(text: str) -> str:
    """Numbers to words (GPT-SoVITS's normaliser, :mod:`synth.text.zh_normalize`), clause by clause
    punctuation mapped to the six v2 marks and other symbols dropped; repeated marks collapse."""
    clauses = []
    for clause in zh_normalize.normalize(text):
        clause = clause.replace("嗯", "恩").replace("呣", "母")
        clause = _REPLACE_RE.sub(lambda m: _REPLACE[m.group()], clause)
        clauses.append(re.sub(r"[^\u4e00-\u9fa5" + _PUNCT_CLASS + r"]+", "", clause))
    return re.sub(f"([{_PUNCT_CLASS}])([{_PUNCT_CLASS}])+", r"\1", "".join(clauses))


def _erhua(initials: list[str], finals: list[str], word: str, pos: str) -> tuple[list[str], list[str]]:
    for i, f in enumerate(finals):
        if i == len(finals) - 1 and word[i] == "儿" and f == "er1":
            finals[i] = "er2"
    if word not in _MUST_ERHUA and (word in _NOT_ERHUA or pos in {"a", "j", "nr"}):
        return initials, finals
    if len(finals) != len(word):
        return initials, finals
    new_finals: list[str] = []
    for i, f in enumerate(finals):
        if (
            i == len(finals) - 1
            and word[i] == "儿"
            and f in {"er2", "er5"}
            and word[-2:] not in _NOT_ERHUA
            and new_finals
        ):
            f = "er" + new_finals[-1][-1]
        new_finals.append(f)
    return initials, new_finals


def g2p(text: str) -> tuple[list[str], list[int]]:
    """Normalised Mandarin -> (phones, phones per character)."""
    sentences = [s for s in re.split(f"(?<=[{_PUNCT_CLASS}])\\s*", text) if s.strip()]
    phones: list[str] = []
    word2ph: list[int] = []
    posseg = _jieba()
    for sentence in sentences:
        sentence = re.sub("[a-zA-Z]+", "", sentence)
        words = tone_sandhi.merge_for_sandhi([(w.word, w.flag) for w in posseg.lcut(sentence)])
        initials: list[str] = []
        finals: list[str] = []
        for word, pos in words:
            if pos == "eng":
                continue
            sub_i = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.INITIALS)
            sub_f = lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)
            sub_f = tone_sandhi.modified_tone(word, pos, sub_f)
            sub_i, sub_f = _erhua(sub_i, sub_f, word, pos)
            initials += sub_i
            finals += sub_f
        for c, v in zip(initials, finals, strict=False):
            if c == v:
                # Punctuation (pypinyin passes it through as both "initial" and "final").
                phones.append(c if c in PUNCTUATION else "UNK")
                word2ph.append(1)
                continue
            tone = v[-1]
            if tone not in "12345":
                phones.append("UNK")
                word2ph.append(1)
                continue
            initial, final = syllable_phones(_normalise_spelling(c, v[:-1]))
            phones += [initial, final + tone]
            word2ph.append(2)
    return phones, word2ph

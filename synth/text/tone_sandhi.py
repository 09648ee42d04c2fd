"""Mandarin tone sandhi on pypinyin finals (``ai3``, ``e5`` ...), per jieba word.

The rules are those of PaddleSpeech's front end that GPT-SoVITS uses: 不 before a
fourth tone becomes bu2; 一 becomes yi2/yi4 (yi1 as an ordinal, yi5 in 看一看); words in
a list of conventionally neutral-toned words and certain particles and suffixes (的 了
们 子 ...) take the neutral tone; third-tone runs become second tone (你好 -> ni2 hao3).
Before that, jieba's segmentation is re-merged (不/一 with the next word, repeated
words, third-tone neighbours, 儿) so the rules see whole prosodic words.

The two word lists in ``data/`` come from that front end.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jieba
from pypinyin import Style, lazy_pinyin

_DATA = Path(__file__).resolve().parent / "data"
_PUNCTUATION = "：，；。？！“”‘’':,;.?!"


@functools.cache
def _words(name: str) -> frozenset[str]:
    return frozenset(line.strip() for line in (_DATA / name).read_text(encoding="utf-8").splitlines() if line.strip())


def _neutral_words() -> frozenset[str]:
    return _words("zh_neutral_tone_words.txt")


def _not_neutral_words() -> frozenset[str]:
    return _words("zh_not_neutral_tone_words.txt")


def _set_tone(final: str, tone: str) -> str:
    return final[:-1] + tone


def _finals(word: str) -> list[str]:
    return lazy_pinyin(word, neutral_tone_with_five=True, style=Style.FINALS_TONE3)


def _all_third(finals: list[str]) -> bool:
    return all(f[-1] == "3" for f in finals)


def _split_in_two(word: str) -> list[str]:
    """The shortest search-mode sub-word, and the rest of the word on its other side."""
    pieces = sorted(jieba.cut_for_search(word), key=len)
    first = pieces[0]
    if word.find(first) == 0:
        return [first, word[len(first) :]]
    return [word[: -len(first)], first]


def _neutral(word: str, pos: str, finals: list[str]) -> list[str]:
    neutral, not_neutral = _neutral_words(), _not_neutral_words()
    for j in range(1, len(word)):
        if word[j] == word[j - 1] and pos[:1] in {"n", "v", "a"} and word not in not_neutral:
            finals[j] = _set_tone(finals[j], "5")
    ge = word.find("个")
    last = word[-1:] if word else ""
    if last and last in "吧呢哈啊呐噻嘛吖嗨呐哦哒额滴哩哟喽啰耶喔诶":
        finals[-1] = _set_tone(finals[-1], "5")
    elif last and last in "的地得":
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) == 1 and word in "了着过" and pos in {"ul", "uz", "ug"}:
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) > 1 and last in "们子" and pos in {"r", "n"} and word not in not_neutral:
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) > 1 and last in "上下里" and pos in {"s", "l", "f"}:
        finals[-1] = _set_tone(finals[-1], "5")
    elif len(word) > 1 and last in "来去" and word[-2] in "上下进出回过起开":
        finals[-1] = _set_tone(finals[-1], "5")
    elif (ge >= 1 and (word[ge - 1].isnumeric() or word[ge - 1] in "几有两半多各整每做是")) or word == "个":
        finals[ge] = _set_tone(finals[ge], "5")
    elif word in neutral or word[-2:] in neutral:
        finals[-1] = _set_tone(finals[-1], "5")

    parts = _split_in_two(word)
    groups = [finals[: len(parts[0])], finals[len(parts[0]) :]]
    for i, part in enumerate(parts):
        if (part in neutral or part[-2:] in neutral) and groups[i]:
            groups[i][-1] = _set_tone(groups[i][-1], "5")
    return groups[0] + groups[1]


def _bu(word: str, finals: list[str]) -> list[str]:
    if len(word) == 3 and word[1] == "不":
        finals[1] = _set_tone(finals[1], "5")
        return finals
    for i, ch in enumerate(word):
        if ch == "不" and i + 1 < len(word) and finals[i + 1][-1] == "4":
            finals[i] = _set_tone(finals[i], "2")
    return finals


def _yi(word: str, finals: list[str]) -> list[str]:
    if "一" in word and all(ch.isnumeric() for ch in word if ch != "一"):
        return finals
    if len(word) == 3 and word[1] == "一" and word[0] == word[-1]:
        finals[1] = _set_tone(finals[1], "5")
    elif word.startswith("第一"):
        finals[1] = _set_tone(finals[1], "1")
    else:
        for i, ch in enumerate(word):
            if ch == "一" and i + 1 < len(word):
                if finals[i + 1][-1] == "4":
                    finals[i] = _set_tone(finals[i], "2")
                elif word[i + 1] not in _PUNCTUATION:
                    finals[i] = _set_tone(finals[i], "4")
    return finals


def _third(word: str, finals: list[str]) -> list[str]:
    if len(word) == 2 and _all_third(finals):
        finals[0] = _set_tone(finals[0], "2")
    elif len(word) == 3:
        parts = _split_in_two(word)
        if _all_third(finals):
            if len(parts[0]) == 2:
                finals[0] = _set_tone(finals[0], "2")
                finals[1] = _set_tone(finals[1], "2")
            elif len(parts[0]) == 1:
                finals[1] = _set_tone(finals[1], "2")
        else:
            groups = [finals[: len(parts[0])], finals[len(parts[0]) :]]
            for i, sub in enumerate(groups):
                if _all_third(sub) and len(sub) == 2:
                    sub[0] = _set_tone(sub[0], "2")
                elif (
                    i == 1
                    and not _all_third(sub)
                    and sub
                    and sub[0][-1] == "3"
                    and groups[0]
                    and groups[0][-1][-1] == "3"
                ):
                    groups[0][-1] = _set_tone(groups[0][-1], "2")
            finals = groups[0] + groups[1]
    elif len(word) == 4:
        out: list[str] = []
        for sub in (finals[:2], finals[2:]):
            if _all_third(sub):
                sub[0] = _set_tone(sub[0], "2")
            out += sub
        finals = out
    return finals


def modified_tone(word: str, pos: str, finals: list[str]) -> list[str]:
    """Apply the 不, 一, neutral-tone and third-tone rules to one word's finals."""
    finals = _bu(word, finals)
    finals = _yi(word, finals)
    finals = _neutral(word, pos, finals)
    return _third(word, finals)


# ----------------------------------------------------------------------------- re-merging jieba words


def _merge_bu(seg: list[list[str]]) -> list[list[str]]:
    out, last = [], ""
    for word, pos in seg:
        if last == "不":
            word = last + word
        if word != "不":
            out.append([word, pos])
        last = word
    if last == "不":
        out.append([last, "d"])
    return out


def _merge_yi(seg: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    i = 0
    while i < len(seg):
        word, pos = seg[i]
        if i >= 1 and word == "一" and i + 1 < len(seg):
            prev = out[-1] if out else seg[i - 1]
            if prev[0] == seg[i + 1][0] and prev[1] == "v" and seg[i + 1][1] == "v":
                out[-1] = [prev[0] + "一" + seg[i + 1][0], prev[1]]
                i += 2
                continue
        out.append([word, pos])
        i += 1
    merged: list[list[str]] = []
    for word, pos in out:
        if merged and merged[-1][0] == "一":
            merged[-1][0] += word
        else:
            merged.append([word, pos])
    return merged


def _merge_third_tones(seg: list[list[str]], whole_words: bool) -> list[list[str]]:
    finals = [_finals(word) for word, _ in seg]
    out: list[list[str]] = []
    merged_last = [False] * len(seg)
    for i, (word, pos) in enumerate(seg):
        if (
            i >= 1
            and not merged_last[i - 1]
            and finals[i - 1]
            and finals[i]
            and (
                (_all_third(finals[i - 1]) and _all_third(finals[i]))
                if whole_words
                else (finals[i - 1][-1][-1] == "3" and finals[i][0][-1] == "3")
            )
        ):
            prev = seg[i - 1][0]
            if not (len(prev) == 2 and prev[0] == prev[1]) and len(prev) + len(word) <= 3:
                out[-1][0] += word
                merged_last[i] = True
                continue
        out.append([word, pos])
    return out


def _merge_er(seg: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    for i, (word, pos) in enumerate(seg):
        if i >= 1 and word == "儿" and seg[i - 1][0] != "#":
            out[-1][0] += word
        else:
            out.append([word, pos])
    return out


def _merge_repeats(seg: list[list[str]]) -> list[list[str]]:
    out: list[list[str]] = []
    for word, pos in seg:
        if out and word == out[-1][0]:
            out[-1][0] += word
        else:
            out.append([word, pos])
    return out


def merge_for_sandhi(seg: list[tuple[str, str]]) -> list[list[str]]:
    """Re-merge jieba's (word, pos) pairs so the sandhi rules see whole prosodic words."""
    words = [[w, p] for w, p in seg]
    words = _merge_bu(words)
    words = _merge_yi(words)
    words = _merge_repeats(words)
    words = _merge_third_tones(words, whole_words=True)
    words = _merge_third_tones(words, whole_words=False)
    return _merge_er(words)

"""Korean: g2pk2's pronunciation rules, then one phone per jamo, as GPT-SoVITS v2 reads them.

Steps (GPT-SoVITS v2's, reimplemented): Latin letters are spelt in Hangul one by one (``a`` ->
에이); g2pk2 (with MeCab-ko and its dictionary from the ``python-mecab-ko-dic`` wheel) applies
the standard pronunciation rules and reads the numbers; each syllable is split into compatibility
jamo and compound vowels into two (ㅘ -> ㅗㅏ, ㅑ -> ㅣㅏ ...); g2pk2's "을 ㄹ" slip is mended;
a text ending in a jamo gets a ".". Each character is then a phone: sentence marks map to the v2
punctuation, a space is ``空`` and anything else outside the table ``停`` (a pause).

g2pk2 asks nltk for its CMU dictionary when imported and would download it: the Latin letters
never reach g2pk2 (they are spelt first), so the engine keeps nltk from downloading and gives
g2pk2 an empty English dictionary.
"""

from __future__ import annotations

import io
import re
import threading
from contextlib import redirect_stdout
from functools import lru_cache

from synth.errors import LanguageNotInstalledError
from synth.text.symbols import MARK_TO_PUNCTUATION, SYMBOL_TO_ID

_LETTERS = {
    "a": "에이",
    "b": "비",
    "c": "시",
    "d": "디",
    "e": "이",
    "f": "에프",
    "g": "지",
    "h": "에이치",
    "i": "아이",
    "j": "제이",
    "k": "케이",
    "l": "엘",
    "m": "엠",
    "n": "엔",
    "o": "오",
    "p": "피",
    "q": "큐",
    "r": "아르",
    "s": "에스",
    "t": "티",
    "u": "유",
    "v": "브이",
    "w": "더블유",
    "x": "엑스",
    "y": "와이",
    "z": "제트",
}
_COMPOUND_VOWELS = {
    "ㅘ": "ㅗㅏ",
    "ㅙ": "ㅗㅐ",
    "ㅚ": "ㅗㅣ",
    "ㅝ": "ㅜㅓ",
    "ㅞ": "ㅜㅔ",
    "ㅟ": "ㅜㅣ",
    "ㅢ": "ㅡㅣ",
    "ㅑ": "ㅣㅏ",
    "ㅒ": "ㅣㅐ",
    "ㅕ": "ㅣㅓ",
    "ㅖ": "ㅣㅔ",
    "ㅛ": "ㅣㅗ",
    "ㅠ": "ㅣㅜ",
}
_PHONE_MARKS = {
    **MARK_TO_PUNCTUATION,
    " ": "空",
}
_lock = threading.Lock()


class _NoEnglishDictionary:
    """Stands in for nltk's cmudict corpus inside g2pk2 (Latin letters are spelt before g2pk2 runs)."""

    @staticmethod
    def dict() -> dict:
        return {}


@lru_cache(maxsize=1)
def _g2pk2():
    try:
        import mecab  # noqa: F401  (python-mecab-ko: g2pk2 would pip-install it at run time if missing)
        import nltk
    except ImportError as exc:
        raise LanguageNotInstalledError(f"Korean needs python-mecab-ko and g2pk2 ({exc}); run make setup") from None
    download = nltk.download
    nltk.download = lambda *args, **kwargs: False  # g2pk2 calls it at import when nltk has no cmudict
    try:
        with redirect_stdout(io.StringIO()):
            from g2pk2 import g2pk2 as module

            module.cmudict = _NoEnglishDictionary
            converter = module.G2p()
    except ImportError as exc:
        raise LanguageNotInstalledError(f"Korean needs the g2pk2 package ({exc}); run make setup") from None
    finally:
        nltk.download = download
    if converter.mecab is None:
        raise LanguageNotInstalledError("Korean needs MeCab-ko's dictionary (python-mecab-ko-dic); run make setup")
    return converter


def load() -> None:
    """Load g2pk2 and MeCab-ko now (raises :class:`LanguageNotInstalledError` if missing)."""
    _g2pk2()


def spell_latin(text: str) -> str:
    """Latin letters (either case) -> their Korean letter names."""
    return re.sub("[A-Za-z]", lambda m: _LETTERS[m.group(0).lower()], text)


def _to_jamo(text: str) -> str:
    from jamo import h2j, j2hcj

    text = j2hcj(h2j(text))
    return "".join(_COMPOUND_VOWELS.get(ch, ch) for ch in text)


def _mend_rieul(text: str) -> str:
    """g2pk2 reads "...을 ㄹ..." / "...를 ㄹ..." with a ㄹ where the speech has ㄴ."""
    out, i = [], 0
    while i < len(text) - 4:
        if text[i : i + 3] in ("ㅇㅡㄹ", "ㄹㅡㄹ") and text[i + 3] == " " and text[i + 4] == "ㄹ":
            out.append(text[i : i + 3] + " ㄴ")
            i += 5
        else:
            out.append(text[i])
            i += 1
    return "".join(out) + text[i:]


def g2p(text: str) -> list[str]:
    """Korean text -> phone names (jamo, ``空`` for spaces, ``停`` for what the table lacks)."""
    text = spell_latin(text)
    converter = _g2pk2()
    with _lock:
        text = converter(text)
    text = _mend_rieul(_to_jamo(text))
    if re.search(r"[\u3131-\u3163]$", text):
        text += "."
    phones = []
    for ch in text:
        ch = _PHONE_MARKS.get(ch, ch)
        phones.append(ch if ch in SYMBOL_TO_ID else "停")
    return phones

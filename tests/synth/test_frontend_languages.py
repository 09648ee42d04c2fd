"""Japanese, Korean, Cantonese and mixed text beyond the lists: splitting, bad input, the phones command."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner

from synth.__main__ import main
from synth.errors import LanguageNotInstalledError, TextError
from synth.text import japanese
from synth.text.frontend import (
    MAX_SENTENCE_CHARS,
    SUPPORTED,
    Segment,
    phones_and_bert,
    split_languages,
    split_sentences,
)
from synth.text.symbols import SYMBOL_TO_ID


def test_mixed_sentence_of_the_issue():
    """Cantonese, English and Japanese in one sentence, each run read by its own front end."""
    text = "我今天去咗Tokyo，とても楽しかった"
    assert split_languages(text, "auto_yue") == [
        Segment("yue", "我今天去咗"),
        Segment("en", "Tokyo，"),
        Segment("ja", "とても楽しかった"),
    ]
    phones = phones_and_bert(text, "auto_yue", None).phones
    assert phones[:4] == ["Yng", "Yo5", "Yg", "Yam1"] and "OW1" in phones and phones[-3:] == ["cl", "t", "a"]


def test_language_choices_decide_the_runs():
    text = "今日はNiCe天気ですね"
    assert [s.language for s in split_languages(text, "ja")] == ["ja", "en", "ja"]
    assert split_languages("안녕 hello", "all_ko")[0].language == "ko"
    assert {s.language for s in split_languages("你好，我係陳大文。", "all_yue")} == {"yue"}
    assert {s.language for s in split_languages("你好，我係陳大文。", "yue")} == {"yue"}


def test_only_mandarin_gets_bert_features():
    calls = []

    def bert(text, word2ph):
        calls.append(text)
        import torch

        return torch.ones(1024, sum(word2ph))

    seq = phones_and_bert("我爱你，愛してる，사랑해요，I love you.", "auto", bert)
    assert calls == ["我爱你,"]
    assert seq.bert.shape == (1024, len(seq.ids))
    assert seq.bert[:, :8].abs().sum() > 0 and seq.bert[:, 8:].abs().sum() == 0


@pytest.mark.parametrize(
    "text,language,clean",
    [
        ("你好😀世界👍🏽。", "zh", "你好世界。"),
        ("こんにちは🎉、元気？", "ja", "こんにちは、元気？"),
        ("안녕하세요\u200b❤️ 반가워요.", "ko", "안녕하세요 반가워요."),
        ("早晨\x07！你好\x00嗎？", "yue", "早晨！你好嗎？"),
        ("Hello\x1b world\ue000!", "en", "Hello world!"),
    ],
)
def test_emoji_and_control_characters_are_dropped_with_a_warning(text, language, clean, caplog):
    with caplog.at_level(logging.WARNING):
        assert phones_and_bert(text, language, None).ids == phones_and_bert(clean, language, None).ids
    assert "dropped characters no front end can say" in caplog.text
    assert "U+" in caplog.text or "FACE" in caplog.text or "HEART" in caplog.text or "PARTY" in caplog.text


def test_cantonese_character_without_a_reading_is_dropped_with_its_name(caplog):
    """GPT-SoVITS stops with an error on a Han character ToJyutping cannot read (乄); the engine drops it."""
    with caplog.at_level(logging.WARNING):
        assert phones_and_bert("乄你好呀。", "yue", None).ids == phones_and_bert("你好呀。", "yue", None).ids
    assert "'乄'" in caplog.text


@pytest.mark.parametrize("language", ["ja", "ko", "yue", "auto", "auto_yue", "all_ja"])
def test_a_sentence_of_only_punctuation_has_nothing_to_say(language):
    assert split_sentences("。！？……", language) == []
    with pytest.raises(TextError, match="nothing to pronounce"):
        phones_and_bert("！？。", language, None)


@pytest.mark.parametrize(
    "unit,language", [("我们今天去公园玩", "yue"), ("今日は公園で遊ぶ", "ja"), ("hello world ", "en")]
)
def test_ten_thousand_characters_without_a_full_stop_are_cut(unit, language):
    text = (unit * (10_000 // len(unit) + 1))[:10_000]
    sentences = split_sentences(text, language)
    assert all(len(s) <= MAX_SENTENCE_CHARS for s in sentences) and len(sentences) >= 10_000 // MAX_SENTENCE_CHARS
    assert "".join(sentences).replace(" ", "").rstrip("。.") == text.replace(" ", "").strip()
    phones = phones_and_bert(sentences[0], language, None).phones  # one piece is an ordinary sentence
    assert len(phones) > 100 and all(p in SYMBOL_TO_ID for p in phones)


def test_japanese_without_its_dictionary_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("OPEN_JTALK_DICT_DIR", str(tmp_path))
    with pytest.raises(LanguageNotInstalledError, match="open-jtalk-mecab-naist-jdic"):
        japanese._openjtalk.__wrapped__()  # the uncached loader: nothing is downloaded


SAMPLES = {
    "zh": "你好，欢迎光临。今天很好！",
    "all_zh": "你好，欢迎光临。今天很好！",
    "en": "Hello there. How are you?",
    "ja": "こんにちは。今日はいい天気ですね！",
    "all_ja": "こんにちは。今日はいい天気ですね！",
    "ko": "안녕하세요. 만나서 반갑습니다!",
    "all_ko": "안녕하세요. 만나서 반갑습니다!",
    "yue": "你好，我係陳大文。今日天氣好好呀！",
    "all_yue": "你好，我係陳大文。今日天氣好好呀！",
    "auto": "我今天很忙。今日はいい天気ですね！",
    "auto_yue": "我今日好busy。とても楽しかった！",
}


@pytest.mark.parametrize("language", SUPPORTED)
def test_phones_command_prints_one_sentence_a_line(language):
    result = CliRunner().invoke(main, ["phones", "--lang", language, SAMPLES[language]])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 and all(p in SYMBOL_TO_ID for line in lines for p in line.split())


def test_phones_command_refuses_an_unknown_language():
    result = CliRunner().invoke(main, ["phones", "--lang", "xx", "hello"])
    assert result.exit_code == 1 and "unknown language 'xx'" in result.output

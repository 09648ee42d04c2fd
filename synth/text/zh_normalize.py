"""Chinese text normalisation as GPT-SoVITS v2 does it (PaddleSpeech's rules): numbers, dates,
times, phone numbers, units and symbols are written out in Chinese characters.

Used by the Cantonese front end (whose readings come from the written-out characters). The rules
below are those of GPT-SoVITS's ``text/zh_normalization`` (the order of the substitutions, and
its quirks: ``2020年`` is read digit by digit, ``3.20`` as 三点二零, a time range's second half
says 半 when the *first* minute is 30), reimplemented; the one-to-one traditional -> simplified
character table is its data (``data/t2s_chars.txt``).
"""

from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

DIGITS = "零一二三四五六七八九"
_UNITS = ((8, "亿"), (4, "万"), (3, "千"), (2, "百"), (1, "十"))  # powers of ten, largest first

# Words a number may count (PaddleSpeech's list): before them 2 is read 两.
_COUNTED = (
    "(处|台|架|枚|趟|幅|平|方|堵|间|床|株|批|项|例|列|篇|栋|注|亩|封|艘|把|目|套|段|人|所|朵|匹|张|座|回|场|尾|条|个|首|"
    "阙|阵|网|炮|顶|丘|棵|只|支|袭|辆|挑|担|颗|壳|窠|曲|墙|群|腔|砣|座|客|贯|扎|捆|刀|令|打|手|罗|坡|山|岭|江|溪|钟|队|单|"
    "双|对|出|口|头|脚|板|跳|枝|件|贴|针|线|管|名|位|身|堂|课|本|页|家|户|层|丝|毫|厘|分|钱|两|斤|担|铢|石|钧|锱|忽|"
    "(千|毫|微)克|毫|厘|(公)分|分|寸|尺|丈|里|寻|常|铺|程|(千|分|厘|毫|微)米|米|撮|勺|合|升|斗|石|盘|碗|碟|叠|桶|笼|盆|"
    "盒|杯|钟|斛|锅|簋|篮|盘|桶|罐|瓶|壶|卮|盏|箩|箱|煲|啖|袋|钵|年|月|日|季|刻|时|周|天|秒|分|小时|旬|纪|岁|世|更|夜|"
    "春|夏|秋|冬|代|伏|辈|丸|泡|粒|颗|幢|堆|条|根|支|道|面|片|张|颗|块|元|(亿|千万|百万|万|千|百)|"
    "(亿|千万|百万|万|千|百|美|)元|(亿|千万|百万|万|千|百|十|)吨|(亿|千万|百万|万|千|百|)块|角|毛|分)"
)
_UNIT_WORDS = {  # replaced wherever they stand, in this order
    "cm2": "平方厘米",
    "cm²": "平方厘米",
    "cm3": "立方厘米",
    "cm³": "立方厘米",
    "cm": "厘米",
    "db": "分贝",
    "ds": "毫秒",
    "kg": "千克",
    "km": "千米",
    "m2": "平方米",
    "m²": "平方米",
    "m³": "立方米",
    "m3": "立方米",
    "ml": "毫升",
    "m": "米",
    "mm": "毫米",
    "s": "秒",
}
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹ˣʸⁿ"
_SUPERSCRIPT_VALUES = dict(zip(_SUPERSCRIPTS, "0123456789xyn", strict=True))
_OPERATORS = {"+": "加", "-": "减", "×": "乘", "÷": "除", "=": "等于"}
_SYMBOL_WORDS = [
    ("/", "每"),
    ("①", "一"),
    ("②", "二"),
    ("③", "三"),
    ("④", "四"),
    ("⑤", "五"),
    ("⑥", "六"),
    ("⑦", "七"),
    ("⑧", "八"),
    ("⑨", "九"),
    ("⑩", "十"),
    ("α", "阿尔法"),
    ("β", "贝塔"),
    ("γ", "伽玛"),
    ("Γ", "伽玛"),
    ("δ", "德尔塔"),
    ("Δ", "德尔塔"),
    ("ε", "艾普西龙"),
    ("ζ", "捷塔"),
    ("η", "依塔"),
    ("θ", "西塔"),
    ("Θ", "西塔"),
    ("ι", "艾欧塔"),
    ("κ", "喀帕"),
    ("λ", "拉姆达"),
    ("Λ", "拉姆达"),
    ("μ", "缪"),
    ("ν", "拗"),
    ("ξ", "克西"),
    ("Ξ", "克西"),
    ("ο", "欧米克伦"),
    ("π", "派"),
    ("Π", "派"),
    ("ρ", "肉"),
    ("ς", "西格玛"),
    ("Σ", "西格玛"),
    ("σ", "西格玛"),
    ("τ", "套"),
    ("υ", "宇普西龙"),
    ("φ", "服艾"),
    ("Φ", "服艾"),
    ("χ", "器"),
    ("ψ", "普赛"),
    ("Ψ", "普赛"),
    ("ω", "欧米伽"),
    ("Ω", "欧米伽"),
    ("+", "加"),
    ("-", "减"),
    ("×", "乘"),
    ("÷", "除"),
    ("=", "等"),
]
_FULL_WIDTH = {ord(c) + 0xFEE0: ord(c) for c in string.ascii_letters + string.digits} | {0x3000: ord(" ")}

_CLAUSE_END = re.compile(r"([：、，；。？！,;?!][”’]?)")
_DROPPED_BEFORE = re.compile(r"[——《》【】<>{}()（）#&@“”^_|\\]")
_DROPPED_AFTER = re.compile(r"[-——《》【】<=>{}()（）#&@“”^_|\\]")

_NUM = r"(-?)((\d+)(\.\d+)?)|(\.(\d+))"  # groups: sign, number, integer, decimals, pure decimal, its digits
_TIME = r"([0-1]?[0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?"
_RANGE_UNITS = r"(%|°C|℃|度|摄氏度|cm2|cm²|cm3|cm³|cm|db|ds|kg|km|m2|m²|m³|m3|ml|m|mm|s)"
_OPERAND = rf"((-?)((\d+)(\.\d+)?[{_SUPERSCRIPTS}]*)|(\.\d+[{_SUPERSCRIPTS}]*)|([A-Za-z][{_SUPERSCRIPTS}]*))"

RE_DATE = re.compile(r"(\d{4}|\d{2})年((0?[1-9]|1[0-2])月)?(((0?[1-9])|((1|2)[0-9])|30|31)([日号]))?")
RE_DATE2 = re.compile(r"(\d{4})([- /.])(0[1-9]|1[012])\2(0[1-9]|[12][0-9]|3[01])")
RE_TIME_RANGE = re.compile(_TIME + "(~|-)" + _TIME)
RE_TIME = re.compile(_TIME)
RE_TO_RANGE = re.compile(rf"({_NUM}){_RANGE_UNITS}[~]({_NUM}){_RANGE_UNITS}")
RE_TEMPERATURE = re.compile(r"(-?)(\d+(\.\d+)?)(°C|℃|度|摄氏度)")
RE_ARITHMETIC = re.compile(_OPERAND + r"([\+\-\×÷=])" + _OPERAND)
RE_POWER = re.compile(f"[{_SUPERSCRIPTS}]+")
RE_FRACTION = re.compile(r"(-?)(\d+)/(\d+)")
RE_PERCENT = re.compile(r"(-?)(\d+(\.\d+)?)%")
RE_MOBILE = re.compile(r"(?<!\d)((\+?86 ?)?1([38]\d|5[0-35-9]|7[678]|9[89])\d{8})(?!\d)")
RE_TELEPHONE = re.compile(r"(?<!\d)((0(10|2[1-3]|[3-9]\d{2})-?)?[1-9]\d{6,7})(?!\d)")
RE_SERVICE_NUMBER = re.compile(r"(400)(-)?\d{3}(-)?\d{4}")
RE_RANGE = re.compile(r"(?<![\d\+\-\×÷=])((-?)((\d+)(\.\d+)?))[-~]((-?)((\d+)(\.\d+)?))(?![\d\+\-\×÷=])")
RE_NEGATIVE = re.compile(r"(-)(\d+)")
RE_VERSION = re.compile(r"((\d+)(\.\d+)(\.\d+)?(\.\d+)+)")
RE_DECIMAL = re.compile(r"(-?)((\d+)(\.\d+))|(\.(\d+))")
RE_COUNT = re.compile(r"(\d+)([多余几\+])?" + _COUNTED)
RE_SERIAL = re.compile(r"\d{3}\d*")
RE_NUMBER = re.compile(_NUM)


@lru_cache(maxsize=1)
def _traditional_to_simplified() -> dict[int, int]:
    lines = (Path(__file__).parent / "data" / "t2s_chars.txt").read_text(encoding="utf-8").splitlines()
    traditional, simplified = (line for line in lines if not line.startswith("#"))
    return str.maketrans(traditional, simplified)


def digits(value: str, alt_one: bool = False) -> str:
    """Digit by digit (2024 -> 二零二四); ``alt_one`` reads 1 as 幺 (phone numbers)."""
    out = "".join(DIGITS[int(d)] for d in value)
    return out.replace("一", "幺") if alt_one else out


def _cardinal_parts(value: str) -> list[str]:
    stripped = value.lstrip("0")
    if not stripped:
        return []
    if len(stripped) == 1:
        digit = DIGITS[int(stripped)]
        return [DIGITS[0], digit] if len(stripped) < len(value) else [digit]  # 105: 一百零五
    power, unit = next((p, u) for p, u in _UNITS if p < len(stripped))
    return _cardinal_parts(value[:-power]) + [unit] + _cardinal_parts(value[-power:])


def cardinal(value: str) -> str:
    """An integer in words: 10 -> 十, 105 -> 一百零五, 20000 -> 二万."""
    if not value:
        return ""
    value = value.lstrip("0")
    if not value:
        return DIGITS[0]
    parts = _cardinal_parts(value)
    if len(parts) >= 2 and parts[0] == DIGITS[1] and parts[1] == "十":
        parts = parts[1:]
    return "".join(parts)


def number(value: str) -> str:
    """A decimal number in words: 3.14 -> 三点一四; trailing zeros of the decimals leave one 0."""
    integer, _, decimals = value.partition(".")
    if value.count(".") > 1:
        raise ValueError(f"{value!r} has more than one decimal point")
    out = cardinal(integer)
    decimals = decimals.rstrip("0") + "0" if decimals.endswith("0") else decimals
    if decimals:
        out = (out or DIGITS[0]) + "点" + digits(decimals)
    return out


def _signed(match: re.Match) -> str:
    """For :data:`RE_NUMBER`-shaped matches: sign, number, or a pure decimal like ".5"."""
    if match.group(5):
        return number(match.group(5))
    return ("负" if match.group(1) else "") + number(match.group(2))


def _date(match: re.Match) -> str:
    out = digits(match.group(1)) + "年"
    if match.group(3):
        out += cardinal(match.group(3)) + "月"
    if match.group(5):
        out += cardinal(match.group(5)) + match.group(9)
    return out


def _date2(match: re.Match) -> str:
    return f"{digits(match.group(1))}年{cardinal(match.group(3))}月{cardinal(match.group(4))}日"


def _clock_part(value: str) -> str:
    out = number(value.lstrip("0"))
    return DIGITS[0] + out if value.startswith("0") else out


def _clock(hour: str, minute: str, second: str | None, half_if: str) -> str:
    out = number(hour) + "点"
    if minute.lstrip("0"):
        out += "半" if int(half_if) == 30 else _clock_part(minute) + "分"
    if second and second.lstrip("0"):
        out += _clock_part(second) + "秒"
    return out


def _time(match: re.Match) -> str:
    out = _clock(match.group(1), match.group(2), match.group(4), match.group(2))
    if len(match.groups()) > 5:  # a range; its second half tests the first minute for 半 (as the original)
        out += "至" + _clock(match.group(6), match.group(7), match.group(9), match.group(2))
    return out


def _temperature(match: re.Match) -> str:
    unit = "摄氏度" if match.group(4) == "摄氏度" else "度"
    return ("零下" if match.group(1) else "") + number(match.group(2)) + unit


def _units(text: str) -> str:
    for word, spoken in _UNIT_WORDS.items():
        text = text.replace(word, spoken)
    return text


def _power(match: re.Match) -> str:
    return "的" + "".join(_SUPERSCRIPT_VALUES[c] for c in match.group(0)) + "次方"


def _fraction(match: re.Match) -> str:
    return ("负" if match.group(1) else "") + f"{number(match.group(3))}分之{number(match.group(2))}"


def _percent(match: re.Match) -> str:
    return ("负" if match.group(1) else "") + "百分之" + number(match.group(2))


def _phone(match: re.Match, separator: str) -> str:
    parts = match.group(0).strip("+").split() if separator == " " else match.group(0).split("-")
    return "，".join(digits(part, alt_one=True) for part in parts)


def _range(match: re.Match) -> str:
    first = RE_NUMBER.sub(_signed, match.group(1))
    second = RE_NUMBER.sub(_signed, match.group(6))
    return f"{first}到{second}"


def _version(match: re.Match) -> str:
    return "".join("点" if c == "." else number(c) for c in match.group(1))


def _count(match: re.Match) -> str:
    spoken = number(match.group(1))
    more = "多" if match.group(2) == "+" else (match.group(2) or "")
    return ("两" if spoken == "二" else spoken) + more + match.group(3)


def normalize_clause(text: str) -> str:
    """One clause (no sentence marks inside but its last) with its numbers and symbols in words."""
    text = text.translate(_traditional_to_simplified()).translate(_FULL_WIDTH)
    text = RE_DATE.sub(_date, text)
    text = RE_DATE2.sub(_date2, text)
    text = RE_TIME_RANGE.sub(_time, text)
    text = RE_TIME.sub(_time, text)
    text = RE_TO_RANGE.sub(lambda m: m.group(0).replace("~", "至"), text)
    text = RE_TEMPERATURE.sub(_temperature, text)
    text = _units(text)
    while RE_ARITHMETIC.search(text):
        text = RE_ARITHMETIC.sub(lambda m: m.group(1) + _OPERATORS[m.group(8)] + m.group(9), text)
    text = RE_POWER.sub(_power, text)
    text = RE_FRACTION.sub(_fraction, text)
    text = RE_PERCENT.sub(_percent, text)
    text = RE_MOBILE.sub(lambda m: _phone(m, " "), text)
    text = RE_TELEPHONE.sub(lambda m: _phone(m, "-"), text)
    text = RE_SERVICE_NUMBER.sub(lambda m: _phone(m, "-"), text)
    text = RE_RANGE.sub(_range, text)
    text = RE_NEGATIVE.sub(lambda m: "负" + number(m.group(2)), text)
    text = RE_VERSION.sub(_version, text)
    text = RE_DECIMAL.sub(_signed, text)
    text = RE_COUNT.sub(_count, text)
    text = RE_SERIAL.sub(lambda m: digits(m.group(0), alt_one=True), text)
    text = RE_NUMBER.sub(_signed, text)
    for symbol, spoken in _SYMBOL_WORDS:
        text = text.replace(symbol, spoken)
    return _DROPPED_AFTER.sub("", text)


def normalize(text: str) -> list[str]:
    """Text -> clauses (cut after each clause mark), each normalised by :func:`normalize_clause`."""
    text = _DROPPED_BEFORE.sub("", text.replace(" ", ""))
    text = _CLAUSE_END.sub("\\1\n", text).strip()
    return [normalize_clause(clause.strip()) for clause in re.split(r"\n+", text)]

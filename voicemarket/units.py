"""Units, read and written the same way everywhere: amounts of an asset, durations, times.

Commands, the demo and the library all format through here, so that "0.01 ETH", "30 days" and
"2026-12-03 06:25 UTC" read the same in every output.

- :class:`AssetInfo` (address, symbol, decimals) and :data:`ETH_ASSET`; which ERC-20 an address
  is, is read from the chain by ``voicemarket.market.assets.asset_info``.
- :func:`parse_amount` / :func:`format_amount`: ``"0.01 ether"``, ``"5 mUSD"`` <-> the smallest unit.
- :func:`parse_duration` / :func:`format_duration`: ``"30 days"`` <-> seconds.
- :func:`format_time`: a unix time as ``YYYY-MM-DD HH:MM UTC``.

Bad text raises :class:`~voicemarket.errors.UnitError` (a ``ValueError``) naming what is wrong
and the forms accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from voicemarket.errors import UnitError
from voicemarket.protocol import DAY, ETH

__all__ = [
    "AssetInfo",
    "ETH_ASSET",
    "parse_amount",
    "format_amount",
    "parse_duration",
    "format_duration",
    "format_time",
]


@dataclass(frozen=True)
class AssetInfo:
    """A payment asset: its address, symbol and decimals."""

    address: str
    symbol: str
    decimals: int

    @property
    def is_eth(self) -> bool:
        return int(self.address, 16) == 0


ETH_ASSET = AssetInfo(ETH, "ETH", 18)

_ETH_UNITS = {"wei": 0, "gwei": 9, "ether": 18, "eth": 18}
_DURATIONS = {
    "s": 1,
    "second": 1,
    "minute": 60,
    "min": 60,
    "hour": 3600,
    "h": 3600,
    "day": DAY,
    "d": DAY,
    "week": 7 * DAY,
    "w": 7 * DAY,
}
_DURATION_NAMES = (("week", 7 * DAY), ("day", DAY), ("hour", 3600), ("minute", 60))


def parse_amount(value: Any, what: str = "amount", *, decimals: int = 18, symbol: str | None = None) -> int:
    """Wei (an int) or ``"<decimal> ether|gwei|wei"`` (or ``"<decimal> <symbol>"`` of a token with ``decimals``)."""
    if isinstance(value, bool):
        raise UnitError(f"{what} must be an amount, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UnitError(f"{what} must not be negative, got {value}")
        return value
    match = re.fullmatch(r"\s*([0-9][0-9_]*(?:\.[0-9]+)?)\s*([A-Za-z]+)?\s*", str(value))
    units = dict(_ETH_UNITS) if symbol is None else {symbol.lower(): decimals}
    if match is None or (match[2] is not None and match[2].lower() not in units):
        known = ", ".join(sorted(units))
        raise UnitError(
            f"{what} must be a whole number of the smallest unit or '<number> <unit>' ({known}), got {value!r}"
        )
    try:
        number = Decimal(match[1].replace("_", ""))
    except InvalidOperation:
        raise UnitError(f"{what}: {value!r} is not a number") from None
    scaled = number * (10 ** (units[match[2].lower()] if match[2] else 0))
    if scaled != int(scaled):
        raise UnitError(f"{what} {value!r} is finer than the asset's smallest unit")
    return int(scaled)


def format_amount(amount: int, asset: AssetInfo) -> str:
    """``0.01 ETH``, ``5 mUSD``: the amount in whole units, without trailing zeros."""
    if asset.decimals == 0:
        return f"{amount} {asset.symbol}"
    text = format(Decimal(int(amount)).scaleb(-asset.decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {asset.symbol}"


def parse_duration(value: Any, what: str = "duration") -> int:
    """Seconds (an int) or ``"<n> seconds|minutes|hours|days|weeks"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+)\s*([A-Za-z]+?)s?\s*", str(value))
    if match is None or match[2].lower() not in _DURATIONS:
        raise UnitError(f"{what} must be seconds or '<n> minutes|hours|days|weeks', got {value!r}")
    return int(match[1]) * _DURATIONS[match[2].lower()]


def format_duration(seconds: int) -> str:
    """``30 days``, ``1 week``, ``90 minutes``; ``45 s`` when no larger unit divides it."""
    seconds = int(seconds)
    for unit, size in _DURATION_NAMES:
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} s"


def format_time(timestamp: int, *, seconds: bool = False) -> str:
    """``2026-12-03 06:25 UTC`` (``06:25:31`` with ``seconds``, for moments minutes away); ``-`` for 0 (never)."""
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(int(timestamp), UTC).strftime(f"%Y-%m-%d %H:%M{':%S' if seconds else ''} UTC")

"""ABI helpers shared by the oracle's chain clients: decoded values as plain Python, and the custom
errors of a set of contracts named from a revert's data (``Licensing_RenewalAllowanceTooLow(...)``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from eth_utils.abi import get_abi_input_types


def plain(item: dict[str, Any], value: Any) -> Any:
    """An ABI-decoded value with its structs as dicts by field name (addresses checksummed)."""
    kind = item["type"]
    if kind == "tuple":
        return {c["name"]: plain(c, v) for c, v in zip(item["components"], value, strict=True)}
    if kind == "tuple[]":
        element = {**item, "type": "tuple"}
        return [plain(element, v) for v in value]
    if kind == "address":
        return to_checksum_address(value)
    return value


class ErrorNames:
    """The custom errors of the given contract ABIs, by selector."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[str, dict[str, Any]] = {}
        for abi in abis:
            for entry in abi:
                if entry.get("type") == "error":
                    signature = f"{entry['name']}({','.join(get_abi_input_types(entry))})"
                    self._errors["0x" + function_signature_to_4byte_selector(signature).hex()] = entry

    def describe(self, data: str) -> str | None:
        """``Name(arg=value, ...)`` of the revert data ``0x...``; None when no known error has its selector."""
        entry = self._errors.get(data[:10])
        if entry is None:
            return None
        values = abi_decode(get_abi_input_types(entry), bytes.fromhex(data[10:]))
        args = ", ".join(f"{i['name']}={plain(i, v)}" for i, v in zip(entry["inputs"], values, strict=True))
        return f"{entry['name']}({args})"

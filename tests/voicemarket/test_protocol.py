"""voicemarket.protocol against the contracts: every enum, bit set and shared constant, as compiled.

The enums' member names are not in an ABI (it says ``uint8``), so the test asks the project's own
compiler (``bin/solc``, the one ``ape compile`` and forge use) for the syntax trees of the
interfaces and ``Protocol.sol``, and compares member by member, in order. The compiled ABI is
checked too: the functions that take or return these enums do so as ``enum <Interface>.<Name>``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from voicemarket.protocol import (
    BPS,
    RENEWAL_LEAD,
    Action,
    FailReason,
    Language,
    LocalUseStatus,
    Purpose,
    RequestStatus,
    Tier,
    renewal_lead,
    share,
    split_revenue,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (
    "contracts/interfaces/ILicenseManager.sol",
    "contracts/interfaces/ISynthesisRouter.sol",
    "contracts/interfaces/IKeyDelivery.sol",
    "contracts/libraries/Protocol.sol",
)
ENUMS = {
    "ILicenseManager.Tier": Tier,
    "ISynthesisRouter.RequestStatus": RequestStatus,
    "ISynthesisRouter.FailReason": FailReason,
    "IKeyDelivery.Status": LocalUseStatus,
}
UNITS = {None: 1, "seconds": 1, "minutes": 60, "hours": 3600, "days": 86_400, "weeks": 604_800}


@pytest.fixture(scope="module")
def solidity() -> dict:
    """``{"enums": {canonical name: [members]}, "constants": {name: value}}`` from the sources' ASTs."""
    standard_json = {
        "language": "Solidity",
        "sources": {path: {"urls": [path]} for path in SOURCES},
        "settings": {
            "outputSelection": {"*": {"": ["ast"]}},
            "remappings": ["@openzeppelin/=node_modules/@openzeppelin/"],
        },
    }
    run = subprocess.run(
        [str(ROOT / "bin/solc"), "--base-path", ".", "--include-path", "node_modules", "--standard-json"],
        input=json.dumps(standard_json),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    output = json.loads(run.stdout)
    assert not [e for e in output.get("errors", []) if e["severity"] == "error"], output["errors"]
    found: dict = {"enums": {}, "constants": {}}

    def walk(node) -> None:  # noqa: ANN001 - JSON
        if isinstance(node, dict):
            if node.get("nodeType") == "EnumDefinition":
                found["enums"][node["canonicalName"]] = [m["name"] for m in node["members"]]
            if node.get("nodeType") == "VariableDeclaration" and node.get("constant"):
                found["constants"][node["name"]] = _value(node["value"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for source in output["sources"].values():
        walk(source["ast"])
    return found


def _value(expression: dict) -> int:
    """A constant's value: a number literal (with a time unit) or ``a << b``."""
    if expression["nodeType"] == "Literal":
        return int(expression["value"].replace("_", ""), 0) * UNITS[expression.get("subdenomination")]
    if expression["nodeType"] == "BinaryOperation" and expression["operator"] == "<<":
        return _value(expression["leftExpression"]) << _value(expression["rightExpression"])
    raise AssertionError(f"the test cannot read the constant expression {expression['nodeType']}")


def _solidity_name(member_name: str) -> str:
    return "".join(part.capitalize() for part in member_name.split("_"))


@pytest.mark.parametrize("canonical", sorted(ENUMS))
def test_each_enum_is_the_contracts_member_for_member(solidity, canonical):
    python = ENUMS[canonical]
    assert solidity["enums"][canonical] == [_solidity_name(m.name) for m in python]
    assert [int(m) for m in python] == list(range(len(python)))


def test_the_contracts_declare_no_enum_python_does_not_know(solidity):
    assert set(solidity["enums"]) == set(ENUMS)


def test_bit_sets_and_constants_are_the_contracts(solidity):
    constants = solidity["constants"]
    assert Action.all_bits() == constants["ALL_ACTIONS"]
    assert Action.TEXT_TO_SPEECH == constants["ACTION_TEXT_TO_SPEECH"]
    assert Purpose.all_bits() == constants["ALL_PURPOSES"]
    assert sum(1 << lang for lang in Language) == constants["ALL_LANGUAGES"]
    assert BPS == constants["BPS"]
    assert RENEWAL_LEAD == constants["RENEWAL_LEAD"]


def test_the_compiled_abi_passes_these_enums():
    manifest = json.loads((ROOT / ".build/__local__.json").read_text())
    internal_types = {
        entry["internalType"]
        for contract in ("ILicenseManager", "ISynthesisRouter", "IKeyDelivery")
        for item in manifest["contractTypes"][contract]["abi"]
        for entry in _entries(item)
        if entry.get("internalType", "").startswith("enum ")
    }
    assert internal_types == {f"enum {name}" for name in ENUMS}


def _entries(item: dict):
    """Every parameter, return value and struct component of an ABI item."""
    stack = list(item.get("inputs", [])) + list(item.get("outputs", []))
    while stack:
        entry = stack.pop()
        yield entry
        stack.extend(entry.get("components", []))


def test_labels_and_iris_are_unique_and_parse_back():
    for kind in (Action, Purpose):
        assert len({m.label for m in kind}) == len({m.iri for m in kind}) == len(kind)
        for member in kind:
            assert kind.parse(member.label) is member and kind.parse(member.iri) is member
        assert kind.bits(m.label for m in kind) == kind.all_bits()
    for tier in Tier:
        assert Tier.parse(tier.label) is tier and Tier.parse(tier.iri) is tier and Tier.parse(int(tier)) is tier
    assert Tier.parse("pay_per_use") is Tier.parse("payperuse") is Tier.PAY_PER_USE
    assert [lang.label for lang in Language] == ["zh", "en", "ja", "ko", "yue"]
    assert Language.members_of(0b10011) == [Language.ZH, Language.EN, Language.YUE]


def test_unknown_names_say_what_is_known():
    with pytest.raises(ValueError, match="unknown tier 'rental': use one of buyout, subscription, pay-per-use"):
        Tier.parse("rental")
    with pytest.raises(ValueError, match=r"unknown action 'sing'.*textToSpeech"):
        Action.parse("sing")
    with pytest.raises(ValueError, match=r"unknown language 'fr'.*yue"):
        Language.parse("fr")


def test_the_split_is_the_ledgers_floor_per_payee_and_the_rest_to_the_creator():
    assert share(999, 2_500) == 249 and renewal_lead(3_600) == 3_600 and renewal_lead(10**9) == RENEWAL_LEAD
    split = split_revenue(1_000_003, "creator", [("voice", 3_333), ("co", 1_111)])
    assert split == {"voice": 333_300, "co": 111_100, "creator": 1_000_003 - 333_300 - 111_100}
    # a creator who is also a payee gets both parts
    assert split_revenue(100, "c", [("c", 5_000)]) == {"c": 100}

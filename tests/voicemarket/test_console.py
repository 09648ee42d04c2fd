"""Every custom error the contracts can revert with has advice that says what to do, with its arguments."""

from __future__ import annotations

import string

import pytest

from oracle.router import load_abi
from voicemarket.cli.console import REVERT_ADVICE, TIME_ARGUMENTS, explain_revert

CONTRACTS = ("VoiceModelRegistry", "LicenseManager", "OfferBook", "SynthesisRouter")
INTERNAL = {
    "Ledger_EthTransferFailed",  # a payee contract refused ETH: its credit stays (withdraw never reverts with it)
    "Ledger_ZeroRecipient",  # the treasurer's own call with no recipient
    "Registry_EmptyCid",
    "Registry_EmptyDigest",
    "Registry_UnsupportedCodec",
    "Registry_BadLanguages",
    "Registry_ZeroVoiceOwner",
    "Registry_BadCoCreator",  # mint builds the registration: never sent malformed
    "Router_BadPublicKeyLength",
    "Router_CommitmentMismatch",
    "Router_EmptyBatch",
    "Router_EmptyInput",
    "Router_EmptyOutput",
    "Router_InputTooLong",
    "Router_NonZeroReservedParams",
    "Router_DeadlineOutOfRange",
    "Router_NotAssignedOperator",
    "Router_UnknownRequest",
    "Router_StakeBelowMinimum",
    "Router_UnbondingDelayTooShort",  # built or checked by the library first
}


def _errors() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for contract in CONTRACTS:
        for item in load_abi(contract):
            if item["type"] == "error":
                found[item["name"]] = {i["name"] for i in item["inputs"]}
    return found


def test_every_error_a_user_can_cause_has_advice_naming_only_its_own_arguments():
    errors = _errors()
    domain = {name: args for name, args in errors.items() if name.split("_")[0] in ("Licensing", "Registry", "Router")}
    missing = sorted(set(domain) - set(REVERT_ADVICE) - INTERNAL)
    assert not missing, f"no advice for {missing}"
    for name, advice in REVERT_ADVICE.items():
        if name not in errors:
            continue  # OpenZeppelin's (ERC20..., EnforcedPause) come from other ABIs
        fields = {field for _, field, _, _ in string.Formatter().parse(advice) if field}
        assert fields <= errors[name], f"{name}: advice names {fields - errors[name]}, not among its arguments"


class _Revert(Exception):
    def __init__(self, name: str, inputs: dict) -> None:
        super().__init__(name)
        self.name, self.inputs = name, inputs


@pytest.mark.parametrize(
    ("name", "inputs", "expected"),
    [
        (
            "Licensing_BeyondNotice",
            {"end": 1_800_000_000, "latest": 1_790_000_000},
            "that would pay the subscription until 2027-01-15 08:00 UTC, further ahead than the retirement notice "
            "allows (2026-09-21 14:13 UTC): buy or renew fewer periods now, and renew again later",
        ),
        (
            "Registry_VoiceOwnerChanged",
            {"parentId": 7, "parentVoiceOwner": "0xA", "voiceOwner": "0xB"},
            "a new version keeps its parent's voice owner (0xA), not 0xB: register it with that voice owner "
            "(who consents to it again)",
        ),
        ("Router_SomethingNew", {"a": 1}, "the contract refused: Router_SomethingNew(a=1)"),
    ],
)
def test_advice_fills_in_the_arguments_with_times_as_dates(name, inputs, expected):
    assert explain_revert(_Revert(name, inputs)) == expected
    assert {"end", "latest", "expiresAt", "dueAt", "validUntil"} <= TIME_ARGUMENTS

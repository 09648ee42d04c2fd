"""ODRL 2.2 licence documents for on-chain offers, and their ``policyHash``.

Implements docs/licence-terms.md: the document is a pure function of the offer's fields
plus (chain id, registry, owner, model id); its RFC 8785 canonical bytes hash (keccak256)
to the offer's ``policyHash``; parsing a document gives the fields back, and a document
that the contract cannot express is refused with :class:`~voicemarket.errors.LicenceError`.

The document, with every choice the spec leaves open fixed here::

    {
      "@context": ["http://www.w3.org/ns/odrl.jsonld", {"vm": "https://voicemarket.dev/ns/odrl#"}],
      "@type": "Offer",
      "uid": "urn:vm:policy:<keccak256 of the canonical document without uid, hex>",
      "profile": "https://voicemarket.dev/ns/odrl",
      "assigner": "did:pkh:eip155:<chainId>:<owner>",
      "target": "eip155:<chainId>/erc721:<registry>/<modelId>",
      "vm:maxLicenses": <uint32, 0 = unlimited>,
      "vm:transferable": <bool>,
      "permission": [ one per permitted action, in bit order:
        {"action": "<action IRI>",
         "constraint": [ only those that apply, in this order:
            {"leftOperand": "count", "operator": "lteq", "rightOperand": <maxUses>},
            {"leftOperand": "dateTime", "operator": "lteq",
             "rightOperand": {"@value": "<validUntil, UTC, YYYY-MM-DDTHH:MM:SSZ>", "@type": "xsd:dateTime"}},
            {"leftOperand": "spatial", "operator": "isAnyOf", "rightOperand": ["DE", "FR", ...]},
            {"leftOperand": "purpose", "operator": "isAnyOf", "rightOperand": [{"@id": "vm:purpose/<name>"}, ...]}],
         "duty": [
            {"action": [{"rdf:value": {"@id": "odrl:compensate"},
                         "refinement": [
               {"leftOperand": "payAmount", "operator": "eq",
                "rightOperand": {"@value": "<price>", "@type": "xsd:integer"}, "unit": "<asset, CAIP-19>"},
               {"leftOperand": "vm:tier", "operator": "eq",
                "rightOperand": {"@id": "vm:tier/<buyout|subscription|payPerUse>"}},
               {"leftOperand": "vm:period", "operator": "eq", "rightOperand": <seconds>, "unit": {"@id": "vm:second"}}
                   (Subscription only),
               {"leftOperand": "vm:packSize", "operator": "eq", "rightOperand": <uses per pack>}
                   (PayPerUse with packs only)]}]},
            {"action": "attribute"}  (when attribution is required)]}],
      "prohibition": [{"action": "<action IRI>"}, ...]  (omitted when none)
    }

Prices are integers in the asset's smallest unit (wei), written as xsd:integer strings so
that no JSON number exceeds 2**53. The asset is ``eip155:<chainId>/slip44:60`` for ETH and
``eip155:<chainId>/erc20:<address>`` for a token. Addresses are EIP-55 checksummed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address

from voicemarket.content.canonical import canonical_json
from voicemarket.errors import PolicyError
from voicemarket.protocol import Action, Purpose, Tier

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
VM = "https://voicemarket.dev/ns/odrl#"
PROFILE = "https://voicemarket.dev/ns/odrl"
CONTEXT = [ODRL_CONTEXT, {"vm": VM}]
ZERO_ADDRESS = "0x" + "00" * 20
MAX_DATETIME = 253402300799  # 9999-12-31T23:59:59Z, the last second xsd:dateTime's four-digit years reach

_ACTION_BITS = {action.iri: action for action in Action}
_PURPOSE_BITS = {purpose.iri: purpose for purpose in Purpose}
_TERRITORY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class PolicySubject:
    """What the document is about, besides the offer's terms."""

    chain_id: int
    registry: str
    owner: str
    model_id: int


@dataclass(frozen=True)
class OfferTerms:
    """The on-chain offer fields (docs/licence-terms.md), without modelId and policyHash."""

    tier: Tier
    price: int
    asset: str = ZERO_ADDRESS
    period: int = 0
    max_uses: int = 0
    pack_size: int = 0
    valid_until: int = 0
    max_licenses: int = 0
    permissions: int = 1
    prohibitions: int = 0
    attribution: bool = False
    transferable: bool = False
    territories: bytes = b""
    purposes: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.asset, str) and is_address(self.asset):
            object.__setattr__(self, "asset", to_checksum_address(self.asset))
        if isinstance(self.territories, bytearray):
            object.__setattr__(self, "territories", bytes(self.territories))

    def as_contract_fields(self) -> dict[str, Any]:
        """The fields under their Solidity names (``territories`` as bytes)."""
        return {
            "tier": int(self.tier),
            "asset": self.asset,
            "price": self.price,
            "period": self.period,
            "maxUses": self.max_uses,
            "packSize": self.pack_size,
            "validUntil": self.valid_until,
            "maxLicenses": self.max_licenses,
            "permissions": self.permissions,
            "prohibitions": self.prohibitions,
            "attribution": self.attribution,
            "transferable": self.transferable,
            "territories": self.territories,
            "purposes": self.purposes,
        }


CONTRACT_FIELDS = (
    "modelId",
    "tier",
    "asset",
    "price",
    "period",
    "maxUses",
    "packSize",
    "validUntil",
    "maxLicenses",
    "permissions",
    "prohibitions",
    "attribution",
    "transferable",
    "purposes",
    "policyHash",
)
"""ILicenseManager.OfferTerms, in its declaration order (territories travel beside it)."""


def contract_offer_terms(terms: OfferTerms, model_id: int, policy_hash_: bytes) -> tuple:
    """The ``ILicenseManager.OfferTerms`` tuple for the offer book's ``publishOffer(terms, territories)``."""
    fields = {**terms.as_contract_fields(), "modelId": model_id, "policyHash": policy_hash_}
    return tuple(fields[name] for name in CONTRACT_FIELDS)


def terms_from_contract(onchain: Any, territories: bytes = b"") -> tuple[OfferTerms, int, bytes]:
    """(terms, modelId, policyHash) from an ``OfferTerms`` struct read from the chain.

    ``onchain``: the struct as Ape/web3 return it (attribute or key access, or a tuple in
    declaration order); ``territories``: the bytes from the offer book's ``OfferPublished`` event.
    Regenerate the document with ``build_policy(terms, PolicySubject(chain_id, registry,
    owner, model_id))`` and compare its :func:`policy_hash` with the returned one.
    """
    if isinstance(onchain, (tuple, list)):
        values = dict(zip(CONTRACT_FIELDS, onchain, strict=True))
    elif isinstance(onchain, Mapping):
        values = {name: onchain[name] for name in CONTRACT_FIELDS}
    else:
        values = {name: getattr(onchain, name) for name in CONTRACT_FIELDS}
    terms = OfferTerms(
        tier=Tier(int(values["tier"])),
        price=int(values["price"]),
        asset=str(values["asset"]),
        period=int(values["period"]),
        max_uses=int(values["maxUses"]),
        pack_size=int(values["packSize"]),
        valid_until=int(values["validUntil"]),
        max_licenses=int(values["maxLicenses"]),
        permissions=int(values["permissions"]),
        prohibitions=int(values["prohibitions"]),
        attribution=bool(values["attribution"]),
        transferable=bool(values["transferable"]),
        territories=bytes(territories),
        purposes=int(values["purposes"]),
    )
    return terms, int(values["modelId"]), bytes(values["policyHash"])


def action_bits(*names: str) -> int:
    """The bit set of the named actions (IRIs or labels): ``action_bits("vm:textToSpeech", "commercialize") == 3``."""
    try:
        return Action.bits(names)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None


def purpose_bits(*names: str) -> int:
    """The bit set of the named purposes (labels or IRIs): ``purpose_bits("audiobooks") == 2``."""
    try:
        return Purpose.bits(names)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None


def territories_bytes(*codes: str) -> bytes:
    """ISO-3166-1 alpha-2 codes as the contract's ``territories`` bytes."""
    return "".join(codes).encode("ascii")


# ---------------------------------------------------------------- validation


def _uint(value: Any, bits: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise PolicyError(f"{name} must be an integer from 0 to 2**{bits} - 1 (uint{bits}), got {value!r}")
    return value


def _address(value: Any, name: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise PolicyError(f"{name} must be an Ethereum address, got {value!r}")
    return to_checksum_address(value)


def _territory_codes(territories: bytes) -> list[str]:
    if not isinstance(territories, (bytes, bytearray)) or len(territories) % 2:
        raise PolicyError("territories must be bytes of concatenated two-letter codes (2 bytes each)")
    codes = [territories[i : i + 2].decode("ascii", "replace") for i in range(0, len(territories), 2)]
    for code in codes:
        if not _TERRITORY.match(code):
            raise PolicyError(f"territory {code!r} is not an upper-case ISO-3166-1 alpha-2 code")
    if len(set(codes)) != len(codes):
        raise PolicyError(f"territories repeat a code: {codes}")
    return codes


def check_terms(terms: OfferTerms, subject: PolicySubject) -> None:
    """Refuse terms the contract (or the document) cannot express, saying which field and why."""
    if not isinstance(terms.tier, int) or terms.tier not in tuple(Tier):
        raise PolicyError(f"tier must be 0 (Buyout), 1 (Subscription) or 2 (PayPerUse), got {terms.tier!r}")
    tier = Tier(terms.tier)
    _uint(terms.price, 128, "price")
    _uint(terms.period, 32, "period")
    _uint(terms.max_uses, 32, "maxUses")
    _uint(terms.pack_size, 32, "packSize")
    _uint(terms.valid_until, 64, "validUntil")
    _uint(terms.max_licenses, 32, "maxLicenses")
    _uint(terms.permissions, 16, "permissions")
    _uint(terms.prohibitions, 16, "prohibitions")
    _uint(terms.purposes, 32, "purposes")
    _address(terms.asset, "asset")
    if tier is Tier.SUBSCRIPTION and terms.period == 0:
        raise PolicyError("a Subscription needs a period in seconds (> 0)")
    if tier is not Tier.SUBSCRIPTION and terms.period != 0:
        raise PolicyError(f"period is for Subscriptions only; a {tier.name.title()} offer has period 0")
    if tier is not Tier.PAY_PER_USE and terms.pack_size != 0:
        raise PolicyError("packSize is for PayPerUse offers only")
    if terms.valid_until > MAX_DATETIME:
        raise PolicyError("validUntil is past 9999-12-31T23:59:59Z and cannot be written as an xsd:dateTime")
    known_actions = Action.all_bits()
    for name, bits in (("permissions", terms.permissions), ("prohibitions", terms.prohibitions)):
        if bits & ~known_actions:
            raise PolicyError(
                f"{name} has unknown action bits {bits & ~known_actions:#x}; known bits are 0-{len(Action) - 1}"
            )
    if terms.permissions == 0:
        raise PolicyError("an offer must permit at least one action (for synthesis: vm:textToSpeech, bit 0)")
    if terms.permissions & terms.prohibitions:
        overlap = [action.iri for action in Action.members_of(terms.permissions & terms.prohibitions)]
        raise PolicyError(f"an action cannot be both permitted and prohibited: {', '.join(overlap)}")
    if terms.purposes & ~Purpose.all_bits():
        raise PolicyError(f"purposes has unknown bits; known bits are 0-{len(Purpose) - 1}")
    if not isinstance(terms.attribution, bool) or not isinstance(terms.transferable, bool):
        raise PolicyError("attribution and transferable are booleans")
    _territory_codes(terms.territories)
    if isinstance(subject.chain_id, bool) or not isinstance(subject.chain_id, int) or subject.chain_id <= 0:
        raise PolicyError(f"chain id must be a positive integer, got {subject.chain_id!r}")
    _address(subject.registry, "registry")
    _address(subject.owner, "owner")
    _uint(subject.model_id, 256, "modelId")


# ---------------------------------------------------------------- building


def _asset_iri(chain_id: int, asset: str) -> str:
    if int(asset, 16) == 0:
        return f"eip155:{chain_id}/slip44:60"
    return f"eip155:{chain_id}/erc20:{to_checksum_address(asset)}"


def _datetime(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_policy(terms: OfferTerms, subject: PolicySubject) -> dict[str, Any]:
    """The offer's ODRL document (a JSON object), after :func:`check_terms`."""
    check_terms(terms, subject)
    tier = Tier(terms.tier)
    constraints: list[dict[str, Any]] = []
    if terms.max_uses:
        constraints.append({"leftOperand": "count", "operator": "lteq", "rightOperand": terms.max_uses})
    if terms.valid_until:
        constraints.append(
            {
                "leftOperand": "dateTime",
                "operator": "lteq",
                "rightOperand": {"@value": _datetime(terms.valid_until), "@type": "xsd:dateTime"},
            }
        )
    if terms.territories:
        constraints.append(
            {"leftOperand": "spatial", "operator": "isAnyOf", "rightOperand": _territory_codes(terms.territories)}
        )
    if terms.purposes:
        constraints.append(
            {
                "leftOperand": "purpose",
                "operator": "isAnyOf",
                "rightOperand": [{"@id": purpose.iri} for purpose in Purpose.members_of(terms.purposes)],
            }
        )
    refinement: list[dict[str, Any]] = [
        {
            "leftOperand": "payAmount",
            "operator": "eq",
            "rightOperand": {"@value": str(terms.price), "@type": "xsd:integer"},
            "unit": _asset_iri(subject.chain_id, terms.asset),
        },
        {"leftOperand": "vm:tier", "operator": "eq", "rightOperand": {"@id": tier.iri}},
    ]
    if tier is Tier.SUBSCRIPTION:
        refinement.append(
            {"leftOperand": "vm:period", "operator": "eq", "rightOperand": terms.period, "unit": {"@id": "vm:second"}}
        )
    if terms.pack_size:
        refinement.append({"leftOperand": "vm:packSize", "operator": "eq", "rightOperand": terms.pack_size})
    duties: list[dict[str, Any]] = [{"action": [{"rdf:value": {"@id": "odrl:compensate"}, "refinement": refinement}]}]
    if terms.attribution:
        duties.append({"action": "attribute"})

    permissions = []
    for action in Action.members_of(terms.permissions):
        permission: dict[str, Any] = {"action": action.iri}
        if constraints:
            permission["constraint"] = constraints
        permission["duty"] = duties
        permissions.append(permission)
    document: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "Offer",
        "profile": PROFILE,
        "assigner": f"did:pkh:eip155:{subject.chain_id}:{to_checksum_address(subject.owner)}",
        "target": f"eip155:{subject.chain_id}/erc721:{to_checksum_address(subject.registry)}/{subject.model_id}",
        "vm:maxLicenses": terms.max_licenses,
        "vm:transferable": terms.transferable,
        "permission": permissions,
    }
    if terms.prohibitions:
        document["prohibition"] = [{"action": a.iri} for a in Action.members_of(terms.prohibitions)]
    # JSON round trip: a plain tree with no shared sub-objects, safe for callers to mutate.
    document = json.loads(json.dumps(document))
    document["uid"] = "urn:vm:policy:" + keccak(canonical_json(document)).hex()
    return document


def policy_bytes(document: Mapping[str, Any]) -> bytes:
    """The canonical (RFC 8785) UTF-8 bytes of a document."""
    return canonical_json(document)


def policy_hash(document: Mapping[str, Any]) -> bytes:
    """``policyHash``: keccak256 of the canonical bytes (32 bytes)."""
    return keccak(policy_bytes(document))


def offer_policy_hash(terms: OfferTerms, subject: PolicySubject) -> bytes:
    return policy_hash(build_policy(terms, subject))


# ---------------------------------------------------------------- parsing


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise PolicyError(message)


def _keys(obj: Any, allowed: set[str], required: set[str], where: str) -> None:
    _expect(isinstance(obj, dict), f"{where} must be a JSON object")
    extra = set(obj) - allowed
    _expect(not extra, f"{where} has {', '.join(sorted(extra))}, which the on-chain offer cannot express")
    missing = required - set(obj)
    _expect(not missing, f"{where} lacks {', '.join(sorted(missing))}")


def _int_value(value: Any, where: str) -> int:
    _expect(isinstance(value, int) and not isinstance(value, bool), f"{where} must be an integer")
    return value


def parse_policy(document: Mapping[str, Any] | bytes | str) -> tuple[OfferTerms, PolicySubject]:
    """The offer fields and subject of a document; refuses anything the contract cannot express.

    After the structural checks (each with its own message), the document is rebuilt from
    the fields it yielded and must be byte-for-byte the canonical one, so nothing the
    fields do not capture can hide in it.
    """
    if isinstance(document, (bytes, str)):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise PolicyError(f"the licence document is not JSON: {exc}") from None
    doc = dict(document)  # type: ignore[arg-type]
    _keys(
        doc,
        {
            "@context",
            "@type",
            "uid",
            "profile",
            "assigner",
            "target",
            "vm:maxLicenses",
            "vm:transferable",
            "permission",
            "prohibition",
            "obligation",
        },
        {"@context", "@type", "uid", "assigner", "target", "permission"},
        "the document",
    )
    _expect(doc["@type"] == "Offer", f"the policy type must be Offer, got {doc['@type']!r}")
    _expect(doc["@context"] == CONTEXT, "the @context must be ODRL's plus the vm prefix")
    _expect("obligation" not in doc, "policy-level obligations cannot be expressed; duties go inside permissions")

    assigner = re.fullmatch(r"did:pkh:eip155:(\d+):(0x[0-9a-fA-F]{40})", str(doc["assigner"]))
    _expect(assigner is not None, f"assigner must be did:pkh:eip155:<chainId>:<address>, got {doc['assigner']!r}")
    target = re.fullmatch(r"eip155:(\d+)/erc721:(0x[0-9a-fA-F]{40})/(\d+)", str(doc["target"]))
    _expect(target is not None, f"target must be eip155:<chainId>/erc721:<registry>/<modelId>, got {doc['target']!r}")
    _expect(assigner[1] == target[1], "assigner and target name different chains")
    subject = PolicySubject(int(target[1]), target[2], assigner[2], int(target[3]))

    permissions = doc["permission"]
    _expect(isinstance(permissions, list) and permissions, "an offer must permit at least one action")
    permitted = 0
    shared: tuple[str, str] | None = None
    for index, permission in enumerate(permissions):
        where = f"permission {index}"
        _keys(permission, {"action", "constraint", "duty"}, {"action", "duty"}, where)
        action = permission["action"]
        _expect(
            isinstance(action, str) and action in _ACTION_BITS,
            f"{where}: unknown action {action!r}; the contract knows {', '.join(_ACTION_BITS)}",
        )
        _expect(not permitted & _ACTION_BITS[action], f"{where}: {action} is permitted twice")
        permitted |= _ACTION_BITS[action]
        rest = (
            json.dumps(permission.get("constraint"), sort_keys=True),
            json.dumps(permission["duty"], sort_keys=True),
        )
        _expect(
            shared is None or rest == shared,
            f"{where}: its constraints or duties differ from the first permission's; the contract applies one "
            "set to every permitted action",
        )
        shared = rest

    prohibited = 0
    for index, prohibition in enumerate(doc.get("prohibition", [])):
        _keys(prohibition, {"action"}, {"action"}, f"prohibition {index}")
        action = prohibition["action"]
        _expect(
            isinstance(action, str) and action in _ACTION_BITS,
            f"prohibition {index}: unknown action {action!r}; the contract knows {', '.join(_ACTION_BITS)}",
        )
        prohibited |= _ACTION_BITS[action]
    _expect(not permitted & prohibited, "an action is both permitted and prohibited")

    first = permissions[0]
    fields: dict[str, Any] = {"permissions": permitted, "prohibitions": prohibited}
    for index, constraint in enumerate(first.get("constraint", [])):
        where = f"constraint {index}"
        _keys(
            constraint, {"leftOperand", "operator", "rightOperand"}, {"leftOperand", "operator", "rightOperand"}, where
        )
        left, operator, right = constraint["leftOperand"], constraint["operator"], constraint["rightOperand"]
        if left == "count":
            _expect(operator == "lteq", f"{where}: count takes operator lteq")
            fields["max_uses"] = _int_value(right, f"{where}: count")
        elif left == "dateTime":
            _expect(operator == "lteq", f"{where}: dateTime takes operator lteq (valid until)")
            _expect(isinstance(right, dict) and right.get("@type") == "xsd:dateTime", f"{where}: an xsd:dateTime value")
            try:
                moment = datetime.strptime(right["@value"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except (KeyError, TypeError, ValueError):
                raise PolicyError(f"{where}: dateTime must be YYYY-MM-DDTHH:MM:SSZ (UTC, whole seconds)") from None
            fields["valid_until"] = int(moment.timestamp())
        elif left == "spatial":
            _expect(operator == "isAnyOf", f"{where}: spatial takes operator isAnyOf")
            _expect(isinstance(right, list) and all(isinstance(c, str) for c in right), f"{where}: a list of codes")
            fields["territories"] = "".join(right).encode("ascii", "replace")
        elif left == "purpose":
            _expect(operator == "isAnyOf", f"{where}: purpose takes operator isAnyOf")
            _expect(isinstance(right, list), f"{where}: a list of purposes")
            bits = 0
            for item in right:
                iri = item.get("@id") if isinstance(item, dict) else None
                _expect(iri in _PURPOSE_BITS, f"{where}: unknown purpose {item!r}")
                bits |= _PURPOSE_BITS[iri]
            fields["purposes"] = bits
        else:
            raise PolicyError(
                f"{where}: constraint {left!r} cannot be expressed on-chain (known: count, dateTime, spatial, purpose)"
            )

    duties = first["duty"]
    _expect(isinstance(duties, list) and duties, "each permission needs its compensate duty")
    compensate = None
    for index, duty in enumerate(duties):
        _keys(duty, {"action"}, {"action"}, f"duty {index}")
        if duty["action"] == "attribute":
            fields["attribution"] = True
        elif (
            isinstance(duty["action"], list)
            and len(duty["action"]) == 1
            and isinstance(duty["action"][0], dict)
            and duty["action"][0].get("rdf:value") == {"@id": "odrl:compensate"}
        ):
            _expect(compensate is None, "only one compensate duty can be expressed")
            compensate = duty["action"][0]
        else:
            raise PolicyError(f"duty {index}: {duty['action']!r} cannot be expressed (known: compensate, attribute)")
    _expect(compensate is not None, "each permission needs its compensate duty (price, asset, tier)")
    _keys(compensate, {"rdf:value", "refinement"}, {"rdf:value", "refinement"}, "the compensate duty")
    for index, item in enumerate(compensate["refinement"]):
        where = f"compensate refinement {index}"
        _keys(
            item,
            {"leftOperand", "operator", "rightOperand", "unit"},
            {"leftOperand", "operator", "rightOperand"},
            where,
        )
        left, right = item["leftOperand"], item["rightOperand"]
        _expect(item["operator"] == "eq", f"{where}: operator must be eq")
        if left == "payAmount":
            _expect(
                isinstance(right, dict)
                and right.get("@type") == "xsd:integer"
                and isinstance(right.get("@value"), str)
                and right["@value"].isdigit(),
                f"{where}: payAmount must be an xsd:integer in the asset's smallest unit",
            )
            fields["price"] = int(right["@value"])
            unit = re.fullmatch(r"eip155:(\d+)/(?:slip44:60|erc20:(0x[0-9a-fA-F]{40}))", str(item.get("unit")))
            _expect(
                unit is not None and int(unit[1]) == subject.chain_id,
                f"{where}: unit must be eip155:{subject.chain_id}/slip44:60 (ETH) or .../erc20:<token>",
            )
            fields["asset"] = unit[2] or ZERO_ADDRESS
        elif left == "vm:tier":
            tiers = {t.iri: t for t in Tier}
            iri = right.get("@id") if isinstance(right, dict) else None
            _expect(iri in tiers, f"{where}: tier must be one of {', '.join(tiers)}")
            fields["tier"] = tiers[iri]
        elif left == "vm:period":
            fields["period"] = _int_value(right, f"{where}: period")
        elif left == "vm:packSize":
            fields["pack_size"] = _int_value(right, f"{where}: packSize")
        else:
            raise PolicyError(
                f"{where}: {left!r} cannot be expressed (known: payAmount, vm:tier, vm:period, vm:packSize)"
            )
    _expect("price" in fields and "tier" in fields, "the compensate duty needs payAmount and vm:tier")
    fields["max_licenses"] = _int_value(doc.get("vm:maxLicenses", 0), "vm:maxLicenses")
    transferable = doc.get("vm:transferable", False)
    _expect(isinstance(transferable, bool), "vm:transferable must be true or false")
    fields["transferable"] = transferable

    terms = OfferTerms(**fields)
    canonical = build_policy(terms, subject)
    if policy_bytes(canonical) != policy_bytes(doc):
        differing = sorted(k for k in set(canonical) | set(doc) if canonical.get(k) != doc.get(k))
        raise PolicyError(
            f"the document is not the canonical one for its terms (differs in: {', '.join(differing)}); "
            "regenerate it with voicemarket.content.odrl.build_policy"
        )
    return terms, subject

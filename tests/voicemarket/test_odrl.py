"""ODRL licence documents: canonical form, policyHash, parsing back, and refusals (docs/licence-terms.md)."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess

import pytest
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from voicemarket.content.canonical import canonical_json
from voicemarket.content.odrl import (
    CONTRACT_FIELDS,
    MAX_DATETIME,
    OfferTerms,
    PolicySubject,
    action_bits,
    build_policy,
    contract_offer_terms,
    parse_policy,
    policy_bytes,
    policy_hash,
    purpose_bits,
    terms_from_contract,
    territories_bytes,
)
from voicemarket.errors import CanonicalJSONError, PolicyError
from voicemarket.protocol import Action, Purpose, Tier

SUBJECT = PolicySubject(
    31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", 7
)
ALL_ACTIONS = Action.all_bits()

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


@st.composite
def offers(draw):
    tier = draw(st.sampled_from(list(Tier)))
    permissions = draw(st.integers(1, ALL_ACTIONS))
    codes = draw(st.lists(st.sampled_from(["DE", "FR", "US", "GB", "CN", "JP", "BR", "IN"]), unique=True, max_size=4))
    return OfferTerms(
        tier=tier,
        price=draw(st.integers(0, 2**128 - 1)),
        asset=draw(st.one_of(st.just("0x" + "00" * 20), addresses)),
        period=draw(st.integers(1, 2**32 - 1)) if tier is Tier.SUBSCRIPTION else 0,
        max_uses=draw(st.integers(0, 2**32 - 1)),
        pack_size=draw(st.integers(0, 2**32 - 1)) if tier is Tier.PAY_PER_USE else 0,
        valid_until=draw(st.integers(0, MAX_DATETIME)),
        max_licenses=draw(st.integers(0, 2**32 - 1)),
        permissions=permissions,
        prohibitions=draw(st.integers(0, ALL_ACTIONS)) & ~permissions,
        attribution=draw(st.booleans()),
        transferable=draw(st.booleans()),
        territories=territories_bytes(*codes),
        purposes=draw(st.integers(0, Purpose.all_bits())),
    )


subjects = st.builds(PolicySubject, st.integers(1, 2**64), addresses, addresses, st.integers(0, 2**256 - 1))


@given(terms=offers(), subject=subjects)
def test_documents_round_trip_to_the_same_fields_and_hash(terms, subject):
    """Any offer the contract accepts gives a document that parses back to exactly its fields, and
    regenerating it gives the same bytes and the same policyHash (whatever the JSON whitespace)."""
    document = build_policy(terms, subject)
    parsed_terms, parsed_subject = parse_policy(json.dumps(document, indent=2))
    assert parsed_terms == terms
    assert parsed_subject.chain_id == subject.chain_id and parsed_subject.model_id == subject.model_id
    assert parsed_subject.owner.lower() == subject.owner.lower()
    again = build_policy(parsed_terms, parsed_subject)
    assert policy_bytes(again) == policy_bytes(document)
    assert policy_hash(document) == keccak(canonical_json(document))


@given(terms=offers(), model_id=st.integers(0, 2**256 - 1))
def test_contract_tuples_round_trip(terms, model_id):
    """The publishOffer tuple, read back as the chain returns it, gives the same terms, model and hash."""
    subject = PolicySubject(SUBJECT.chain_id, SUBJECT.registry, SUBJECT.owner, model_id)
    digest = policy_hash(build_policy(terms, subject))
    onchain = contract_offer_terms(terms, model_id, digest)
    assert terms_from_contract(onchain, terms.territories) == (terms, model_id, digest)
    assert terms_from_contract(dict(zip(CONTRACT_FIELDS, onchain, strict=False)), terms.territories)[0] == terms


def test_a_subscription_document_reads_like_odrl():
    terms = OfferTerms(
        tier=Tier.SUBSCRIPTION,
        price=5 * 10**18,
        period=30 * 86400,
        max_uses=1000,
        valid_until=1_893_456_000,
        permissions=action_bits("vm:textToSpeech", "odrl:commercialize"),
        prohibitions=action_bits("odrl:derive"),
        attribution=True,
        territories=territories_bytes("DE", "FR"),
        purposes=purpose_bits("audiobooks", "education"),
    )
    doc = build_policy(terms, SUBJECT)
    assert doc["@type"] == "Offer" and doc["@context"][0] == "http://www.w3.org/ns/odrl.jsonld"
    assert doc["assigner"] == "did:pkh:eip155:31337:0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert doc["target"] == "eip155:31337/erc721:0x5FbDB2315678afecb367f032d93F642f64180aa3/7"
    assert [p["action"] for p in doc["permission"]] == ["vm:textToSpeech", "odrl:commercialize"]
    assert doc["prohibition"] == [{"action": "odrl:derive"}]
    constraints = {c["leftOperand"]: c for c in doc["permission"][0]["constraint"]}
    assert constraints["count"]["rightOperand"] == 1000
    assert constraints["dateTime"]["rightOperand"]["@value"] == "2030-01-01T00:00:00Z"
    assert constraints["spatial"]["rightOperand"] == ["DE", "FR"]
    assert constraints["purpose"]["rightOperand"] == [{"@id": "vm:purpose/audiobooks"}, {"@id": "vm:purpose/education"}]
    refinement = doc["permission"][0]["duty"][0]["action"][0]["refinement"]
    assert refinement[0]["rightOperand"] == {"@value": "5000000000000000000", "@type": "xsd:integer"}
    assert refinement[0]["unit"] == "eip155:31337/slip44:60"
    assert refinement[1]["rightOperand"] == {"@id": "vm:tier/subscription"}
    assert refinement[2]["rightOperand"] == 2592000
    assert doc["permission"][0]["duty"][1] == {"action": "attribute"}
    assert doc["uid"].startswith("urn:vm:policy:")


def _document(**changes):
    return build_policy(OfferTerms(tier=Tier.PAY_PER_USE, price=10**15, **changes), SUBJECT)


def test_documents_the_contract_cannot_express_are_refused():
    doc = _document(permissions=action_bits("vm:textToSpeech", "odrl:distribute"))
    cases = []
    unknown_action = json.loads(json.dumps(doc))
    unknown_action["permission"][0]["action"] = "odrl:play"
    cases.append((unknown_action, "unknown action 'odrl:play'"))
    other_constraint = json.loads(json.dumps(doc))
    for permission in other_constraint["permission"]:
        permission["constraint"] = [{"leftOperand": "industry", "operator": "eq", "rightOperand": "film"}]
    cases.append((other_constraint, "'industry' cannot be expressed"))
    overlap = json.loads(json.dumps(doc))
    overlap["prohibition"] = [{"action": "odrl:distribute"}]
    cases.append((overlap, "both permitted and prohibited"))
    uneven = json.loads(json.dumps(doc))
    uneven["permission"][1]["constraint"] = [{"leftOperand": "count", "operator": "lteq", "rightOperand": 3}]
    cases.append((uneven, "differ from the first permission"))
    extra = dict(doc, **{"vm:royalty": 5})
    cases.append((extra, "vm:royalty"))
    other_duty = json.loads(json.dumps(doc))
    for permission in other_duty["permission"]:
        permission["duty"].append({"action": "inform"})
    cases.append((other_duty, "'inform' cannot be expressed"))
    stale_uid = json.loads(json.dumps(doc))
    stale_uid["vm:maxLicenses"] = 99  # terms changed by hand; the uid still names the old terms
    cases.append((stale_uid, "not the canonical one"))
    other_chain = json.loads(json.dumps(doc))
    for permission in other_chain["permission"]:
        permission["duty"][0]["action"][0]["refinement"][0]["unit"] = "eip155:1/slip44:60"
    cases.append((other_chain, "unit must be"))
    for document, message in cases:
        with pytest.raises(PolicyError, match=message):
            parse_policy(document)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"tier": Tier.SUBSCRIPTION}, "needs a period"),
        ({"period": 60}, "Subscriptions only"),
        ({"tier": Tier.BUYOUT, "pack_size": 10}, "PayPerUse offers only"),
        ({"price": 2**128}, "uint128"),
        ({"permissions": 0}, "at least one action"),
        ({"permissions": 1 << 8}, "unknown action bits"),
        ({"permissions": 3, "prohibitions": 2}, "odrl:commercialize"),
        ({"territories": b"DEx"}, "2 bytes each"),
        ({"territories": b"de"}, "upper-case"),
        ({"territories": b"DEDE"}, "repeat"),
        ({"purposes": 1 << 10}, "unknown bits"),
        ({"valid_until": MAX_DATETIME + 1}, "xsd:dateTime"),
        ({"asset": "0x1234"}, "asset must be an Ethereum address"),
    ],
)
def test_terms_the_contract_cannot_take_are_refused(changes, message):
    fields = {"tier": Tier.PAY_PER_USE, "price": 1, **changes}
    with pytest.raises(PolicyError, match=message):
        build_policy(OfferTerms(**fields), SUBJECT)


# ---------------------------------------------------------------- RFC 8785


def test_rfc8785_examples():
    sample = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        '"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        '"literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(sample) == expected.encode()
    order = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    assert list(json.loads(canonical_json(order))) == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]
    for bad in (float("nan"), float("inf"), 2**53, {1: 2}, "\ud800"):
        with pytest.raises(CanonicalJSONError):
            canonical_json(bad)


def test_numbers_match_ecmascript(tmp_path):
    """Doubles of every magnitude serialise as node's JSON.stringify does (the definition JCS uses)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH (needed as the ECMAScript reference)")
    rng = random.Random(8785)
    values = [struct.unpack("<d", rng.randbytes(8))[0] for _ in range(3000)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(500)] + [float(rng.randint(-(2**53), 2**53)) for _ in range(300)]
    values += [1e21, 1e20, 1e-6, 1e-7, 5e-324, 1.7976931348623157e308, 0.1, 123e-20, -0.0]
    values = [v for v in values if v == v and v not in (float("inf"), float("-inf"))]
    # node parses the same repr strings into the same doubles, then serialises them
    numbers = subprocess.run(
        [
            node,
            "-e",
            "const xs=JSON.parse(require('fs').readFileSync(0,'utf8'));console.log(JSON.stringify(xs.map(Number)))",
        ],
        input=json.dumps([repr(v) for v in values]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert canonical_json(values).decode() == numbers.stdout.strip()

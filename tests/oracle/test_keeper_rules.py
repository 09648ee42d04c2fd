"""The keeper's rules against the contract, and its index of events against being read again.

No processes here: the rules (voicemarket.market.keeping) are checked against the licence manager on the
session's anvil, the index (oracle.keeper.MarketIndex) against itself.
"""

from __future__ import annotations

import hashlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from oracle.keeper import MarketIndex, submission_items, submission_kind
from oracle.router import SynthesisRequest
from voicemarket import protocol
from voicemarket.content.multiformats import CID, RAW
from voicemarket.market import chain as vm
from voicemarket.market.keeping import read_subscription, renewal_refusal
from voicemarket.protocol import ETH, Action, Tier, language_bits

DAY = 86_400
PERIOD = 2 * DAY  # renewal lead: 1 day
PRICE = 10**6
CREATOR, HOLDER, KEEPER = 1, 4, 8
SCALE = max(1, settings().max_examples // 10)  # each example sends a dozen transactions (ci: 20, audit: 200)


def _market(accounts):
    """A deployment with a stablecoin and one model of the creator's own voice."""
    d = vm.deploy(accounts[0], stablecoin="mock")
    digest = hashlib.sha256(b"rules" + d.registry.address.encode()).digest()
    d.registry.registerModel(
        vm.model_registration(
            bundle_digest=digest,
            bundle_cid=CID(1, RAW, digest),
            metadata_cid=CID(1, RAW, digest),
            languages=language_bits("en"),
            voice_owner=accounts[CREATOR].address,
            policy_hash=digest,
        ),
        sender=accounts[CREATOR],
    )
    return d, protocol.model_id(accounts[CREATOR].address, digest)


SITUATIONS = st.fixed_dictionaries(
    {
        "eth": st.booleans(),
        "auto_renew": st.booleans(),
        "allowance": st.sampled_from([0, PRICE - 1, PRICE, 3 * PRICE]),
        "balance": st.sampled_from([0, PRICE - 1, PRICE, 3 * PRICE]),
        "offset": st.one_of(st.sampled_from([-DAY - 1, -DAY, -DAY + 1, -1, 0, 1]), st.integers(-PERIOD + 60, DAY)),
        "offer_active": st.booleans(),
        "model": st.sampled_from(["selling", "frozen", "retired"]),
        "ends_soon": st.booleans(),  # the offer's validUntil falls within the next period
    }
)


DUE = {
    "eth": False,
    "auto_renew": True,
    "allowance": 3 * PRICE,
    "balance": 3 * PRICE,
    "offset": -DAY + 1,
    "offer_active": True,
    "model": "selling",
    "ends_soon": False,
}
"""A subscription a keeper renews; the examples below change one thing each, so that every outcome is seen."""
EXAMPLES = [
    DUE,
    {**DUE, "eth": True},
    {**DUE, "auto_renew": False},
    {**DUE, "offset": -DAY - 1},
    {**DUE, "offset": 0},
    {**DUE, "offer_active": False},
    {**DUE, "model": "frozen"},
    {**DUE, "model": "retired"},
    {**DUE, "ends_soon": True},
    {**DUE, "allowance": PRICE - 1},
    {**DUE, "balance": PRICE - 1},
    {**DUE, "eth": True, "offset": 0},
]


def _expected(sub, refusal) -> tuple[str, dict] | None:
    """The licence manager's custom error for what the rule refuses (None: it renews)."""
    if refusal is None or refusal.code == "paid_in_eth":  # the contract takes ETH from the keeper
        return None
    lid = sub.license_id
    return {
        "offer_inactive": ("Licensing_OfferInactive", {"offerId": sub.offer_id}),
        "auto_renew_off": ("Licensing_AutoRenewOff", {"licenseId": lid}),
        "lapsed": ("Licensing_SubscriptionLapsed", {"licenseId": lid, "expiresAt": sub.expires_at}),
        "not_due": ("Licensing_RenewalNotDue", {"licenseId": lid, "dueAt": sub.due_at}),
        "model_unavailable": ("Licensing_ModelFrozen", {"modelId": sub.model_id})
        if sub.model_frozen
        else ("Licensing_ModelRetired", {"modelId": sub.model_id, "serviceEndsAt": sub.service_ends_at}),
        "beyond_valid_until": (
            "Licensing_BeyondValidUntil",
            {"end": sub.expires_at + sub.period, "validUntil": sub.valid_until},
        ),
        "allowance": (
            "Licensing_RenewalAllowanceTooLow",
            {"licenseId": lid, "allowance": sub.allowance, "cost": sub.price},
        ),
        "balance": ("Licensing_RenewalBalanceTooLow", {"licenseId": lid, "balance": sub.balance, "cost": sub.price}),
    }[refusal.code]


def test_the_renewal_rule_is_the_license_managers(accounts, chain):
    """For a subscription in any state a keeper meets, a stranger's one-period renewal succeeds exactly
    when `renewal_refusal` allows it (or refuses it only because it is paid in ETH, which the
    stranger would pay), and otherwise reverts with the custom error, and arguments, of the refusal."""
    from ape.exceptions import ContractLogicError

    d, model = _market(accounts)
    creator, holder, keeper = accounts[CREATOR], accounts[HOLDER], accounts[KEEPER]

    def check(case):
        with chain.isolate():
            now = int(chain.pending_timestamp)
            terms = {
                "modelId": model,
                "tier": int(Tier.SUBSCRIPTION),
                "asset": ETH if case["eth"] else d.stablecoin.address,
                "price": PRICE,
                "period": PERIOD,
                "maxUses": 0,
                "packSize": 0,
                "validUntil": now + PERIOD + DAY // 2 if case["ends_soon"] else 0,
                "maxLicenses": 0,
                "permissions": int(Action.TEXT_TO_SPEECH),
                "prohibitions": 0,
                "attribution": False,
                "transferable": False,
                "purposes": 0,
                "policyHash": b"\x01" * 32,
            }
            offer = int(
                d.offers.publishOffer(terms, b"", sender=creator).events.filter(d.offers.OfferPublished)[0].offerId
            )
            if case["eth"]:
                receipt = d.licenses.buy(offer, PRICE, 1, value=PRICE, sender=holder)
            else:
                d.stablecoin.mint(holder, PRICE + case["balance"], sender=holder)
                d.stablecoin.approve(d.licenses, PRICE, sender=holder)
                receipt = d.licenses.buy(offer, PRICE, 1, sender=holder)
                d.stablecoin.approve(d.licenses, case["allowance"], sender=holder)
            license = int(receipt.events.filter(d.licenses.LicensePurchased)[0].licenseId)
            if case["auto_renew"]:
                d.licenses.setAutoRenew(license, True, sender=holder)
            if not case["offer_active"]:
                d.offers.deactivateOffer(offer, sender=creator)
            if case["model"] == "frozen":
                d.registry.freeze(model, b"rules".ljust(32, b"\0"), sender=accounts[0])
            elif case["model"] == "retired":
                d.registry.retire(model, sender=creator)
            sub = read_subscription(d, license)
            when = max(sub.expires_at + case["offset"], int(chain.pending_timestamp))
            refusal = renewal_refusal(sub, when)
            expected = _expected(sub, refusal)
            chain.pending_timestamp = when  # the renewal's block
            try:
                done = d.licenses.renewSubscription(
                    license, PERIOD, value=PRICE if case["eth"] else 0, sender=keeper, gas=500_000
                )
            except ContractLogicError as exc:
                assert expected is not None, f"the contract refused what the rule allows: {exc!r} ({refusal})"
                assert (type(exc).__name__, dict(exc.inputs)) == expected, refusal
            else:
                assert expected is None, f"the contract renewed what the rule refuses: {refusal}"
                assert done.timestamp == when and d.licenses.license(license).expiresAt == sub.expires_at + PERIOD

    for case in EXAMPLES:
        check = example(case)(check)
    settings(max_examples=SCALE)(given(SITUATIONS)(check))()


# ---------------------------------------------------------------- the index

LICENCES = st.integers(1, 3)
REQUESTS = st.integers(1, 3)
ADDRESSES = st.sampled_from(["0x" + "00" * 20, "0x" + "11" * 20, "0x" + "22" * 20])


def _request(request_id: int, deadline: int) -> SynthesisRequest:
    zero = "0x" + "00" * 20
    return SynthesisRequest(request_id, 1, 1, zero, zero, zero, 0, 0, 0, b"\0" * 32, deadline, 0, 0, 0)


EVENTS = st.one_of(
    st.builds(
        lambda i, o, b: ("LicensePurchased", {"licenseId": i, "offerId": o, "buyer": b}),
        LICENCES,
        st.integers(1, 2),
        ADDRESSES,
    ),
    st.builds(lambda i, e: ("SubscriptionUpdate", {"tokenId": i, "expiration": e}), LICENCES, st.integers(1, 10**6)),
    st.builds(lambda i, a: ("AutoRenewSet", {"licenseId": i, "autoRenew": a}), LICENCES, st.booleans()),
    st.builds(lambda i, f, t: ("Transfer", {"tokenId": i, "from": f, "to": t}), LICENCES, ADDRESSES, ADDRESSES),
    st.builds(lambda i, d: ("SynthesisRequested", _request(i, d)), REQUESTS, st.integers(1, 10**6)),
    st.builds(lambda i, s: ("SynthesisFulfilled", {"requestId": i, "settleAfter": s}), REQUESTS, st.integers(1, 10**6)),
    st.builds(lambda i, s: ("SynthesisDisputed", {"requestId": i, "decideBy": s}), REQUESTS, st.integers(1, 10**6)),
    st.builds(
        lambda n, i: (n, {"requestId": i}),
        st.sampled_from(["SynthesisSettled", "SynthesisFailed", "SynthesisExpired", "DisputeResolved"]),
        REQUESTS,
    ),
)


def _state(index: MarketIndex) -> tuple:
    return (
        {k: dict(vars(v)) for k, v in index.licenses.items()},
        {k: dict(vars(v)) for k, v in index.requests.items()},
    )


@given(st.lists(EVENTS, max_size=30), st.data())
def test_reading_any_later_stretch_of_events_again_changes_nothing(events, data):
    """The keeper re-reads `overlap_blocks` behind its checkpoint (and everything after a reorg): applying
    any suffix of the events again to the index they built leaves the index as it was."""
    index = MarketIndex()
    for name, args in events:
        index.apply(name, args)
    before = _state(index)
    start = data.draw(st.integers(0, len(events)))
    for name, args in events[start:]:
        index.apply(name, args)
    assert _state(index) == before


def test_a_transfer_clears_the_index_s_auto_renewal_and_a_final_event_forgets_the_request():
    index = MarketIndex()
    index.apply("LicensePurchased", {"licenseId": 1, "offerId": 2, "buyer": "0x" + "11" * 20})
    index.apply("AutoRenewSet", {"licenseId": 1, "autoRenew": True})
    index.apply("Transfer", {"tokenId": 1, "from": "0x" + "11" * 20, "to": "0x" + "22" * 20})
    assert vars(index.licenses[1]) == {"offer_id": 2, "holder": "0x" + "22" * 20, "expires_at": 0, "auto_renew": False}
    index.apply("SynthesisRequested", _request(5, 100))
    index.apply("SynthesisFulfilled", {"requestId": 5, "settleAfter": 200})
    assert index.settleable(200) == [5] and index.settleable(199) == [] and index.expired(101) == []
    index.apply("SynthesisSettled", {"requestId": 5})
    assert index.requests == {}


def test_a_keeper_submission_names_its_action_and_items():
    assert submission_kind("settle", [3, 4]) == "keeper:settle:3,4"
    assert submission_items("keeper:settle:3,4") == [("settle", 3), ("settle", 4)]
    assert submission_items("fulfil") == [] and submission_items("fail") == []

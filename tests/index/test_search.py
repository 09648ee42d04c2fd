"""The read API over the small market (tests/index/index_helpers.py), indexed by the real indexer
process into SQLite and into PostgreSQL: every filter finds what it should, sorting and cursors
page through everything once, bad parameters get a clear 400, hostile metadata is listed with
its error."""

from __future__ import annotations

import warnings

import pytest

with warnings.catch_warnings():  # Starlette 1.x asks for httpx2 in its test client; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from index_helpers import ETHER, MUSD
from voicemarket.index import db
from voicemarket.index.api import create_index_app
from voicemarket.protocol import ETH


@pytest.fixture(scope="module")
def api(indexed) -> TestClient:
    engine = db.open_engine(indexed, readonly=True)
    with TestClient(create_index_app(engine)) as client:
        yield client
    engine.dispose()


def names(answer) -> list[str]:  # noqa: ANN001 - an httpx response
    assert answer.status_code == 200, answer.text
    return [item["name"] for item in answer.json()["items"]]


def test_each_filter_finds_what_it_should(api, small_market):
    usd = small_market.deployment.stablecoin.address
    assert names(api.get("/models", params={"language": "yue"})) == ["Mei"]
    assert names(api.get("/models", params={"language": "en"})) == [None, None, None, None, "Ada v2", "Ada"]
    assert names(api.get("/models", params={"tier": "subscription"})) == ["Minji", "Kenji", "Mei", "Ada"]
    assert names(api.get("/models", params={"tier": "buyout"})) == [None, "Ada v2", "Mei"]
    # "a Cantonese voice on a monthly subscription under 10 mUSD"; Minji (3 mUSD a week) is 12.86 a month,
    # Kenji (20 mUSD a month) is 4.67 a week
    monthly = {"tier": "subscription", "asset": usd, "max_price": str(10 * MUSD)}
    assert names(api.get("/models", params={**monthly, "language": "yue"})) == ["Mei"]
    assert names(api.get("/models", params=monthly)) == ["Mei"]
    assert names(api.get("/models", params={"tier": "subscription", "max_price": "10 mUSD"})) == ["Mei"]
    assert names(api.get("/models", params={"asset": "musd", "max_price": "0.05 mUSD"})) == ["Ada"]  # per use
    assert names(api.get("/models", params={**monthly, "period": "7 days"})) == ["Minji", "Kenji", "Mei"]
    assert names(api.get("/models", params={**monthly, "min_price": str(6 * MUSD)})) == []
    assert names(api.get("/models", params={"asset": "ETH", "min_price": str(ETHER // 2)})) == ["Ada v2", "Mei"]
    assert names(api.get("/models", params={"asset": "eth", "max_price": str(ETHER // 100)})) == ["Ada"]
    creator_a = small_market.accounts["creator_a"]
    assert names(api.get("/models", params={"creator": creator_a.lower()})) == ["Ada v2", "Kenji", "Ada"]
    assert names(api.get("/models", params={"status": "retiring"})) == ["Kenji"]
    assert names(api.get("/models", params={"status": "frozen"})) == ["Minji"]
    assert names(api.get("/models", params={"status": "retired"})) == []
    assert len(names(api.get("/models", params={"status": "active"}))) == 7
    assert names(api.get("/models", params={"q": "calm NARRATOR"})) == ["Ada v2", "Ada"]
    assert names(api.get("/models", params={"q": "storyteller", "language": "yue", "asset": ETH})) == ["Mei"]
    assert names(api.get("/models", params={"q": "100%_"})) == []  # LIKE's wildcards are literal


def test_sorting_and_cursors_page_through_everything_once(api):
    assert names(api.get("/models", params={"sort": "most_used", "limit": 2}))[:2] == ["Ada", "Mei"]
    assert names(api.get("/models", params={"sort": "cheapest", "asset": "ETH"})) == ["Ada", None, "Mei", "Ada v2"]
    everything = api.get("/models", params={"limit": 100}).json()["items"]
    assert len(everything) == 9 and api.get("/models", params={"limit": 100}).json()["next_cursor"] is None
    for sort, extra in (("newest", {}), ("most_used", {}), ("cheapest", {"asset": "ETH"})):
        seen, cursor = [], None
        while True:
            page = api.get(
                "/models", params={"sort": sort, "limit": 2, **extra, **({"cursor": cursor} if cursor else {})}
            )
            assert page.status_code == 200, page.text
            seen += [item["model_id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        whole = [
            i["model_id"] for i in api.get("/models", params={"sort": sort, "limit": 100, **extra}).json()["items"]
        ]
        assert seen == whole and len(set(seen)) == len(seen), sort
    newest_cursor = api.get("/models", params={"limit": 2}).json()["next_cursor"]
    wrong = api.get("/models", params={"sort": "most_used", "cursor": newest_cursor})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "bad_cursor"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"language": "xx"}, "language"),
        ({"tier": "lease"}, "tier"),
        ({"max_price": "10"}, "asset"),
        ({"max_price": "10 doubloons"}, "asset"),
        ({"asset": "mUSD", "max_price": "0.0000001 mUSD"}, "max_price"),
        ({"asset": "ETH", "max_price": "ten"}, "max_price"),
        ({"asset": "ETH", "min_price": "5", "max_price": "4"}, "min_price"),
        ({"sort": "cheapest"}, "asset"),
        ({"sort": "random"}, "sort"),
        ({"status": "sleeping"}, "status"),
        ({"creator": "0x1234"}, "creator"),
        ({"period": "fortnightly"}, "period"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "!!"}, None),
    ],
)
def test_bad_parameters_are_clear_400s(api, params, field):
    answer = api.get("/models", params=params)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] in ("bad_parameter", "bad_cursor") and error["message"]
    assert error.get("field") == field or field is None


def test_one_model_with_offers_versions_and_operators(api, small_market):
    ada = api.get(f"/models/{small_market.key('ada')}").json()
    assert (ada["name"], ada["languages"], ada["architecture"], ada["version"]) == (
        "Ada",
        ["zh", "en"],
        "GPT-SoVITS v2",
        "1.0.0",
    )
    assert (
        ada["voice_owner"] == small_market.accounts["voice"]
        and ada["consent_signed"]
        and ada["voice_owner_bps"] == 1000
    )
    assert [o["tier"] for o in ada["offers"]] == ["subscription", "pay-per-use"]
    assert all(o["policy_matches"] and o["policy"]["@context"] for o in ada["offers"])
    assert ada["versions"] == {"parents": [], "children": [small_market.key("ada2")]}
    assert [op["operator"] for op in ada["operators"]] == [small_market.accounts["operator"]]
    assert (ada["uses"], ada["licenses_sold"]) == (3, 2)
    # uses by the tier of the licence each was made under: the failed (refunded) request is not one
    assert ada["uses_by_tier"] == {"buyout": 0, "subscription": 2, "pay-per-use": 0}
    ada2 = api.get(f"/models/{small_market.models['ada2']}").json()  # a decimal id works too
    assert ada2["versions"]["parents"] == [small_market.key("ada")] and ada2["parent_id"] == small_market.key("ada")
    mei = api.get(f"/models/{small_market.key('mei')}").json()
    assert [(o["price"], o["policy_matches"]) for o in mei["offers"] if o["tier"] == "buyout"] == [
        (str(ETHER // 2), True),
        (str(ETHER), False),
    ]
    assert mei["uses_by_tier"] == {"buyout": 1, "subscription": 0, "pay-per-use": 0}  # a pending request counts
    missing = api.get(f"/models/{1 + small_market.models['ada']}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert api.get("/models/0xzz").status_code == 400


def test_hostile_metadata_is_listed_with_its_error(api, small_market):
    errors = {}
    for label in ("notjson", "toolarge", "list", "missing"):
        model = api.get(f"/models/{small_market.key(label)}").json()
        assert model["name"] is None and model["metadata_state"] == "error" and model["metadata_attempts"] == 1
        errors[label] = model["metadata_error"]
    assert "not UTF-8" in errors["notjson"]
    assert "larger than 4096 bytes" in errors["toolarge"]
    assert "JSON list, not an object" in errors["list"]
    assert "no content" in errors["missing"]


def test_licences_earnings_operator_and_stats(api, small_market):
    accounts = small_market.accounts
    held = api.get(f"/accounts/{accounts['buyer5']}/licenses").json()["items"]
    assert [(h["tier"], h["uses"], h["uses_left"], h["valid"]) for h in held] == [
        ("pay-per-use", 0, 10, True),
        ("subscription", 2, None, True),  # three requests, the failed one's use given back
    ]
    # ada's subscription paid 0.01 ETH: 20% platform fee, then 10% of the rest to the voice owner
    earned = api.get(f"/creators/{accounts['creator_a']}/earnings").json()
    assert earned["received"] == [
        {"model_id": small_market.key("ada"), "asset": ETH, "party": "creator", "amount": str(7_200_000_000_000_000)}
    ]
    ada_eth = next(
        m for m in earned["created_models"] if m["model_id"] == small_market.key("ada") and m["asset"] == ETH
    )
    assert ada_eth == {
        "model_id": small_market.key("ada"),
        "asset": ETH,
        "gross": str(ETHER // 100),
        "platform_fees": str(ETHER // 500),
        "distributed": str(8 * ETHER // 1000),
        "pending": "0",
    }
    voice = api.get(f"/creators/{accounts['voice']}/earnings").json()["received"]
    assert [(r["party"], r["amount"]) for r in voice] == [("voice owner", str(800_000_000_000_000))]
    operator = api.get(f"/operators/{accounts['operator']}").json()
    assert (operator["fulfilled"], operator["failed"], operator["pending"]) == (2, 1, 1)
    assert operator["failures"] == {"TextTooLong": 1}
    assert operator["models_served"] == sorted([small_market.key("ada"), small_market.key("mei")])
    assert operator["fees"] == [{"asset": ETH, "fee": "100000000000000"}]
    assert api.get(f"/operators/{accounts['buyer5']}").status_code == 404
    stats = api.get("/stats").json()
    assert stats["models"] == {"active": 7, "retiring": 1, "retired": 0, "frozen": 1}
    assert stats["requests"] == {"settled": 2, "failed": 1, "pending": 1}
    assert stats["licenses"] == {"subscription": 2, "pay-per-use": 1, "buyout": 1}


def test_openapi_describes_the_routes_and_the_error_shape(api):
    spec = api.get("/openapi.json").json()
    assert {"/models", "/models/{model_id}", "/events", "/stats"} <= set(spec["paths"])
    assert "ErrorBody" in spec["components"]["schemas"]
    assert api.get("/nowhere").json()["error"]["code"] == "not_found"

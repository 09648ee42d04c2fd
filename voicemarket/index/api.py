"""The index's read API: ``python -m voicemarket.index serve`` (FastAPI on uvicorn).

Routes (the OpenAPI description at ``/openapi.json``, rendered at ``/docs``, says the rest):

- ``GET /models``: search (language, tier, asset, price range per period, creator, status,
  text) and sort (newest, most used, cheapest), paged by cursor;
- ``GET /models/{model_id}``: one model with its metadata, offers, versions, operators and uses by tier;
- ``GET /accounts/{address}/licenses``: the licences an account holds;
- ``GET /creators/{address}/earnings``: what an account earned, per model, party, asset and day;
- ``GET /operators/{address}``: an operator's stake, fees, models and record;
- ``GET /stats``: the market in numbers; ``GET /health``: how far the index is;
- ``GET /events``: server-sent events of new licences, uses, fulfilments, failures, ...
  filtered by ``model`` and/or ``account``.

It only reads: any number of API processes can serve one database while one indexer writes it.
Errors, cursors and events follow :mod:`voicemarket.web.api`.
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import FastAPI, Header, Query, Request
from pydantic import BaseModel
from sqlalchemy import Engine

from voicemarket.errors import IndexQueryError
from voicemarket.index import queries
from voicemarket.index.settings import IndexSettings
from voicemarket.web.api import (
    ERROR_RESPONSES,
    ApiError,
    Page,
    bad_parameter,
    create_app,
    decode_cursor,
    encode_cursor,
    sse_message,
    sse_response,
)
from voicemarket.web.static import add_cid_gateway, mount_app

VERSION = "1"
HEARTBEAT_S = 15.0


# ---------------------------------------------------------------- answers (for the OpenAPI description)


class ModelItem(BaseModel):
    model_id: str
    name: str | None
    description: str | None
    languages: list[str]
    creator: str
    owner: str
    voice_owner: str
    status: str
    service_ends_at: int | None
    uses: int
    licenses_sold: int
    registered_at: int
    block: int
    metadata_cid: str | None
    metadata_state: str
    metadata_error: str | None
    min_price_30d: str | None = None


class AssetOut(BaseModel):
    address: str
    symbol: str
    decimals: int


class ModelPage(Page[ModelItem]):
    """A page of models; ``asset``: the asset that prices (``min_price_30d``) are in, when one was asked for."""

    asset: AssetOut | None = None


class OfferItem(BaseModel):
    offer_id: int
    model_id: str
    tier: str
    asset: str
    price: str
    period: int | None
    max_uses: int | None
    pack_size: int | None
    valid_until: int | None
    max_licenses: int | None
    sold: int
    active: bool
    permissions: int
    prohibitions: int
    purposes: int
    attribution: bool
    transferable: bool
    territories: list[str]
    policy_hash: str
    policy_matches: bool
    policy: dict[str, Any] | None
    publisher: str
    published_at: int


class Versions(BaseModel):
    parents: list[str]
    children: list[str]


class ModelOperator(BaseModel):
    operator: str
    allowed: bool
    allowed_until: int | None


class ModelDetail(ModelItem):
    preview: str | None
    image: str | None
    architecture: str | None
    version: str | None
    metadata_attempts: int
    voice_owner_bps: int
    consent_signed: bool
    policy_hash: str
    bundle_digest: str
    dispute_window: int
    frozen_reason: str | None
    parent_id: str | None
    offers: list[OfferItem]
    versions: Versions
    uses_by_tier: dict[str, int]
    operators: list[ModelOperator]


class LicenseItem(BaseModel):
    license_id: int
    offer_id: int
    model_id: str
    tier: str
    holder: str
    buyer: str
    asset: str
    paid: str
    quantity: int
    expires_at: int | None
    auto_renew: bool
    cancelled: bool
    uses: int
    use_limit: int | None
    uses_left: int | None
    valid: bool
    bought_at: int


class Received(BaseModel):
    model_id: str
    asset: str
    party: str
    amount: str


class ReceivedByDay(BaseModel):
    day: str
    asset: str
    amount: str


class CreatedModelRevenue(BaseModel):
    model_id: str
    asset: str
    gross: str
    platform_fees: str
    distributed: str
    pending: str


class Earnings(BaseModel):
    account: str
    received: list[Received]
    received_by_day: list[ReceivedByDay]
    created_models: list[CreatedModelRevenue]


class OperatorFee(BaseModel):
    asset: str
    fee: str


class OperatorRecord(BaseModel):
    address: str
    registered: bool
    stake: str
    slashed: str
    unbonding_ends_at: int | None
    public_key: str
    fees: list[OperatorFee]
    models_served: list[str]
    fulfilled: int
    failed: int
    expired: int
    disputes_lost: int
    pending: int
    failures: dict[str, int]
    mean_seconds_to_fulfil: float | None
    max_seconds_to_fulfil: int | None
    registered_at: int


class Stats(BaseModel):
    models: dict[str, int]
    offers_active: int
    licenses: dict[str, int]
    requests: dict[str, int]
    operators: int
    revenue: dict[str, str]
    indexed_to_block: int


class Health(BaseModel):
    indexed_to_block: int
    schema_version: int


# ---------------------------------------------------------------- parameters


def parse_model_id(text: str, field: str = "model_id") -> str:
    """``0x`` hex or decimal -> the index's key (``0x`` + 64 hex digits)."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        raise bad_parameter(field, f"{text!r} is not a model id (0x hex or a decimal number)") from None
    if not 0 < value < 2**256:
        raise bad_parameter(field, f"{text!r} is not a uint256 above zero")
    return f"0x{value:064x}"


def parse_address(text: str, field: str) -> str:
    try:
        return queries.parse_address(text, field)
    except ValueError as exc:
        raise bad_parameter(field, str(exc)) from None


def _cursor(cursor: str | None, ordering: str, length: int) -> list[Any] | None:
    return decode_cursor(cursor, ordering, length) if cursor else None


# ---------------------------------------------------------------- the app


def create_index_app(engine: Engine, settings: IndexSettings | None = None) -> FastAPI:
    """The read API over ``engine`` (see the module docstring)."""
    settings = settings or IndexSettings()
    app = create_app(
        title="voicemarket index",
        description="Search voice models, offers, licences, earnings and operators indexed from the chain.",
        version=VERSION,
    )

    def read(function, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN001 - a query function
        try:
            with engine.connect() as connection:
                return function(connection, *args, **kwargs)
        except IndexQueryError as exc:
            message = str(exc)
            raise ApiError(
                400, "bad_parameter", message if message.startswith(exc.field) else f"{exc.field}: {message}", exc.field
            ) from None

    @app.get("/models", response_model=ModelPage, responses=ERROR_RESPONSES, tags=["models"])
    def models(
        language: Annotated[str | None, Query(description="zh, en, ja, ko or yue")] = None,
        tier: Annotated[str | None, Query(description="buyout, subscription or pay-per-use")] = None,
        asset: Annotated[str | None, Query(description="ETH, a token's symbol or address")] = None,
        min_price: Annotated[str | None, Query(description="smallest unit, or with a unit: '5 mUSD'")] = None,
        max_price: Annotated[str | None, Query(description="smallest unit, or with a unit: '0.01 ether'")] = None,
        period: Annotated[str, Query(description="subscription prices per this period: seconds or '30 days'")] = (
            "30 days"
        ),
        creator: Annotated[str | None, Query(description="the creator's address")] = None,
        status: Annotated[str | None, Query(description="active, retiring, retired or frozen")] = None,
        q: Annotated[str | None, Query(description="words in the name or description", max_length=200)] = None,
        sort: Annotated[str, Query(description="newest, most_used or cheapest")] = "newest",
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> dict[str, Any]:
        """Models with an active offer meeting every offer condition, newest first by default."""
        params = {
            "language": language,
            "tier": tier,
            "asset": asset,
            "min_price": min_price,
            "max_price": max_price,
            "period": period,
            "creator": creator,
            "status": status,
            "q": q,
            "sort": sort,
            "limit": limit,
        }
        items, after, priced_in = read(queries.find_models, params, _cursor(cursor, sort, 1 if sort == "newest" else 2))
        return {"items": items, "next_cursor": encode_cursor(sort, after) if after else None, "asset": priced_in}

    @app.get("/models/{model_id}", response_model=ModelDetail, responses=ERROR_RESPONSES, tags=["models"])
    def model(model_id: str) -> dict[str, Any]:
        """One model: metadata (or why it was refused), offers with their ODRL documents, versions, operators."""
        found = read(queries.get_model, parse_model_id(model_id))
        if found is None:
            raise ApiError(404, "not_found", f"no model {model_id} in the index (not registered, or not indexed yet)")
        return found

    @app.get(
        "/accounts/{address}/licenses", response_model=Page[LicenseItem], responses=ERROR_RESPONSES, tags=["accounts"]
    )
    def licenses(
        address: str,
        limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """The licences an account holds now, newest first."""
        after = _cursor(cursor, "licenses", 1)
        items, next_after = read(
            queries.account_licenses,
            parse_address(address, "address"),
            limit=limit,
            after=int(after[0]) if after else None,
        )
        return {"items": items, "next_cursor": encode_cursor("licenses", next_after) if next_after else None}

    @app.get("/creators/{address}/earnings", response_model=Earnings, responses=ERROR_RESPONSES, tags=["accounts"])
    def creator_earnings(address: str) -> dict[str, Any]:
        """Credits received (creator, voice owner, co-creator and operator shares) and the created models' revenue."""
        return read(queries.earnings, parse_address(address, "address"))

    @app.get("/operators/{address}", response_model=OperatorRecord, responses=ERROR_RESPONSES, tags=["operators"])
    def operator(address: str) -> dict[str, Any]:
        """An operator's stake, fees, models served and record."""
        found = read(queries.operator_record, parse_address(address, "address"))
        if found is None:
            raise ApiError(404, "not_found", f"{address} never registered as an operator (or is not indexed yet)")
        return found

    @app.get("/stats", response_model=Stats, tags=["market"])
    def stats() -> dict[str, Any]:
        """Counts by status and tier, and revenue per asset."""
        return read(queries.stats)

    @app.get("/health", response_model=Health, tags=["market"])
    def health() -> dict[str, Any]:
        from voicemarket.index import db

        with engine.connect() as connection:
            state = db.read_state(connection)
        return {"indexed_to_block": int(state.get("next_block", 0)) - 1, "schema_version": int(state["schema_version"])}

    @app.get(
        "/events",
        responses={
            **ERROR_RESPONSES,
            200: {"content": {"text/event-stream": {}}, "description": "server-sent events"},
        },
        tags=["market"],
    )
    async def events(
        request: Request,
        model: Annotated[str | None, Query(description="only this model's activity")] = None,
        account: Annotated[str | None, Query(description="only what this account did or received")] = None,
        after: Annotated[int | None, Query(ge=0, description="resume after this event id")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ):  # noqa: ANN202 - a streaming response
        """Server-sent events: ``license_purchased``, ``use_requested``, ``fulfilled``, ``failed``,
        ``expired``, ``settled``, ``disputed``, ``dispute_upheld``; each ``id`` is its position."""
        model_id = parse_model_id(model, "model") if model else None
        address = parse_address(account, "account") if account else None
        if after is None and last_event_id:
            if not last_event_id.isdigit():
                raise bad_parameter("Last-Event-ID", "not an event id this stream sent")
            after = int(last_event_id)
        if after is None:
            after = await anyio.to_thread.run_sync(lambda: read(queries.latest_position))

        async def stream():  # noqa: ANN202
            position = after
            beat = time.monotonic()
            yield ": connected\n\n"
            while not await request.is_disconnected():
                rows = await anyio.to_thread.run_sync(
                    functools.partial(read, queries.activity_after, position, model_id=model_id, account=address)
                )
                for row in rows:
                    position = row["position"]
                    yield sse_message(position, row["kind"], row)
                if time.monotonic() - beat > HEARTBEAT_S:
                    beat = time.monotonic()
                    yield ": keep-alive\n\n"
                if not rows:
                    await anyio.sleep(settings.sse_poll_s)

        return sse_response(stream())

    @app.get("/assets", response_model=list[AssetOut], tags=["market"])
    def assets() -> list[dict[str, Any]]:
        """The payment assets the index knows (ETH first), with symbol and decimals."""
        return [{"address": a.address, "symbol": a.symbol, "decimals": a.decimals} for a in read(queries.asset_infos)]

    add_app_routes(app, settings)
    return app


# ---------------------------------------------------------------- the DApp (docs/app.md)

APP_ABIS = {
    "registry": "VoiceModelRegistry",
    "offers": "OfferBook",
    "licenses": "LicenseManager",
    "router": "SynthesisRouter",
    "erc20": "MockStablecoin",
}
DEFAULT_APP_DIR = Path(__file__).resolve().parents[2] / "app" / "dist"


def app_config(settings: IndexSettings) -> dict[str, Any]:
    """What the DApp needs to talk to the chain: the chain, the contracts and their ABIs."""
    from voicemarket.index.chain import DEFAULT_MANIFEST, Contracts

    if settings.deployment is None:
        return {"deployment": None, "message": "this server was started without --deployment: browse only"}
    contracts = Contracts.from_deployment_file(settings.deployment)
    manifest = json.loads(Path(settings.abi_manifest or DEFAULT_MANIFEST).read_text())
    abis = {role: manifest["contractTypes"][name]["abi"] for role, name in APP_ABIS.items()}
    return {
        "deployment": {"chainId": contracts.chain_id, **contracts.by_role()},
        "chain": {
            "id": contracts.chain_id,
            "name": settings.chain_name,
            "rpcUrl": settings.chain_rpc_url or settings.rpc_url,
        },
        "abis": abis,
    }


def add_app_routes(app: FastAPI, settings: IndexSettings) -> None:
    """``/app-config.json``, ``/odrl/offer-policy``, ``/ipfs/{cid}`` from the configured store, and the
    built app at ``/``."""
    config = app_config(settings)

    @app.get("/app-config.json", tags=["app"])
    def app_config_route() -> dict[str, Any]:
        """The chain, contract addresses and ABIs the DApp uses."""
        return config

    @app.get("/odrl/offer-policy", responses=ERROR_RESPONSES, tags=["app"])
    def offer_policy(
        model_id: str,
        owner: str,
        tier: str,
        price: Annotated[int, Query(ge=0, lt=2**128)],
        asset: str = "0x0000000000000000000000000000000000000000",
        period: Annotated[int, Query(ge=0, lt=2**32)] = 0,
        max_uses: Annotated[int, Query(ge=0, lt=2**32)] = 0,
        pack_size: Annotated[int, Query(ge=0, lt=2**32)] = 0,
        valid_until: Annotated[int, Query(ge=0, lt=2**64)] = 0,
        max_licenses: Annotated[int, Query(ge=0, lt=2**32)] = 0,
        permissions: Annotated[int, Query(ge=0, lt=2**16)] = 1,
        prohibitions: Annotated[int, Query(ge=0, lt=2**16)] = 0,
        attribution: bool = False,
        transferable: bool = False,
        territories: Annotated[str, Query(description="two-letter codes, e.g. CNHK", max_length=64)] = "",
        purposes: Annotated[int, Query(ge=0, lt=2**32)] = 0,
    ) -> dict[str, Any]:
        """The ODRL document of an offer about to be published, and its hash (what ``publishOffer``
        commits to); the DApp checks the hash itself and shows the document in words before signing."""
        from eth_utils import to_checksum_address

        from voicemarket.content.odrl import OfferTerms, PolicySubject, build_policy, policy_hash
        from voicemarket.protocol import Tier

        if config["deployment"] is None:
            raise ApiError(404, "not_found", "this server was started without --deployment")
        deployment = config["deployment"]
        try:
            terms = OfferTerms(
                tier=Tier.parse(tier),
                price=price,
                asset=parse_address(asset, "asset"),
                period=period,
                max_uses=max_uses,
                pack_size=pack_size,
                valid_until=valid_until,
                max_licenses=max_licenses,
                permissions=permissions,
                prohibitions=prohibitions,
                attribution=attribution,
                transferable=transferable,
                territories=territories.upper().encode("ascii"),
                purposes=purposes,
            )
            subject = PolicySubject(
                deployment["chainId"],
                deployment["registry"],
                to_checksum_address(parse_address(owner, "owner")),
                int(parse_model_id(model_id), 16),
            )
            document = build_policy(terms, subject)
        except (ValueError, UnicodeEncodeError) as exc:
            raise bad_parameter("terms", str(exc)) from None
        return {"policy": document, "policy_hash": "0x" + policy_hash(document).hex()}

    if settings.store:
        from voicemarket.content.store import store_from_spec

        store = store_from_spec(settings.store)
        add_cid_gateway(app, functools.partial(store.get_bytes, max_bytes=settings.gateway_max_bytes))
    folder = settings.app_dir or DEFAULT_APP_DIR
    if (folder / "index.html").is_file():
        mount_app(app, folder)

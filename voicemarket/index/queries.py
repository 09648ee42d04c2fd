"""What the read API and ``ape run models`` ask the index: the same SQL on SQLite and PostgreSQL.

Every function takes an open connection and returns plain dicts (JSON-ready: amounts as decimal
strings of the smallest unit, ids as ``0x`` hex, times as unix seconds). Lists are paged by
keyset (:func:`search_models`'s ``cursor``): a page never repeats or skips a row when rows are
added meanwhile.

**Search** (:class:`ModelQuery`): a model matches when it has **one active offer** meeting all
of the offer conditions together (tier, asset, price range) and the model conditions
(language, creator, status, text in its name or description). Prices compare in the asset's
smallest unit; a subscription's price is compared per ``period`` (default 30 days: "10 USDC a
month"), a buyout's as it is, a pay-per-use offer's per use. Sorting: ``newest`` (registration
order), ``most_used`` (synthesis requests), ``cheapest`` (the lowest matching price, which needs
an ``asset``: prices in different assets do not compare).
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, String, and_, bindparam, exists, func, or_, select

from voicemarket.errors import IndexQueryError
from voicemarket.index import schema
from voicemarket.index.projection import THIRTY_DAYS
from voicemarket.protocol import ETH, FailReason, Language, RequestStatus, Tier
from voicemarket.units import AssetInfo, parse_amount, parse_duration

SORTS = ("newest", "most_used", "cheapest")
STATUSES = ("active", "retiring", "retired", "frozen")
MAX_LIMIT = 100

m = schema.models
md = schema.model_metadata
o = schema.offers


@dataclass(frozen=True)
class ModelQuery:
    language: Language | None = None
    tier: Tier | None = None
    asset: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    period: int = THIRTY_DAYS  # subscriptions' prices are compared per this many seconds
    creator: str | None = None
    status: str | None = None
    text: str | None = None
    sort: str = "newest"
    limit: int = 20
    after: list[Any] | None = None  # the decoded cursor

    def check(self) -> None:
        if self.sort not in SORTS:
            raise IndexQueryError("sort", f"sort must be one of {', '.join(SORTS)}, got {self.sort!r}")
        if self.status is not None and self.status not in STATUSES:
            raise IndexQueryError("status", f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if (self.min_price is not None or self.max_price is not None) and self.asset is None:
            raise IndexQueryError(
                "asset", "a price range needs an asset (ETH or the token's address): prices differ by asset"
            )
        if self.sort == "cheapest" and self.asset is None:
            raise IndexQueryError("asset", "sort=cheapest needs an asset (ETH or the token's address)")
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise IndexQueryError("min_price", f"min_price {self.min_price} is above max_price {self.max_price}")
        if self.period <= 0:
            raise IndexQueryError("period", "period must be a positive number of seconds")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise IndexQueryError("limit", f"limit must be 1 to {MAX_LIMIT}, got {self.limit}")

    @classmethod
    def from_params(
        cls,
        *,
        language: str | None = None,
        tier: str | None = None,
        asset: str | None = None,
        min_price: str | None = None,
        max_price: str | None = None,
        period: str | int = THIRTY_DAYS,
        creator: str | None = None,
        status: str | None = None,
        q: str | None = None,
        sort: str = "newest",
        limit: int = 20,
        after: list[Any] | None = None,
    ) -> ModelQuery:
        """A query from text parameters (the API's and the command's), checked; raises
        :class:`IndexQueryError` naming the parameter that is wrong."""

        def parsed(field: str, parse: Any, value: Any) -> Any:
            if value is None:
                return None
            try:
                return parse(value)
            except ValueError as exc:
                raise IndexQueryError(field, f"{field}: {exc}") from None

        query = cls(
            language=parsed("language", Language.parse, language),
            tier=parsed("tier", Tier.parse, tier),
            asset=parsed("asset", lambda v: parse_address(v, "asset"), asset),
            min_price=parsed("min_price", lambda v: _smallest_unit(v, "min_price"), min_price),
            max_price=parsed("max_price", lambda v: _smallest_unit(v, "max_price"), max_price),
            period=parsed("period", lambda v: parse_duration(v, "period"), period),
            creator=parsed("creator", lambda v: parse_address(v, "creator"), creator),
            status=status,
            text=q,
            sort=sort,
            limit=limit,
            after=after,
        )
        query.check()
        return query

    @property
    def filters_offers(self) -> bool:
        return any(x is not None for x in (self.tier, self.asset, self.min_price, self.max_price))


def asset_infos(connection: Connection) -> list[AssetInfo]:
    """The payment assets the index knows (ETH first)."""
    a = schema.assets
    rows = connection.execute(select(a.c.address, a.c.symbol, a.c.decimals)).all()
    return sorted((AssetInfo(*row) for row in rows), key=lambda info: (not info.is_eth, info.symbol))


def resolve_units(
    connection: Connection, params: dict[str, Any], known: list[AssetInfo] | None = None
) -> dict[str, Any]:
    """``params`` with ``asset`` as an address and prices in the smallest unit.

    ``asset``: ETH, a token's symbol or an address; when it is missing, the prices' unit names
    it. Prices: the smallest unit (``10000000``) or with a unit (``10 mUSD``, ``0.01 ether``).
    ``known``: :func:`asset_infos`, when the caller has read them already."""
    prices = {k: str(params[k]).strip() for k in ("min_price", "max_price") if params.get(k) is not None}
    asset_text = params.get("asset")
    if asset_text is None and not any(not p.isdigit() for p in prices.values()):
        return params
    known = asset_infos(connection) if known is None else known
    chosen = None
    if asset_text is not None:
        wanted = str(asset_text).strip().lower()
        chosen = next((i for i in known if wanted in (i.symbol.lower(), i.address.lower())), None)
        if chosen is None and wanted != "eth":
            if not wanted.startswith("0x"):
                names = ", ".join(i.symbol for i in known)
                raise IndexQueryError("asset", f"asset: no asset {asset_text!r} in the index (known: {names})")
            chosen = AssetInfo(parse_address(str(asset_text), "asset"), str(asset_text)[:10], 0)
    else:
        units = {p.split()[-1].lower() for p in prices.values() if len(p.split()) == 2}
        eth_units = {"ether", "eth", "gwei", "wei"}
        chosen = next((i for i in known if units & ({i.symbol.lower()} | (eth_units if i.is_eth else set()))), None)
        if chosen is None:
            raise IndexQueryError("asset", "asset: say which asset the price is in (ETH, a symbol or an address)")
    out = {**params, "asset": chosen.address if chosen else ETH}
    for field, text in prices.items():
        if text.isdigit():
            continue
        try:
            value = parse_amount(
                text,
                field,
                decimals=chosen.decimals if chosen else 18,
                symbol=None if not chosen or chosen.is_eth else chosen.symbol,
            )
        except ValueError as exc:
            raise IndexQueryError(field, str(exc)) from None
        out[field] = str(value)
    return out


def find_models(
    connection: Connection, params: dict[str, Any], after: list[Any] | None = None, now: int | None = None
) -> tuple[list[dict], list | None, dict[str, Any] | None]:
    """:func:`search_models` for text parameters (the API's and the command's), units resolved;
    returns (items, the next page's cursor values, the asset the prices are in, or None)."""
    known = asset_infos(connection) if params.get("asset") is not None else None  # read once for both uses
    resolved = resolve_units(connection, params, known)
    query = ModelQuery.from_params(**resolved, after=after)
    items, next_after = search_models(connection, query, now)
    asset = None
    if query.asset is not None:
        known = asset_infos(connection) if known is None else known
        info = next((i for i in known if i.address == query.asset), None)
        asset = {
            "address": query.asset,
            "symbol": info.symbol if info else query.asset[:10],
            "decimals": info.decimals if info else 0,
        }
    return items, next_after, asset


def parse_address(text: str, field: str) -> str:
    """A checksummed address (``ETH`` for the asset means the zero address); ValueError otherwise."""
    from eth_utils import is_address, to_checksum_address

    if field == "asset" and text.strip().upper() == "ETH":
        return ETH
    if not is_address(text):
        raise ValueError(f"{text!r} is not an address (0x and 40 hex digits)")
    return to_checksum_address(text)


def _smallest_unit(text: str, field: str) -> int:
    if not str(text).isdigit():
        raise ValueError(f"{text!r} is not a whole number of the asset's smallest unit (wei for ETH)")
    return int(text)


def _per_30_days(bound: int, period: int) -> int:
    return bound * THIRTY_DAYS // period


def _offer_conditions(query: ModelQuery, offers: Any = o, *, by_model: bool = False) -> list[Any]:
    """The offer conditions of ``query`` on ``offers`` (the offers table or an alias of it), with
    bound parameters named as :func:`_values` names them.

    ``by_model``: for a probe of one model's offers, on SQLite. Asset and price are then compared
    through ``lower()`` (the same values: addresses compare lower-cased, prices are digits), which
    keeps SQLite from choosing the (asset, price) index over the model's: without statistics it
    would otherwise scan every offer in the price range for each model. Not on PostgreSQL: its
    statistics know nothing of ``lower(price)``, so it guessed one matching offer and chose to scan
    every offer and sort the models instead of walking them in order (95 ms instead of a few)."""
    now = bindparam("now")
    conditions = [offers.c.active == True, or_(offers.c.valid_until == 0, offers.c.valid_until > now)]  # noqa: E712 - SQL
    asset, column = offers.c.asset, offers.c.price_30d
    if by_model:
        asset, column = func.lower(asset), func.lower(column)
    if query.tier is not None:
        conditions.append(offers.c.tier == bindparam("tier"))
    if query.asset is not None:
        conditions.append(asset == bindparam("asset_lower" if by_model else "asset", type_=String))
    subscription = offers.c.tier == int(Tier.SUBSCRIPTION)
    if query.min_price is not None:
        per_30, other = bindparam("min_30", type_=String), bindparam("min", type_=String)
        conditions.append(or_(and_(subscription, column >= per_30), and_(~subscription, column >= other)))
    if query.max_price is not None:
        per_30, other = bindparam("max_30", type_=String), bindparam("max", type_=String)
        conditions.append(or_(and_(subscription, column <= per_30), and_(~subscription, column <= other)))
    return conditions


def _of_model(offers: Any, model_id: Any, *conditions: Any) -> Any:
    """EXISTS an offer of ``model_id`` meeting ``conditions`` (made with ``by_model=True``)."""
    return exists(select(offers.c.offer_id).where(offers.c.model_id == model_id, *conditions))


def _status_condition(status: str) -> Any:
    if status == "frozen":
        return m.c.frozen.is_(True)
    not_frozen = m.c.frozen.is_(False)
    now = bindparam("now")
    if status == "active":
        return and_(not_frozen, m.c.service_ends_at == 0)
    if status == "retiring":
        return and_(not_frozen, m.c.service_ends_at > now)
    return and_(not_frozen, m.c.service_ends_at != 0, m.c.service_ends_at <= now)


def model_status(row: Any, now: int) -> str:
    if row["frozen"]:
        return "frozen"
    ends = row["service_ends_at"]
    if not ends:
        return "active"
    return "retiring" if ends > now else "retired"


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _shape(query: ModelQuery, sqlite: bool) -> tuple:
    """What a search's SQL depends on (its values are bound parameters): the statements' cache key."""
    return (
        sqlite,
        query.sort,
        *(x is not None for x in (query.tier, query.asset, query.min_price, query.max_price)),
        query.language is not None,
        query.creator is not None,
        query.status,
        len(query.text.split()) if query.text else 0,
        bool(query.after),
        query.limit,
    )


def _values(query: ModelQuery, now: int) -> dict[str, Any]:
    """The bound parameters of ``query``'s statement (see :func:`_statement`)."""
    values: dict[str, Any] = {"now": now}
    if query.tier is not None:
        values["tier"] = int(query.tier)
    if query.asset is not None:
        values["asset"], values["asset_lower"] = query.asset, query.asset.lower()
    for name, bound in (("min", query.min_price), ("max", query.max_price)):
        if bound is not None:
            values[f"{name}_30"] = schema.amount(_per_30_days(bound, query.period))
            values[name] = schema.amount(bound)
    if query.language is not None:
        values["language_bit"] = 1 << int(query.language)
    if query.creator is not None:
        values["creator"] = query.creator
    for i, word in enumerate(query.text.lower().split() if query.text else []):
        values[f"word_{i}"] = _like(word)
    if query.after:
        after = query.after
        if query.sort == "cheapest":
            values["after_price"], values["after_position"] = str(after[0]), int(after[1])
        elif query.sort == "newest":
            values["after_position"] = int(after[0])
        else:
            values["after_uses"], values["after_position"] = int(after[0]), int(after[1])
    return values


@functools.lru_cache(maxsize=512)
def _statement(shape: tuple) -> Any:
    """The search statement of a :func:`_shape` (its values are bound at execution): built once
    per shape, so that a search costs its execution and not the building of a twenty-condition
    SQLAlchemy expression (most of a query's time at this size)."""
    sqlite, sort, tier, asset, min_price, max_price, language, creator, status, _, after, limit = shape
    query = ModelQuery(  # a stand-in with the shape's conditions: the values are bound parameters
        tier=Tier.BUYOUT if tier else None,
        asset=ETH if asset else None,
        min_price=0 if min_price else None,
        max_price=0 if max_price else None,
        language=next(iter(Language)) if language else None,
        creator=ETH if creator else None,
        status=status,
        sort=sort,
        limit=limit,
        after=[0] if after else None,
    )
    columns = [m, md.c.state.label("metadata_state"), md.c.name, md.c.description, md.c.error.label("metadata_error")]
    if query.sort == "cheapest":
        cheaper = o.alias("cheaper")
        statement = (
            select(*columns, o.c.price_30d.label("min_price"))
            .select_from(o.join(m, m.c.model_id == o.c.model_id).outerjoin(md, md.c.cid == m.c.metadata_cid))
            .where(*_offer_conditions(query))
            .where(
                ~_of_model(
                    cheaper,
                    o.c.model_id,
                    *_offer_conditions(query, cheaper, by_model=sqlite),
                    or_(
                        cheaper.c.price_30d < o.c.price_30d,
                        and_(cheaper.c.price_30d == o.c.price_30d, cheaper.c.offer_id < o.c.offer_id),
                    ),
                )
            )
        )
        if query.after:
            price, place = bindparam("after_price", type_=String), bindparam("after_position")
            statement = statement.where(or_(o.c.price_30d > price, and_(o.c.price_30d == price, m.c.position < place)))
        statement = statement.order_by(o.c.price_30d.asc(), m.c.position.desc())
    else:
        if query.filters_offers:  # the lowest matching price, worked out for the page's rows only
            lowest = o.alias("lowest")
            conditions = _offer_conditions(query, lowest, by_model=sqlite)
            min_price = select(func.min(lowest.c.price_30d)).where(lowest.c.model_id == m.c.model_id, *conditions)
            columns.append(min_price.scalar_subquery().label("min_price"))
        statement = select(*columns).select_from(m.outerjoin(md, md.c.cid == m.c.metadata_cid))
        if query.filters_offers:
            statement = statement.where(_of_model(o, m.c.model_id, *_offer_conditions(query, by_model=sqlite)))
        if query.sort == "newest":
            if query.after:
                statement = statement.where(m.c.position < bindparam("after_position"))
            statement = statement.order_by(m.c.position.desc())
        else:
            if query.after:
                uses, place = bindparam("after_uses"), bindparam("after_position")
                statement = statement.where(or_(m.c.uses < uses, and_(m.c.uses == uses, m.c.position < place)))
            statement = statement.order_by(m.c.uses.desc(), m.c.position.desc())
    if query.language is not None:
        statement = statement.where(m.c.languages.op("&")(bindparam("language_bit")) != 0)
    if query.creator is not None:
        statement = statement.where(m.c.creator == bindparam("creator"))
    if query.status is not None:
        statement = statement.where(_status_condition(query.status))
    for i in range(shape[-3]):
        statement = statement.where(md.c.search_text.like(bindparam(f"word_{i}", type_=String), escape="\\"))
    return statement.limit(query.limit + 1)


def search_models(connection: Connection, query: ModelQuery, now: int | None = None) -> tuple[list[dict], list | None]:
    """One page of models matching ``query``; returns (items, the cursor values of the next page or None).

    The plans stay cheap at any size: ``newest`` and ``most_used`` walk the models in index order
    and test each for a matching offer (``EXISTS``) until a page is full; ``cheapest`` walks the
    matching offers in price order (an index on asset and price), keeping each model's cheapest
    one only (``NOT EXISTS`` a cheaper match), until a page of models is full.
    """
    query.check()
    now = int(time.time()) if now is None else now
    shape = _shape(query, connection.dialect.name == "sqlite")
    statement = _statement(shape)
    rows = connection.execute(statement, _values(query, now)).mappings().all()
    page = rows[: query.limit]
    priced = query.sort == "cheapest" or query.filters_offers
    items = [_model_item(row, now, row["min_price"] if priced else None) for row in page]
    next_after = None
    if len(rows) > query.limit:
        last = page[-1]
        next_after = {
            "newest": [last["position"]],
            "most_used": [last["uses"], last["position"]],
            "cheapest": [last.get("min_price"), last["position"]],
        }[query.sort]
    return items, next_after


def _languages(bits: int) -> list[str]:
    return [language.label for language in Language.members_of(bits)]


def _model_item(row: Any, now: int, min_price: str | None = None) -> dict[str, Any]:
    item = {
        "model_id": row["model_id"],
        "name": row["name"],
        "description": row["description"],
        "languages": _languages(row["languages"]),
        "creator": row["creator"],
        "owner": row["owner"],
        "voice_owner": row["voice_owner"],
        "status": model_status(row, now),
        "service_ends_at": row["service_ends_at"] or None,
        "uses": row["uses"],
        "licenses_sold": row["licenses_sold"],
        "registered_at": row["timestamp"],
        "block": row["block"],
        "metadata_cid": row["metadata_cid"] or None,
        "metadata_state": row["metadata_state"] or "pending",
        "metadata_error": row["metadata_error"],
    }
    if min_price is not None:
        item["min_price_30d"] = str(int(min_price))
    return item


# ---------------------------------------------------------------- one model


def _offer_item(row: Any) -> dict[str, Any]:
    return {
        "offer_id": row["offer_id"],
        "model_id": row["model_id"],
        "tier": Tier(row["tier"]).label,
        "asset": row["asset"],
        "price": str(int(row["price"])),
        "period": row["period"] or None,
        "max_uses": row["max_uses"] or None,
        "pack_size": row["pack_size"] or None,
        "valid_until": row["valid_until"] or None,
        "max_licenses": row["max_licenses"] or None,
        "sold": row["sold"],
        "active": row["active"],
        "permissions": row["permissions"],
        "prohibitions": row["prohibitions"],
        "purposes": row["purposes"],
        "attribution": row["attribution"],
        "transferable": row["transferable"],
        "territories": row["territories"].split() if row["territories"] else [],
        "policy_hash": row["policy_hash"],
        "publisher": row["publisher"],
        "published_at": row["timestamp"],
    }


def offer_policy(row: Any, state: dict[str, str]) -> dict[str, Any]:
    """The offer's ODRL document, regenerated from its terms as the licensing commands do, and
    whether it hashes to the offer's ``policyHash`` (done when read: a few ms per offer, kept off
    the indexer's path)."""
    from eth_utils import to_checksum_address

    from voicemarket.content.odrl import OfferTerms, PolicySubject, build_policy, policy_hash

    terms = OfferTerms(
        tier=Tier(row["tier"]),
        price=int(row["price"]),
        asset=row["asset"],
        period=row["period"],
        max_uses=row["max_uses"],
        pack_size=row["pack_size"],
        valid_until=row["valid_until"],
        max_licenses=row["max_licenses"],
        permissions=row["permissions"],
        prohibitions=row["prohibitions"],
        attribution=row["attribution"],
        transferable=row["transferable"],
        territories="".join(row["territories"].split()).encode("ascii"),
        purposes=row["purposes"],
    )
    subject = PolicySubject(
        int(state["chain_id"]), to_checksum_address(state["registry"]), row["publisher"], int(row["model_id"], 16)
    )
    try:
        document = build_policy(terms, subject)
    except ValueError:  # PolicyError among them: terms no document expresses do not match any hash
        return {"policy": None, "policy_matches": False}
    return {"policy": document, "policy_matches": "0x" + policy_hash(document).hex() == row["policy_hash"]}


def get_model(connection: Connection, model_id: str, now: int | None = None) -> dict[str, Any] | None:
    """A model with its metadata, offers, versions (parents and children), allowed operators and uses by tier."""
    now = int(time.time()) if now is None else now
    row = (
        connection.execute(
            select(
                m,
                md.c.state.label("metadata_state"),
                md.c.name,
                md.c.description,
                md.c.error.label("metadata_error"),
                md.c.preview,
                md.c.image,
                md.c.architecture,
                md.c.version,
                md.c.attempts.label("metadata_attempts"),
            )
            .select_from(m.outerjoin(md, md.c.cid == m.c.metadata_cid))
            .where(m.c.model_id == model_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    item = _model_item(row, now)
    item.update(
        preview=row["preview"],
        image=row["image"],
        architecture=row["architecture"],
        version=row["version"],
        metadata_attempts=row["metadata_attempts"] or 0,
        voice_owner_bps=row["voice_owner_bps"],
        consent_signed=row["consent"],
        policy_hash=row["policy_hash"],
        bundle_digest=row["bundle_digest"],
        dispute_window=row["dispute_window"],
        frozen_reason=row["frozen_reason"],
        parent_id=row["parent_id"],
    )
    offers = connection.execute(select(o).where(o.c.model_id == model_id).order_by(o.c.offer_id)).mappings().all()
    state = dict(connection.execute(select(schema.state.c.key, schema.state.c.value)).all())
    item["offers"] = [{**_offer_item(offer), **offer_policy(offer, state)} for offer in offers]
    parents = []
    parent = row["parent_id"]
    while parent is not None and len(parents) < 100:
        parents.append(parent)
        parent = connection.execute(select(m.c.parent_id).where(m.c.model_id == parent)).scalar()
    item["versions"] = {
        "parents": parents,
        "children": [
            child
            for (child,) in connection.execute(
                select(m.c.model_id).where(m.c.parent_id == model_id).order_by(m.c.position)
            )
        ],
    }
    item["uses_by_tier"] = uses_by_tier(connection, model_id)
    item["operators"] = [
        {"operator": op, "allowed": allowed, "allowed_until": until if until < 2**40 - 1 else None}
        for op, allowed, until in connection.execute(
            select(
                schema.model_operators.c.operator,
                schema.model_operators.c.allowed,
                schema.model_operators.c.allowed_until,
            ).where(schema.model_operators.c.model_id == model_id)
        )
    ]
    return item


USE_STATUSES = (RequestStatus.PENDING, RequestStatus.FULFILLED, RequestStatus.DISPUTED, RequestStatus.SETTLED)
"""The requests that count as uses: made and not given back. A failed, expired or reversed (dispute
upheld) request is refunded, its use returned to the licence, so it is not a use."""


def uses_by_tier(connection: Connection, model_id: str) -> dict[str, int]:
    """A model's uses per tier of the licence each request was made under (every tier listed)."""
    q = schema.requests
    lic = schema.licenses
    counted = dict.fromkeys((tier.label for tier in Tier), 0)
    for tier, count in connection.execute(
        select(lic.c.tier, func.count())
        .select_from(q.join(lic, lic.c.license_id == q.c.license_id))
        .where(q.c.model_id == model_id, q.c.status.in_([int(status) for status in USE_STATUSES]))
        .group_by(lic.c.tier)
    ):
        counted[Tier(tier).label] = count
    return counted


# ---------------------------------------------------------------- accounts


def account_licenses(
    connection: Connection, account: str, *, limit: int = 20, after: int | None = None, now: int | None = None
) -> tuple[list[dict], list | None]:
    """The licences ``account`` holds, newest first."""
    now = int(time.time()) if now is None else now
    lic = schema.licenses
    statement = select(lic).where(lic.c.holder == account)
    if after is not None:
        statement = statement.where(lic.c.license_id < after)
    rows = connection.execute(statement.order_by(lic.c.license_id.desc()).limit(limit + 1)).mappings().all()
    items = []
    for row in rows[:limit]:
        tier = Tier(row["tier"])
        limit_ = row["use_limit"]
        if tier == Tier.SUBSCRIPTION:
            uses_left = None  # a per-period quota: the contract's isLicensed says what is left now
            valid = row["expires_at"] > now
        else:
            uses_left = max(0, limit_ - row["uses"]) if limit_ else None
            valid = uses_left is None or uses_left > 0
        items.append(
            {
                "license_id": row["license_id"],
                "offer_id": row["offer_id"],
                "model_id": row["model_id"],
                "tier": tier.label,
                "holder": row["holder"],
                "buyer": row["buyer"],
                "asset": row["asset"],
                "paid": str(int(row["paid"])),
                "quantity": row["quantity"],
                "expires_at": row["expires_at"] or None,
                "auto_renew": row["auto_renew"],
                "cancelled": row["cancelled"],
                "uses": row["uses"],
                "use_limit": limit_ or None,
                "uses_left": uses_left,
                "valid": valid,
                "bought_at": row["timestamp"],
            }
        )
    return items, ([rows[limit - 1]["license_id"]] if len(rows) > limit else None)


def _day(timestamp: int) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d")


def earnings(connection: Connection, account: str) -> dict[str, Any]:
    """What ``account`` earned: credits received per model, party and asset (also per day), and for
    the models it created: gross revenue, platform fees and what still waits in the pots."""
    p = schema.payouts
    received: dict[tuple[str, str, str], int] = defaultdict(int)
    by_day: dict[tuple[str, str], int] = defaultdict(int)
    for model_id, asset, party, amount, timestamp in connection.execute(
        select(p.c.model_id, p.c.asset, p.c.party, p.c.amount, p.c.timestamp).where(p.c.account == account)
    ):
        received[(model_id, asset, party)] += int(amount)
        by_day[(_day(timestamp), asset)] += int(amount)
    created = [mid for (mid,) in connection.execute(select(m.c.model_id).where(m.c.creator == account))]
    models: dict[str, dict[str, dict[str, int]]] = {}
    if created:
        r = schema.revenue
        for model_id, asset, kind, amount, fee in connection.execute(
            select(r.c.model_id, r.c.asset, r.c.kind, r.c.amount, r.c.platform_fee).where(r.c.model_id.in_(created))
        ):
            totals = models.setdefault(model_id, {}).setdefault(
                asset, {"gross": 0, "platform_fees": 0, "distributed": 0, "pending": 0}
            )
            if kind == "accrued":
                totals["gross"] += int(amount)
                totals["platform_fees"] += int(fee)
                totals["pending"] += int(amount) - int(fee)
            else:
                totals["distributed"] += int(amount)
                totals["pending"] -= int(amount)
    return {
        "account": account,
        "received": [
            {"model_id": model_id, "asset": asset, "party": party, "amount": str(amount)}
            for (model_id, asset, party), amount in sorted(received.items())
        ],
        "received_by_day": [
            {"day": day, "asset": asset, "amount": str(amount)} for (day, asset), amount in sorted(by_day.items())
        ],
        "created_models": [
            {"model_id": model_id, "asset": asset, **{k: str(v) for k, v in totals.items()}}
            for model_id, assets in sorted(models.items())
            for asset, totals in sorted(assets.items())
        ],
    }


def operator_record(connection: Connection, address: str) -> dict[str, Any] | None:
    """An operator's stake, fees, models served and track record (counts, time to fulfil)."""
    row = connection.execute(select(schema.operators).where(schema.operators.c.address == address)).mappings().first()
    if row is None:
        return None
    q = schema.requests
    pending = connection.execute(
        select(func.count()).where(q.c.operator == address, q.c.status == int(RequestStatus.PENDING))
    ).scalar()
    seconds = connection.execute(
        select(func.avg(q.c.fulfilled_at - q.c.timestamp), func.max(q.c.fulfilled_at - q.c.timestamp)).where(
            q.c.operator == address, q.c.fulfilled_at.is_not(None)
        )
    ).first()
    fails = connection.execute(
        select(q.c.fail_reason, func.count())
        .where(q.c.operator == address, q.c.fail_reason.is_not(None))
        .group_by(q.c.fail_reason)
    ).all()
    mo = schema.model_operators
    fees = schema.operator_fees
    return {
        "address": row["address"],
        "registered": row["registered"],
        "stake": str(int(row["stake"])),
        "slashed": str(int(row["slashed"])),
        "unbonding_ends_at": row["unbonding_ends_at"] or None,
        "public_key": row["public_key"],
        "fees": [
            {"asset": asset, "fee": str(int(fee))}
            for asset, fee in connection.execute(select(fees.c.asset, fees.c.fee).where(fees.c.operator == address))
        ],
        "models_served": [
            model_id
            for (model_id,) in connection.execute(
                select(mo.c.model_id).where(mo.c.operator == address, mo.c.allowed.is_(True)).order_by(mo.c.model_id)
            )
        ],
        "fulfilled": row["fulfilled"],
        "failed": row["failed"],
        "expired": row["expired"],
        "disputes_lost": row["disputes_lost"],
        "pending": pending,
        "failures": {FailReason(reason).label: count for reason, count in fails},
        "mean_seconds_to_fulfil": float(seconds[0]) if seconds[0] is not None else None,
        "max_seconds_to_fulfil": int(seconds[1]) if seconds[1] is not None else None,
        "registered_at": row["timestamp"],
    }


def stats(connection: Connection, now: int | None = None) -> dict[str, Any]:
    """The market in numbers: models by status, offers, licences by tier, requests by status, volume per asset."""
    now = int(time.time()) if now is None else now
    by_status = dict.fromkeys(STATUSES, 0)
    for frozen, ends, count in connection.execute(
        select(m.c.frozen, m.c.service_ends_at, func.count()).group_by(m.c.frozen, m.c.service_ends_at)
    ):
        by_status[model_status({"frozen": frozen, "service_ends_at": ends}, now)] += count
    lic = schema.licenses
    q = schema.requests
    volume: dict[str, int] = defaultdict(int)
    r = schema.revenue
    for asset, amount in connection.execute(select(r.c.asset, r.c.amount).where(r.c.kind == "accrued")):
        volume[asset] += int(amount)
    state = dict(connection.execute(select(schema.state.c.key, schema.state.c.value)).all())
    return {
        "models": by_status,
        "offers_active": connection.execute(select(func.count()).where(o.c.active.is_(True))).scalar(),
        "licenses": {
            Tier(tier).label: count
            for tier, count in connection.execute(select(lic.c.tier, func.count()).group_by(lic.c.tier))
        },
        "requests": {
            RequestStatus(status).label: count
            for status, count in connection.execute(select(q.c.status, func.count()).group_by(q.c.status))
        },
        "operators": connection.execute(select(func.count()).where(schema.operators.c.registered.is_(True))).scalar(),
        "revenue": {asset: str(amount) for asset, amount in sorted(volume.items())},
        "indexed_to_block": int(state.get("next_block", 0)) - 1,
    }


def activity_after(
    connection: Connection,
    after: int,
    *,
    model_id: str | None = None,
    account: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Activity after ``after`` (a position), oldest first, for a model and/or an account."""
    a = schema.activity
    statement = select(a).where(a.c.position > after)
    if model_id is not None:
        statement = statement.where(a.c.model_id == model_id)
    if account is not None:
        statement = statement.where(or_(a.c.account == account, a.c.counterparty == account))
    rows = connection.execute(statement.order_by(a.c.position).limit(limit)).mappings().all()
    return [
        {
            "position": row["position"],
            "kind": row["kind"],
            "model_id": row["model_id"],
            "account": row["account"],
            "counterparty": row["counterparty"],
            "license_id": row["license_id"],
            "request_id": row["request_id"],
            "block": row["block"],
            "timestamp": row["timestamp"],
            "tx_hash": row["tx_hash"],
            **row["data"],
        }
        for row in rows
    ]


def latest_position(connection: Connection) -> int:
    return connection.execute(select(func.coalesce(func.max(schema.activity.c.position), 0))).scalar()

"""From events to rows: one batch of decoded logs applied to the tables, in chain order.

A :class:`Batch` loads the rows its events touch (in bulk, by id), applies every event to them
in memory (:meth:`Batch.apply`, one method per event), and writes the result in a few
statements (:meth:`Batch.flush`): new rows inserted, changed rows updated, and, for blocks
recent enough to be reorged (``journal_from`` on), what the columns each block changed held
before it, into the :data:`~voicemarket.index.schema.journal`. The
caller runs all of it, with the checkpoint, in one transaction: a batch is applied whole or
not at all, so a crash at any point leaves the tables as they were before it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Table, and_, select, tuple_

from voicemarket.content.multiformats import CID
from voicemarket.content.odrl import terms_from_contract
from voicemarket.errors import InvalidCID
from voicemarket.index import schema
from voicemarket.index.chain import Event
from voicemarket.index.metadata import metadata_cid
from voicemarket.protocol import RequestStatus, Tier

ZERO = "0x" + "00" * 20
THIRTY_DAYS = 30 * 86_400
LOAD_CHUNK = 500

KEYS: dict[str, tuple[str, ...]] = {
    "models": ("model_id",),
    "offers": ("offer_id",),
    "licenses": ("license_id",),
    "requests": ("request_id",),
    "operators": ("address",),
    "operator_fees": ("operator", "asset"),
    "model_operators": ("model_id", "operator"),
}
"""The tables whose rows later events change, and their keys."""

APPEND_ONLY = ("revenue", "payouts", "activity")

CREATES: dict[tuple[str, str], tuple[str, Any]] = {
    ("registry", "ModelRegistered"): ("models", lambda a: model_key(a["modelId"])),
    ("offers", "OfferPublished"): ("offers", lambda a: int(a["offerId"])),
    ("licenses", "LicensePurchased"): ("licenses", lambda a: int(a["licenseId"])),
    ("router", "SynthesisRequested"): ("requests", lambda a: int(a["requestId"])),
}
"""The events that make a row with a new id: (role, event) -> (table, its key from the arguments)."""


def model_key(model_id: int) -> str:
    return f"0x{int(model_id):064x}"


def cid_text(data: bytes) -> str:
    """A CID the router recorded, as text (its hex when it is not a CID this project reads)."""
    try:
        return str(CID.from_bytes(bytes(data)))
    except (InvalidCID, ValueError):
        return "0x" + bytes(data).hex()


class Row:
    """A row in memory: its values, what it was when loaded, and the journal image of its latest block."""

    __slots__ = ("image", "last_block", "new", "original", "values")

    def __init__(self, values: dict[str, Any], *, new: bool, block: int) -> None:
        self.values = values
        self.original = None if new else dict(values)
        self.new = new
        self.last_block = block if new else -1  # the block of the latest change applied
        self.image: dict[str, Any] | None = None  # what the columns changed in last_block held before it


class Batch:
    """The events of one block range, applied to the tables (see the module docstring).

    ``chain_id`` and ``registry`` name the subject of the offers' ODRL documents; events at blocks
    ``>= journal_from`` are journaled (None: none is)."""

    def __init__(self, connection: Connection, *, chain_id: int, registry: str, journal_from: int | None) -> None:
        self.connection = connection
        self.driver = _Driver(connection)
        self.chain_id = chain_id
        self.registry = registry
        self.journal_from = journal_from
        self.rows: dict[str, dict[Any, Row | None]] = {name: {} for name in KEYS}
        self.appended: dict[str, list[dict[str, Any]]] = {name: [] for name in APPEND_ONLY}
        self.journal: dict[int, list[list[Any]]] = defaultdict(list)  # block -> [table, key, columns before]
        self.unjournaled_until = -1  # the last block changed without a journal entry
        self.new_metadata: set[str] = set()
        self._credits: dict[tuple[str, str], list[Event]] = defaultdict(list)  # (role, tx) -> Credited logs

    # ------------------------------------------------------------ rows
    def _key(self, table: str, values: dict[str, Any]) -> Any:
        names = KEYS[table]
        return values[names[0]] if len(names) == 1 else tuple(values[n] for n in names)

    def prefetch(self, table: str, keys: Iterable[Any]) -> None:
        """Load the rows of ``keys`` not loaded yet, in bulk (a miss is remembered as None)."""
        cache = self.rows[table]
        wanted = [k for k in set(keys) if k not in cache]
        sql_table = schema.TABLES_BY_NAME[table]
        names = KEYS[table]
        for start in range(0, len(wanted), LOAD_CHUNK):
            chunk = wanted[start : start + LOAD_CHUNK]
            if len(names) == 1:
                found = self.driver.load(sql_table, names[0], chunk)
            else:
                where = tuple_(*(sql_table.c[n] for n in names)).in_(chunk)
                found = (dict(r) for r in self.connection.execute(select(sql_table).where(where)).mappings())
            for values in found:
                cache[self._key(table, values)] = Row(values, new=False, block=-1)
            for key in chunk:
                cache.setdefault(key, None)

    def get(self, table: str, key: Any) -> Row | None:
        cache = self.rows[table]
        if key not in cache:
            self.prefetch(table, [key])
        return cache[key]

    def create(self, table: str, event: Event, values: dict[str, Any]) -> Row:
        """A new row of ``values`` (a dict of the caller's own: it is kept, with where the event stands)."""
        values["block"], values["timestamp"], values["tx_hash"] = event.block, event.timestamp, event.tx_hash
        row = Row(values, new=True, block=event.block)
        self.rows[table][self._key(table, values)] = row
        return row

    def change(self, table: str, row: Row, event: Event, **values: Any) -> None:
        """Set columns of ``row`` by ``event``, journaling what those columns held before ``event``'s block
        (one image per row and block: the columns the block changed, as they were before it)."""
        if event.block != row.last_block:
            if self.journal_from is not None and event.block >= self.journal_from:
                key = self._key(table, row.values)
                row.image = {}
                self.journal[event.block].append([table, list(key) if isinstance(key, tuple) else [key], row.image])
            else:
                row.image = None
                self.unjournaled_until = max(self.unjournaled_until, event.block)
            row.last_block = event.block
        current = row.values
        if row.image is not None:
            for column in values:
                if column not in row.image:
                    row.image[column] = current[column]  # every value is JSON already (ints, text, bools)
        current.update(values)

    def add(self, table: str, event: Event, values: dict[str, Any]) -> None:
        """An append-only row of ``values`` (a dict of the caller's own: it is kept)."""
        values["block"], values["timestamp"], values["tx_hash"] = event.block, event.timestamp, event.tx_hash
        self.appended[table].append(values)

    # ------------------------------------------------------------ applying events
    def prefetch_for(self, events: list[Event]) -> None:
        """Load, in a few queries, the rows that ``events`` refer to by id. The rows the batch's own
        events make are known to be missing and not looked for (most of a busy chain's ids)."""
        ids: dict[str, set[Any]] = defaultdict(set)
        for e in events:
            a = e.args
            made = CREATES.get((e.role, e.name))
            if made is not None:
                table, key = made
                self.rows[table].setdefault(key(a), None)
            if "modelId" in a:
                ids["models"].add(model_key(a["modelId"]))
            if e.role == "registry" and e.name == "Transfer":
                ids["models"].add(model_key(a["tokenId"]))
            if "offerId" in a:
                ids["offers"].add(int(a["offerId"]))
            if e.role == "licenses" and ("licenseId" in a or "tokenId" in a):
                ids["licenses"].add(int(a.get("licenseId", a.get("tokenId"))))
            if "requestId" in a:
                ids["requests"].add(int(a["requestId"]))
            if "request" in a:  # SynthesisRequested: the licence is inside the request struct
                ids["licenses"].add(int(a["request"]["licenseId"]))
            if "operator" in a:
                ids["operators"].add(a["operator"])
                if e.name == "ModelOperatorSet":
                    ids["model_operators"].add((model_key(a["modelId"]), a["operator"]))
                elif e.name == "OperatorFeeSet":
                    ids["operator_fees"].add((a["operator"], a["asset"]))
        self.prefetch("requests", ids["requests"])
        for row in self.rows["requests"].values():
            if row is not None:
                ids["licenses"].add(row.values["license_id"])
                ids["operators"].add(row.values["operator"])
        self.prefetch("licenses", ids["licenses"])
        for row in self.rows["licenses"].values():
            if row is not None:
                ids["offers"].add(row.values["offer_id"])
        self.prefetch("offers", ids["offers"])
        for row in self.rows["offers"].values():
            if row is not None:
                ids["models"].add(row.values["model_id"])
        self.prefetch("models", ids["models"])
        for table in ("operators", "model_operators", "operator_fees"):
            self.prefetch(table, ids[table])

    def apply(self, event: Event) -> None:
        handler = getattr(self, f"_{event.role}_{event.name}", None) or getattr(self, f"_on_{event.name}", None)
        if handler is not None:
            handler(event)

    # registry
    def _registry_ModelRegistered(self, e: Event) -> None:  # noqa: N802 - named after the event
        a = e.args
        self.create(
            "models",
            e,
            {
                "model_id": model_key(a["modelId"]),
                "position": schema.position(e.block, e.log_index),
                "creator": a["creator"],
                "owner": a["creator"],
                "voice_owner": a["voiceOwner"],
                "voice_owner_bps": int(a["voiceOwnerBps"]),
                "consent": a["voiceOwner"] != a["creator"],
                "parent_id": model_key(a["parentId"]) if int(a["parentId"]) else None,
                "bundle_digest": a["bundleDigest"],
                "policy_hash": a["policyHash"],
                "languages": int(a["languages"]),
                "metadata_cid": "",
                "dispute_window": 0,
                "frozen": False,
                "frozen_reason": None,
                "service_ends_at": 0,
                "uses": 0,
                "licenses_sold": 0,
            },
        )

    def _model(self, e: Event) -> Row | None:
        return self.get("models", model_key(e.args["modelId"]))

    def _registry_MetadataSet(self, e: Event) -> None:  # noqa: N802
        row = self._model(e)
        if row is not None:
            cid = metadata_cid(int(e.args["codec"]), e.args["metadataCid"])
            self.change("models", row, e, metadata_cid=cid)
            self.new_metadata.add(cid)

    def _registry_DisputeWindowSet(self, e: Event) -> None:  # noqa: N802
        if (row := self._model(e)) is not None:
            self.change("models", row, e, dispute_window=int(e.args["disputeWindow"]))

    def _registry_ModelRetired(self, e: Event) -> None:  # noqa: N802
        if (row := self._model(e)) is not None:
            self.change("models", row, e, service_ends_at=int(e.args["serviceEndsAt"]))

    def _registry_ModelFrozen(self, e: Event) -> None:  # noqa: N802
        if (row := self._model(e)) is not None:
            self.change("models", row, e, frozen=True, frozen_reason=e.args["reason"])

    def _registry_ModelUnfrozen(self, e: Event) -> None:  # noqa: N802
        if (row := self._model(e)) is not None:
            self.change("models", row, e, frozen=False, frozen_reason=None)

    def _registry_Transfer(self, e: Event) -> None:  # noqa: N802
        row = self.get("models", model_key(e.args["tokenId"]))
        if row is not None:  # the mint comes before ModelRegistered, which sets the owner
            self.change("models", row, e, owner=e.args["to"])

    # offer book
    def _offers_OfferPublished(self, e: Event) -> None:  # noqa: N802
        a = e.args
        fields = {**a["terms"], "policyHash": bytes.fromhex(a["terms"]["policyHash"][2:])}
        terms, model_id, stored_hash = terms_from_contract(fields, a["territories"])
        price = int(terms.price)
        per_30_days = price * THIRTY_DAYS // terms.period if terms.tier == Tier.SUBSCRIPTION and terms.period else price
        self.create(
            "offers",
            e,
            {
                "offer_id": int(a["offerId"]),
                "model_id": model_key(model_id),
                "publisher": a["publisher"],
                "tier": int(terms.tier),
                "asset": terms.asset,
                "price": schema.amount(price),
                "price_30d": schema.amount(per_30_days),
                "period": terms.period,
                "max_uses": terms.max_uses,
                "pack_size": terms.pack_size,
                "valid_until": terms.valid_until,
                "max_licenses": terms.max_licenses,
                "permissions": terms.permissions,
                "prohibitions": terms.prohibitions,
                "attribution": terms.attribution,
                "transferable": terms.transferable,
                "purposes": terms.purposes,
                "territories": " ".join(
                    terms.territories[i : i + 2].decode("ascii", "replace") for i in range(0, len(terms.territories), 2)
                ),
                "policy_hash": "0x" + stored_hash.hex(),
                "active": True,
                "sold": 0,
            },
        )

    def _offers_OfferDeactivated(self, e: Event) -> None:  # noqa: N802
        if (row := self.get("offers", int(e.args["offerId"]))) is not None:
            self.change("offers", row, e, active=False)

    # licence manager
    def _licenses_LicensePurchased(self, e: Event) -> None:  # noqa: N802
        a = e.args
        offer = self.get("offers", int(a["offerId"]))
        if offer is None:  # an offer older than the index's first block: nothing to attach it to
            return
        o = offer.values
        quantity = int(a["quantity"])
        limit = quantity * o["pack_size"] if o["tier"] == Tier.PAY_PER_USE and o["pack_size"] else o["max_uses"]
        self.create(
            "licenses",
            e,
            {
                "license_id": int(a["licenseId"]),
                "offer_id": o["offer_id"],
                "model_id": o["model_id"],
                "tier": o["tier"],
                "buyer": a["buyer"],
                "holder": a["buyer"],
                "asset": o["asset"],
                "quantity": quantity,
                "paid": schema.amount(int(a["paid"])),
                "expires_at": 0,
                "auto_renew": False,
                "cancelled": False,
                "uses": 0,
                "use_limit": limit,
            },
        )
        self.change("offers", offer, e, sold=o["sold"] + 1)
        if (model := self.get("models", o["model_id"])) is not None:
            self.change("models", model, e, licenses_sold=model.values["licenses_sold"] + 1)
        self._activity(
            e,
            "license_purchased",
            model_id=o["model_id"],
            account=a["buyer"],
            license_id=int(a["licenseId"]),
            data={
                "offer_id": o["offer_id"],
                "tier": Tier(o["tier"]).label,
                "quantity": quantity,
                "paid": str(a["paid"]),
            },
        )

    def _license(self, e: Event) -> Row | None:
        return self.get("licenses", int(e.args.get("licenseId", e.args.get("tokenId"))))

    def _licenses_SubscriptionUpdate(self, e: Event) -> None:  # noqa: N802
        if (row := self._license(e)) is not None:
            self.change("licenses", row, e, expires_at=int(e.args["expiration"]))

    def _licenses_SubscriptionCancelled(self, e: Event) -> None:  # noqa: N802
        if (row := self._license(e)) is not None:
            self.change("licenses", row, e, cancelled=True)

    def _licenses_AutoRenewSet(self, e: Event) -> None:  # noqa: N802
        if (row := self._license(e)) is not None:
            self.change("licenses", row, e, auto_renew=bool(e.args["autoRenew"]))

    def _licenses_Transfer(self, e: Event) -> None:  # noqa: N802
        if (row := self._license(e)) is not None:  # the mint comes before LicensePurchased
            self.change("licenses", row, e, holder=e.args["to"])

    # both money-holding contracts
    def _on_RevenueAccrued(self, e: Event) -> None:  # noqa: N802
        self._revenue(e, "accrued")

    def _on_RevenueDistributed(self, e: Event) -> None:  # noqa: N802
        """The parties' credits are the ``Credited`` logs right before it in the transaction."""
        self._revenue(e, "distributed")
        model = self._model(e)
        credits = self._credits.get((e.role, e.tx_hash), [])
        expected = e.log_index - 1
        while credits and credits[-1].log_index == expected and credits[-1].args["asset"] == e.args["asset"]:
            credit = credits.pop()
            expected -= 1
            if model is None:
                continue
            account = credit.args["account"]
            m = model.values
            party = "creator" if account in (m["creator"], m["owner"]) else "voice owner"
            if account != m["voice_owner"] and party != "creator":
                party = "co-creator"
            self.add(
                "payouts",
                credit,
                {
                    "position": schema.position(credit.block, credit.log_index),
                    "model_id": m["model_id"],
                    "asset": credit.args["asset"],
                    "account": account,
                    "party": party,
                    "amount": schema.amount(int(credit.args["amount"])),
                },
            )

    def _on_Credited(self, e: Event) -> None:  # noqa: N802
        self._credits[(e.role, e.tx_hash)].append(e)

    def _revenue(self, e: Event, kind: str) -> None:
        a = e.args
        self.add(
            "revenue",
            e,
            {
                "position": schema.position(e.block, e.log_index),
                "model_id": model_key(a["modelId"]),
                "asset": a["asset"],
                "source": {"licenses": "sales", "router": "uses"}.get(e.role, "local"),
                "kind": kind,
                "amount": schema.amount(int(a["amount"])),
                "platform_fee": schema.amount(int(a["platformFee"])),
            },
        )

    # router: requests
    def _router_SynthesisRequested(self, e: Event) -> None:  # noqa: N802
        r = e.args["request"]
        model_id = model_key(r["modelId"])
        self.create(
            "requests",
            e,
            {
                "request_id": int(r["id"]),
                "position": schema.position(e.block, e.log_index),
                "model_id": model_id,
                "license_id": int(r["licenseId"]),
                "requester": r["requester"],
                "operator": r["operator"],
                "asset": r["asset"],
                "use_price": schema.amount(int(r["usePrice"])),
                "fee": schema.amount(int(r["fee"])),
                "language": int(r["params"]) & 0xFF,
                "deadline": int(r["deadline"]),
                "status": int(RequestStatus.PENDING),
                "fail_reason": None,
                "output_cid": None,
                "fulfilled_at": None,
                "settle_after": None,
                "closed_at": None,
            },
        )
        if (model := self.get("models", model_id)) is not None:
            self.change("models", model, e, uses=model.values["uses"] + 1)
        if (license := self.get("licenses", int(r["licenseId"]))) is not None:
            self.change("licenses", license, e, uses=license.values["uses"] + 1)
        self._activity(
            e,
            "use_requested",
            model_id=model_id,
            account=r["requester"],
            counterparty=r["operator"],
            license_id=int(r["licenseId"]),
            request_id=int(r["id"]),
            data={"fee": str(r["fee"]), "use_price": str(r["usePrice"]), "language": int(r["params"]) & 0xFF},
        )

    def _request(self, e: Event) -> Row | None:
        return self.get("requests", int(e.args["requestId"]))

    def _close(self, e: Event, row: Row, status: RequestStatus, kind: str, *, refund: bool, **values: Any) -> None:
        self.change("requests", row, e, status=int(status), closed_at=e.timestamp, **values)
        r = row.values
        if refund and (license := self.get("licenses", r["license_id"])) is not None:
            self.change("licenses", license, e, uses=max(0, license.values["uses"] - 1))
        self._request_activity(e, row, kind)

    def _request_activity(self, e: Event, row: Row, kind: str, **data: Any) -> None:
        r = row.values
        self._activity(
            e,
            kind,
            model_id=r["model_id"],
            account=r["operator"],
            counterparty=r["requester"],
            license_id=r["license_id"],
            request_id=r["request_id"],
            data=data,
        )

    def _count(self, e: Event, operator: str, column: str) -> None:
        if (row := self.get("operators", operator)) is not None:
            self.change("operators", row, e, **{column: row.values[column] + 1})

    def _router_SynthesisFulfilled(self, e: Event) -> None:  # noqa: N802
        if (row := self._request(e)) is None:
            return
        settle_after = int(e.args["settleAfter"])
        status = RequestStatus.SETTLED if settle_after == e.timestamp else RequestStatus.FULFILLED
        cid = cid_text(e.args["outputCid"])
        self.change(
            "requests",
            row,
            e,
            status=int(status),
            fulfilled_at=e.timestamp,
            settle_after=settle_after,
            output_cid=cid,
        )
        self._count(e, row.values["operator"], "fulfilled")
        self._request_activity(e, row, "fulfilled", output_cid=cid)

    def _router_SynthesisFailed(self, e: Event) -> None:  # noqa: N802
        if (row := self._request(e)) is not None:
            self._close(e, row, RequestStatus.FAILED, "failed", refund=True, fail_reason=int(e.args["reason"]))
            self._count(e, row.values["operator"], "failed")

    def _router_SynthesisExpired(self, e: Event) -> None:  # noqa: N802
        if (row := self._request(e)) is not None:
            self._close(e, row, RequestStatus.EXPIRED, "expired", refund=True)
            self._count(e, row.values["operator"], "expired")

    def _router_SynthesisSettled(self, e: Event) -> None:  # noqa: N802
        if (row := self._request(e)) is None:
            return
        r = row.values
        if int(e.args["fee"]):
            self.add(
                "payouts",
                e,
                {
                    "position": schema.position(e.block, e.log_index),
                    "model_id": r["model_id"],
                    "asset": r["asset"],
                    "account": e.args["operator"],
                    "party": "operator",
                    "amount": schema.amount(int(e.args["fee"])),
                },
            )
        self._close(e, row, RequestStatus.SETTLED, "settled", refund=False)

    def _router_SynthesisDisputed(self, e: Event) -> None:  # noqa: N802
        if (row := self._request(e)) is not None:
            self.change("requests", row, e, status=int(RequestStatus.DISPUTED), settle_after=int(e.args["decideBy"]))
            self._request_activity(e, row, "disputed")

    def _router_DisputeResolved(self, e: Event) -> None:  # noqa: N802
        if (row := self._request(e)) is None:
            return
        if e.args["upheld"]:
            self._close(e, row, RequestStatus.REVERSED, "dispute_upheld", refund=True)
            self._count(e, row.values["operator"], "disputes_lost")
        # rejected: SynthesisSettled follows in the same transaction

    # router: operators
    def _router_OperatorRegistered(self, e: Event) -> None:  # noqa: N802
        a = e.args
        values = {
            "public_key": "0x" + bytes(a["publicKey"]).hex(),
            "registered": True,
            "stake": schema.amount(int(a["stake"])),
            "unbonding_ends_at": 0,
        }
        row = self.get("operators", a["operator"])
        if row is not None:  # registered again after withdrawing
            self.change("operators", row, e, **values)
            return
        self.create(
            "operators",
            e,
            {
                "address": a["operator"],
                **values,
                "slashed": schema.amount(0),
                "fulfilled": 0,
                "failed": 0,
                "expired": 0,
                "disputes_lost": 0,
            },
        )

    def _operator(self, e: Event) -> Row | None:
        return self.get("operators", e.args["operator"])

    def _router_StakeAdded(self, e: Event) -> None:  # noqa: N802
        if (row := self._operator(e)) is not None:
            self.change("operators", row, e, stake=schema.amount(int(e.args["stake"])))

    def _router_UnbondingStarted(self, e: Event) -> None:  # noqa: N802
        if (row := self._operator(e)) is not None:
            self.change("operators", row, e, unbonding_ends_at=int(e.args["unbondingEndsAt"]))

    def _router_StakeWithdrawn(self, e: Event) -> None:  # noqa: N802
        if (row := self._operator(e)) is not None:
            self.change("operators", row, e, stake=schema.amount(0), registered=False)

    def _router_OperatorSlashed(self, e: Event) -> None:  # noqa: N802
        if (row := self._operator(e)) is not None:
            amount = int(e.args["amount"])
            v = row.values
            self.change(
                "operators",
                row,
                e,
                stake=schema.amount(max(0, int(v["stake"]) - amount)),
                slashed=schema.amount(int(v["slashed"]) + amount),
            )

    def _router_OperatorFeeSet(self, e: Event) -> None:  # noqa: N802
        a = e.args
        key = (a["operator"], a["asset"])
        row = self.get("operator_fees", key)
        if row is None:
            self.create("operator_fees", e, {"operator": key[0], "asset": key[1], "fee": schema.amount(int(a["fee"]))})
        else:
            self.change("operator_fees", row, e, fee=schema.amount(int(a["fee"])))

    def _router_ModelOperatorSet(self, e: Event) -> None:  # noqa: N802
        a = e.args
        key = (model_key(a["modelId"]), a["operator"])
        values = {"allowed": bool(a["allowed"]), "allowed_until": int(a["allowedUntil"])}
        row = self.get("model_operators", key)
        if row is None:
            self.create("model_operators", e, {"model_id": key[0], "operator": key[1], **values})
        else:
            self.change("model_operators", row, e, **values)

    # KeyDelivery (local-use licences): the activity feed; its money is in `revenue` (source "local")
    def _key_delivery_LocalUsePurchased(self, e: Event) -> None:  # noqa: N802
        a = e.args
        data = {"amount": str(a["amount"]), "deadline": int(a["deadline"]), "offer_id": int(a["offerId"])}
        self._activity(
            e,
            "local use bought",
            model_id=model_key(a["modelId"]),
            account=a["buyer"],
            license_id=int(a["licenseId"]),
            data=data,
        )

    def _key_delivery_KeyDelivered(self, e: Event) -> None:  # noqa: N802
        a = e.args
        data = {"key_cid": "0x" + bytes(a["keyCid"]).hex()}
        self._activity(
            e,
            "key delivered",
            model_id=model_key(a["modelId"]),
            account=a["keyHolder"],
            license_id=int(a["licenseId"]),
            data=data,
        )

    def _local_use_event(self, e: Event, kind: str, data: dict[str, Any]) -> None:
        licence = self.get("licenses", int(e.args["licenseId"]))
        model_id = licence.values["model_id"] if licence is not None else None
        self._activity(e, kind, model_id=model_id, license_id=int(e.args["licenseId"]), data=data)

    def _key_delivery_LocalUseRefunded(self, e: Event) -> None:  # noqa: N802
        self._local_use_event(e, "local use refunded", {"amount": str(e.args["amount"])})

    def _key_delivery_LocalUseSettled(self, e: Event) -> None:  # noqa: N802
        self._local_use_event(e, "local use settled", {"amount": str(e.args["amount"])})

    def _key_delivery_DeliveryDisproved(self, e: Event) -> None:  # noqa: N802
        self._local_use_event(e, "key delivery disproved", {"amount": str(e.args["amount"])})

    def _key_delivery_UsageReported(self, e: Event) -> None:  # noqa: N802
        a = e.args
        data = {
            "period_start": int(a["periodStart"]),
            "period_end": int(a["periodEnd"]),
            "sentences": int(a["sentences"]),
            "audio_seconds": int(a["audioSeconds"]),
        }
        self._local_use_event(e, "usage reported", data)

    def _activity(self, e: Event, kind: str, **values: Any) -> None:
        self.add(
            "activity",
            e,
            {
                "position": schema.position(e.block, e.log_index),
                "kind": kind,
                "model_id": values.get("model_id"),
                "account": values.get("account"),
                "counterparty": values.get("counterparty"),
                "license_id": values.get("license_id"),
                "request_id": values.get("request_id"),
                "data": values.get("data") or {},
            },
        )

    # ------------------------------------------------------------ writing
    def flush(self) -> dict[str, int]:
        """Write the batch's rows, journal and new metadata CIDs; returns rows written per table.

        Straight through the driver (:class:`_Driver`): new rows in bulk (PostgreSQL's ``COPY``,
        SQLite's ``executemany``), and each changed row updated in the columns that changed only
        (an index whose columns did not change is left alone)."""
        written: dict[str, int] = {}
        writer = self.driver
        for name, cache in self.rows.items():
            table = schema.TABLES_BY_NAME[name]
            keys = KEYS[name]
            inserts = []
            updates: dict[tuple[str, ...], list[tuple]] = defaultdict(list)  # changed columns -> rows
            for row in cache.values():
                if row is None:
                    continue
                values = row.values
                if row.new:
                    inserts.append(values)
                    continue
                original = row.original
                changed = tuple(
                    c for c, v in values.items() if c not in keys and (c not in original or original[c] != v)
                )
                if changed:
                    updates[changed].append((*(values[c] for c in changed), *(values[k] for k in keys)))
            writer.insert(table, inserts)
            for columns, params in updates.items():
                writer.update(table, columns, keys, params)
            written[name] = len(inserts) + sum(len(p) for p in updates.values())
        for name, rows in self.appended.items():
            writer.insert(schema.TABLES_BY_NAME[name], rows)
            written[name] = len(rows)
        if self.journal:
            rows = [{"block": block, "changes": changes} for block, changes in sorted(self.journal.items())]
            writer.insert(schema.journal, rows)
        if self.new_metadata:
            known = {
                cid
                for (cid,) in self.connection.execute(
                    select(schema.model_metadata.c.cid).where(schema.model_metadata.c.cid.in_(self.new_metadata))
                )
            }
            fresh = [
                {"cid": cid, "state": "pending", "attempts": 0, "next_attempt_at": 0}
                for cid in sorted(self.new_metadata - known)
            ]
            writer.insert(schema.model_metadata, fresh)
        return written


class _Driver:
    """Bulk reads and writes straight through the database driver's cursor, in the caller's
    transaction: SQLAlchemy's per-row parameter and result processing cost more than SQLite's own
    work. PostgreSQL gets new rows by ``COPY`` (one stream, no statement per row). JSON columns
    are serialised here, as SQLAlchemy's ``JSON`` type would (and reads them back)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._cursor: Any = None
        self.postgres = connection.dialect.name == "postgresql"
        self.quote = connection.dialect.identifier_preparer.quote
        self.mark = "%s" if self.postgres else "?"

    @property
    def cursor(self) -> Any:
        if self._cursor is None:
            self._cursor = self.connection.connection.driver_connection.cursor()
        return self._cursor

    def _rows(self, table: Table, rows: list[dict[str, Any]]) -> tuple[list[str], list[tuple]]:
        columns = [c.name for c in table.columns if c.name in rows[0]]
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
        if json_columns:
            dumps = json.dumps
            params = [tuple(dumps(r[c]) if c in json_columns else r[c] for c in columns) for r in rows]
        else:
            get = itemgetter(*columns)
            params = [get(r) for r in rows] if len(columns) > 1 else [(get(r),) for r in rows]
        return columns, params

    def load(self, table: Table, key: str, values: list[Any]) -> list[dict[str, Any]]:
        """The rows of ``table`` whose ``key`` is one of ``values``, as dicts (SQLite's 0/1 made bools)."""
        columns = [c.name for c in table.columns]
        names = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join([self.mark] * len(values))
        sql = f"SELECT {names} FROM {self.quote(table.name)} WHERE {self.quote(key)} IN ({marks})"
        self.cursor.execute(sql, tuple(values))
        rows = [dict(zip(columns, row, strict=True)) for row in self.cursor.fetchall()]
        if not self.postgres:
            flags = [c.name for c in table.columns if isinstance(c.type, Boolean)]
            for row in rows:
                for flag in flags:
                    if row[flag] is not None:
                        row[flag] = bool(row[flag])
        return rows

    def insert(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        columns, params = self._rows(table, rows)
        names = ", ".join(self.quote(c) for c in columns)
        if self.postgres:
            with self.cursor.copy(f"COPY {self.quote(table.name)} ({names}) FROM STDIN") as copy:
                for row in params:
                    copy.write_row(row)
            return
        marks = ", ".join([self.mark] * len(columns))
        self.cursor.executemany(f"INSERT INTO {self.quote(table.name)} ({names}) VALUES ({marks})", params)

    def update(self, table: Table, columns: tuple[str, ...], keys: tuple[str, ...], params: list[tuple]) -> None:
        """``params``: per row, the new values of ``columns`` then the key."""
        json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)} & set(columns)
        if json_columns:
            at = [i for i, c in enumerate(columns) if c in json_columns]
            params = [tuple(json.dumps(v) if i in at else v for i, v in enumerate(p)) for p in params]
        sets = ", ".join(f"{self.quote(c)} = {self.mark}" for c in columns)
        where = " AND ".join(f"{self.quote(k)} = {self.mark}" for k in keys)
        self.cursor.executemany(f"UPDATE {self.quote(table.name)} SET {sets} WHERE {where}", params)


def rewind(connection: Connection, ancestor: int) -> dict[str, int]:
    """Undo every change made by blocks after ``ancestor``: journal images applied back newest
    first, then the rows those blocks made deleted. Returns rows deleted per table."""
    entries = connection.execute(
        select(schema.journal).where(schema.journal.c.block > ancestor).order_by(schema.journal.c.id.desc())
    ).mappings()
    for entry in entries:
        for name, key, old in reversed(entry["changes"]):
            table, keys = schema.TABLES_BY_NAME[name], KEYS[name]
            where = and_(*(table.c[k] == v for k, v in zip(keys, key, strict=True)))
            connection.execute(table.update().where(where).values({k: v for k, v in old.items() if k not in keys}))
    connection.execute(schema.journal.delete().where(schema.journal.c.block > ancestor))
    deleted = {}
    for table in schema.REWOUND_TABLES:
        result = connection.execute(table.delete().where(table.c.block > ancestor))
        deleted[table.name] = result.rowcount
    connection.execute(schema.blocks.delete().where(schema.blocks.c.number > ancestor))
    return deleted


__all__ = ["Batch", "rewind", "model_key"]

"""The keeper: ``python -m oracle keeper --config oracle.toml``.

Every ``keeper_interval_s`` it makes one round:

1. follows its transactions (:meth:`TxSender.reconcile`: receipts, replacements, lost nonces);
2. reads the market's new events from the deployment's first block on (licence manager:
   ``LicensePurchased``, ``SubscriptionUpdate``, ``AutoRenewSet``, ``Transfer``; router:
   ``SynthesisRequested`` and what becomes of each request) into a :class:`MarketIndex` of
   what may need it: subscriptions whose holder turned auto-renewal on, requests not final;
3. **renews** each subscription that the index says is due, after reading it again from the
   chain and checking it against :func:`voicemarket.market.keeping.renewal_refusal` (the contract's rules:
   the *current* holder agreed, one period, due, not lapsed, the offer and model still sell, not
   past the offer's end nor the retirement notice; and the holder's allowance and balance cover
   the price). What is refused is logged once, with the reason;
4. **cancels** requests still pending past their deadline (``cancelExpired``: the buyer is refunded);
5. **settles** deliveries whose dispute window closed, and disputes left undecided past the
   arbiter's ``decideBy`` (they lapse), ``keeper_batch_size`` to a ``settle`` transaction;
6. with ``keeper_key_delivery`` set, **sweeps local-use licences** (:class:`oracle.key_delivery.LocalUseSweep`):
   ``refund`` for purchases undelivered at their deadline, ``settle`` for key deliveries past their
   dispute window, one licence a transaction (kinds ``keeper:local-refund:<licence>``,
   ``keeper:local-settle:<licence>``).

Nothing is sent that ``eth_estimateGas`` says would revert, nor for an item already in one of
the keeper's unmined transactions. Several keepers are safe together: on one Redis they share a
lease (one acts, the others stand by); on separate ones the contracts refuse what was already
done (a renewal is due at most once a period, ``cancelExpired`` wants a pending request,
``settle`` skips what is settled), and the chain is read again before each transaction.

Transactions go through :class:`oracle.transactions.TxSender` (nonces reserved in Redis together
with the signed bytes, gas and fee caps, stuck-transaction replacement): a keeper that uses the
operator's account shares the oracle's nonce sequence. A keeper's submissions are recorded as
kind ``keeper:<action>:<ids>`` (``keeper:renew:7``, ``keeper:settle:3,4``, ``keeper:cancel:9``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from eth_utils.abi import get_abi_output_types

from oracle.abi import ErrorNames, plain
from oracle.errors import GasTooHigh, LeaseLost, RpcError, WouldRevert
from oracle.keeper_settings import KeeperSettings
from oracle.ledger import Ledger, Submission
from oracle.router import RouterClient, SynthesisRequest, load_abi
from oracle.rpc import to_int
from oracle.transactions import TxSender
from voicemarket.market.keeping import (
    QUIET_REFUSALS,
    SETTLEABLE,
    Refusal,
    Subscription,
    expiry_due,
    renewal_refusal,
    settlement_due,
)
from voicemarket.protocol import RequestStatus, Tier, renewal_lead

log = logging.getLogger("oracle.keeper")

KIND_PREFIX = "keeper"
LICENCE_EVENTS = ("LicensePurchased", "SubscriptionUpdate", "AutoRenewSet", "Transfer")
REQUEST_EVENTS = (
    "SynthesisRequested",
    "SynthesisFulfilled",
    "SynthesisDisputed",
    "SynthesisSettled",
    "SynthesisFailed",
    "SynthesisExpired",
    "DisputeResolved",
)
RECEIPT_EVENTS = ("DisputeLapsed", "SettlementSkipped")  # read from the keeper's own receipts only
FINAL_REQUEST_EVENTS = frozenset({"SynthesisSettled", "SynthesisFailed", "SynthesisExpired", "DisputeResolved"})
ZERO = "0x" + "00" * 20


def submission_kind(action: str, ids: Iterable[int]) -> str:
    """``keeper:settle:3,4``: what a keeper submission carries."""
    return f"{KIND_PREFIX}:{action}:{','.join(str(i) for i in ids)}"


def submission_items(kind: str) -> list[tuple[str, int]]:
    """(action, id) of each item of a keeper submission's kind; [] for any other submission."""
    prefix, _, rest = kind.partition(":")
    if prefix != KIND_PREFIX:
        return []
    action, _, ids = rest.partition(":")
    return [(action, int(i)) for i in ids.split(",") if i]


class KeeperLedger(Ledger):
    """The keeper account's ledger, seeing only the keeper's own submissions. When the keeper uses the
    operator's account it shares the oracle's namespace (one nonce sequence per account); the oracle's
    submitter then follows the keeper's submissions too, while the keeper leaves the oracle's alone."""

    def submissions(self) -> list[Submission]:
        return [sub for sub in super().submissions() if submission_items(sub.kind)]


def keeper_namespace(settings: KeeperSettings, keeper_address: str) -> str:
    """Redis prefix of the keeper account's nonces and submissions: the oracle's own namespace when the
    keeper is the operator's account, else the one an oracle of the keeper's account would have."""
    from oracle.keys import operator_address
    from oracle.runtime import namespace

    if settings.has_operator_key and operator_address(settings).lower() == keeper_address.lower():
        return namespace(settings)
    return f"oracle:{settings.router.lower()}:{keeper_address.lower()}"


def lease_key(settings: KeeperSettings) -> str:
    """One active keeper per router on a Redis, whatever their accounts."""
    return f"oracle:{settings.router.lower()}:keeper:lease"


# ---------------------------------------------------------------- reading the chain


@dataclass(frozen=True)
class Head:
    number: int
    timestamp: int


class MarketViews:
    """The licence manager, the registry and the router as the keeper reads them: views batched into one
    JSON-RPC round trip, decoded by the compiled ABIs, all at one block."""

    def __init__(self, router: RouterClient, licenses: str | None = None) -> None:
        self.router = router
        self.w3 = router.w3
        self.rpc = router.rpc
        address = licenses or router.router.functions.licenseManager().call()
        self.licenses = self.w3.eth.contract(address=to_checksum_address(address), abi=load_abi("ILicenseManager"))
        self.registry = router.registry
        # allowance / balanceOf of any ERC-20 (the test stablecoin's ABI has exactly the standard ones)
        self._erc20_abi = [e for e in load_abi("MockStablecoin") if e.get("name") in ("allowance", "balanceOf")]
        self.topics: dict[str, tuple[str, Any]] = {}  # topic0 -> (event name, web3 event)
        for contract, names in ((self.licenses, LICENCE_EVENTS), (self.router.router, REQUEST_EVENTS + RECEIPT_EVENTS)):
            for name in names:
                abi = next(e for e in contract.abi if e.get("type") == "event" and e["name"] == name)
                self.topics["0x" + event_abi_to_log_topic(abi).hex()] = (name, getattr(contract.events, name)())
        # to name what a refused transaction would revert with
        self._errors = ErrorNames(c.abi for c in (self.licenses, self.router.router, self.registry))
        self._offers: dict[int, dict[str, Any]] = {}

    def head(self) -> Head:
        block = self.rpc.call("eth_getBlockByNumber", "latest", False)
        return Head(to_int(block["number"]), to_int(block["timestamp"]))

    def call(self, calls: list[tuple[Any, str, list[Any]]], block: int) -> list[Any]:
        """``(contract, function, args)`` views at ``block`` in one round trip; structs as dicts."""
        if not calls:
            return []
        encoded = []
        for contract, name, args in calls:
            data = contract.encode_abi(name, args)
            encoded.append(("eth_call", [{"to": contract.address, "data": data}, hex(block)]))
        out = []
        for (contract, name, _), raw in zip(calls, self.rpc.batch(encoded), strict=True):
            abi = contract.get_function_by_name(name).abi
            values = abi_decode(get_abi_output_types(abi), bytes.fromhex(raw[2:]))
            outputs = abi["outputs"]
            row = [plain(item, value) for item, value in zip(outputs, values, strict=True)]
            out.append(row[0] if len(row) == 1 else {o["name"]: v for o, v in zip(outputs, row, strict=True)})
        return out

    def logs(self, from_block: int, to_block: int) -> list[tuple[str, Any, Any]]:
        """The market's events in the range, in chain order: (name, decoded args, raw log)."""
        scanned = [topic for topic, (name, _) in self.topics.items() if name not in RECEIPT_EVENTS]
        raw = self.w3.eth.get_logs(
            {
                "address": [self.licenses.address, self.router.address],
                "fromBlock": from_block,
                "toBlock": to_block,
                "topics": [scanned],
            }
        )
        out = []
        for entry in raw:
            topic = "0x" + bytes(entry["topics"][0]).hex()
            name, event = self.topics[topic]
            if name == "SynthesisRequested":
                out.append((name, self.router.decode_requested(entry).request, entry))
            else:
                out.append((name, event.process_log(entry)["args"], entry))
        return out

    def offer(self, offer_id: int, block: int) -> dict[str, Any]:
        """An offer's terms (fixed at publication, so kept) and whether it still sells (read again)."""
        offer = self.call([(self.licenses, "offer", [offer_id])], block)[0]
        self._offers[offer_id] = offer["terms"]
        return offer

    def terms(self, offer_id: int, block: int) -> dict[str, Any]:
        return self._offers.get(offer_id) or self.offer(offer_id, block)["terms"]

    def subscription(self, license_id: int, block: int) -> Subscription:
        """Everything a keeper renewal depends on, read at ``block`` (two round trips)."""
        license, holder, notice = self.call(
            [
                (self.licenses, "license", [license_id]),
                (self.licenses, "ownerOf", [license_id]),
                (self.registry, "retirementNotice", []),
            ],
            block,
        )
        offer = self.offer(int(license["offerId"]), block)
        terms = offer["terms"]
        asset = terms["asset"]
        calls = [(self.registry, "modelTerms", [terms["modelId"]])]
        if int(asset, 16):
            token = self.w3.eth.contract(address=asset, abi=self._erc20_abi)
            calls += [
                (self.licenses, "isAssetAllowed", [asset]),
                (token, "allowance", [holder, self.licenses.address]),
                (token, "balanceOf", [holder]),
            ]
        model, *payment = self.call(calls, block)
        allowed, allowance, balance = payment if payment else (True, 0, 0)
        return Subscription(
            license_id=license_id,
            holder=holder,
            auto_renew=bool(license["autoRenew"]),
            expires_at=int(license["expiresAt"]),
            offer_id=int(license["offerId"]),
            tier=Tier(int(terms["tier"])),
            period=int(terms["period"]),
            price=int(terms["price"]),
            asset=asset,
            offer_active=bool(offer["active"]),
            valid_until=int(terms["validUntil"]),
            asset_allowed=bool(allowed),
            model_id=int(terms["modelId"]),
            model_exists=bool(model["exists"]),
            model_frozen=bool(model["frozen"]),
            service_ends_at=int(model["serviceEndsAt"]),
            notice=int(notice),
            allowance=int(allowance),
            balance=int(balance),
        )

    def request_states(self, request_ids: list[int], block: int) -> dict[int, dict[str, Any]]:
        """``requestState`` of each id: {status, settleAfter, commitment}."""
        states = self.call([(self.router.router, "requestState", [rid]) for rid in request_ids], block)
        return dict(zip(request_ids, states, strict=True))

    def explain_revert(self, exc: WouldRevert) -> str:
        """``Licensing_RenewalAllowanceTooLow(licenseId=3, allowance=0, cost=5)`` from a refused estimate."""
        data = next((word for word in reversed(str(exc).split()) if word.startswith("0x")), "")
        return self._errors.describe(data) or str(exc)


# ---------------------------------------------------------------- what may need a keeper


@dataclass
class LicenseRecord:
    offer_id: int = 0
    holder: str = ZERO
    expires_at: int = 0
    auto_renew: bool = False


@dataclass
class RequestRecord:
    request: SynthesisRequest
    status: RequestStatus = RequestStatus.PENDING
    settle_after: int = 0  # Fulfilled: end of the dispute window; Disputed: the arbiter's decideBy


class MarketIndex:
    """What the market's events say about licences and open requests, applied in chain order.

    Applying any later stretch of the events again (an overlap, a re-read after a reorg) ends in the
    same state: each field takes the last value an event gave it. It only chooses what to look at;
    the chain is read again before anything is sent.
    """

    def __init__(self) -> None:
        self.licenses: dict[int, LicenseRecord] = {}
        self.requests: dict[int, RequestRecord] = {}

    def apply(self, name: str, args: Any) -> None:
        if name in LICENCE_EVENTS:
            key = "tokenId" if name in ("SubscriptionUpdate", "Transfer") else "licenseId"
            record = self.licenses.setdefault(int(args[key]), LicenseRecord())
            if name == "LicensePurchased":
                record.offer_id, record.holder = int(args["offerId"]), str(args["buyer"])
            elif name == "SubscriptionUpdate":
                record.expires_at = int(args["expiration"])
            elif name == "AutoRenewSet":
                record.auto_renew = bool(args["autoRenew"])
            else:  # Transfer: the agreement to keeper renewals stays with the holder who gave it
                record.holder = str(args["to"])
                if int(args["from"], 16) and int(args["to"], 16):
                    record.auto_renew = False
            return
        if name == "SynthesisRequested":  # args: the committed SynthesisRequest
            self.requests[args.id] = RequestRecord(args)
            return
        request_id = int(args["requestId"])
        if name in FINAL_REQUEST_EVENTS:
            self.requests.pop(request_id, None)
            return
        record = self.requests.get(request_id)
        if record is None:  # requested before the keeper's first block: it cannot pass the request back
            return
        if name == "SynthesisFulfilled":
            record.status, record.settle_after = RequestStatus.FULFILLED, int(args["settleAfter"])
        elif name == "SynthesisDisputed":
            record.status, record.settle_after = RequestStatus.DISPUTED, int(args["decideBy"])

    def renewal_candidates(self, now: int, lead: Callable[[int], int | None]) -> list[int]:
        """Licences with auto-renewal on that are due (or lapsed) at ``now``; ``lead(offer)`` is the
        offer's renewal lead (None: not a subscription)."""
        out = []
        for license_id, record in sorted(self.licenses.items()):
            if record.auto_renew and record.expires_at:
                ahead = lead(record.offer_id)
                if ahead is not None and now >= record.expires_at - ahead:
                    out.append(license_id)
        return out

    def expired(self, now: int) -> list[int]:
        return sorted(
            rid for rid, r in self.requests.items() if r.status == RequestStatus.PENDING and now > r.request.deadline
        )

    def settleable(self, now: int) -> list[int]:
        return sorted(rid for rid, r in self.requests.items() if r.status in SETTLEABLE and now >= r.settle_after)


# ---------------------------------------------------------------- the keeper


class Keeper:
    """One keeper account's rounds: renew, cancel, settle (see the module docstring)."""

    def __init__(self, settings: KeeperSettings, views: MarketViews, sender: TxSender, ledger: Ledger) -> None:
        self.settings = settings
        self.views = views
        self.sender = sender
        self.sender.on_final = self.on_final
        self.ledger = ledger
        self.index = MarketIndex()
        self.scanned: int | None = None  # last block read
        self._told: dict[int, tuple[str, int]] = {}  # licence -> (refusal code, expiry) last logged
        self.hold: Callable[[], bool] = lambda: True  # the keepers' lease, checked before each transaction
        self.local_use = None
        if settings.keeper_key_delivery:
            from oracle.key_delivery import LocalUseSweep

            self.local_use = LocalUseSweep(
                views.router.w3, settings.keeper_key_delivery, settings.first_block, settings.max_block_range
            )

    # ------------------------------------------------------------ one round
    def step(self) -> dict[str, int]:
        """One round; returns how many transactions of each action it sent."""
        subs = self.sender.reconcile()
        busy = {item for sub in subs for item in submission_items(sub.kind)}
        capacity = self.settings.keeper_max_pending_txs - sum(1 for sub in subs if sub.state == "sent")
        head = self.views.head()
        self.scan(head.number)
        now = head.timestamp + 1  # the next block's time, at the earliest
        sent = {"renew": 0, "cancel": 0, "settle": 0}
        try:
            if self.settings.keeper_renewals and capacity > 0:
                sent["renew"] = self.renew(now, head.number, busy, capacity)
            if self.settings.keeper_expiries and capacity - sum(sent.values()) > 0:
                sent["cancel"] = self.cancel_expired(now, head.number, busy, capacity - sum(sent.values()))
            if self.settings.keeper_settlements and capacity - sum(sent.values()) > 0:
                sent["settle"] = self.settle(now, head.number, busy, capacity - sum(sent.values()))
            if self.local_use is not None and capacity - sum(sent.values()) > 0:
                self.local_use.scan(head.number)
                sent["local"] = self.sweep_local_use(now, busy, capacity - sum(sent.values()))
        except LeaseLost:
            log.warning(
                "the keepers' lease lapsed during the round (a slow round?); another keeper goes on",
                extra={"sent": sent},
            )
        self.ledger.count("keeper_rounds")
        if any(sent.values()):
            log.info("keeper round", extra={"block": head.number, "sent": sent, "open": len(subs)})
        return sent

    def scan(self, head: int) -> None:
        """Apply the market's events up to ``head`` (``overlap_blocks`` re-read: reorgs)."""
        if self.scanned is None:
            start = self.settings.first_block
        else:
            start = max(self.settings.first_block, self.scanned + 1 - self.settings.overlap_blocks)
        for first in range(start, head + 1, self.settings.max_block_range):
            last = min(head, first + self.settings.max_block_range - 1)
            for name, args, _ in self.views.logs(first, last):
                self.index.apply(name, args)
        self.scanned = head

    # ------------------------------------------------------------ renewals
    def _lead(self, offer_id: int, block: int) -> int | None:
        terms = self.views.terms(offer_id, block)
        if int(terms["tier"]) != Tier.SUBSCRIPTION:
            return None
        return renewal_lead(int(terms["period"]))

    def renew(self, now: int, block: int, busy: set[tuple[str, int]], capacity: int) -> int:
        sent = 0
        for license_id in self.index.renewal_candidates(now, lambda offer: self._lead(offer, block)):
            if sent >= capacity:
                break
            record = self.index.licenses[license_id]
            told = self._told.get(license_id)
            if ("renew", license_id) in busy or (told and told[1] == record.expires_at and now >= record.expires_at):
                continue  # in flight; or lapsed and said so (only the holder's renewal, an event, changes that)
            try:
                sub = self.views.subscription(license_id, block)
            except RpcError as exc:  # a view that reverts (say, a token that refuses balanceOf): this one only
                log.warning(
                    "cannot read a subscription; left for now", extra={"license_id": license_id, "error": str(exc)}
                )
                continue
            record.auto_renew, record.expires_at, record.holder = sub.auto_renew, sub.expires_at, sub.holder
            refusal = renewal_refusal(sub, now)
            if refusal is not None:
                self._refused(sub, refusal)
                continue
            data = self.views.licenses.encode_abi("renewSubscription", [license_id, sub.period])
            gas = self._gas(
                self.views.licenses.address,
                data,
                lambda why, sub=sub, license_id=license_id: self._refused(
                    sub, Refusal("reverts", f"the licence manager would refuse renewing licence {license_id}: {why}")
                ),
            )
            if gas is None:
                continue
            submission = self._submit(submission_kind("renew", [license_id]), self.views.licenses.address, data, gas)
            log.info(
                "renewal sent",
                extra={
                    "license_id": license_id,
                    "holder": sub.holder,
                    "price": sub.price,
                    "asset": sub.asset,
                    "expires_at": sub.expires_at,
                    "submission": submission,
                },
            )
            self._told.pop(license_id, None)
            sent += 1
        return sent

    def _refused(self, sub: Subscription, refusal: Refusal) -> None:
        """Log why a due subscription is not renewed: once per reason and expiry, quiet ones at debug."""
        if self._told.get(sub.license_id) == (refusal.code, sub.expires_at):
            return
        self._told[sub.license_id] = (refusal.code, sub.expires_at)
        level = logging.DEBUG if refusal.code in QUIET_REFUSALS else logging.WARNING
        log.log(
            level,
            "renewal skipped",
            extra={
                "license_id": sub.license_id,
                "holder": sub.holder,
                "reason": refusal.code,
                "detail": refusal.detail,
            },
        )
        if refusal.code not in QUIET_REFUSALS:
            self.ledger.count(f"keeper_skipped:{refusal.code}")

    # ------------------------------------------------------------ requests
    def _states(self, request_ids: list[int], block: int) -> dict[int, dict[str, Any]]:
        """Each request's state now; requests that are final, or that a reorg changed, leave the index."""
        states = self.views.request_states(request_ids, block)
        for request_id, state in states.items():
            record = self.index.requests[request_id]
            status = RequestStatus(int(state["status"]))
            changed = int.from_bytes(state["commitment"], "big") != self.views.router.commitment(record.request)
            if status.is_final or status == RequestStatus.NONE or changed:
                del self.index.requests[request_id]
            else:
                record.status, record.settle_after = status, int(state["settleAfter"])
        return {rid: s for rid, s in states.items() if rid in self.index.requests}

    def cancel_expired(self, now: int, block: int, busy: set[tuple[str, int]], capacity: int) -> int:
        candidates = [rid for rid in self.index.expired(now) if ("cancel", rid) not in busy]
        sent = 0
        for request_id, state in self._states(candidates, block).items():
            if sent >= capacity:
                break
            record = self.index.requests[request_id]
            if not expiry_due(int(state["status"]), record.request.deadline, now):
                continue
            data = self.views.router.router.encode_abi("cancelExpired", [record.request.as_tuple()])
            gas = self._gas(
                self.views.router.address,
                data,
                lambda why, rid=request_id: log.info(
                    "cancelExpired would revert (another keeper first?); checked again next round",
                    extra={"request_id": rid, "error": why},
                ),
            )
            if gas is None:
                continue
            submission = self._submit(submission_kind("cancel", [request_id]), self.views.router.address, data, gas)
            log.info(
                "cancellation sent",
                extra={
                    "request_id": request_id,
                    "requester": record.request.requester,
                    "refund": record.request.usePrice + record.request.fee,
                    "submission": submission,
                },
            )
            sent += 1
        return sent

    def settle(self, now: int, block: int, busy: set[tuple[str, int]], capacity: int) -> int:
        candidates = [rid for rid in self.index.settleable(now) if ("settle", rid) not in busy]
        due = [
            self.index.requests[rid].request
            for rid, state in self._states(candidates, block).items()
            if settlement_due(int(state["status"]), int(state["settleAfter"]), now)
        ]
        sent = 0
        size = self.settings.keeper_batch_size
        for start in range(0, len(due), size):
            if sent >= capacity:
                break
            sent += self._send_settle(due[start : start + size])
        return sent

    def _send_settle(self, requests: list[SynthesisRequest]) -> int:
        router = self.views.router
        data = router.router.encode_abi("settle", [[r.as_tuple() for r in requests]])
        try:
            gas = self.sender.estimate_gas(router.address, data)
        except (GasTooHigh, WouldRevert) as exc:
            if len(requests) > 1:  # too big, or one item no longer what was committed: halve
                half = len(requests) // 2
                return self._send_settle(requests[:half]) + self._send_settle(requests[half:])
            why = self.views.explain_revert(exc) if isinstance(exc, WouldRevert) else str(exc)
            log.warning(
                "settle would fail for this request; left for now", extra={"request_id": requests[0].id, "error": why}
            )
            return 0
        ids = [r.id for r in requests]
        submission = self._submit(submission_kind("settle", ids), router.address, data, gas)
        log.info("settlement sent", extra={"requests": ids, "submission": submission, "gas": gas})
        return 1

    def sweep_local_use(self, now: int, busy: set[tuple[str, int]], capacity: int) -> int:
        """Refund or settle local-use licences that are due (see :class:`oracle.key_delivery.LocalUseSweep`)."""
        sent = 0
        for action, license_id in self.local_use.due(now):
            if sent >= capacity or (f"local-{action}", license_id) in busy:
                continue
            data = self.local_use.transaction(action, license_id)

            def refused(why: str, lid: int = license_id, what: str = action) -> None:
                log.info("local use not swept now", extra={"license_id": lid, "action": what, "error": why})

            gas = self._gas(self.local_use.contract.address, data, refused)
            if gas is not None:
                self._submit(
                    submission_kind(f"local-{action}", [license_id]), self.local_use.contract.address, data, gas
                )
                sent += 1
        return sent

    def _submit(self, kind: str, to: str, data: str, gas: int) -> str | None:
        """Send through the sender, only while this keeper holds the lease (else :class:`LeaseLost`)."""
        if not self.hold():
            raise LeaseLost(kind)
        return self.sender.submit(kind, [], to, data, gas)

    def _gas(self, to: str, data: str, refused: Callable[[str], None]) -> int | None:
        try:
            return self.sender.estimate_gas(to, data)
        except WouldRevert as exc:
            refused(self.views.explain_revert(exc))
        except GasTooHigh as exc:
            refused(str(exc))
        return None

    # ------------------------------------------------------------ outcomes
    def on_final(self, sub: Submission, receipt: Any | None) -> dict[int, str]:
        """Log what a final keeper transaction did (called by the sender); the chain is the record."""
        items = submission_items(sub.kind)
        if receipt is None:
            log.warning(
                "a keeper transaction lost its nonce to another transaction; its items are checked again",
                extra={"kind": sub.kind, "nonce": sub.nonce},
            )
            return {}
        tx = receipt.get("transactionHash")
        if to_int(receipt["status"]) != 1:
            log.warning(
                "a keeper transaction reverted (another keeper, or the holder, may have acted first); its "
                "items are checked again next round",
                extra={"kind": sub.kind, "tx": tx},
            )
            self.ledger.count("keeper_reverted")
            return {}
        done: dict[str, list[int]] = {}
        for entry in receipt["logs"]:
            known = self.views.topics.get(entry["topics"][0]) if entry["topics"] else None
            if known is not None:
                done.setdefault(known[0], []).append(int(entry["topics"][1], 16))
        if items and items[0][0] == "renew":
            for license_id in done.get("SubscriptionUpdate", []):
                log.info("subscription renewed", extra={"license_id": license_id, "tx": tx})
                self.ledger.count("keeper_renewed")
        elif items and items[0][0].startswith("local-"):
            log.info("local use swept", extra={"action": items[0][0], "license_id": items[0][1], "tx": tx})
            self.ledger.count(f"keeper_{items[0][0].replace('-', '_')}")
        elif items and items[0][0] == "cancel":
            for request_id in done.get("SynthesisExpired", []):
                log.info("request expired and refunded", extra={"request_id": request_id, "tx": tx})
                self.ledger.count("keeper_cancelled")
        elif items:
            settled, lapsed = done.get("SynthesisSettled", []), done.get("DisputeLapsed", [])
            log.info(
                "requests settled",
                extra={
                    "settled": settled,
                    "lapsed": lapsed,
                    "tx": tx,
                    "skipped": [i for _, i in items if i not in settled],
                },
            )
            self.ledger.count("keeper_settled", len(settled))
            self.ledger.count("keeper_lapsed", len(lapsed))
        return {}

    # ------------------------------------------------------------ loop
    def run(self, stop: threading.Event, hold: Callable[[], bool], once: bool = False) -> None:
        """Rounds every ``keeper_interval_s`` until ``stop``, while ``hold()`` (the keepers' lease) is ours."""
        self.hold = hold
        next_round = 0.0
        standing_by = False
        failures = 0
        slice_s = min(1.0, self.settings.leader_lease_s / 3)
        while not stop.is_set():
            try:
                if not hold():
                    if once:
                        log.info("another keeper holds the lease: nothing to do")
                        return
                    if not standing_by:
                        log.info("another keeper holds the lease; standing by")
                        standing_by = True
                    stop.wait(slice_s)
                    continue
                if standing_by:
                    log.info("keeper lease taken; keeping")
                    standing_by = False
                if time.monotonic() >= next_round:
                    next_round = time.monotonic() + self.settings.keeper_interval_s
                    self.step()
                    if once:
                        return
                failures = 0
            except Exception as exc:
                failures += 1
                pause = min(float(self.settings.retry_backoff_max_s), 0.5 * 2 ** min(failures, 10))
                log.warning(
                    "keeper round failed" if once else "keeper round failed; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": None if once else pause},
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                if once:
                    raise
                stop.wait(pause)
                continue
            stop.wait(max(0.05, min(slice_s, next_round - time.monotonic())))


def start(settings: KeeperSettings, stop: threading.Event, once: bool = False) -> None:
    """Everything ``python -m oracle keeper`` runs: connect, take the lease, keep until ``stop``."""
    from oracle.keys import load_operator_key
    from oracle.leases import Lease
    from oracle.runtime import Services

    svc = Services(settings)
    key = load_operator_key(settings.key_settings(), svc.chain_id)
    ledger = KeeperLedger(svc.redis, keeper_namespace(settings, key.address))
    views = MarketViews(svc.router, settings.keeper_licenses)
    sender = TxSender(svc.router.rpc, key, ledger, settings.sender_settings(), svc.chain_id)
    keeper = Keeper(settings, views, sender, ledger)
    lease = Lease(svc.redis, lease_key(settings), svc.worker_id, settings.leader_lease_s)
    log.info(
        "keeper starting",
        extra={
            "keeper": key.address,
            "router": views.router.address,
            "licenses": views.licenses.address,
            "first_block": settings.first_block,
            "namespace": ledger.ns,
            "interval_s": settings.keeper_interval_s,
        },
    )
    try:
        keeper.run(stop, lease.hold, once=once)
    finally:
        try:
            lease.release()
        except Exception:  # noqa: BLE001 - Redis gone: the lease lapses by itself
            pass
        log.info("keeper stopped")

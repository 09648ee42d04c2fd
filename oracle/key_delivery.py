"""The key service: ``python -m oracle.key_delivery --config oracle.toml`` (issue 19, docs/local-use.md).

It delivers the data keys of local-use licences sold for the models this operator serves and holds
the keys of (a keyring in ``models``, and named key holder on-chain by the model's owner, or the
owner itself). Every ``keys_interval_s`` it makes one round:

1. follows its transactions (:meth:`TxSender.reconcile`: receipts, replacements, lost nonces);
2. reads ``KeyDelivery``'s events (``LocalUsePurchased``, ``KeyDelivered``, ``LocalUseRefunded``)
   from ``keys_start_block`` (default ``start_block``) up to ``confirmations`` blocks below the
   head into the set of purchases still waiting for a key;
3. for each one whose model it serves, before its deadline: reads the purchase again from the
   chain (still pending, not within ``keys_deadline_margin_s`` of the deadline, the model neither
   frozen nor at its end of service, this account a key holder of the model); unwraps the model's
   data key from its keyring (once per model), checks that its id is the one the offer committed to,
   wraps it to the purchase's licence key (66 bytes, :func:`voicemarket.market.local_use.wrap_license_key`),
   checks with ``eth_estimateGas`` that the delivery would be accepted, stores the wrapped key (its
   CID) and sends ``recordDelivery(licence, wrappedKey)`` (kind ``keys:deliver:<licence>``);
4. for each one of a served model still undelivered at its deadline (the model was frozen, this
   account was not named key holder, the key was unusable, the service was down): sends
   ``refund(licence)`` (kind ``keys:refund:<licence>``), so that the buyer is refunded without
   asking (anyone may; this is the key holder's own clean-up).

**Exactly once.** The contract records a licence's delivery once (a second reverts). The service
sends nothing for a licence that one of its unmined transactions already carries (the
transactions live in Redis, through :class:`~oracle.transactions.TxSender`, with the operator's
nonce sequence: restarted at any point, it follows or rebroadcasts what it had sent) and re-reads
the purchase before every transaction; a delivery made meanwhile (by an earlier run, or another key
holder) fails the gas estimate and is skipped. A wrapped key stored but never recorded (a crash
in between) is made again with a new CID; the orphan opens nothing for anyone but that buyer.

Settling (the payment to the model's pot once a delivery's dispute window passed) is the
keeper's (:mod:`voicemarket.market.keeping`) or anyone's: ``ape run local-use settle``.

Nothing is wrapped for a purchase too close to its deadline: a stored key whose delivery then
reverts would reach a buyer who is refunded (docs/local-use.md, "what the key holder risks").
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address
from pydantic import Field, field_validator

from oracle.errors import ConfigError, GasTooHigh, WouldRevert
from oracle.ledger import Ledger, Submission
from oracle.router import load_abi
from oracle.rpc import to_int
from oracle.settings import OracleSettings, _check_address, load_settings
from oracle.transactions import TxSender
from voicemarket.protocol import LocalUseStatus

log = logging.getLogger("oracle.key_delivery")

KIND_PREFIX = "keys:"  # keys:deliver:<licence>, keys:refund:<licence>
EVENTS = ("LocalUsePurchased", "KeyDelivered", "LocalUseRefunded")


class KeyServiceSettings(OracleSettings):
    """The oracle's settings (chain, router, Redis, operator account, store, ``models``' keyrings)
    and the key service's own ``keys_*`` fields (``ORACLE_KEYS_*`` / ``ORACLE_KEY_DELIVERY``)."""

    key_delivery: str = Field(description="address of the KeyDelivery contract (`keyDelivery` in the deployment file)")
    keys_start_block: int | None = Field(None, ge=0, description="where the event scan starts (default: start_block)")
    keys_interval_s: float = Field(5.0, gt=0, le=3_600, description="pause between two rounds")
    keys_max_block_range: int = Field(5_000, ge=1, description="most blocks in one eth_getLogs")
    keys_deadline_margin_s: int = Field(
        600, ge=0, description="wrap no key for a purchase whose delivery deadline is closer than this"
    )

    @field_validator("key_delivery")
    @classmethod
    def _key_delivery(cls, value: str) -> str:
        return _check_address(value, "key_delivery")

    @property
    def first_block(self) -> int:
        return self.start_block if self.keys_start_block is None else self.keys_start_block


class KeyLedger(Ledger):
    """The operator's ledger (shared nonce sequence) seen through the key service's submissions only."""

    def submissions(self) -> list[Submission]:
        return [sub for sub in super().submissions() if sub.kind.startswith(KIND_PREFIX)]


@dataclass(frozen=True)
class Purchase:
    """A ``LocalUsePurchased`` event: what the key service needs to deliver."""

    license_id: int
    model_id: int
    public_key: bytes
    deadline: int


class KeyService:
    """One operator account's rounds of key deliveries (see the module docstring)."""

    def __init__(self, settings: KeyServiceSettings, w3: Any, sender: TxSender, store: Any, keyrings: dict) -> None:
        self.settings = settings
        self.w3 = w3
        self.sender = sender
        self.sender.on_final = self.on_final
        self.store = store
        self.keyrings = keyrings  # model id -> keyring CID (settings.models)
        self.account = sender.key.address
        self.contract = w3.eth.contract(
            address=to_checksum_address(settings.key_delivery), abi=load_abi("IKeyDelivery")
        )
        registry = self.contract.functions.registry().call()
        self.registry = w3.eth.contract(address=to_checksum_address(registry), abi=load_abi("IVoiceModelRegistry"))
        self.events = {name: getattr(self.contract.events, name)() for name in EVENTS}
        self.topics = {"0x" + event_abi_to_log_topic(e.abi).hex(): name for name, e in self.events.items()}
        self.waiting: dict[int, Purchase] = {}
        self.scanned: int | None = None
        self._data_keys: dict[int, bytes] = {}
        self._told: set[tuple[int, str]] = set()  # (licence, reason) logged once

    # ------------------------------------------------------------ one round
    def step(self) -> int:
        """One round; returns how many deliveries it sent."""
        subs = self.sender.reconcile()
        busy = {int(sub.kind.rsplit(":", 1)[1]) for sub in subs}
        head = self.sender.rpc.call("eth_getBlockByNumber", "latest", False)
        self.scan(to_int(head["number"]) - self.settings.confirmations)
        now = to_int(head["timestamp"]) + 1  # the next block's time, at the earliest
        sent = 0
        for license_id in sorted(self.waiting):
            if license_id in busy:
                continue
            purchase = self.waiting[license_id]
            if now >= purchase.deadline:
                sent += self.refund(purchase)
            elif self.deliver(purchase):
                sent += 1
        return sent

    def scan(self, upto: int) -> None:
        start = self.settings.first_block if self.scanned is None else self.scanned + 1
        for first in range(start, upto + 1, self.settings.keys_max_block_range):
            last = min(upto, first + self.settings.keys_max_block_range - 1)
            entries = self.w3.eth.get_logs(
                {
                    "address": self.contract.address,
                    "fromBlock": first,
                    "toBlock": last,
                    "topics": [list(self.topics)],
                }
            )
            for entry in entries:
                name = self.topics.get("0x" + bytes(entry["topics"][0]).hex())
                args = self.events[name].process_log(entry)["args"]
                if name == "LocalUsePurchased":
                    self.waiting[int(args["licenseId"])] = Purchase(
                        int(args["licenseId"]), int(args["modelId"]), bytes(args["publicKey"]), int(args["deadline"])
                    )
                else:
                    self.waiting.pop(int(args["licenseId"]), None)
        self.scanned = max(upto, start - 1)

    def _skip(self, purchase: Purchase, reason: str, *, forget: bool, level: int = logging.INFO, **extra: Any) -> bool:
        if (purchase.license_id, reason) not in self._told:
            self._told.add((purchase.license_id, reason))
            log.log(
                level, reason, extra={"license_id": purchase.license_id, "model_id": hex(purchase.model_id), **extra}
            )
        if forget:
            self.waiting.pop(purchase.license_id, None)
        return False

    def deliver(self, purchase: Purchase) -> bool:
        """Wrap, store and record one licence's key if everything allows it now; True if sent."""
        from voicemarket.content.multiformats import CID
        from voicemarket.content.sealing import key_id
        from voicemarket.market.local_use import RAW_CODEC, wrap_license_key

        if purchase.model_id not in self.keyrings:
            return self._skip(purchase, "a local-use licence of a model this operator does not serve", forget=True)
        fields = self.contract.functions.localUse(purchase.license_id).call()
        status = LocalUseStatus(int(fields[3]))
        if status != LocalUseStatus.PENDING:
            return self._skip(purchase, f"local use already {status.label}", forget=True)
        now = to_int(self.sender.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"])
        if now + self.settings.keys_deadline_margin_s >= purchase.deadline:
            return self._skip(
                purchase,
                "too close to the delivery deadline to wrap a key: the buyer will be refunded",
                forget=False,
                level=logging.WARNING,
                deadline=purchase.deadline,
            )
        if not self.contract.functions.isKeyHolder(purchase.model_id, self.account).call():
            return self._skip(
                purchase,
                "this account is not the model's key holder: the model's owner names it with setKeyHolder",
                forget=False,
                level=logging.WARNING,
            )
        terms = self.registry.functions.modelTerms(purchase.model_id).call()
        frozen, service_ends_at = bool(terms[1]), int(terms[2])
        if frozen or (service_ends_at and now >= service_ends_at):
            return self._skip(purchase, "the model is frozen or its service ended: no key goes out", forget=False)
        data_key = self._data_key(purchase.model_id)
        committed = bytes(self.contract.functions.localUseOption(int(fields[5])).call()[4])
        if key_id(data_key) != committed:
            return self._skip(
                purchase,
                "the offer commits to another data key than this model's keyring holds: not delivered "
                "(the buyer would dispute it); the buyer will be refunded",
                forget=False,
                level=logging.ERROR,
            )
        try:
            wrapped = wrap_license_key(
                data_key, purchase.public_key, purchase.license_id, self.sender.chain_id, self.contract.address
            )
        except ValueError as exc:
            return self._skip(purchase, f"the buyer's public key is unusable ({exc})", forget=False)
        cid = CID(1, RAW_CODEC, hashlib.sha256(wrapped).digest())
        data = self.contract.encode_abi("recordDelivery", [purchase.license_id, wrapped])
        try:
            gas = self.sender.estimate_gas(self.contract.address, data)
        except (WouldRevert, GasTooHigh) as exc:
            return self._skip(purchase, f"the delivery would not be accepted now: {exc}", forget=False)
        stored = self.store.put_bytes(wrapped)  # the chain's event keeps it too: a CIDv0 store's copy is a mirror
        if self.store.cid_version == 1 and stored != cid:
            raise ConfigError(f"the store keeps the wrapped key under {stored}, not {cid}")
        submission = self.sender.submit(
            f"{KIND_PREFIX}deliver:{purchase.license_id}", [], self.contract.address, data, gas
        )
        log.info(
            "key delivery sent",
            extra={"license_id": purchase.license_id, "cid": str(cid), "submission": submission, "gas": gas},
        )
        return True

    def refund(self, purchase: Purchase) -> int:
        """A purchase of a served model left undelivered past its deadline: refund the buyer (anyone may;
        the key holder's service does it for its own misses). Returns 1 if a refund was sent."""
        if purchase.model_id not in self.keyrings:
            return int(self._skip(purchase, "a local-use licence of a model this operator does not serve", forget=True))
        data = self.contract.encode_abi("refund", [purchase.license_id])
        try:
            gas = self.sender.estimate_gas(self.contract.address, data)
        except (WouldRevert, GasTooHigh):
            status = LocalUseStatus(int(self.contract.functions.localUse(purchase.license_id).call()[3]))
            forget = status != LocalUseStatus.PENDING
            return int(self._skip(purchase, f"no refund now (local use {status.label})", forget=forget))
        submission = self.sender.submit(
            f"{KIND_PREFIX}refund:{purchase.license_id}", [], self.contract.address, data, gas
        )
        log.warning(
            "no key delivered before the deadline: refund sent",
            extra={"license_id": purchase.license_id, "submission": submission},
        )
        return 1

    def _data_key(self, model_id: int) -> bytes:
        if model_id not in self._data_keys:
            from voicemarket.content.sealed_bundle import load_keyring

            keyring = load_keyring(self.store, self.keyrings[model_id].keyring)
            self._data_keys[model_id] = keyring.unwrap(self.sender.key.private_key)
        return self._data_keys[model_id]

    def on_final(self, sub: Submission, receipt: Any | None) -> dict[int, str]:
        """Log what became of a delivery or refund transaction; the chain is the record."""
        action, license_id = sub.kind.split(":")[1:]
        if receipt is None:
            log.warning("a transaction lost its nonce to another", extra={"license_id": license_id, "action": action})
        elif to_int(receipt["status"]) != 1:
            log.warning("a transaction reverted; checked again", extra={"license_id": license_id, "action": action})
        elif action == "deliver":
            log.info("key delivered", extra={"license_id": license_id, "tx": receipt.get("transactionHash")})
            self.sender.ledger.count("keys_delivered")
        else:
            log.info("local use refunded", extra={"license_id": license_id, "tx": receipt.get("transactionHash")})
            self.sender.ledger.count("keys_refunded")
        return {}

    # ------------------------------------------------------------ loop
    def run(self, stop: threading.Event, once: bool = False) -> None:
        failures = 0
        while not stop.is_set():
            try:
                self.step()
                failures = 0
                if once:
                    return
            except Exception as exc:
                if once:
                    raise
                failures += 1
                pause = min(float(self.settings.retry_backoff_max_s), 0.5 * 2 ** min(failures, 10))
                log.warning(
                    "key service round failed; retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "retry_in_s": pause},
                )
                stop.wait(pause)
                continue
            stop.wait(self.settings.keys_interval_s)


class LocalUseSweep:
    """What a keeper sweeps in ``KeyDelivery`` (any model's): purchases undelivered at their deadline
    (``refund``: the buyer is credited back) and deliveries past their dispute window (``settle``: the
    price goes to the model's pot). Both are anyone's to send; the chain refuses what is not due."""

    EVENTS = ("LocalUsePurchased", "KeyDelivered", "LocalUseRefunded", "LocalUseSettled", "DeliveryDisproved")

    def __init__(self, w3: Any, address: str, first_block: int, max_block_range: int) -> None:
        self.contract = w3.eth.contract(address=to_checksum_address(address), abi=load_abi("IKeyDelivery"))
        self.w3 = w3
        self.events = {name: getattr(self.contract.events, name)() for name in self.EVENTS}
        self.topics = {"0x" + event_abi_to_log_topic(e.abi).hex(): name for name, e in self.events.items()}
        self.first_block, self.max_block_range = first_block, max_block_range
        self.scanned: int | None = None
        self.open: dict[int, tuple[str, int | None]] = {}  # licence -> ("refund", deadline) | ("settle", dispute end)

    def scan(self, upto: int) -> None:
        start = self.first_block if self.scanned is None else self.scanned + 1
        for first in range(start, upto + 1, self.max_block_range):
            last = min(upto, first + self.max_block_range - 1)
            query = {
                "address": self.contract.address,
                "fromBlock": first,
                "toBlock": last,
                "topics": [list(self.topics)],
            }
            for entry in self.w3.eth.get_logs(query):
                name = self.topics["0x" + bytes(entry["topics"][0]).hex()]
                license_id = int(bytes(entry["topics"][1]).hex(), 16)
                if name == "LocalUsePurchased":
                    self.open[license_id] = ("refund", int(self.events[name].process_log(entry)["args"]["deadline"]))
                elif name == "KeyDelivered":
                    self.open[license_id] = ("settle", None)  # its dispute end is read once, when first due
                else:
                    self.open.pop(license_id, None)
        self.scanned = max(upto, start - 1)

    def due(self, now: int) -> list[tuple[str, int]]:
        """(``refund`` | ``settle``, licence) due at ``now``, oldest licence first."""
        out = []
        for license_id, (action, at) in sorted(self.open.items()):
            if at is None:
                at = int(self.contract.functions.localUse(license_id).call()[1])
                self.open[license_id] = (action, at)
            if now >= at:
                out.append((action, license_id))
        return out

    def transaction(self, action: str, license_id: int) -> str:
        return self.contract.encode_abi(action, [license_id])


def start(settings: KeyServiceSettings, stop: threading.Event, once: bool = False) -> None:
    """Connect (Redis, chain, store, the operator's key) and deliver until ``stop``."""
    from oracle.runtime import Services, namespace

    svc = Services(settings)
    key = svc.key
    ledger = KeyLedger(svc.redis, namespace(settings))
    sender = TxSender(svc.router.rpc, key, ledger, settings, svc.chain_id)
    service = KeyService(settings, svc.router.w3, sender, svc.store, dict(settings.models))
    log.info(
        "key service starting",
        extra={
            "account": key.address,
            "key_delivery": settings.key_delivery,
            "models": [hex(m) for m in settings.models],
            "first_block": settings.first_block,
        },
    )
    try:
        service.run(stop, once=once)
    finally:
        log.info("key service stopped")


def main(argv: list[str] | None = None) -> int:
    from oracle.logs import setup_logging

    parser = argparse.ArgumentParser(prog="python -m oracle.key_delivery", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="the oracle's TOML file (default: $ORACLE_CONFIG)")
    parser.add_argument("--once", action="store_true", help="one round, then exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config, kind=KeyServiceSettings)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    setup_logging("keys", settings.log_format, settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    start(settings, stop, once=args.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())

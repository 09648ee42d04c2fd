"""What the indexer reads from the node: plain JSON-RPC (no Ape, no web3 pipeline) and the
contracts' events, decoded by the compiled ABIs.

Several calls go in one HTTP round trip (:meth:`JsonRpc.batch`); logs of the four contracts come
from one ``eth_getLogs`` per block range, filtered by the topics the index uses, and are decoded
into :class:`Event` (structs as dicts by field name, addresses checksummed, ``bytes32`` as
``0x`` hex).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address

from voicemarket.errors import IndexingError, ServiceSettingsError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MANIFEST = ROOT / ".build" / "__local__.json"

# contract role -> (compiled contract name, events the index follows)
EVENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "registry": (
        "VoiceModelRegistry",
        (
            "ModelRegistered",
            "MetadataSet",
            "DisputeWindowSet",
            "ModelRetired",
            "ModelFrozen",
            "ModelUnfrozen",
            "Transfer",
        ),
    ),
    "offers": ("OfferBook", ("OfferPublished", "OfferDeactivated")),
    # local-use licences (issue 19), when the deployment has a KeyDelivery: its money events go to
    # `revenue` (source "local"), the rest to the activity feed
    "key_delivery": (
        "KeyDelivery",
        (
            "LocalUsePurchased",
            "KeyDelivered",
            "LocalUseRefunded",
            "LocalUseSettled",
            "DeliveryDisproved",
            "UsageReported",
            "RevenueAccrued",
            "RevenueDistributed",
            "Credited",
        ),
    ),
    "licenses": (
        "LicenseManager",
        (
            "LicensePurchased",
            "SubscriptionUpdate",
            "SubscriptionCancelled",
            "AutoRenewSet",
            "Transfer",
            "RevenueAccrued",
            "RevenueDistributed",
            "Credited",
        ),
    ),
    "router": (
        "SynthesisRouter",
        (
            "SynthesisRequested",
            "SynthesisFulfilled",
            "SynthesisFailed",
            "SynthesisExpired",
            "SynthesisSettled",
            "SynthesisDisputed",
            "DisputeResolved",
            "DisputeLapsed",
            "OperatorRegistered",
            "StakeAdded",
            "UnbondingStarted",
            "StakeWithdrawn",
            "OperatorSlashed",
            "OperatorFeeSet",
            "ModelOperatorSet",
            "RevenueAccrued",
            "RevenueDistributed",
            "Credited",
        ),
    ),
}


class JsonRpc:
    """JSON-RPC over HTTP, several calls a round trip. Connection failures raise ``httpx``
    errors (the indexer waits and retries); an error answer raises :class:`IndexingError`."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout)

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        if not calls:
            return []
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        response = self._client.post(self.url, json=payload)
        response.raise_for_status()
        answers = response.json()
        if not isinstance(answers, list):  # the node refused the whole batch
            raise IndexingError(f"the node refused a batch of {len(calls)} calls: {str(answers)[:300]}")
        answers = sorted(answers, key=lambda answer: answer["id"])
        for (method, params), answer in zip(calls, answers, strict=True):
            if "error" in answer:
                raise IndexingError(f"the node refused {method}{params!r}: {answer['error']}")
        return [answer.get("result") for answer in answers]

    def call(self, method: str, *params: Any) -> Any:
        return self.batch([(method, list(params))])[0]

    def close(self) -> None:
        self._client.close()


def to_int(value: str | int | None) -> int:
    if value is None:
        return 0
    return value if isinstance(value, int) else int(value, 16)


@dataclass(frozen=True)
class Contracts:
    """Where the market lives: the chain, the four contracts, the block before the first was deployed."""

    chain_id: int
    registry: str
    offers: str
    licenses: str
    router: str
    start_block: int = 0
    key_delivery: str | None = None  # absent in deployments made before local-use licences

    @classmethod
    def from_deployment_file(cls, path: str | Path) -> Contracts:
        """From a deployment saved by ``ape run deploy`` (``.voicemarket/deployments/<network>.json``)."""
        path = Path(path)
        try:
            record = json.loads(path.read_text())
            contracts = record["contracts"]
            return cls(
                chain_id=int(record["chainId"]),
                registry=to_checksum_address(contracts["registry"]),
                offers=to_checksum_address(contracts["offers"]),
                licenses=to_checksum_address(contracts["licenses"]),
                router=to_checksum_address(contracts["router"]),
                start_block=int(record.get("startBlock", 0)),
                key_delivery=to_checksum_address(contracts["keyDelivery"]) if contracts.get("keyDelivery") else None,
            )
        except FileNotFoundError:
            raise ServiceSettingsError(
                f"no deployment file at {path}: `ape run deploy` writes one under .voicemarket/deployments/"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceSettingsError(f"{path} is not a voicemarket deployment file ({exc!r})") from None

    def by_role(self) -> dict[str, str]:
        roles = {"registry": self.registry, "offers": self.offers, "licenses": self.licenses, "router": self.router}
        return roles if self.key_delivery is None else {**roles, "key_delivery": self.key_delivery}


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded log: which contract (role), which event, its arguments, where it stands."""

    role: str
    name: str
    args: dict[str, Any]
    block: int
    log_index: int
    block_hash: str
    tx_hash: str
    timestamp: int | None


@functools.lru_cache(maxsize=65_536)
def checksum(address: str) -> str:
    """EIP-55 checksummed address, cached: a market's logs name the same accounts again and again."""
    return to_checksum_address(address)


_ZERO_WORD = bytes(32)


def _is_static(item: dict[str, Any]) -> bool:
    kind = item["type"]
    if kind == "tuple":
        return all(_is_static(c) for c in item["components"])
    return kind not in ("bytes", "string") and not kind.endswith("]")


def _width(item: dict[str, Any]) -> int:
    """32-byte words a static value takes in place (a dynamic one takes one: its offset)."""
    if item["type"] == "tuple":
        return sum(_width(c) for c in item["components"])
    return 1


def _reader(item: dict[str, Any], word: int) -> Callable[[bytes], Any]:
    """A function reading ``item`` from event data whose value starts at ``word``: the static ABI
    types, static tuples (as dicts by field name) and top-level ``bytes``/``string``, compiled
    once per event type (eth_abi's general machinery per log is ten times slower, and decoding
    is much of an indexer's work)."""
    kind = item["type"]
    at, end = 32 * word, 32 * word + 32
    if kind == "tuple":
        fields = []
        for component in item["components"]:
            fields.append((component["name"], _reader(component, word)))
            word += _width(component)
        return lambda data: {name: read(data) for name, read in fields}
    if kind == "address":
        return lambda data: checksum("0x" + data[at + 12 : end].hex())
    if kind == "bool":
        return lambda data: data[at:end] != _ZERO_WORD
    if kind == "bytes32":
        return lambda data: "0x" + data[at:end].hex()
    if kind.startswith("uint"):
        return lambda data: int.from_bytes(data[at:end], "big")
    if kind.startswith("int"):
        return lambda data: int.from_bytes(data[at:end], "big", signed=True)
    if kind in ("bytes", "string"):

        def dynamic(data: bytes) -> Any:
            start = int.from_bytes(data[at:end], "big")
            length = int.from_bytes(data[start : start + 32], "big")
            raw = data[start + 32 : start + 32 + length]
            return raw.decode("utf-8", "replace") if kind == "string" else raw

        return dynamic
    raise ValueError(f"ABI type {kind} is not read by the index's decoder")


def _topic_reader(item: dict[str, Any]) -> Callable[[str], Any]:
    """A function reading an indexed value (one word) from its topic's hex text."""
    kind = item["type"]
    if kind == "address":
        return lambda topic: checksum("0x" + topic[-40:])
    if kind == "bool":
        return lambda topic: int(topic, 16) != 0
    if kind == "bytes32":
        return lambda topic: topic.lower()
    if kind.startswith("uint"):
        return lambda topic: int(topic, 16)
    read = _reader(item, 0)  # signed integers and the rest: through the word reader
    return lambda topic: read(bytes.fromhex(topic[2:]))


def _plain(item: dict[str, Any], value: Any) -> Any:
    kind = item["type"]
    if kind == "tuple":
        return {c["name"]: _plain(c, v) for c, v in zip(item["components"], value, strict=True)}
    if kind == "address":
        return checksum(value)
    if kind == "bytes32":
        return "0x" + bytes(value).hex()
    if kind == "bytes":
        return bytes(value)
    return value


def _abi_type(item: dict[str, Any]) -> str:
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + kind[len("tuple") :]
    return kind


class LogDecoder:
    """Decodes the logs of the index's events, by (contract address, topic0)."""

    def __init__(self, contracts: Contracts, manifest: str | Path | None = None) -> None:
        path = Path(manifest or DEFAULT_MANIFEST)
        try:
            types = json.loads(path.read_text())["contractTypes"]
        except FileNotFoundError:
            raise ServiceSettingsError(
                f"no compiled contracts at {path}: run `make compile` (or `ape compile`), or set abi_manifest"
            ) from None
        self.addresses = contracts.by_role()
        self._role_of = {address.lower(): role for role, address in self.addresses.items()}
        self._decoders: dict[tuple[str | None, str], tuple] = {}
        self.topics: set[str] = set()
        for role, (contract, names) in EVENTS.items():
            if role not in self.addresses:  # a deployment without that contract (KeyDelivery)
                continue
            try:
                abi = types[contract]["abi"]
            except KeyError:
                raise ServiceSettingsError(f"{path} has no ABI for {contract}: run `make compile` again") from None
            for name in names:
                item = next(e for e in abi if e.get("type") == "event" and e["name"] == name)
                topic = "0x" + event_abi_to_log_topic(item).hex()
                indexed = [i for i in item["inputs"] if i["indexed"]]
                data = [i for i in item["inputs"] if not i["indexed"]]
                # the compiled readers for static values and top-level bytes/string; eth_abi for anything else
                simple = all(_is_static(i) or i["type"] in ("bytes", "string") for i in data) and all(
                    _is_static(i) and i["type"] != "tuple" for i in indexed
                )
                topic_readers = [(i["name"], _topic_reader(i)) for i in indexed] if simple else None
                data_readers = None
                if simple:
                    data_readers, word = [], 0
                    for i in data:
                        data_readers.append((i["name"], _reader(i, word)))
                        word += _width(i)
                self._decoders[(role, topic)] = (name, indexed, data, topic_readers, data_readers)
                self.topics.add(topic)

    def logs_filter(self, from_block: int, to_block: int) -> dict[str, Any]:
        return {
            "address": list(self.addresses.values()),
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "topics": [sorted(self.topics)],
        }

    def decode(self, raw: dict[str, Any]) -> Event | None:
        """The :class:`Event` of a raw JSON-RPC log, or None for a log the index does not follow."""
        role = self._role_of.get(raw["address"].lower())
        topics = raw["topics"]
        decoder = self._decoders.get((role, topics[0])) if role and topics else None
        if decoder is None:
            return None
        name, indexed, data_items, topic_readers, data_readers = decoder
        data = bytes.fromhex(raw["data"][2:])
        if data_readers is not None:
            args = {key: read(topic) for (key, read), topic in zip(topic_readers, topics[1:], strict=True)}
            for key, read in data_readers:
                args[key] = read(data)
        else:  # a layout the compiled readers do not read
            args = {
                item["name"]: _reader(item, 0)(bytes.fromhex(topic[2:]))
                for item, topic in zip(indexed, topics[1:], strict=True)
            }
            values = abi_decode([_abi_type(i) for i in data_items], data)
            for item, value in zip(data_items, values, strict=True):
                args[item["name"]] = _plain(item, value)
        timestamp = raw.get("blockTimestamp")
        return Event(
            role=role,
            name=name,
            args=args,
            block=to_int(raw["blockNumber"]),
            log_index=to_int(raw["logIndex"]),
            block_hash=raw["blockHash"],
            tx_hash=raw["transactionHash"],
            timestamp=to_int(timestamp) if timestamp is not None else None,
        )

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
            )
        except FileNotFoundError:
            raise ServiceSettingsError(
                f"no deployment file at {path}: `ape run deploy` writes one under .voicemarket/deployments/"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceSettingsError(f"{path} is not a voicemarket deployment file ({exc!r})") from None

    def by_role(self) -> dict[str, str]:
        return {"registry": self.registry, "offers": self.offers, "licenses": self.licenses, "router": self.router}


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


class _Words:
    """Reads an event's data by 32-byte words: the static ABI types, static tuples, and top-level
    ``bytes``/``string`` (every event the index follows), without eth_abi's general machinery
    (ten times faster, and decoding is most of an indexer's work)."""

    @staticmethod
    def width(item: dict[str, Any]) -> int:
        if item["type"] == "tuple":
            return sum(_Words.width(c) for c in item["components"])
        return 1

    @staticmethod
    def is_static(item: dict[str, Any]) -> bool:
        kind = item["type"]
        if kind == "tuple":
            return all(_Words.is_static(c) for c in item["components"])
        return kind not in ("bytes", "string") and not kind.endswith("]")

    @staticmethod
    def value(item: dict[str, Any], data: bytes, word: int) -> Any:
        kind = item["type"]
        if kind == "tuple":
            out = {}
            for component in item["components"]:
                out[component["name"]] = _Words.value(component, data, word)
                word += _Words.width(component)
            return out
        chunk = data[32 * word : 32 * word + 32]
        if kind == "address":
            return checksum("0x" + chunk[12:].hex())
        if kind == "bool":
            return chunk != bytes(32)
        if kind == "bytes32":
            return "0x" + chunk.hex()
        if kind.startswith("uint"):
            return int.from_bytes(chunk, "big")
        if kind.startswith("int"):
            return int.from_bytes(chunk, "big", signed=True)
        if kind in ("bytes", "string"):
            start = int.from_bytes(chunk, "big")
            length = int.from_bytes(data[start : start + 32], "big")
            raw = data[start + 32 : start + 32 + length]
            return raw.decode("utf-8", "replace") if kind == "string" else raw
        raise ValueError(f"ABI type {kind} is not read by the index's decoder")


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
        self._decoders: dict[tuple[str, str], tuple[str, list, list, list[str]]] = {}
        self.topics: set[str] = set()
        for role, (contract, names) in EVENTS.items():
            try:
                abi = types[contract]["abi"]
            except KeyError:
                raise ServiceSettingsError(f"{path} has no ABI for {contract}: run `make compile` again") from None
            for name in names:
                item = next(e for e in abi if e.get("type") == "event" and e["name"] == name)
                topic = "0x" + event_abi_to_log_topic(item).hex()
                indexed = [i for i in item["inputs"] if i["indexed"]]
                data = [i for i in item["inputs"] if not i["indexed"]]
                # the fast reader for static values and top-level bytes/string; eth_abi for anything else
                simple = all(_Words.is_static(i) or i["type"] in ("bytes", "string") for i in data) and all(
                    _Words.is_static(i) and i["type"] != "tuple" for i in indexed
                )
                self._decoders[(role, topic)] = (name, indexed, data, [] if simple else None)
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
        name, indexed, data_items, data_types = decoder
        args: dict[str, Any] = {}
        for item, topic in zip(indexed, topics[1:], strict=True):  # indexed values are one word each
            args[item["name"]] = _Words.value(item, bytes.fromhex(topic[2:]), 0)
        data = bytes.fromhex(raw["data"][2:])
        if data_types is None:  # a layout _Words does not read
            values = abi_decode([_abi_type(i) for i in data_items], data)
            for item, value in zip(data_items, values, strict=True):
                args[item["name"]] = _plain(item, value)
        else:
            word = 0
            for item in data_items:
                args[item["name"]] = _Words.value(item, data, word)
                word += _Words.width(item)
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

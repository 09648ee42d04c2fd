"""The chain as the oracle sees it: the SynthesisRouter and the model registry, over web3.

Workers talk to the node's JSON-RPC URL directly (no Ape network context in every process).
ABIs come from the project's compiled artifacts (``.build/__local__.json``, written by
``ape compile``), so the oracle never carries a copy that could drift from the contracts.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError

from oracle.errors import ConfigError
from oracle.rpc import JsonRpc, to_int
from voicemarket.protocol import RequestStatus

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_ENV = "ORACLE_ABI_MANIFEST"
HASH_MASK = ((1 << 256) - 1) ^ ((1 << 48) - 1)  # the router stores the upper 208 bits of a request's hash


@cache
def load_abi(contract: str) -> list[dict[str, Any]]:
    """The ABI of ``contract`` (e.g. ``ISynthesisRouter``) from the compiled project manifest."""
    path = Path(os.environ.get(MANIFEST_ENV, ROOT / ".build" / "__local__.json"))
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no compiled contracts at {path}: run `make compile` (or `ape compile`) in the "
            f"project, or point {MANIFEST_ENV} at a manifest that has {contract}"
        ) from None
    try:
        return manifest["contractTypes"][contract]["abi"]
    except KeyError:
        raise ConfigError(f"{path} has no ABI for {contract}: run `make compile` again") from None


def _abi_type(item: dict[str, Any]) -> str:
    """The canonical ABI type string of an ABI parameter (tuples spelled out)."""
    kind = item["type"]
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + kind[len("tuple") :]
    return kind


def status_name(status: int) -> str:
    """'pending', 'fulfilled', ... for a ``RequestStatus`` number."""
    return RequestStatus(status).name.lower()


@dataclass(frozen=True)
class SynthesisRequest:
    """``ISynthesisRouter.SynthesisRequest``: the committed request, passed back to fulfil / fail."""

    id: int
    modelId: int  # noqa: N815 - the Solidity field names, so that the tuple order is the ABI's
    licenseId: int  # noqa: N815
    requester: str
    operator: str
    asset: str
    usePrice: int  # noqa: N815
    fee: int
    params: int
    inputHash: bytes  # noqa: N815
    deadline: int
    disputeWindow: int  # noqa: N815
    useTag: int  # noqa: N815
    platformFeeBps: int  # noqa: N815

    def as_tuple(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))

    def to_json(self) -> list:
        return [
            "0x" + v.hex() if isinstance(v, bytes) else (str(v) if isinstance(v, int) else v) for v in self.as_tuple()
        ]

    @classmethod
    def from_json(cls, values: list) -> SynthesisRequest:
        out = {}
        for f, v in zip(fields(cls), values, strict=True):
            if f.name == "inputHash":
                out[f.name] = bytes.fromhex(v[2:])
            elif f.type == "int":
                out[f.name] = int(v)
            else:
                out[f.name] = v
        return cls(**out)


@dataclass(frozen=True)
class RequestedEvent:
    """A ``SynthesisRequested`` log: the request, its input and where it was mined."""

    request: SynthesisRequest
    input: bytes
    block_number: int
    block_hash: str
    log_index: int


@dataclass(frozen=True)
class ModelRecord:
    """What the registry says about a model (``modelInfo``): who registered it and where its bundle is."""

    model_id: int
    bundle_digest: bytes  # the sha2-256 digest inside the bundle's CID
    bundle_codec: int
    languages: int
    frozen: bool
    creator: str  # the model id is keccak256(abi.encode(creator, sha256(bundle)))
    service_ends_at: int = 0  # 0 unless retired: deliveries stop then (Router_ServiceEnded)

    @property
    def bundle_cid(self):  # noqa: ANN201 - a voicemarket CID
        from voicemarket.content.multiformats import CID

        return CID(1, self.bundle_codec, self.bundle_digest)

    @property
    def registered(self):  # noqa: ANN201 - a voicemarket RegisteredModel
        """What a fetched bundle must be: its SHA-256 with ``creator`` gives the model id, and it names ``creator``."""
        from voicemarket.content.sealed_bundle import RegisteredModel

        return RegisteredModel(self.model_id, self.creator)

    def service_ended(self, now: int) -> bool:
        return bool(self.service_ends_at) and now >= self.service_ends_at


class RouterClient:
    """Reads and writes the SynthesisRouter (and reads the registry) through one web3 connection."""

    def __init__(self, w3: Web3, router: str, registry: str | None = None, timeout: float = 10.0) -> None:
        self.w3 = w3
        self.rpc = JsonRpc(str(w3.provider.endpoint_uri), timeout)  # hot paths: raw batches, one round trip
        self.router = w3.eth.contract(address=to_checksum_address(router), abi=load_abi("ISynthesisRouter"))
        self.address = self.router.address
        registry = registry or self.router.functions.registry().call()
        self.registry = w3.eth.contract(address=to_checksum_address(registry), abi=load_abi("IVoiceModelRegistry"))
        abi = next(e for e in self.router.abi if e.get("name") == "SynthesisRequested" and e["type"] == "event")
        self.requested_topic = "0x" + keccak(text=self._signature(abi)).hex()
        struct = next(i for i in abi["inputs"] if i["name"] == "request")
        self._request_type = _abi_type(struct)
        self._requested_data_types = [_abi_type(i) for i in abi["inputs"] if not i["indexed"]]
        self._state_selector = "0x" + keccak(text="requestState(uint256)")[:4].hex()
        self._outcome_events = {}  # topic0 -> (name, web3 event)
        self.topics = {"SynthesisRequested": self.requested_topic}
        for name in ("SynthesisFulfilled", "FulfilmentSkipped", "SynthesisFailed"):
            event_abi = next(e for e in self.router.abi if e.get("name") == name and e["type"] == "event")
            topic = "0x" + keccak(text=self._signature(event_abi)).hex()
            self.topics[name] = topic
            self._outcome_events[topic] = (name, getattr(self.router.events, name)())

    @staticmethod
    def _signature(abi: dict[str, Any]) -> str:
        return f"{abi['name']}({','.join(_abi_type(i) for i in abi['inputs'])})"

    @classmethod
    def connect(cls, rpc_url: str, router: str, registry: str | None = None, timeout: float = 10.0) -> RouterClient:
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        return cls(w3, router, registry, timeout)

    # ------------------------------------------------------------ raw JSON-RPC
    def rpc_batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        return self.rpc.batch(calls)

    def _state_call(self, request_id: int) -> tuple[str, list[Any]]:
        data = self._state_selector + request_id.to_bytes(32, "big").hex()
        return "eth_call", [{"to": self.address, "data": data}, "latest"]

    @staticmethod
    def _decode_state(result: str) -> tuple[int, int]:
        raw = bytes.fromhex(result[2:])
        return int.from_bytes(raw[0:32], "big"), int.from_bytes(raw[64:96], "big")

    def logs_call(self, from_block: int, to_block: int | str, request_id: int | None) -> tuple[str, list[Any]]:
        topics: list[Any] = [self.requested_topic]
        if request_id is not None:
            topics.append("0x" + request_id.to_bytes(32, "big").hex())
        to = to_block if isinstance(to_block, str) else hex(to_block)
        return "eth_getLogs", [{"address": self.address, "fromBlock": hex(from_block), "toBlock": to, "topics": topics}]

    # ------------------------------------------------------------ requests
    def commitment(self, request: SynthesisRequest) -> int:
        """``keccak256(abi.encode(request))`` masked as the router stores it."""
        digest = keccak(abi_encode([self._request_type], [request.as_tuple()]))
        return int.from_bytes(digest, "big") & HASH_MASK

    def decode_requested(self, log: Any) -> RequestedEvent:
        """A ``SynthesisRequested`` log (raw JSON-RPC form or web3's) -> :class:`RequestedEvent`."""
        data = log["data"]
        data = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
        struct, input_ = abi_decode(self._requested_data_types, data)
        request = SynthesisRequest(*struct)
        request = SynthesisRequest(
            **{
                **request.__dict__,
                "requester": to_checksum_address(request.requester),
                "operator": to_checksum_address(request.operator),
                "asset": to_checksum_address(request.asset),
            }
        )
        number = log["blockNumber"]
        return RequestedEvent(
            request=request,
            input=bytes(input_),
            block_number=int(number, 16) if isinstance(number, str) else int(number),
            block_hash=log["blockHash"] if isinstance(log["blockHash"], str) else Web3.to_hex(log["blockHash"]),
            log_index=int(log["logIndex"], 16) if isinstance(log["logIndex"], str) else int(log["logIndex"]),
        )

    def requested_logs(self, from_block: int, to_block: int | str, request_id: int | None = None) -> list[Any]:
        return self.rpc_batch([self.logs_call(from_block, to_block, request_id)])[0]

    def request_snapshot(
        self, request_id: int, near_block: int, reorg_window: int = 1024
    ) -> tuple[RequestedEvent | None, int, int, int]:
        """One round trip: the request's canonical ``SynthesisRequested`` (None if there is none),
        its on-chain status and commitment, and the latest block's timestamp.

        The log is looked for from a few blocks before ``near_block`` (where the listener saw it);
        only if it is not there while the request exists (a reorg moved it further back) is the
        search widened to ``reorg_window`` blocks."""
        logs, state, block = self.rpc_batch(
            [
                self.logs_call(max(0, near_block - 8), "latest", request_id),
                self._state_call(request_id),
                ("eth_getBlockByNumber", ["latest", False]),
            ]
        )
        status, commitment = self._decode_state(state)
        if not logs and status != RequestStatus.NONE and near_block > 8:
            logs = self.requested_logs(max(0, near_block - reorg_window), "latest", request_id)
        event = self.decode_requested(logs[-1]) if logs else None
        return event, status, commitment, to_int(block["timestamp"])

    def request_states(self, request_ids: list[int]) -> dict[int, tuple[int, int]]:
        """``requestState`` of each id -> (status, commitment), in one JSON-RPC batch."""
        if not request_ids:
            return {}
        answers = self.rpc_batch([self._state_call(request_id) for request_id in request_ids])
        return {rid: self._decode_state(answer) for rid, answer in zip(request_ids, answers, strict=True)}

    def latest_timestamp(self) -> int:
        return to_int(self.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"])

    def model(self, model_id: int) -> ModelRecord | None:
        """The registry's record of ``model_id``, or None if no such model is registered."""
        try:
            info = self.registry.functions.modelInfo(model_id).call()
        except ContractLogicError:
            return None
        record = (
            dict(zip([o["name"] for o in self._model_info_fields()], info, strict=True))
            if isinstance(info, (list, tuple))
            else info
        )
        return ModelRecord(
            model_id,
            bytes(record["bundleCid"]),
            int(record["bundleCodec"]),
            int(record["languages"]),
            bool(record["frozen"]),
            to_checksum_address(record["creator"]),
            int(record["serviceEndsAt"]),
        )

    def service_ends_at(self, model_id: int) -> int:
        """When a retired model's service ends (``modelTerms(id).serviceEndsAt``; 0 if not retired or unknown)."""
        try:
            terms = self.registry.functions.modelTerms(model_id).call()
        except ContractLogicError:
            return 0
        return int(terms[2] if isinstance(terms, (list, tuple)) else terms["serviceEndsAt"])

    @cache  # noqa: B019 - one client per process, a handful of entries
    def _model_info_fields(self) -> list[dict[str, Any]]:
        abi = next(e for e in self.registry.abi if e.get("name") == "modelInfo")
        return abi["outputs"][0]["components"]

    # ------------------------------------------------------------ transactions
    def fulfil_batch_data(self, items: list[tuple[SynthesisRequest, bytes, bytes]]) -> str:
        """Calldata of ``fulfilBatch`` for (request, output SHA-256, binary output CID) items."""
        return self.router.encode_abi("fulfilBatch", [[(r.as_tuple(), digest, cid) for r, digest, cid in items]])

    def fail_data(self, request: SynthesisRequest, reason: int) -> str:
        return self.router.encode_abi("fail", [request.as_tuple(), int(reason)])

    def outcome_logs(self, from_block: int, to_block: int | str = "latest") -> list[tuple[str, int, Any]]:
        """Every fulfilment, failure and skip the router logged in the range: (event name, request id, args)."""
        logs = self.w3.eth.get_logs(
            {
                "address": self.address,
                "fromBlock": from_block,
                "toBlock": to_block,
                "topics": [list(self._outcome_events)],
            }
        )
        out = []
        for log in logs:
            name, event = self._outcome_events[Web3.to_hex(log["topics"][0])]
            args = event.process_log(log)["args"]
            out.append((name, int(args["requestId"]), args))
        return out

    def outcomes(self, receipt: dict[str, Any]) -> dict[int, str]:
        """request id -> 'fulfilled' / 'failed' / 'skipped:<status>' from a raw JSON-RPC receipt's logs."""
        out: dict[int, str] = {}
        for log in receipt["logs"]:
            if not log["topics"] or to_checksum_address(log["address"]) != self.address:
                continue
            known = self._outcome_events.get(log["topics"][0])
            if known is None:
                continue
            name = known[0]
            request_id = int(log["topics"][1], 16)  # requestId is the first indexed argument of all three
            if name == "SynthesisFulfilled":
                out[request_id] = "fulfilled"
            elif name == "SynthesisFailed":
                out[request_id] = "failed"
            else:
                out[request_id] = "skipped:" + status_name(int(log["data"][2:66], 16))
        return out

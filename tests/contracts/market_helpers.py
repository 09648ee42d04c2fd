"""Factories the contract tests share: a `Market` over one deployment, offer terms, keys."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import ape
from ape.exceptions import CustomError
from coincurve import PrivateKey
from eth_abi import decode, encode
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

from voicemarket import protocol
from voicemarket.content.multiformats import CID, DAG_PB, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import DAY, ETH, Action, Language, Tier, language_bits

MONTH = 30 * DAY
OPERATOR_FEE = 10**14
MIN_STAKE = 10**17
SLASH = 10**16
TEXT = "The quick brown fox jumps over the lazy dog."


def public_key(account) -> bytes:
    """The 64-byte uncompressed secp256k1 public key of an Ape test account."""
    return PrivateKey(bytes.fromhex(account.private_key[2:])).public_key.format(compressed=False)[1:]


def digest_of(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@contextmanager
def reverts(error, **inputs) -> Iterator[Any]:
    """``ape.reverts(error, **inputs)``, strict: the revert must be exactly that custom error, with
    every input named. (``ape.reverts`` passes when Ape could not decode the revert data, and skips
    input names the error does not have.) An error bubbled up from another contract, which Ape
    reports as raw data, is decoded here with ``error``'s ABI."""
    with ape.reverts(error, **inputs) as info:
        yield info
    exc = info.value
    if isinstance(exc, CustomError):
        assert type(exc).__name__ == error.__name__, f"expected {error.__name__}, got {type(exc).__name__}"
        unknown = set(inputs) - set(exc.inputs)
        assert not unknown, f"{error.__name__} has no inputs {sorted(unknown)} (it has {sorted(exc.inputs)})"
        return
    data = str(exc.revert_message)
    assert data.startswith("0x"), f"expected {error.__name__}, got an undecoded revert: {exc!r}"
    _check_error_data(error, bytes.fromhex(data[2:]), inputs)


def _check_error_data(error, raw: bytes, inputs: dict[str, Any]) -> None:
    """``raw`` is the revert data of custom error ``error`` with the ``inputs`` named."""
    abi = error.abi
    assert raw[:4] == keccak(text=abi.selector)[:4], f"expected {abi.selector}, got revert data 0x{raw.hex()}"
    values = decode([x.canonical_type for x in abi.inputs], raw[4:])
    actual = {x.name: v for x, v in zip(abi.inputs, values, strict=True)}
    for name, expected in inputs.items():
        assert name in actual, f"{error.__name__} has no input {name}"
        got = actual[name]
        if isinstance(got, str) and got.startswith("0x") and len(got) == 42:
            got = to_checksum_address(got)
        assert got == expected, f"{error.__name__}.{name}: expected {expected}, got {got}"


def view_reverts(error, view, *args, **inputs) -> None:
    """The view call ``view(*args)`` reverts with custom error ``error`` carrying ``inputs``. (Ape
    reports a view's revert data only as text, so the call is made through web3 here.)"""
    from web3.exceptions import ContractCustomError

    call = {"to": view.contract.address, "data": "0x" + bytes(view.encode_input(*args)).hex()}
    try:
        ape.chain.provider.web3.eth.call(call)
    except ContractCustomError as failure:
        raw = bytes.fromhex(str(failure.data)[2:])
    else:
        raise AssertionError(f"{view} did not revert")
    _check_error_data(error, raw, inputs)


def error_data(error, *args) -> bytes:
    """The revert data of custom error ``error`` (an Ape error class) with ``args``: what a contract
    that catches a failed call records."""
    abi = error.abi
    return keccak(text=abi.selector)[:4] + encode([x.canonical_type for x in abi.inputs], list(args))


def offer_terms(
    model_id: int,
    tier: Tier = Tier.BUYOUT,
    *,
    asset: str = ETH,
    price: int = 10**16,
    period: int = 0,
    max_uses: int = 0,
    pack_size: int = 0,
    valid_until: int = 0,
    max_licenses: int = 0,
    permissions: int = int(Action.TEXT_TO_SPEECH | Action.COMMERCIAL_USE),
    prohibitions: int = int(Action.SUBLICENSING),
    attribution: bool = True,
    transferable: bool = False,
    purposes: int = 0,
    policy_hash: bytes | None = None,
) -> dict[str, Any]:
    """An ILicenseManager.OfferTerms dict with sensible defaults (a buyout in ETH)."""
    if tier == Tier.SUBSCRIPTION and period == 0:
        period = MONTH
    return {
        "modelId": model_id,
        "tier": int(tier),
        "asset": str(asset),
        "price": price,
        "period": period,
        "maxUses": max_uses,
        "packSize": pack_size,
        "validUntil": valid_until,
        "maxLicenses": max_licenses,
        "permissions": permissions,
        "prohibitions": prohibitions,
        "attribution": attribution,
        "transferable": transferable,
        "purposes": purposes,
        "policyHash": policy_hash or digest_of(f"policy {model_id} {tier} {price} {period}"),
    }


@dataclass
class Market:
    """Factories over one deployment: register models, publish offers, buy, request speech."""

    d: vm.Deployment
    a: SimpleNamespace
    chain: Any

    def __post_init__(self) -> None:
        self._labels = itertools.count()

    @property
    def now(self) -> int:
        return self.chain.pending_timestamp

    def registration(
        self,
        *,
        creator=None,
        voice_owner=None,
        voice_owner_bps: int = 2_000,
        co_creators=(),
        languages: int | None = None,
        dispute_window: int = 0,
        parent_id: int = 0,
        royalty_bps: int = 500,
        label: str | None = None,
        sign: bool = True,
        deadline: int | None = None,
        signer=None,
    ) -> dict[str, Any]:
        creator = creator or self.a.creator
        voice_owner = self.a.voice if voice_owner is None else voice_owner
        label = label or f"bundle {next(self._labels)}"
        digest = digest_of(label)
        policy = digest_of("consent policy " + label)
        deadline = self.now + 3600 if deadline is None else deadline
        voice_address = str(getattr(voice_owner, "address", voice_owner))
        signature = b""
        if voice_address != creator.address and sign:
            signature = self.consent(
                voice_address,
                signer or voice_owner,
                digest=digest,
                creator=creator,
                policy_hash=policy,
                voice_owner_bps=voice_owner_bps,
                deadline=deadline,
            )
        return vm.model_registration(
            bundle_digest=digest,
            bundle_cid=CID(1, RAW, digest_of("sealed " + label)),
            metadata_cid=CID(0, DAG_PB, digest_of("metadata " + label)),
            languages=language_bits("zh", "en") if languages is None else languages,
            voice_owner=voice_address,
            voice_owner_bps=voice_owner_bps if voice_address != creator.address else 0,
            co_creators=list(co_creators),
            policy_hash=policy,
            consent_deadline=deadline,
            consent_signature=signature,
            royalty_bps=royalty_bps,
            dispute_window=dispute_window,
            parent_id=parent_id,
        )

    def consent(
        self,
        voice_owner: str,
        signer,
        *,
        digest: bytes,
        creator,
        policy_hash: bytes,
        voice_owner_bps: int,
        deadline: int,
        nonce: int | None = None,
    ) -> bytes:
        """The consent of ``voice_owner`` (an address: an EOA, or an ERC-1271 wallet whose owner key
        is ``signer``), signed by ``signer`` under the voice owner's current nonce unless given."""
        if nonce is None:
            nonce = self.d.registry.consentNonce(voice_owner)
        message = vm.consent_typed_data(
            self.d.registry.address,
            self.chain.chain_id,
            voice_owner=voice_owner,
            bundle_digest=digest,
            creator=str(getattr(creator, "address", creator)),
            policy_hash=policy_hash,
            voice_owner_bps=voice_owner_bps,
            nonce=nonce,
            deadline=deadline,
        )
        return signer.sign_message(encode_typed_data(full_message=message)).encode_rsv()

    def register(self, *, creator=None, **kwargs) -> int:
        """Registers a model; returns its id (``modelIdOf(creator, bundleDigest)``)."""
        creator = creator or self.a.creator
        r = self.registration(creator=creator, **kwargs)
        self.d.registry.registerModel(r, sender=creator)
        return protocol.model_id(creator.address, r["bundleDigest"])

    def publish(self, model_id: int, tier: Tier = Tier.BUYOUT, *, owner=None, territories: bytes = b"", **terms) -> int:
        """Publishes an offer through the OfferBook; returns its id."""
        receipt = self.d.offers.publishOffer(
            offer_terms(model_id, tier, **terms), territories, sender=owner or self.d.registry.ownerOf(model_id)
        )
        return receipt.events.filter(self.d.offers.OfferPublished)[0].offerId

    def buy(self, offer_id: int, buyer=None, quantity: int = 1, *, max_price: int | None = None) -> int:
        buyer = buyer or self.a.buyer
        o = self.d.licenses.offer(offer_id).terms
        tier = Tier(o.tier)
        if tier == Tier.PAY_PER_USE:
            cost = o.price * o.packSize * quantity
        elif tier == Tier.SUBSCRIPTION:
            cost = o.price * quantity
        else:
            cost = o.price
        if o.asset != ETH:
            token = self.token(o.asset)
            token.mint(buyer, cost, sender=self.a.deployer)
            allowance = token.allowance(buyer, self.d.licenses)
            if allowance < cost:
                token.approve(self.d.licenses, allowance + cost, sender=buyer)
            receipt = self.d.licenses.buy(offer_id, cost if max_price is None else max_price, quantity, sender=buyer)
        else:
            receipt = self.d.licenses.buy(
                offer_id, cost if max_price is None else max_price, quantity, value=cost, sender=buyer
            )
        return receipt.events.filter(self.d.licenses.LicensePurchased)[0].licenseId

    def token(self, asset: str):
        """The test ERC-20 at `asset` (MockStablecoin or ReentrantToken: both mint to anyone)."""
        import ape

        return ape.project.MockStablecoin.at(asset)

    def operator(self, account=None, *, models=(), fee: int = OPERATOR_FEE, asset: str = ETH):
        """Registers `account` as an operator with the minimum stake, its fee, allowed for `models`."""
        account = account or self.a.operator
        self.d.router.registerOperator(public_key(account), value=MIN_STAKE, sender=account)
        if fee:
            self.d.router.setFee(asset, fee, sender=account)
        for model_id in models:
            owner = self.d.registry.ownerOf(model_id)
            self.d.router.setOperatorAllowed(model_id, account, True, sender=owner)
        return account

    def request_params(
        self,
        model_id: int,
        license_id: int,
        *,
        operator=None,
        text: str = TEXT,
        deadline_in: int = 3600,
        max_fee: int = OPERATOR_FEE,
        language: Language = Language.EN,
        params: int | None = None,
        min_dispute_window: int = 0,
        input_: bytes | None = None,
    ) -> dict[str, Any]:
        if params is None:
            params = vm.SynthesisParams(language, min_dispute_window=min_dispute_window).pack()
        return {
            "modelId": model_id,
            "licenseId": license_id,
            "operator": str(getattr(operator or self.a.operator, "address", operator)),
            "maxFee": max_fee,
            "deadline": self.now + deadline_in,
            "params": params,
            "inputHash": vm.input_hash(text),
            "input": vm.inline_input(text) if input_ is None else input_,
        }

    def request(self, model_id: int, license_id: int, *, buyer=None, value: int | None = None, **kwargs):
        """Requests speech; returns (SynthesisRequest tuple, receipt)."""
        buyer = buyer or self.a.buyer
        p = self.request_params(model_id, license_id, **kwargs)
        if value is None:
            value = p["maxFee"] + self._use_price(license_id)
        receipt = self.d.router.requestSynthesis(p, value=value, sender=buyer)
        return vm.request_from_log(receipt.events.filter(self.d.router.SynthesisRequested)[0]), receipt

    def _use_price(self, license_id: int) -> int:
        terms = self.d.licenses.offer(self.d.licenses.offerOf(license_id)).terms
        if terms.asset != ETH:
            return 0
        return terms.price if terms.tier == Tier.PAY_PER_USE and terms.packSize == 0 else 0


class RpcError(Exception):
    """A JSON-RPC error answer: ``code``, ``message`` and ``data`` (a revert's data, hex) as sent."""

    def __init__(self, error: dict) -> None:
        super().__init__(error.get("message", str(error)))
        self.code, self.message, self.data = error.get("code"), error.get("message", ""), error.get("data")


class Rpc:
    """JSON-RPC to the node over one kept-alive HTTP connection, with no formatting around it.

    For reads (``eth_call``): through web3 each costs several milliseconds of Python
    (middlewares, formatters, the requests library) against well under one for anvil to answer.
    Values go in and come out as JSON-RPC has them (hex quantities). Transactions stay with
    web3: sent this way, some were still on the chain after Ape's snapshot revert between
    state-machine examples (not investigated further)."""

    def __init__(self, uri: str) -> None:
        url = urlsplit(uri)
        self._connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)
        self._path = url.path or "/"
        self._ids = itertools.count()

    def __call__(self, method: str, *params):
        body = json.dumps({"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params)})
        self._connection.request("POST", self._path, body, {"Content-Type": "application/json"})
        answer = json.loads(self._connection.getresponse().read())
        if "error" in answer:
            raise RpcError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        self._connection.close()


class RawViews:
    """A contract's view functions, each one ``eth_call`` whose result eth_abi alone decodes.

    web3's contract functions run every element of a result through Python formatters (about
    25 ms for one of LedgerLens's array-heavy answers, three of them after every step of the
    state machine: most of its time); eth_abi decodes the same bytes far faster. Results read
    as web3's do: addresses checksummed, arrays as lists, structs as tuples.
    """

    def __init__(self, rpc: Rpc, address: str, abi: list[dict]) -> None:
        self._rpc, self._address = rpc, address
        self._functions = {item["name"]: item for item in abi if item.get("type") == "function"}

    def __getattr__(self, name: str):
        try:
            item = self._functions[name]
        except KeyError:
            raise AttributeError(name) from None
        inputs = [_abi_type(x) for x in item["inputs"]]
        outputs = [_abi_type(x) for x in item["outputs"]]
        selector = keccak(text=f"{name}({','.join(inputs)})")[:4]

        def call(*args):
            data = "0x" + (selector + encode(inputs, list(args))).hex()
            raw = bytes.fromhex(self._rpc("eth_call", {"to": self._address, "data": data}, "latest")[2:])
            values = [_as_web3(x, v) for x, v in zip(item["outputs"], decode(outputs, raw), strict=True)]
            return values[0] if len(values) == 1 else values

        return call


def _abi_type(item: dict) -> str:
    """The canonical type string of an ABI input/output (tuples spelled out)."""
    t = item["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in item["components"]) + ")" + t[len("tuple") :]
    return t


def _as_web3(item: dict, value):
    t = item["type"]
    if t.endswith("]"):
        inner = {**item, "type": t[: t.rindex("[")]}
        return [_as_web3(inner, v) for v in value]
    if t == "tuple":
        return tuple(_as_web3(c, v) for c, v in zip(item["components"], value, strict=True))
    if t == "address":
        return to_checksum_address(value)
    return value

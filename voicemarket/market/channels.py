"""Payment channels for the operators' speech API (contracts/PaymentChannels.sol, docs/api.md).

A channel is (buyer, operator, asset); the buyer deposits, then pays each use with a voucher: an
EIP-712 signature of the *cumulative* totals of a lane (channel, licence)::

    Voucher(bytes32 channel,uint256 licenseId,uint128 amount,uint64 uses)
    domain: name "voicemarket PaymentChannels", version "1", chain id, the contract's address

The operator redeems the latest voucher of each lane; the contract pays the licence's use price
for the new uses into the model's pot, the rest to the operator, and consumes the uses.

This module computes digests and signs with plain keys (coincurve), so the API checks a voucher
in well under a millisecond; an Ape account signs through :func:`account_signer`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from voicemarket.errors import ChannelError
from voicemarket.protocol import ETH

DOMAIN_NAME = "voicemarket PaymentChannels"
DOMAIN_VERSION = "1"
VOUCHER_TYPE = "Voucher(bytes32 channel,uint256 licenseId,uint128 amount,uint64 uses)"
_VOUCHER_TYPEHASH = keccak(text=VOUCHER_TYPE)
_DOMAIN_TYPEHASH = keccak(text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MAX_AMOUNT = 2**128 - 1
MAX_USES = 2**64 - 1

Signer = Callable[[bytes], bytes]
"""Signs a 32-byte digest; returns 65 bytes r || s || v (v 0/1 or 27/28)."""


def channel_id(buyer: str, operator: str, asset: str = ETH) -> bytes:
    """``keccak256(abi.encode(buyer, operator, asset))``, as the contract derives it."""
    return keccak(encode(["address", "address", "address"], [buyer, operator, asset]))


def domain_separator(contract: str, chain_id: int) -> bytes:
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [_DOMAIN_TYPEHASH, keccak(text=DOMAIN_NAME), keccak(text=DOMAIN_VERSION), chain_id, contract],
        )
    )


def voucher_digest(domain: bytes, channel: bytes, license_id: int, amount: int, uses: int) -> bytes:
    """The EIP-712 digest the buyer signs (``domain`` from :func:`domain_separator`)."""
    if not 0 <= amount <= MAX_AMOUNT or not 0 <= uses <= MAX_USES:
        raise ChannelError(f"voucher totals out of range: amount {amount}, uses {uses}")
    inner = keccak(
        encode(
            ["bytes32", "bytes32", "uint256", "uint128", "uint64"],
            [_VOUCHER_TYPEHASH, channel, license_id, amount, uses],
        )
    )
    return keccak(b"\x19\x01" + domain + inner)


def voucher_typed_data(
    contract: str, chain_id: int, channel: bytes, license_id: int, amount: int, uses: int
) -> dict[str, Any]:
    """The voucher as EIP-712 typed data (what a wallet's ``eth_signTypedData_v4`` shows)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Voucher": [
                {"name": "channel", "type": "bytes32"},
                {"name": "licenseId", "type": "uint256"},
                {"name": "amount", "type": "uint128"},
                {"name": "uses", "type": "uint64"},
            ],
        },
        "primaryType": "Voucher",
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": chain_id, "verifyingContract": contract},
        "message": {"channel": channel, "licenseId": license_id, "amount": amount, "uses": uses},
    }


def key_signer(private_key: bytes | str) -> Signer:
    """A signer over a raw secp256k1 key (RFC 6979, low s)."""
    if isinstance(private_key, str):
        private_key = bytes.fromhex(private_key.removeprefix("0x"))
    key = PrivateKey(private_key)

    def sign(digest: bytes) -> bytes:
        return key.sign_recoverable(digest, hasher=None)

    return sign


def account_signer(account: Any) -> Signer:
    """A signer over an Ape account: its raw key when it has one (test accounts), else
    ``sign_raw_msghash`` (keyfile accounts; may prompt for the passphrase)."""
    key = getattr(account, "private_key", None)
    if key:
        return key_signer(str(key))

    def sign(digest: bytes) -> bytes:
        signature = account.sign_raw_msghash(digest)
        if signature is None:
            raise ChannelError(f"account {account.address} did not sign the voucher; the request was not sent")
        return bytes(signature.r) + bytes(signature.s) + bytes([signature.v])

    return sign


def compact(signature: bytes) -> tuple[bytes, bytes]:
    """EIP-2098 (r, vs) of a 65-byte r || s || v signature (v 0/1 or 27/28)."""
    if len(signature) != 65:
        raise ChannelError(f"a voucher signature is 65 bytes (r, s, v), not {len(signature)}")
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    v = v - 27 if v >= 27 else v
    if v not in (0, 1) or s > _SECP256K1_N // 2:
        raise ChannelError("not a canonical signature (v must be 0/1 or 27/28, s in the lower half)")
    return r, (s | (v << 255)).to_bytes(32, "big")


def recover(digest: bytes, signature: bytes) -> str:
    """The address that signed ``digest`` (a 65-byte signature); raises ChannelError if none."""
    compact(signature)  # canonical form only: a high-s twin would be another voucher's bytes
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # noqa: BLE001 - coincurve raises plain Exception for an invalid signature
        raise ChannelError(f"the voucher signature does not recover to any key: {exc}") from None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


@dataclass(frozen=True)
class Voucher:
    """A signed voucher: the buyer's cumulative totals on the lane (buyer, operator, asset, licence)."""

    buyer: str
    operator: str
    asset: str
    license_id: int
    model_id: int
    amount: int
    uses: int
    signature: bytes = b""

    @property
    def channel(self) -> bytes:
        return channel_id(self.buyer, self.operator, self.asset)

    def digest(self, domain: bytes) -> bytes:
        return voucher_digest(domain, self.channel, self.license_id, self.amount, self.uses)

    def signed(self, domain: bytes, signer: Signer) -> Voucher:
        return replace(self, signature=signer(self.digest(domain)))

    def signer(self, domain: bytes) -> str:
        return recover(self.digest(domain), self.signature)

    def as_call(self) -> tuple:
        """The IPaymentChannels.Voucher tuple for ``redeem``."""
        r, vs = compact(self.signature)
        return (self.buyer, self.asset, self.license_id, self.model_id, self.amount, self.uses, r, vs)

    def to_json(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer,
            "operator": self.operator,
            "asset": self.asset,
            "license_id": str(self.license_id),
            "model_id": str(self.model_id),
            "amount": str(self.amount),
            "uses": self.uses,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Voucher:
        try:
            return cls(
                buyer=to_checksum_address(data["buyer"]),
                operator=to_checksum_address(data["operator"]),
                asset=to_checksum_address(data.get("asset", ETH)),
                license_id=int(data["license_id"]),
                model_id=int(data["model_id"]),
                amount=int(data["amount"]),
                uses=int(data["uses"]),
                signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChannelError(f"not a voucher: {exc!r}; see docs/api.md for its fields") from None


def channels_contract(deployment: Any) -> Any:
    """The PaymentChannels contract of a deployment (the licence manager deployed it)."""
    import ape

    return ape.project.PaymentChannels.at(deployment.licenses.paymentChannels())


# ---------------------------------------------------------------- the speech API's request and receipt

RECEIPT_TYPE = "SpeechReceipt(uint256 chainId,address operator,bytes32 request,bytes32 audioSha256)"
_RECEIPT_TYPEHASH = keccak(text=RECEIPT_TYPE)


def canonical_json(value: Any) -> bytes:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def speech_request_hash(chain_id: int, operator: str, buyer: str, body: dict[str, Any]) -> bytes:
    """What a receipt names: keccak256 of the canonical JSON of the speech request as sent (the
    body of ``POST /v1/speech``, normalised by :func:`normalise_speech_body`), its buyer, its
    operator and the chain."""
    document = {"chain_id": chain_id, "operator": operator, "buyer": buyer, "request": normalise_speech_body(body)}
    return keccak(canonical_json(document))


def normalise_speech_body(body: dict[str, Any]) -> dict[str, Any]:
    """The request body in the one form both sides hash: numbers as decimal strings where they
    may pass 2^53, parameters left out when not set."""
    voucher = body.get("voucher") or {}
    params = {k: v for k, v in (body.get("params") or {}).items() if v is not None}
    return {
        "license_id": str(int(body["license_id"])),
        "text": str(body["text"]),
        "language": str(body.get("language", "en")),
        "params": params,
        "voucher": {
            "asset": to_checksum_address(voucher.get("asset", ETH)),
            "amount": str(int(voucher["amount"])),
            "uses": int(voucher["uses"]),
            "signature": "0x" + bytes.fromhex(str(voucher["signature"]).removeprefix("0x")).hex(),
        },
    }


def receipt_digest(chain_id: int, operator: str, request_hash: bytes, audio_sha256: bytes) -> bytes:
    """What the operator signs at the end of a stream (raw secp256k1 over this digest)."""
    return keccak(
        encode(
            ["bytes32", "uint256", "address", "bytes32", "bytes32"],
            [_RECEIPT_TYPEHASH, chain_id, operator, request_hash, audio_sha256],
        )
    )


# ---------------------------------------------------------------- channel operations (ape run channel)


@dataclass(frozen=True)
class ChannelState:
    channel: bytes
    buyer: str
    operator: str
    asset: str
    balance: int
    withdrawable_at: int  # 0: not closing


def channel_state(contract: Any, buyer: str, operator: str, asset: str = ETH) -> ChannelState:
    cid = channel_id(buyer, operator, asset)
    balance, withdrawable_at = contract.channel(cid)
    return ChannelState(cid, buyer, operator, asset, int(balance), int(withdrawable_at))


def deposit(contract: Any, account: Any, operator: str, asset: str, amount: int) -> Any:
    """Open or top up ``account``'s channel with ``operator`` (an ERC-20 is approved first if needed)."""
    if amount <= 0:
        raise ChannelError("the deposit must be more than zero")
    if asset == ETH:
        return contract.deposit(operator, asset, amount, value=amount, sender=account)
    import ape

    token = ape.Contract(asset)
    if token.allowance(account, contract) < amount:
        token.approve(contract, amount, sender=account)
    return contract.deposit(operator, asset, amount, sender=account)


def close(contract: Any, account: Any, operator: str, asset: str, now: int) -> tuple[str, Any]:
    """Ask for the rest, or take it once the delay has passed: ('asked' | 'withdrawn' | 'waiting', receipt)."""
    state = channel_state(contract, account.address, operator, asset)
    if state.withdrawable_at == 0:
        if state.balance == 0:
            raise ChannelError(f"your channel with {operator} holds nothing")
        return "asked", contract.startWithdrawal(operator, asset, sender=account)
    if now < state.withdrawable_at:
        return "waiting", None
    return "withdrawn", contract.withdrawChannel(operator, asset, sender=account)

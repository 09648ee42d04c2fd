"""A buyer's client of an operator's streaming speech API (docs/api.md), and the formats both
sides share: Sign-In with Ethereum (EIP-4361) messages and the framed speech stream.

    client = SpeechClient("https://api.operator.example", signer, address)
    client.sign_in()
    receipt = client.say(license_id, "Hello there.", out="line-1.wav")

Each ``say`` signs the next voucher of the lane (channel with the API's operator, licence): the
totals the API last accepted plus one use at the API's price for the licence. The audio is written
as it arrives; at the end the WAV header gets its sizes, the file's SHA-256 is compared with the
receipt and the operator's signature over (request, audio hash) is checked. Receipts are appended
to ``receipts`` (JSON lines) when given.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from eth_utils import keccak, to_checksum_address

from voicemarket.errors import ChannelError
from voicemarket.market.channels import (
    Signer,
    Voucher,
    domain_separator,
    normalise_speech_body,
    receipt_digest,
    recover,
    speech_request_hash,
)
from voicemarket.protocol import ETH

STREAM_MEDIA_TYPE = "application/vnd.voicemarket.speech-stream"
FRAME_AUDIO, FRAME_RECEIPT, FRAME_ERROR = b"A", b"R", b"E"
_FRAME_HEADER = struct.Struct(">cI")
MAX_FRAME = 16 * 1024 * 1024

# ---------------------------------------------------------------- Sign-In with Ethereum (EIP-4361)

_SIWE = re.compile(
    r"^(?P<domain>[^\s]+) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40})\n\n"
    r"(?:(?P<statement>[^\n]*)\n\n)?"
    r"URI: (?P<uri>[^\n]+)\n"
    r"Version: (?P<version>1)\n"
    r"Chain ID: (?P<chain_id>[0-9]+)\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{8,})\n"
    r"Issued At: (?P<issued_at>[^\n]+)"
    r"(?:\nExpiration Time: (?P<expiration>[^\n]+))?"
    r"(?:\nNot Before: (?P<not_before>[^\n]+))?"
    r"(?:\nRequest ID: (?P<request_id>[^\n]*))?"
    r"(?:\nResources:(?P<resources>(?:\n- [^\n]+)*))?$"
)


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    statement: str | None
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration: datetime | None = None
    not_before: datetime | None = None

    def text(self) -> str:
        lines = [f"{self.domain} wants you to sign in with your Ethereum account:", self.address, ""]
        if self.statement:
            lines += [self.statement, ""]
        lines += [
            f"URI: {self.uri}",
            "Version: 1",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_iso(self.issued_at)}",
        ]
        if self.expiration is not None:
            lines.append(f"Expiration Time: {_iso(self.expiration)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_iso(self.not_before)}")
        return "\n".join(lines)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str | None, what: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ChannelError(f"{what} {text!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ChannelError(f"{what} {text!r} has no time zone (end it with Z)")
    return moment


def parse_siwe(text: str) -> SiweMessage:
    """An EIP-4361 message; raises ChannelError saying what is wrong with it."""
    match = _SIWE.match(text.replace("\r\n", "\n"))
    if match is None:
        raise ChannelError("not an EIP-4361 sign-in message: ask GET /v1/siwe/nonce for the exact text to sign")
    g = match.groupdict()
    address = g["address"]
    if address != to_checksum_address(address):
        raise ChannelError(f"the address {address} is not in its EIP-55 checksum form")
    issued = _parse_time(g["issued_at"], "Issued At")
    assert issued is not None
    return SiweMessage(
        g["domain"],
        address,
        g["statement"],
        g["uri"],
        int(g["chain_id"]),
        g["nonce"],
        issued,
        _parse_time(g["expiration"], "Expiration Time"),
        _parse_time(g["not_before"], "Not Before"),
    )


def personal_digest(text: str) -> bytes:
    """EIP-191 ``personal_sign`` digest of a text."""
    data = text.encode()
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data)


def recover_personal(text: str, signature: bytes) -> str:
    return recover(personal_digest(text), signature)


# ---------------------------------------------------------------- the framed stream


def frame(kind: bytes, payload: bytes) -> bytes:
    return _FRAME_HEADER.pack(kind, len(payload)) + payload


def read_frames(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(kind, payload) frames from a byte stream cut anywhere."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= _FRAME_HEADER.size:
            kind, length = _FRAME_HEADER.unpack_from(buffer)
            if length > MAX_FRAME or kind not in (FRAME_AUDIO, FRAME_RECEIPT, FRAME_ERROR):
                raise ChannelError(f"the stream is not a speech stream (frame {kind!r} of {length} bytes)")
            if len(buffer) < _FRAME_HEADER.size + length:
                break
            payload = bytes(buffer[_FRAME_HEADER.size : _FRAME_HEADER.size + length])
            del buffer[: _FRAME_HEADER.size + length]
            yield kind, payload
    if buffer:
        raise ChannelError("the stream ended in the middle of a frame (the connection was cut)")


def wav_header(sample_rate: int, data_bytes: int = 0xFFFFFFFF - 36) -> bytes:
    """A 16-bit mono PCM WAV header; streamed with the largest sizes, fixed by the receiver at the end."""
    return (
        b"RIFF"
        + struct.pack("<I", min(0xFFFFFFFF, data_bytes + 36))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", data_bytes)
    )


def finished_wav_sha256(streamed: bytes) -> bytes:
    """The SHA-256 of the WAV a stream makes once its header carries the real sizes (what the
    receipt names)."""
    data = len(streamed) - 44
    return hashlib.sha256(wav_header(_rate(streamed), data) + streamed[44:]).digest()


def _rate(header: bytes) -> int:
    return struct.unpack_from("<I", header, 24)[0]


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class Receipt:
    request_hash: bytes
    audio_sha256: bytes
    operator: str
    chain_id: int
    signature: bytes
    amount: int
    uses: int
    audio_bytes: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Receipt:
        return cls(
            bytes.fromhex(data["request"][2:]),
            bytes.fromhex(data["audio_sha256"][2:]),
            to_checksum_address(data["operator"]),
            int(data["chain_id"]),
            bytes.fromhex(data["signature"][2:]),
            int(data["voucher"]["amount"]),
            int(data["voucher"]["uses"]),
            int(data["audio_bytes"]),
        )

    def verify(self, operator: str, request_hash: bytes, audio_sha256: bytes) -> None:
        if self.request_hash != request_hash:
            raise ChannelError("the receipt names another request than the one sent")
        if self.audio_sha256 != audio_sha256:
            raise ChannelError("the audio received is not the audio the receipt names (altered or cut)")
        signer = recover(receipt_digest(self.chain_id, self.operator, request_hash, audio_sha256), self.signature)
        if signer != operator or self.operator != operator:
            raise ChannelError(f"the receipt is signed by {signer}, not by the operator {operator}")


class ApiError(ChannelError):
    """The API answered an error (``status``, ``code``; the message says what to do)."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{message} (HTTP {status} {code})")
        self.status, self.code, self.retry_after = status, code, retry_after


class SpeechClient:
    """Signs in, keeps the token fresh, signs vouchers and streams speech (see the module doc)."""

    def __init__(
        self,
        api: str,
        signer: Signer,
        address: str,
        *,
        asset: str = ETH,
        receipts: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        import httpx

        self.api = api.rstrip("/")
        self.signer, self.address, self.asset = signer, to_checksum_address(address), to_checksum_address(asset)
        self.receipts = receipts
        self.http = httpx.Client(base_url=self.api, timeout=timeout)
        self.token: str | None = None
        self.token_expires = 0.0
        self.info: dict[str, Any] = {}

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------ plumbing
    def _check(self, response) -> dict[str, Any]:  # noqa: ANN001 - an httpx.Response
        if response.status_code < 400:
            return response.json()
        try:
            error = response.json()["error"]
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:300]
        retry = response.headers.get("Retry-After")
        raise ApiError(response.status_code, code, message, float(retry) if retry else None)

    def _auth(self) -> dict[str, str]:
        if self.token is None or time.time() > self.token_expires - 30:
            self.sign_in()
        return {"Authorization": f"Bearer {self.token}"}

    def sign_in(self) -> str:
        """EIP-4361: ask a nonce, sign the message with the wallet (EIP-191), get a token."""
        self.info = self._check(self.http.get("/v1/info"))
        offer = self._check(self.http.get("/v1/siwe/nonce"))
        message = SiweMessage(
            offer["domain"],
            self.address,
            offer.get("statement"),
            offer["uri"],
            int(offer["chain_id"]),
            offer["nonce"],
            datetime.now(UTC),
        ).text()
        signature = self.signer(personal_digest(message))
        answer = self._check(
            self.http.post("/v1/siwe/login", json={"message": message, "signature": "0x" + signature.hex()})
        )
        self.token, self.token_expires = answer["token"], float(answer["expires_at"])
        return self.token

    def channel(self) -> dict[str, Any]:
        """The API's view of our channel: balance, withdrawal, and each lane's accepted totals."""
        return self._check(self.http.get("/v1/channel", params={"asset": self.asset}, headers=self._auth()))

    def price(self, license_id: int) -> dict[str, Any]:
        return self._check(self.http.get(f"/v1/licenses/{license_id}/price", headers=self._auth()))

    # ------------------------------------------------------------ speech
    def next_voucher(self, license_id: int) -> Voucher:
        """The lane's accepted totals plus one use at the API's price, signed."""
        state = self.channel()
        lane = state["lanes"].get(str(license_id), {"amount": "0", "uses": 0, "prepaid": 0})
        price = self.price(license_id)
        if int(lane.get("prepaid", 0)) > 0:  # a use paid for and not served (a failed stream): no new money
            amount, uses = int(lane["amount"]), int(lane["uses"])
        else:
            amount, uses = int(lane["amount"]) + int(price["per_use"]), int(lane["uses"]) + 1
        voucher = Voucher(
            self.address,
            to_checksum_address(self.info["operator"]),
            self.asset,
            license_id,
            int(price["model_id"]),
            amount,
            uses,
        )
        domain = domain_separator(self.info["channels"], int(self.info["chain_id"]))
        return voucher.signed(domain, self.signer)

    def say(
        self,
        license_id: int,
        text: str,
        *,
        out: Path | BinaryIO,
        language: str = "en",
        params: dict[str, Any] | None = None,
        on_audio: Callable[[bytes], None] | None = None,
    ) -> Receipt:
        """Stream speech into ``out`` (a path or a seekable binary file) and return the checked receipt."""
        voucher = self.next_voucher(license_id)
        body = normalise_speech_body(
            {
                "license_id": license_id,
                "text": text,
                "language": language,
                "params": params or {},
                "voucher": {
                    "asset": self.asset,
                    "amount": voucher.amount,
                    "uses": voucher.uses,
                    "signature": "0x" + voucher.signature.hex(),
                },
            }
        )
        request_hash = speech_request_hash(int(self.info["chain_id"]), voucher.operator, self.address, body)
        sink = open(out, "w+b") if isinstance(out, (str, Path)) else out  # noqa: SIM115 - closed below
        try:
            receipt = self._stream(body, sink, on_audio)
            sink.flush()
            sink.seek(0)
            streamed = sink.read()
            if len(streamed) < 44:
                raise ChannelError("the stream ended before any audio")
            sink.seek(0)
            sink.write(wav_header(_rate(streamed), len(streamed) - 44))
            sink.flush()
        finally:
            if sink is not out:
                sink.close()
        receipt.verify(voucher.operator, request_hash, finished_wav_sha256(streamed))
        if self.receipts is not None:
            with open(self.receipts, "a") as log:
                log.write(json.dumps({"license_id": str(license_id), "text": text, **_receipt_json(receipt)}) + "\n")
        return receipt

    def _stream(self, body: dict[str, Any], sink: BinaryIO, on_audio) -> Receipt:  # noqa: ANN001
        with self.http.stream("POST", "/v1/speech", json=body, headers=self._auth()) as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            receipt = None
            for kind, payload in read_frames(response.iter_bytes()):
                if kind == FRAME_AUDIO:
                    sink.write(payload)
                    if on_audio is not None:
                        on_audio(payload)
                elif kind == FRAME_RECEIPT:
                    receipt = Receipt.from_json(json.loads(payload))
                else:
                    error = json.loads(payload)["error"]
                    raise ApiError(response.status_code, error["code"], error["message"])
        if receipt is None:
            raise ChannelError("the stream ended without a receipt (the connection was cut); ask again")
        return receipt


def _receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "request": "0x" + receipt.request_hash.hex(),
        "audio_sha256": "0x" + receipt.audio_sha256.hex(),
        "operator": receipt.operator,
        "chain_id": receipt.chain_id,
        "amount": str(receipt.amount),
        "uses": receipt.uses,
        "signature": "0x" + receipt.signature.hex(),
    }


def new_nonce() -> str:
    return secrets.token_hex(12)

"""The speech API's routes, limits and stream (see :mod:`oracle.api` and docs/api.md).

One process serves HTTP (asyncio) and synthesises with its own synth engine (the voices of
:class:`oracle.voices.VoiceCache`, exactly as a Celery worker loads them): ``synth_slots`` streams at
once, each in its own thread, the sentences of all of a voice's streams decoded together by one
continuous-batching GPT loop (:class:`synth.batching.StreamBatcher`).
Celery is not in the path: a task's result cannot be streamed as it is made, and a hop through
Redis per second of audio would add latency for nothing; the API scales by running more API
processes behind the TLS proxy (each with its own tokens), all sharing Redis for the vouchers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from coincurve import PrivateKey
from fastapi import FastAPI, Request
from pydantic import BaseModel, Field, ValidationError
from redis.exceptions import LockError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from oracle.api.chainview import ChainView, LicenceTerms
from oracle.api.lanes import Lane, LaneBook
from oracle.api.redeemer import Redeemer
from oracle.api.settings import ApiSettings
from oracle.errors import RequestFailure, TransientError
from oracle.runtime import Services, namespace
from oracle.settings import OracleSettings
from synth.batching import StreamBatcher
from voicemarket.errors import ChannelError
from voicemarket.market.channels import (
    Voucher,
    channel_id,
    domain_separator,
    normalise_speech_body,
    receipt_digest,
    speech_request_hash,
)
from voicemarket.market.speech_api import (
    FRAME_AUDIO,
    FRAME_ERROR,
    FRAME_RECEIPT,
    STREAM_MEDIA_TYPE,
    frame,
    new_nonce,
    parse_siwe,
    recover_personal,
    wav_header,
)
from voicemarket.protocol import Language
from voicemarket.web.api import ApiError, create_app

log = logging.getLogger("oracle.api")

MAX_BODY_BYTES = 64 * 1024
MAX_TOKENS_PER_ADDRESS = 2
MAX_NONCES = 100_000  # sign-in nonces outstanding (each lives siwe_max_age_s)
SYNTH_PARAMS = ("seed", "speed", "top_k", "top_p", "temperature", "repetition_penalty")


# ---------------------------------------------------------------- request bodies


class Login(BaseModel):
    message: str = Field(max_length=2_000)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class VoucherIn(BaseModel):
    asset: str = "0x0000000000000000000000000000000000000000"
    amount: int = Field(ge=0, lt=2**128)
    uses: int = Field(ge=1, lt=2**64)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")


class Params(BaseModel):
    model_config = {"extra": "forbid"}
    seed: int | None = Field(None, ge=0, lt=2**32)
    speed: float | None = Field(None, ge=0.5, le=2.0)
    top_k: int | None = Field(None, ge=1, le=100)
    top_p: float | None = Field(None, gt=0, le=1.0)
    temperature: float | None = Field(None, gt=0, le=2.0)
    repetition_penalty: float | None = Field(None, ge=1.0, le=2.0)


class SpeechBody(BaseModel):
    model_config = {"extra": "forbid"}
    license_id: int = Field(gt=0, lt=2**256)
    text: str = Field(min_length=1)
    language: str = "en"
    params: Params = Params()
    voucher: VoucherIn


# ---------------------------------------------------------------- sessions and limits


@dataclass
class Session:
    address: str
    expires: float
    tokens: float
    refilled: float
    streams: int = 0


@dataclass
class Limits:
    settings: ApiSettings
    sessions: dict[str, Session] = field(default_factory=dict)
    nonces: dict[str, float] = field(default_factory=dict)

    def session(self, request: Request) -> Session:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        session = self.sessions.get(token)
        if session is None or session.expires < time.time():
            self.sessions.pop(token, None)
            raise ApiError(
                401,
                "unauthorized",
                "no valid token: sign in (GET /v1/siwe/nonce, sign the message, POST /v1/siwe/login) and send "
                "Authorization: Bearer <token>",
            )
        return session

    def take(self, session: Session) -> None:
        """One request from the token's bucket (rate_per_minute, burst a tenth of it), else 429."""
        rate = self.settings.rate_per_minute / 60.0
        burst = max(1.0, self.settings.rate_per_minute / 10.0)
        now = time.monotonic()
        session.tokens = min(burst, session.tokens + (now - session.refilled) * rate)
        session.refilled = now
        if session.tokens < 1.0:
            wait = math.ceil((1.0 - session.tokens) / rate)
            raise Throttled(f"more than {self.settings.rate_per_minute:g} requests a minute: wait {wait} s", wait)
        session.tokens -= 1.0

    def new_session(self, address: str) -> tuple[str, Session]:
        for token in [t for t, s in self.sessions.items() if s.expires < time.time()]:
            del self.sessions[token]
        # An address holds at most MAX_TOKENS_PER_ADDRESS tokens (the oldest goes), so that signing in
        # again and again does not multiply its rate and stream limits.
        mine = sorted((s.expires, t) for t, s in self.sessions.items() if s.address == address)
        for _expires, token in mine[: max(0, len(mine) - MAX_TOKENS_PER_ADDRESS + 1)]:
            del self.sessions[token]
        token = secrets.token_urlsafe(32)
        burst = max(1.0, self.settings.rate_per_minute / 10.0)
        session = Session(address, time.time() + self.settings.token_ttl_s, burst, time.monotonic())
        self.sessions[token] = session
        return token, session


class Throttled(ApiError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(429, "too_many_requests", message)
        self.retry_after = retry_after


# ---------------------------------------------------------------- the service


class SpeechService:
    def __init__(self, settings: OracleSettings, api: ApiSettings) -> None:
        from oracle.voices import VoiceCache

        self.settings, self.api = settings, api
        self.services = Services(settings)
        self.key = self.services.key
        self.chain = ChainView(settings, api, self.key.address)
        self.lanes = LaneBook(self.services.redis, namespace(settings))
        self.voices = VoiceCache(settings, self.services.router, self.key.private_key, self.services.store)
        self.redeemer = Redeemer(self.chain, self.lanes, self.key.private_key, api.redeem_batch)
        self.limits = Limits(api)
        self.domain = domain_separator(self.chain.channels.address, self.chain.chain_id)
        self.executor = ThreadPoolExecutor(api.synth_slots, thread_name_prefix="synth")
        self.slots = asyncio.Semaphore(api.synth_slots)
        self.waiting = 0
        self.streaming = 0
        self._batchers: dict[int, StreamBatcher] = {}
        self._batchers_lock = threading.Lock()
        self.stop = threading.Event()
        self._receipt_key = PrivateKey(self.key.private_key)

    # ------------------------------------------------------------ background
    def start_background(self) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.redeemer.run, args=(self.stop, self.api.redeem_interval_s), name="redeemer"),
            threading.Thread(target=self._poll_events, name="events"),
        ]
        if self.api.preload_voices:
            threads.append(threading.Thread(target=self._preload, name="preload"))
        for thread in threads:
            thread.daemon = True
            thread.start()
        return threads

    def _preload(self) -> None:
        """Load every served voice now, so that its first buyer does not wait for it (seconds)."""
        for model_id in self.settings.models:
            started = time.perf_counter()
            try:
                self.voices.get(model_id)
            except Exception as exc:  # noqa: BLE001 - a voice that cannot load is refused per request
                log.warning("cannot preload a voice", extra={"model_id": hex(model_id), "error": str(exc)})
            else:
                log.info(
                    "voice preloaded", extra={"model_id": hex(model_id), "s": round(time.perf_counter() - started, 2)}
                )

    def _poll_events(self) -> None:
        while not self.stop.wait(self.api.events_poll_s):
            try:
                self.chain.poll_events()
            except Exception as exc:  # noqa: BLE001 - the node hiccups: caches still expire by time
                self.chain.forget()
                log.warning("cannot read new logs", extra={"error": f"{type(exc).__name__}: {exc}"})

    # ------------------------------------------------------------ checks before any synthesis
    def check_licence(self, body: SpeechBody, buyer: str) -> LicenceTerms:
        terms = self.chain.terms(body.license_id)
        if terms is None:
            raise ApiError(404, "unknown_licence", f"no licence {body.license_id}: buy one first", "license_id")
        if self.settings.served(terms.model_id) is None:
            raise ApiError(
                404,
                "model_not_served",
                f"this operator does not serve model {terms.model_id:#x}: find an operator that does",
                "license_id",
            )
        ok, _left = self.chain.licensed(body.license_id, buyer, terms.model_id)
        if not ok:
            raise ApiError(
                403,
                "licence_refused",
                f"licence {body.license_id} does not permit speech for {buyer} now (not yours, expired, used up, "
                "or its model frozen or retired): renew it or buy another",
                "license_id",
            )
        if not self.chain.operator_allowed(terms.model_id):
            raise ApiError(
                403,
                "operator_not_allowed",
                f"the owner of model {terms.model_id:#x} does not allow this operator: use an allowed operator",
            )
        try:
            language = Language[body.language.upper()]
        except KeyError:
            names = ", ".join(x.name.lower() for x in Language)
            message = f"language: {body.language!r} is not one of {names}"
            raise ApiError(400, "bad_parameter", message, "language") from None
        if not self.chain.model_languages(terms.model_id) & (1 << int(language)):
            raise ApiError(
                400, "language_not_offered", f"model {terms.model_id:#x} does not speak {body.language}", "language"
            )
        return terms

    def per_use(self, terms: LicenceTerms, asset: str) -> int:
        return terms.use_price + self.chain.fee(asset)

    def accept_voucher(self, body: SpeechBody, buyer: str, terms: LicenceTerms) -> tuple[bytes, Voucher]:
        """Check the voucher against the lane and the channel and count one use served (in a thread:
        it reads the chain and Redis under the lane's lock)."""
        v = body.voucher
        try:
            asset = Voucher.from_json(
                {
                    **v.model_dump(),
                    "buyer": buyer,
                    "operator": self.key.address,
                    "license_id": body.license_id,
                    "model_id": terms.model_id,
                }
            ).asset
        except ChannelError as exc:
            raise ApiError(400, "bad_voucher", str(exc), "voucher") from None
        if terms.use_price and asset != terms.asset:
            raise ApiError(
                400,
                "bad_voucher",
                f"licence {body.license_id} is paid in {terms.asset}: use a channel in it",
                "voucher",
            )
        voucher = Voucher(
            buyer,
            self.key.address,
            asset,
            body.license_id,
            terms.model_id,
            v.amount,
            v.uses,
            bytes.fromhex(v.signature[2:]),
        )
        channel = channel_id(buyer, self.key.address, asset)
        with self.lanes.lock(channel, body.license_id):
            lane = self.lanes.get(channel, body.license_id)
            if lane is None:
                done_amount, done_uses = self.chain.redeemed(channel, body.license_id)
                lane = Lane(buyer, asset, terms.model_id, done_amount, done_uses, "", served=done_uses)
            if (voucher.amount, voucher.uses) == (lane.amount, lane.uses):
                if lane.signature and voucher.signature.hex() != lane.signature:
                    raise ApiError(402, "bad_voucher", "the voucher does not match the one accepted", "voucher")
            elif voucher.uses > lane.uses and voucher.amount >= lane.amount:
                self._check_new_voucher(voucher, lane, terms, channel)
                lane.prev_amount, lane.prev_uses, lane.prev_signature = lane.amount, lane.uses, lane.signature
                lane.amount, lane.uses, lane.signature = voucher.amount, voucher.uses, voucher.signature.hex()
            else:
                raise ApiError(
                    409,
                    "stale_voucher",
                    f"the API holds totals amount {lane.amount}, uses {lane.uses} for this licence: sign the next "
                    "voucher from there (GET /v1/channel)",
                    "voucher",
                )
            if lane.served >= lane.uses:
                raise ApiError(
                    402,
                    "voucher_spent",
                    f"every use this voucher pays for was served: sign uses {lane.uses + 1} and amount "
                    f"{lane.amount} + the price of a use (GET /v1/licenses/{body.license_id}/price)",
                    "voucher",
                )
            lane.served += 1
            self.lanes.save(channel, body.license_id, lane)
        return channel, voucher

    def _check_new_voucher(self, voucher: Voucher, lane: Lane, terms: LicenceTerms, channel: bytes) -> None:
        try:
            signer = voucher.signer(self.domain)
        except ChannelError as exc:
            raise ApiError(402, "bad_voucher", f"voucher signature: {exc}", "voucher") from None
        if signer != voucher.buyer:
            raise ApiError(
                402,
                "bad_voucher",
                f"the voucher is signed by {signer}, not by {voucher.buyer} for this channel, licence and chain "
                f"(contract {self.chain.channels.address}, chain {self.chain.chain_id})",
                "voucher",
            )
        uses, added = voucher.uses - lane.uses, voucher.amount - lane.amount
        price = self.per_use(terms, voucher.asset)
        if added < uses * price:
            raise ApiError(
                402,
                "underpaid",
                f"the voucher adds {added} for {uses} use(s); a use costs {price} (use price {terms.use_price} + fee "
                f"{price - terms.use_price}): sign amount {lane.amount + uses * price}",
                "voucher",
            )
        done_amount, done_uses = self.chain.redeemed(channel, voucher.license_id)
        if voucher.uses - done_uses > self.api.max_unredeemed_uses:
            raise ApiError(
                429, "too_many_unredeemed", "too many uses await redemption on this lane: try again in a minute"
            )
        _ok, left = self.chain.licensed(voucher.license_id, voucher.buyer, terms.model_id)
        if voucher.uses - done_uses > left:
            raise ApiError(
                403,
                "licence_refused",
                f"licence {voucher.license_id} has {left} use(s) left, fewer than this voucher needs: buy more",
                "license_id",
            )
        balance, withdrawable_at = self.chain.channel(channel)
        if withdrawable_at:
            raise ApiError(
                402,
                "channel_closing",
                "your channel is being withdrawn: deposit again to reopen it (ape run channel top-up)",
            )
        owed = voucher.amount - done_amount
        for license_id, other in self.lanes.lanes_of(channel).items():
            if license_id != voucher.license_id:
                owed += other.amount - self.chain.redeemed(channel, license_id)[0]
        if owed > balance:
            raise ApiError(
                402,
                "insufficient_deposit",
                f"the channel holds {balance}; your unredeemed vouchers would owe {owed}: top it up "
                "(ape run channel top-up)",
            )

    def give_back(self, channel: bytes, license_id: int) -> None:
        """A stream that sent no audio: the use is owed to the buyer again (served goes down)."""
        with self.lanes.lock(channel, license_id):
            lane = self.lanes.get(channel, license_id)
            if lane is not None and lane.served > 0:
                lane.served -= 1
                self.lanes.save(channel, license_id, lane)

    def batcher(self, model_id: int, voice) -> StreamBatcher:  # noqa: ANN001 - an oracle.voices.Voice
        """The voice's continuous batcher: one GPT decode loop shared by all its streams (made on first use,
        and again if the voice was reloaded)."""
        with self._batchers_lock:
            batcher = self._batchers.get(model_id)
            if batcher is None or batcher.tts is not voice.synthesizer:
                if batcher is not None:
                    batcher.close()
                batcher = StreamBatcher(voice.synthesizer, self.api.batch_rows, self.api.vocoder_slots)
                self._batchers[model_id] = batcher
            return batcher

    def metrics(self) -> dict[str, Any]:
        """Streams under way and, per voice, what its decode loop did (steps by batch size)."""
        with self._batchers_lock:
            batchers = dict(self._batchers)
        return {
            "streaming": self.streaming,
            "waiting": self.waiting,
            "voices": {
                hex(model_id): {"running": b.decoder.running, **b.stats.as_dict()} for model_id, b in batchers.items()
            },
        }

    def sign_receipt(self, request_hash: bytes, audio_sha256: bytes) -> bytes:
        digest = receipt_digest(self.chain.chain_id, self.key.address, request_hash, audio_sha256)
        return self._receipt_key.sign_recoverable(digest, hasher=None)


# ---------------------------------------------------------------- the stream


class FramedStream(Response):
    """Frames as they come, each send bounded by ``send_timeout``: a client that stops reading is
    cut off, and a disconnect ends the synthesis (``on_end`` says how it ended)."""

    media_type = STREAM_MEDIA_TYPE

    def __init__(self, frames, send_timeout: float, headers: dict[str, str], on_end) -> None:  # noqa: ANN001
        super().__init__(content=None, status_code=200, headers=headers, media_type=self.media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # chunked
        self.frames, self.send_timeout, self.on_end = frames, send_timeout, on_end

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        outcome = "complete"
        gone = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            frames = self.frames.__aiter__()
            while True:
                # The next frame, or the client's disconnect, whichever comes first: a client that
                # leaves while its request waits for a synthesis slot never takes one.
                step = asyncio.ensure_future(frames.__anext__())
                await asyncio.wait({step, watcher}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    await asyncio.gather(step, return_exceptions=True)  # the stream's own cleanup has run
                    outcome = "disconnected"
                    break
                try:
                    chunk = step.result()
                except StopAsyncIteration:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    break
                await asyncio.wait_for(
                    send({"type": "http.response.body", "body": chunk, "more_body": True}), self.send_timeout
                )
        except TimeoutError:
            outcome = "send_timeout"
        except OSError:
            outcome = "disconnected"
        finally:
            watcher.cancel()
            try:
                await self.frames.aclose()
            except (RuntimeError, asyncio.CancelledError):  # a generator cancelled mid-step is closed already
                pass
            self.on_end(outcome)


def pcm16(chunk: np.ndarray) -> bytes:
    return (np.clip(chunk, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def create_api(service: SpeechService) -> FastAPI:
    api = service.api
    app = create_app(
        title="voicemarket speech API",
        description="Streaming speech for licensed buyers, paid by payment-channel vouchers (docs/api.md).",
        version="1",
    )

    @app.exception_handler(Throttled)
    async def _throttled(_request: Request, exc: Throttled):  # noqa: ANN202
        from fastapi.responses import JSONResponse

        return JSONResponse(exc.body(), status_code=429, headers={"Retry-After": str(int(exc.retry_after))})

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        return {
            "operator": service.key.address,
            "chain_id": service.chain.chain_id,
            "channels": service.chain.channels.address,
            "licenses": service.chain.licenses.address,
            "withdrawal_delay_s": int(service.chain.channels.functions.WITHDRAWAL_DELAY().call()),
            "limits": {
                "max_text_chars": api.max_text_chars,
                "rate_per_minute": api.rate_per_minute,
                "max_streams_per_token": api.max_streams_per_token,
            },
        }

    @app.get("/v1/metrics")
    def metrics() -> dict[str, Any]:
        return service.metrics()

    @app.get("/v1/siwe/nonce")
    def nonce() -> dict[str, Any]:
        now = time.time()
        for old in [n for n, t in service.limits.nonces.items() if t < now]:
            del service.limits.nonces[old]
        if len(service.limits.nonces) >= MAX_NONCES:
            raise Throttled("too many sign-ins under way: try again in a minute", 60)
        value = new_nonce()
        service.limits.nonces[value] = now + api.siwe_max_age_s
        return {
            "nonce": value,
            "domain": api.domain,
            "uri": api.public_uri,
            "chain_id": service.chain.chain_id,
            "statement": "Sign in to the voicemarket speech API.",
        }

    @app.post("/v1/siwe/login")
    def login(body: Login) -> dict[str, Any]:
        try:
            message = parse_siwe(body.message)
            signer = recover_personal(body.message, bytes.fromhex(body.signature[2:]))
        except ChannelError as exc:
            raise ApiError(400, "bad_sign_in", str(exc), "message") from None
        now = datetime.now(UTC)
        problems = []
        if message.domain != api.domain:
            problems.append(f"the message names domain {message.domain}, this API is {api.domain}")
        if message.uri != api.public_uri:
            problems.append(f"the message names URI {message.uri}, this API is {api.public_uri}")
        if message.chain_id != service.chain.chain_id:
            problems.append(f"the message names chain {message.chain_id}, this API is on {service.chain.chain_id}")
        if service.limits.nonces.pop(message.nonce, 0) < time.time():
            problems.append("the nonce is unknown, used or expired: ask GET /v1/siwe/nonce for a new one")
        age = (now - message.issued_at).total_seconds()
        if not -60 <= age <= api.siwe_max_age_s:
            problems.append(f"the message was issued {age:.0f} s ago; sign a fresh one")
        if message.expiration is not None and message.expiration <= now:
            problems.append("the message has expired")
        if message.not_before is not None and message.not_before > now:
            problems.append("the message is not valid yet (Not Before)")
        if signer != message.address:
            problems.append(f"the signature is {signer}'s, not {message.address}'s")
        if problems:
            raise ApiError(401, "bad_sign_in", "; ".join(problems), "message")
        token, session = service.limits.new_session(message.address)
        return {"token": token, "address": message.address, "expires_at": session.expires}

    @app.get("/v1/channel")
    def channel_view(request: Request, asset: str = "0x0000000000000000000000000000000000000000") -> dict[str, Any]:
        session = service.limits.session(request)
        try:
            from eth_utils import to_checksum_address

            asset = to_checksum_address(asset)
        except ValueError:
            raise ApiError(400, "bad_parameter", f"asset: {asset!r} is not an address", "asset") from None
        channel = channel_id(session.address, service.key.address, asset)
        balance, withdrawable_at = service.chain.channel(channel)
        lanes = {}
        for license_id, lane in service.lanes.lanes_of(channel).items():
            done = service.chain.redeemed(channel, license_id)
            lanes[str(license_id)] = {
                "amount": str(lane.amount),
                "uses": lane.uses,
                "served": lane.served,
                "prepaid": lane.prepaid,
                "redeemed_amount": str(done[0]),
                "redeemed_uses": done[1],
            }
        return {
            "channel": "0x" + channel.hex(),
            "buyer": session.address,
            "operator": service.key.address,
            "asset": asset,
            "balance": str(balance),
            "withdrawable_at": withdrawable_at,
            "lanes": lanes,
        }

    @app.get("/v1/licenses/{license_id}/price")
    def price(request: Request, license_id: int, asset: str | None = None) -> dict[str, Any]:
        service.limits.session(request)
        terms = service.chain.terms(license_id)
        if terms is None:
            raise ApiError(404, "unknown_licence", f"no licence {license_id}", "license_id")
        paid_in = terms.asset if asset is None else asset
        fee = service.chain.fee(paid_in)
        return {
            "license_id": str(license_id),
            "model_id": str(terms.model_id),
            "asset": paid_in,
            "use_price": str(terms.use_price),
            "fee": str(fee),
            "per_use": str(terms.use_price + fee),
        }

    @app.post("/v1/speech", response_class=FramedStream)
    async def speech(request: Request):  # noqa: ANN202 - a FramedStream
        arrived = time.perf_counter()
        session = service.limits.session(request)
        service.limits.take(session)
        if session.streams >= api.max_streams_per_token:
            raise Throttled(f"this token already has {session.streams} streams open: wait for one to end", 1)
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
        try:
            raw = await asyncio.wait_for(request.body(), api.body_timeout_s)
        except TimeoutError:
            message = f"the request body did not arrive within {api.body_timeout_s:g} s"
            raise ApiError(408, "body_timeout", message) from None
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, "too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
        try:
            body = SpeechBody.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            detail = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": ("body",), "msg": str(exc)}
            where = ".".join(str(p) for p in detail["loc"]) or "body"
            raise ApiError(400, "bad_parameter", f"{where}: {detail['msg']}", where) from None
        if len(body.text) > api.max_text_chars:
            raise ApiError(
                400,
                "text_too_long",
                f"text: {len(body.text)} characters; the most is {api.max_text_chars}: split it into several requests",
                "text",
            )
        terms = await run_in_threadpool(service.check_licence, body, session.address)
        if service.waiting >= api.max_waiting:
            raise Throttled("every synthesis slot is busy and the queue is full: try again shortly", 2)
        try:
            channel, voucher = await run_in_threadpool(service.accept_voucher, body, session.address, terms)
        except LockError:
            raise Throttled("another request of this licence is being accepted: try again", 1) from None
        try:
            voice = await run_in_threadpool(service.voices.get, terms.model_id)
        except (RequestFailure, TransientError) as exc:
            service.give_back(channel, body.license_id)
            message = f"the voice cannot be loaded now ({exc}); try again later"
            raise ApiError(503, "voice_unavailable", message) from None
        if body.language not in voice.languages:
            service.give_back(channel, body.license_id)
            raise ApiError(400, "language_not_offered", f"the voice speaks {', '.join(voice.languages)}", "language")
        normal = normalise_speech_body(json.loads(raw))
        request_hash = speech_request_hash(service.chain.chain_id, service.key.address, session.address, normal)
        session.streams += 1
        service.waiting += 1
        state: dict[str, Any] = {"pcm": 0, "started": 0, "arrived": arrived, "checked": time.perf_counter()}

        def on_end(outcome: str) -> None:
            session.streams -= 1
            if not state["started"]:  # the stream never began: nothing was synthesised or sent
                service.waiting -= 1
                service.give_back(channel, body.license_id)
            timing = {k: round(state[k] - arrived, 3) for k in ("checked", "first_audio") if k in state}
            log.info(
                "speech stream ended",
                extra={
                    "request": "0x" + request_hash.hex(),
                    "outcome": outcome,
                    "pcm_bytes": state["pcm"],
                    **{f"{k}_s": v for k, v in timing.items()},
                    **{k: round(v, 3) for k, v in state.get("timings", {}).items()},
                },
            )

        frames = _frames(service, voice, body, voucher, channel, request_hash, state)
        headers = {"X-Request-Hash": "0x" + request_hash.hex(), "Cache-Control": "no-store"}
        return FramedStream(frames, api.send_timeout_s, headers, on_end)

    return app


async def _frames(
    service: SpeechService,
    voice,
    body: SpeechBody,
    voucher: Voucher,
    channel: bytes,  # noqa: ANN001
    request_hash: bytes,
    state: dict[str, Any],
):  # noqa: ANN202
    """The stream: WAV header, audio as synthesised, then the receipt (or an error frame)."""
    api = service.api
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    kwargs: dict[str, Any] = {
        "prompt_text": voice.prompt_text,
        "prompt_language": voice.prompt_language,
        "max_semantic_tokens": service.settings.max_semantic_tokens,
        **{k: v for k, v in body.params.model_dump().items() if v is not None},
    }
    kwargs.setdefault("seed", 0)
    batcher = service.batcher(voucher.model_id, voice)
    timings: dict[str, float] = {}
    state["timings"] = timings

    def synthesise() -> None:
        try:
            pieces = batcher.stream(
                body.text,
                body.language,
                str(voice.reference),
                chunk_tokens=api.chunk_tokens,
                first_chunk_tokens=api.first_chunk_tokens,
                timings=timings,
                cancel=cancel,
                **kwargs,
            )
            try:
                for chunk in pieces:
                    if cancel.is_set():
                        return
                    loop.call_soon_threadsafe(queue.put_nowait, ("audio", pcm16(chunk)))
            finally:
                pieces.close()  # a stream left early frees its row in the decode batch now
            loop.call_soon_threadsafe(queue.put_nowait, ("done", None))
        except Exception as exc:  # noqa: BLE001 - reported in the stream; the use goes back to the buyer
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))

    state["started"] = 1
    rate = int(voice.synthesizer.sample_rate)
    header = wav_header(rate)
    pcm = bytearray()
    deadline = time.monotonic() + api.stream_timeout_s
    acquired = False
    try:
        await asyncio.wait_for(service.slots.acquire(), max(0.1, deadline - time.monotonic()))
        acquired = True
        service.waiting -= 1
        service.streaming += 1
        loop.run_in_executor(service.executor, synthesise)
        yield frame(FRAME_AUDIO, header)
        while True:
            kind, value = await asyncio.wait_for(queue.get(), max(0.1, deadline - time.monotonic()))
            if kind == "audio":
                if not pcm:
                    state["first_audio"] = time.perf_counter()
                pcm += value
                state["pcm"] = len(pcm)
                yield frame(FRAME_AUDIO, value)
            elif kind == "done":
                break
            else:
                raise value
        audio_sha256 = hashlib.sha256(wav_header(rate, len(pcm)) + pcm).digest()
        receipt = {
            "request": "0x" + request_hash.hex(),
            "audio_sha256": "0x" + audio_sha256.hex(),
            "audio_bytes": 44 + len(pcm),
            "sample_rate": rate,
            "operator": service.key.address,
            "chain_id": service.chain.chain_id,
            "voucher": {"amount": str(voucher.amount), "uses": voucher.uses},
            "signature": "0x" + service.sign_receipt(request_hash, audio_sha256).hex(),
        }
        yield frame(FRAME_RECEIPT, json.dumps(receipt).encode())
    except TimeoutError:
        yield frame(FRAME_ERROR, _error("stream_timeout", f"the stream took over {api.stream_timeout_s:g} s"))
    except Exception as exc:
        log.exception("synthesis failed in a stream")
        yield frame(FRAME_ERROR, _error("synthesis_failed", f"{type(exc).__name__}: {exc}; the use is yours again"))
    finally:
        cancel.set()
        if not acquired:
            service.waiting -= 1
        else:
            service.streaming -= 1
            service.slots.release()
        if not pcm:
            service.give_back(channel, body.license_id)


def _error(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def run_api(settings: OracleSettings, api: ApiSettings) -> None:
    """``python -m oracle api``: the service, its background threads, uvicorn."""
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    service = SpeechService(settings, api)
    app = create_api(service)
    service.start_background()
    log.info(
        "speech API starting",
        extra={
            "operator": service.key.address,
            "url": f"http://{api.host}:{api.port}",
            "channels": service.chain.channels.address,
        },
    )
    from voicemarket.web.api import serve

    try:
        serve(app, api)
    finally:
        service.stop.set()
        service.executor.shutdown(wait=False, cancel_futures=True)

"""Serving one request: the plain function behind the Celery task.

:func:`serve_request` re-reads the request on-chain (the queued message may be stale or a
duplicate), claims it in Redis, turns it into audio (voice, text, synthesis, storage) and leaves
the outcome — a fulfilment or a failure with its reason — for the submitter. It raises
:class:`TransientError` (or a connection error) for faults that may pass; the task retries those
with backoff and never turns them into a refund.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
import wave
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from oracle.errors import FailReason, RequestFailure, TransientError
from oracle.inputs import RequestText, read_input
from oracle.ledger import Ledger
from oracle.router import RequestedEvent, RequestStatus, RouterClient, status_name
from oracle.settings import OracleSettings
from oracle.voices import Voice, VoiceCache

log = logging.getLogger("oracle.serve")

SERVICE_END_TTL_S = 30.0  # a model's retirement (serviceEndsAt) is read again after this long
MAX_UNEXPECTED_ATTEMPTS = 3  # an engine error seen this often is reported as SynthesisError


@dataclass
class Context:
    """What serving needs in one worker process (built once, lazily: see :mod:`oracle.runtime`)."""

    settings: OracleSettings
    ledger: Ledger
    router: RouterClient
    operator: str
    voices: VoiceCache
    input_store: Any
    output_store: Any
    worker_id: str
    private_key: bytes = field(repr=False)  # the operator key: opens private requests' envelopes
    service_ends: dict[int, tuple[int, float]] = field(default_factory=dict)  # model -> (serviceEndsAt, read at)


def serve_request(ctx: Context, request_id: int, block: int) -> str:
    """Serve request ``request_id`` (first seen near ``block``); returns what happened, for the log."""
    claim = ctx.ledger.claim(request_id, ctx.worker_id, ctx.settings.work_lease_s, block)
    if claim != "claimed":
        return claim  # 'locked': another worker has it; otherwise it is already ready, submitting or done
    started = time.perf_counter()
    heartbeat = _Heartbeat(ctx, request_id)
    try:
        with heartbeat:
            outcome = _serve_claimed(ctx, request_id, block)
    except BaseException:
        try:
            ctx.ledger.release(request_id, ctx.worker_id)
        except Exception:  # noqa: BLE001 - Redis down too: the claim lapses by itself
            log.warning("cannot release the claim", extra={"request_id": request_id})
        raise
    if outcome is None:
        return "skipped"
    verdict = ctx.ledger.record_outcome(request_id, ctx.worker_id, outcome)
    log.info(
        "request served",
        extra={
            "request_id": request_id,
            "outcome": outcome["kind"],
            "ledger": verdict,
            "reason": outcome.get("reason_name"),
            "synth_s": outcome.get("synth_s"),
            "total_s": round(time.perf_counter() - started, 4),
        },
    )
    return f"{outcome['kind']}:{verdict}"


def _serve_claimed(ctx: Context, request_id: int, block: int) -> dict[str, Any] | None:
    event, status, commitment, now = ctx.router.request_snapshot(request_id, block)
    if event is None:
        if status == RequestStatus.NONE:
            log.warning("request vanished from the chain (reorg); forgotten", extra={"request_id": request_id})
            ctx.ledger.forget(request_id)
            return None
        raise TransientError(f"request {request_id} exists but its SynthesisRequested log was not found yet")
    request = event.request
    if request.operator != ctx.operator:
        ctx.ledger.finish(request_id, "not-ours")
        return None
    if status != RequestStatus.PENDING:
        ctx.ledger.finish(request_id, f"onchain:{status_name(status)}")
        return None
    if commitment != ctx.router.commitment(request):
        raise TransientError(f"request {request_id}: the log and the stored commitment disagree (reorg in progress)")
    if now > request.deadline:
        log.warning(
            "request expired before it was served; the buyer can cancelExpired",
            extra={"request_id": request_id, "deadline": request.deadline},
        )
        ctx.ledger.finish(request_id, "expired")
        return None
    try:
        check_service(ctx, request.modelId, now)
        return produce(ctx, event, now)
    except RequestFailure as failure:
        log.warning(
            "request cannot be served",
            extra={"request_id": request_id, "reason": failure.reason.name, "detail": failure.detail},
        )
        return {
            "kind": "fail",
            "request": request.to_json(),
            "reason": int(failure.reason),
            "reason_name": failure.reason.name,
            "detail": failure.detail[:500],
        }


def check_service(ctx: Context, model_id: int, now: int) -> None:
    """A retired model whose service has ended takes no delivery (``Router_ServiceEnded``) and never
    will again: report ModelUnavailable at once (the buyer is refunded) instead of synthesising
    audio the router would refuse. A frozen model is not failed here: the arbiter may lift the
    freeze before the deadline (the submitter fails it if the router still refuses the delivery)."""
    cached = ctx.service_ends.get(model_id)
    if cached is None or time.monotonic() - cached[1] > SERVICE_END_TTL_S:
        # One registry call per model every SERVICE_END_TTL_S, not per request (a web3 call costs ~10 ms of
        # CPU); a retirement read late is still caught: the router refuses the delivery and the submitter
        # reports ModelUnavailable.
        cached = (ctx.router.service_ends_at(model_id), time.monotonic())
        ctx.service_ends[model_id] = cached
    service_ends_at = cached[0]
    if service_ends_at and now >= service_ends_at:
        raise RequestFailure(
            FailReason.MODEL_UNAVAILABLE,
            f"model {model_id:#x} was retired and its service ended at {service_ends_at}: the "
            "router accepts no more deliveries for it",
        )


def produce(ctx: Context, event: RequestedEvent, chain_now: int | None = None) -> dict[str, Any]:
    """Voice + text -> audio in the output store -> the fulfilment. Raises RequestFailure / TransientError.

    A store that refuses the audio is retried (TransientError: the task backs off and runs again)
    while the request's deadline is more than ``store_retry_margin_s`` away (``chain_now``: the
    latest block's timestamp when serving began), so that an outage of seconds or minutes costs
    the buyer nothing; only closer to the deadline does it become OutputStorageError (a refund now
    rather than an expiry later).

    A private request's audio is sealed to the buyer's key before it is stored; the digest delivered
    on-chain is the plain WAV's either way (the buyer checks it after opening the audio)."""
    request = event.request
    settings = ctx.settings
    began = time.time()
    if settings.served(request.modelId) is None:
        raise RequestFailure(
            FailReason.MODEL_UNAVAILABLE, f"this operator does not serve model {request.modelId:#x} (not in `models`)"
        )
    asked = read_input(
        event.input,
        request.inputHash,
        ctx.input_store,
        operator_key=ctx.private_key,
        max_chars=settings.max_text_chars,
        max_bytes=settings.max_input_bytes,
    )
    voice = ctx.voices.get(request.modelId)
    started = time.perf_counter()
    rate, waveform = _synthesize(ctx, voice, request, asked)
    wav = encode_wav(rate, waveform)
    stored = wav
    if asked.private:
        from voicemarket.content.envelopes import seal_output

        stored = seal_output(wav, asked.reply_to)
    try:
        cid = ctx.output_store.put_bytes(stored)
    except Exception as exc:  # noqa: BLE001 - a store's failure of any kind: retried, then reported
        attempts = ctx.ledger.bump_attempts(request.id, "store")
        now = (chain_now if chain_now is not None else int(began)) + (time.time() - began)
        left_s = request.deadline - now
        if left_s <= settings.store_retry_margin_s:
            raise RequestFailure(
                FailReason.OUTPUT_STORAGE_ERROR,
                f"the audio could not be stored ({attempts} attempts; {max(0, int(left_s))} s left before the "
                f"deadline): {exc}",
            ) from None
        log.warning(
            "the output store refused the audio; retrying until the deadline nears",
            extra={"request_id": request.id, "attempt": attempts, "deadline_in_s": int(left_s), "error": str(exc)},
        )
        raise TransientError(f"the audio could not be stored: {exc}") from None
    return {
        "kind": "fulfil",
        "request": request.to_json(),
        "digest": "0x" + hashlib.sha256(wav).hexdigest(),
        "cid": "0x" + cid.to_bytes().hex(),
        "cid_text": str(cid),
        "audio_s": round(len(waveform) / rate, 3),
        "private": asked.private,
        "synth_s": round(time.perf_counter() - started, 4),
    }


def synthesis_kwargs(params_word: int, voice: Voice, settings: OracleSettings) -> tuple[str, dict[str, Any]]:
    """The language code and ``synthesize`` keywords a request's packed ``params`` ask for."""
    from voicemarket.market.chain import SynthesisParams

    try:
        params = SynthesisParams.unpack(params_word)
    except ValueError as exc:
        raise RequestFailure(FailReason.BAD_INPUT, f"params {params_word:#x}: {exc}") from None
    kwargs: dict[str, Any] = {
        "prompt_text": voice.prompt_text,
        "prompt_language": voice.prompt_language,
        "seed": params.seed,
        "max_semantic_tokens": settings.max_semantic_tokens,
    }
    for name in ("speed", "top_k", "top_p", "temperature", "repetition_penalty"):
        value = getattr(params, name)
        if value is not None:
            kwargs[name] = value
    return params.language.name.lower(), kwargs


def check_language(voice: Voice, language: str) -> None:
    """Refuse a language the chain allows (the model's ``languages`` bits, which the router checks) but
    the voice's sealed bundle does not list: its creator registered a language the model was not made for."""
    if language not in voice.languages:
        raise RequestFailure(
            FailReason.UNSUPPORTED_LANGUAGE,
            f"model {voice.model_id:#x} is registered for {language!r}, but its bundle's manifest lists only "
            f"{', '.join(voice.languages)}: the voice was not made for {language!r}",
        )


def _synthesize(ctx: Context, voice: Voice, request, asked: RequestText) -> tuple[int, np.ndarray]:  # noqa: ANN001
    from synth.errors import LanguageNotInstalledError, ReferenceAudioError, SynthError, TextError, UnknownLanguageError

    language, kwargs = synthesis_kwargs(request.params, voice, ctx.settings)
    check_language(voice, language)
    if asked.private:  # a seed nobody else knows: a guessed text spoken again cannot be matched to the digest
        from voicemarket.content.envelopes import private_seed

        kwargs["seed"] = private_seed(kwargs["seed"], asked.salt)
    try:
        return voice.synthesizer.synthesize(asked.text, language, str(voice.reference), **kwargs)
    except (UnknownLanguageError, LanguageNotInstalledError) as exc:
        raise RequestFailure(FailReason.UNSUPPORTED_LANGUAGE, str(exc)) from None
    except TextError as exc:
        raise RequestFailure(FailReason.BAD_INPUT, str(exc)) from None
    except ReferenceAudioError as exc:
        raise RequestFailure(FailReason.BUNDLE_CORRUPT, f"the voice's reference clip: {exc}") from None
    except ValueError as exc:
        raise RequestFailure(FailReason.BAD_INPUT, f"synthesis parameters: {exc}") from None
    except SynthError as exc:
        raise RequestFailure(FailReason.SYNTHESIS_ERROR, str(exc)) from None
    except Exception as exc:
        attempts = ctx.ledger.bump_attempts(request.id, "synthesis")
        log.exception("synthesis failed", extra={"request_id": request.id, "attempt": attempts})
        if attempts >= MAX_UNEXPECTED_ATTEMPTS:
            raise RequestFailure(FailReason.SYNTHESIS_ERROR, f"{type(exc).__name__}: {exc}") from None
        raise TransientError(f"synthesis failed ({type(exc).__name__}: {exc}); retrying") from None


def encode_wav(rate: int, waveform: np.ndarray) -> bytes:
    """16-bit PCM mono WAV bytes of a float32 waveform in [-1, 1]."""
    pcm = (np.clip(waveform, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(rate))
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


class _Heartbeat:
    """Keeps a worker's claim alive while it works (a thread renews the Redis lease)."""

    def __init__(self, ctx: Context, request_id: int) -> None:
        import threading

        self._ctx = ctx
        self._request_id = request_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{request_id}", daemon=True)

    def _run(self) -> None:
        lease = self._ctx.settings.work_lease_s
        while not self._stop.wait(lease / 3):
            try:
                self._ctx.ledger.heartbeat(self._request_id, self._ctx.worker_id, lease)
            except Exception:  # noqa: BLE001 - Redis down: the work goes on; the outcome is re-checked
                log.warning("cannot renew the claim", extra={"request_id": self._request_id})

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)

"""A buyer asks for speech: text -> ``requestSynthesis`` -> the outcome -> a verified WAV.

The steps of ``ape run say``, as plain functions over Ape contract instances (the router and
the licence manager of a deployment):

- :func:`licence_use` reads what a licence allows (model, asset, use price, uses left) and
  refuses, with what to do, a licence the account cannot use now;
- :func:`choose_operator` finds an operator that may serve the model (or checks the one named);
- :func:`submit` builds the request (inline text, or the text's CID when it is too long to
  carry on-chain, and by default the model's current dispute window as the shortest the buyer
  accepts, so that its owner cannot cut the window under the request), escrows
  ``usePrice + fee`` and returns the committed request. Given the buyer's encryption key
  (:class:`~voicemarket.market.buyer_key.BuyerKey`) the request is **private**: the text goes
  sealed to the operator's registered key, ``inputHash`` is a salted commitment, and the
  operator seals the audio to the buyer (:mod:`voicemarket.content.envelopes`);
- :func:`wait_for_outcome` follows the request until it is fulfilled, failed, or past its
  deadline (calling back with progress);
- :func:`fetch_audio` reads the audio by its CID from a store (opening it with the buyer's key
  if the request was private) and writes it only if its SHA-256 is the digest the operator
  committed on-chain;
- :func:`cancel_expired` refunds an undelivered request after its deadline.

Refunds (failure, expiry) are credited on the router: ``router.creditOf(buyer, asset)``,
withdrawable with ``router.withdraw(asset)``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

from voicemarket.content.files import atomic_output
from voicemarket.content.multiformats import CID
from voicemarket.errors import (
    AudioMismatch,
    BuyerKeyError,
    ContentNotFound,
    DecryptionError,
    IntegrityError,
    SpeechError,
)
from voicemarket.market import chain as vm
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.protocol import ETH, Action, FailReason, Language, RequestStatus, Tier

DEFAULT_TTL_S = 15 * 60
"""How long an operator has to deliver, by default (the router allows up to a day)."""


@dataclass(frozen=True)
class LicenseUse:
    """What one use of a licence costs and allows, read from the chain."""

    license_id: int
    model_id: int
    offer_id: int
    tier: Tier
    asset: str
    use_price: int  # paid per request (pay-per-use without packs), else 0
    uses_left: int | None  # None: unlimited
    languages: int  # the model's language bits
    dispute_window: int = 0  # the model's dispute window now (seconds)

    def speaks(self, language: Language) -> bool:
        return bool(self.languages >> int(language) & 1)

    def check_language(self, language: Language) -> None:
        """:class:`SpeechError` unless the model speaks ``language`` (the router would revert)."""
        if not self.speaks(language):
            raise SpeechError(
                f"model {self.model_id:#x} speaks {', '.join(self.language_codes)}, "
                f"not {language.label!r}: pick --language from those"
            )

    @property
    def language_codes(self) -> list[str]:
        return [lang.label for lang in Language if self.languages >> int(lang) & 1]


@dataclass(frozen=True)
class SubmittedRequest:
    """A request on-chain: its id, the committed ``SynthesisRequest`` tuple and where it was mined."""

    request_id: int
    request: tuple
    block_number: int
    transaction: str
    input_cid: CID | None  # the text's (or the sealed envelope's) CID when it did not fit inline
    private: bool = False  # the text went sealed to the operator, the audio comes sealed to the buyer

    @property
    def fields(self) -> dict[str, Any]:
        return dict(zip(vm.REQUEST_FIELDS, self.request, strict=True))

    @property
    def deadline(self) -> int:
        return int(self.fields["deadline"])

    @property
    def operator(self) -> str:
        return to_checksum_address(str(self.fields["operator"]))

    @property
    def asset(self) -> str:
        return to_checksum_address(str(self.fields["asset"]))

    @property
    def escrow(self) -> int:
        """What the request holds in escrow (and what a failure or an expiry refunds)."""
        return int(self.fields["usePrice"]) + int(self.fields["fee"])


@dataclass(frozen=True)
class Outcome:
    """Where a request ended up (or stands, if it is still pending past its deadline)."""

    request_id: int
    status: RequestStatus
    output_digest: bytes | None = None  # fulfilled: the audio's SHA-256, as committed on-chain
    output_cid: CID | None = None  # fulfilled: where the audio is
    reason: FailReason | None = None  # failed: why
    settle_after: int | None = None  # fulfilled: when the payout settles (the dispute window's end)

    @property
    def delivered(self) -> bool:
        return self.output_cid is not None

    @property
    def refunded(self) -> bool:
        return self.status in (RequestStatus.FAILED, RequestStatus.EXPIRED, RequestStatus.REVERSED)


# ---------------------------------------------------------------- before the request


def license_use(licenses, license_id: int, account: str) -> LicenseUse:  # noqa: ANN001 - Ape contract
    """What ``account`` may do with ``licence_id`` now; :class:`SpeechError` if it cannot use it."""
    import ape

    registry = ape.project.VoiceModelRegistry.at(licenses.registry())
    try:
        holder = licenses.ownerOf(license_id)
    except Exception:  # noqa: BLE001 - any revert of ownerOf means the token does not exist
        raise SpeechError(f"licence {license_id} does not exist: buy one first (`ape run buy`)") from None
    if str(holder).lower() != str(account).lower():
        raise SpeechError(f"licence {license_id} belongs to {holder}, not to {account}: use --account with its holder")
    offer_id = int(licenses.offerOf(license_id))
    terms = licenses.offer(offer_id).terms
    model_id = int(terms.modelId)
    licensed, uses_left = licenses.isLicensed(license_id, account, model_id, int(Action.TEXT_TO_SPEECH))
    if not licensed:
        raise SpeechError(_why_not_licensed(licenses, registry, license_id, offer_id, model_id, terms))
    tier = Tier(int(terms.tier))
    use_price = int(terms.price) if tier == Tier.PAY_PER_USE and int(terms.packSize) == 0 else 0
    model = registry.modelTerms(model_id)
    return LicenseUse(
        license_id=license_id,
        model_id=model_id,
        offer_id=offer_id,
        tier=tier,
        asset=str(terms.asset),
        use_price=use_price,
        uses_left=None if int(uses_left) == 2**256 - 1 else int(uses_left),
        languages=int(model.languages),
        dispute_window=int(model.disputeWindow),
    )


def _why_not_licensed(licenses, registry, license_id: int, offer_id: int, model_id: int, terms) -> str:  # noqa: ANN001
    import ape

    now = ape.chain.pending_timestamp
    license = licenses.license(license_id)
    model = registry.modelTerms(model_id)
    if not int(terms.permissions) & int(Action.TEXT_TO_SPEECH):
        return f"licence {license_id} (offer {offer_id}) does not permit text-to-speech"
    if int(terms.validUntil) and now > int(terms.validUntil):
        return f"offer {offer_id} of licence {license_id} ended; buy a licence from a current offer (`ape run offers`)"
    if model.frozen:
        return f"model {model_id:#x} is frozen by the arbiter: nothing can be synthesised with it for now"
    if int(model.serviceEndsAt) and now >= int(model.serviceEndsAt):
        return f"model {model_id:#x} was retired and its notice period is over"
    if Tier(int(terms.tier)) == Tier.SUBSCRIPTION and now >= int(license.expiresAt):
        return f"subscription {license_id} expired; renew it with `ape run renew {license_id}`"
    return f"licence {license_id} has no uses left (it used {int(license.used)}); buy more or wait for the next period"


def choose_operator(
    router,
    model_id: int,
    asset: str,
    operator: str | None = None,  # noqa: ANN001
    from_block: int = 0,
) -> tuple[str, int]:
    """(operator, its fee in ``asset``): the one named, or the cheapest allowed operator serving now."""
    if operator is not None:
        if not router.canServe(model_id, operator):
            raise SpeechError(
                f"operator {operator} cannot serve model {model_id:#x} now (not registered, below the "
                "minimum stake, unbonding, or not (or no longer) allowed by the model's owner)"
            )
        return str(operator), int(router.operatorFee(operator, asset))
    candidates = {str(log.operator) for log in _logs(router.ModelOperatorSet, from_block, modelId=model_id)}
    serving = [op for op in sorted(candidates) if router.canServe(model_id, op)]
    if not serving:
        raise SpeechError(f"no operator may serve model {model_id:#x} now: ask its owner to allow one")
    fees = {op: int(router.operatorFee(op, asset)) for op in serving}
    chosen = min(serving, key=lambda op: (fees[op], op))
    return chosen, fees[chosen]


@dataclass(frozen=True)
class PreparedInput:
    """A request's ``input`` and ``inputHash``, and where the input was stored if it did not fit inline."""

    data: bytes
    input_hash: bytes
    cid: CID | None = None
    private: bool = False


def request_input(
    text: str,
    store=None,  # noqa: ANN001 - a ContentStore
    *,
    operator_key: bytes | None = None,
    buyer: BuyerKey | None = None,
) -> PreparedInput:
    """The request's input: the text inline, or (too long for the chain) its CID after storing it.

    With ``buyer`` (and the operator's registered public key ``operator_key``) the request is
    private: what goes inline or into the store is the envelope sealed to the operator, and
    ``inputHash`` is the envelope's salted commitment; the store then holds only ciphertext.
    """
    if not text.strip():
        raise SpeechError("the text is empty: give some words to say")
    if buyer is not None:
        from voicemarket.content.envelopes import RequestEnvelope, seal_request

        if operator_key is None:
            raise ValueError("a private request needs the operator's public key")
        envelope = RequestEnvelope(text, buyer.public_key, buyer.input_salt(text))
        box = seal_request(envelope, operator_key)
        try:
            return PreparedInput(vm.private_input(box), envelope.input_hash, private=True)
        except ValueError:
            pass
        cid = _store_input(store, box, len(box), "sealed text")
        return PreparedInput(vm.private_cid_input(cid), envelope.input_hash, cid, private=True)
    try:
        return PreparedInput(vm.inline_input(text), vm.input_hash(text))
    except ValueError:
        pass
    cid = _store_input(store, text.encode("utf-8"), len(text.encode()), "text")
    return PreparedInput(vm.cid_input(cid), vm.input_hash(text), cid)


def _store_input(store, data: bytes, size: int, what: str) -> CID:  # noqa: ANN001
    if store is None:
        raise SpeechError(
            f"the {what} is {size} bytes, too long to fit on-chain: give a --store the operator reads, to pass "
            "it by its CID"
        )
    return store.put_bytes(data)


# ---------------------------------------------------------------- the request


def submit(
    router,
    account,
    license: LicenseUse,
    text: str,
    params: vm.SynthesisParams,
    *,  # noqa: ANN001
    operator: str,
    max_fee: int,
    ttl_s: int = DEFAULT_TTL_S,
    store=None,  # noqa: ANN001
    min_dispute_window: int | None = None,
    buyer: BuyerKey | None = None,
) -> SubmittedRequest:
    """Send ``requestSynthesis`` from ``account`` (escrowing ``use price + fee``); the committed request.

    ``buyer``: the account's encryption key, for a private request (None: public, text and audio in
    plain sight).

    ``max_fee`` caps the operator's fee (the router reverts above it). ``min_dispute_window``
    (seconds; None: the model's window now, ``licence.dispute_window``) is the shortest dispute
    window the buyer accepts: it replaces ``params.min_dispute_window``, and the router refuses the
    request (``Router_DisputeWindowTooShort``) if the model's owner shortened the window below it in
    the meantime. An ERC-20 licence's escrow is approved to the router first if the allowance is short.
    """
    import dataclasses

    import ape

    license.check_language(Language(params.language))
    floor = license.dispute_window if min_dispute_window is None else min_dispute_window
    if floor > license.dispute_window:
        raise SpeechError(
            f"model {license.model_id:#x} has a dispute window of {license.dispute_window} s, shorter "
            f"than the {floor} s you ask for: the router would refuse the request; ask for at most "
            f"{license.dispute_window} s if you accept"
        )
    params = dataclasses.replace(params, min_dispute_window=floor)
    try:
        packed = params.pack()
    except ValueError as exc:
        raise SpeechError(str(exc)) from None
    fee = int(router.operatorFee(operator, license.asset))
    if fee > max_fee:
        raise SpeechError(
            f"operator {operator} charges {fee} (smallest units) per request, above your maximum "
            f"{max_fee}: raise --max-fee or pick another --operator"
        )
    if not 0 < ttl_s <= int(router.MAX_TTL()):
        raise SpeechError(f"--ttl must be 1..{int(router.MAX_TTL())} seconds, got {ttl_s}")
    operator_key = bytes(router.operatorPublicKey(operator)) if buyer is not None else None
    prepared = request_input(text, store, operator_key=operator_key, buyer=buyer)
    escrow = license.use_price + fee
    value = 0
    if license.asset == ETH:
        value = escrow
    elif escrow:
        token = ape.project.MockStablecoin.at(license.asset)  # any ERC-20: only allowance/approve are called
        if int(token.allowance(account, router.address)) < escrow:
            token.approve(router.address, escrow, sender=account)
    request = {
        "modelId": license.model_id,
        "licenseId": license.license_id,
        "operator": operator,
        "maxFee": max_fee,
        "deadline": chain_time() + ttl_s,
        "params": packed,
        "inputHash": prepared.input_hash,
        "input": prepared.data,
    }
    receipt = router.requestSynthesis(request, value=value, sender=account)
    log = receipt.events.filter(router.SynthesisRequested)[0]
    return SubmittedRequest(
        int(log.requestId),
        vm.request_from_log(log),
        int(receipt.block_number),
        str(receipt.txn_hash),
        prepared.cid,
        prepared.private,
    )


def find_request(router, request_id: int, from_block: int = 0) -> SubmittedRequest:  # noqa: ANN001
    """An earlier request (to follow it again or cancel it), from its ``SynthesisRequested`` log."""
    logs = _logs(router.SynthesisRequested, from_block, requestId=request_id)
    if not logs:
        raise SpeechError(f"no request {request_id} on this router (searched from block {from_block})")
    log = logs[-1]  # after a reorg the surviving log is the latest
    parsed = vm.RequestInput.parse(bytes(log.input))
    return SubmittedRequest(
        request_id,
        vm.request_from_log(log),
        int(log.block_number),
        str(log.transaction_hash),
        parsed.cid,
        parsed.private,
    )


# ---------------------------------------------------------------- after the request


Progress = Callable[[RequestStatus, float, int], None]
"""``on_progress(status, seconds waited, seconds to the deadline)``."""


def chain_time() -> int:
    """The chain's time now: the timestamp the next block gets (the pending block's; a local node's runs
    on between blocks, while the head's stands still)."""
    import ape

    try:
        return int(ape.chain.pending_timestamp)
    except Exception:  # noqa: BLE001 - a provider without a pending block: the head is the best we know
        return int(ape.chain.blocks.head.timestamp)


def wait_for_outcome(
    router,
    submitted: SubmittedRequest,
    *,
    timeout_s: float | None = None,  # noqa: ANN001
    poll_s: float = 0.5,
    on_progress: Progress | None = None,
) -> Outcome:
    """Follow the request until it leaves Pending, its deadline passes, or ``timeout_s`` runs out.

    A request still Pending past its deadline comes back as such: anyone may then cancel it
    (:func:`cancel_expired`), which refunds the buyer in full.
    """
    started = time.monotonic()
    while True:
        status = RequestStatus(int(router.requestStatus(submitted.request_id)))
        left = submitted.deadline - chain_time()
        waited = time.monotonic() - started
        if on_progress is not None:
            on_progress(status, waited, left)
        if status != RequestStatus.PENDING or left < 0:
            return outcome_of(router, submitted, status)
        if timeout_s is not None and waited >= timeout_s:
            return outcome_of(router, submitted, status)
        time.sleep(min(poll_s, max(left, 0) + 0.1))


def outcome_of(router, submitted: SubmittedRequest, status: RequestStatus | None = None) -> Outcome:  # noqa: ANN001
    """The request's outcome as the chain records it (the delivery's CID and digest, or the reason)."""
    request_id = submitted.request_id
    if status is None:
        status = RequestStatus(int(router.requestStatus(request_id)))
    if status == RequestStatus.FAILED:
        log = _last(_logs(router.SynthesisFailed, submitted.block_number, requestId=request_id))
        return Outcome(request_id, status, reason=FailReason(int(log.reason)))
    if status in (RequestStatus.FULFILLED, RequestStatus.DISPUTED, RequestStatus.SETTLED, RequestStatus.REVERSED):
        log = _last(_logs(router.SynthesisFulfilled, submitted.block_number, requestId=request_id))
        return Outcome(
            request_id,
            status,
            output_digest=bytes(log.outputDigest),
            output_cid=CID.from_bytes(bytes(log.outputCid)),
            settle_after=int(log.settleAfter),
        )
    return Outcome(request_id, status)


def _logs(event, from_block: int, **topics) -> list:  # noqa: ANN001 - an Ape ContractEvent
    """The event's logs from ``from_block`` to the head whose indexed arguments are ``topics``."""
    import ape

    return list(event.range(from_block, ape.chain.blocks.height + 1, search_topics=topics or None))


def _last(found: list):  # noqa: ANN202
    if not found:
        raise SpeechError("the chain says the request ended but its event is missing from the node's logs")
    return found[-1]


def fetch_audio(store, outcome: Outcome, dest: str | Path, buyer: BuyerKey | None = None) -> Path:  # noqa: ANN001
    """Read the delivered audio by CID and write it to ``dest`` only if its SHA-256 is the on-chain digest.

    The store checks the bytes against the CID; this checks them against ``outputDigest`` (what
    the operator committed to, and what a dispute is judged on). Nothing is written on a mismatch.
    ``buyer``: a private request's audio is sealed to the buyer's key, opened here first.
    """

    if not outcome.delivered:
        raise SpeechError(f"request {outcome.request_id} was not delivered ({outcome.status.label})")
    try:
        audio = store.get_bytes(outcome.output_cid)
    except ContentNotFound:
        raise SpeechError(
            f"the audio {outcome.output_cid} is not in {store!r}: point --store at the store the operator delivers to"
        ) from None
    if buyer is not None:
        audio = _open_private_audio(audio, outcome, buyer)
    digest = hashlib.sha256(audio).digest()
    if digest != outcome.output_digest:
        raise AudioMismatch(
            f"the audio under {outcome.output_cid} has SHA-256 {digest.hex()}, but the operator "
            f"committed {outcome.output_digest.hex()} on-chain: nothing written; you may dispute "
            f"request {outcome.request_id} within its window"
        )
    dest = Path(dest)
    with atomic_output(dest) as out:
        out.write(audio)
    return dest


def _open_private_audio(sealed: bytes, outcome: Outcome, buyer: BuyerKey) -> bytes:
    from voicemarket.content.envelopes import open_output

    try:
        return open_output(sealed, buyer.private_key)
    except DecryptionError:
        raise BuyerKeyError(
            f"the audio {outcome.output_cid} of request {outcome.request_id} is not sealed to your encryption key "
            f"{buyer.key_address}: if you made the request from this account, your wallet's signatures are not "
            "deterministic (the key is derived from one) and this audio cannot be opened again; otherwise ask "
            "with the account that made it"
        ) from None
    except IntegrityError as exc:
        raise AudioMismatch(
            f"the audio under {outcome.output_cid} is not a sealed result ({exc}): nothing written; you may "
            f"dispute request {outcome.request_id} within its window"
        ) from None


def cancel_expired(router, account, submitted: SubmittedRequest, *, attempts: int = 10) -> Outcome:  # noqa: ANN001
    """Cancel an undelivered request past its deadline: the buyer is refunded in full, the use given back.

    The deadline is judged by the block that mines the cancellation: if the node's clock has not
    passed it yet (``Router_NotExpired``), the cancellation is tried again a second later.
    """
    to_go = submitted.deadline - chain_time()
    if to_go >= 0:
        raise SpeechError(f"request {submitted.request_id} is not past its deadline yet ({to_go + 1} s to go)")
    for attempt in range(attempts):
        try:
            router.cancelExpired(submitted.request, sender=account)
            return Outcome(submitted.request_id, RequestStatus.EXPIRED)
        except router.Router_NotExpired:
            if attempt == attempts - 1:
                raise SpeechError(
                    f"the chain still says request {submitted.request_id} is not past its deadline; "
                    "try again in a moment"
                ) from None
            time.sleep(1.0)
    raise AssertionError("unreachable")


def credit(router, account: str, asset: str) -> int:  # noqa: ANN001
    """What the router owes ``account`` in ``asset`` (refunds land here): withdrawable now."""
    return int(router.creditOf(account, asset))

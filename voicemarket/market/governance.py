"""A voice model after minting: retiring it, freezing and unfreezing it (the arbiter), new versions.

What ``ape run retire``, ``freeze``, ``unfreeze`` and ``version`` do. Each function checks on the
chain what would make the registry refuse (an unknown model, the wrong account, a model already
in that state) and raises :class:`GovernanceError`, which says what to do, before anything is
sent.

- Retiring stops all sales at once; licences already sold keep working until the service end
  date, ``now + retirementNotice``, and subscriptions were never sold past it.
- Freezing (the registry's arbiter role: disputed consent, infringement) stops sales, renewals
  and new synthesis until the arbiter unfreezes the model; escrowed fees stay refundable.
- A new version names its parent: only the parent's owner registers it, never under a frozen
  parent, and with the parent's voice owner, who consents to it again (signs), unless the voice
  is the registering account's own. The rest is minting (:func:`voicemarket.market.minting.mint_voice`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicemarket.content.odrl import OfferTerms
from voicemarket.errors import GovernanceError
from voicemarket.market.minting import MintResult, ModelFolder, mint_voice
from voicemarket.units import format_time

REASON_BYTES = 32


def _existing(deployment: Any, model_id: int) -> Any:
    """The model's record (``modelInfo``); refuses a model that does not exist."""
    registry = deployment.registry
    if not registry.modelTerms(model_id).exists:
        raise GovernanceError(f"there is no model {model_id:#x} on this deployment: check the id (mint printed it)")
    return registry.modelInfo(model_id)


def _require_owner(deployment: Any, account: Any, model_id: int, what: str) -> None:
    owner = str(deployment.registry.ownerOf(model_id))
    if owner != account.address:
        raise GovernanceError(
            f"model {model_id:#x} is owned by {owner}, not {account.address}: only its owner "
            f"{what} (use the owner's --account)"
        )


# ---------------------------------------------------------------- retirement


@dataclass(frozen=True)
class Retirement:
    model_id: int
    service_ends_at: int  # licences already sold work until then
    notice: int  # the retirement notice in force (seconds)
    tx: str


def retire(deployment: Any, owner: Any, model_id: int) -> Retirement:
    """Retire ``model_id``: nothing more is sold; licences sold work until the returned end date."""

    info = _existing(deployment, model_id)
    _require_owner(deployment, owner, model_id, "retires it")
    if int(info.serviceEndsAt):
        raise GovernanceError(
            f"model {model_id:#x} is already retired: its service ends {format_time(int(info.serviceEndsAt))}"
        )
    registry = deployment.registry
    receipt = registry.retire(model_id, sender=owner)
    log = receipt.events.filter(registry.ModelRetired)[0]
    return Retirement(model_id, int(log.serviceEndsAt), int(registry.retirementNotice()), str(receipt.txn_hash))


# ---------------------------------------------------------------- the arbiter


def reason_bytes(text: str) -> bytes:
    """A freeze's reason as the registry records it: UTF-8, at most 32 bytes, zero-padded."""
    raw = text.strip().encode("utf-8")
    if not raw:
        raise GovernanceError("--reason must say why (at most 32 bytes, e.g. 'disputed consent')")
    if len(raw) > REASON_BYTES:
        raise GovernanceError(
            f"--reason is {len(raw)} bytes in UTF-8; the registry records at most {REASON_BYTES}: "
            "say it shorter (the details belong in your case file)"
        )
    return raw.ljust(REASON_BYTES, b"\0")


def reason_text(raw: bytes) -> str:
    """The text of a recorded reason (its zero padding stripped)."""
    return bytes(raw).rstrip(b"\0").decode("utf-8", errors="replace")


def _require_arbiter(deployment: Any, account: Any) -> None:
    registry = deployment.registry
    if not registry.hasRole(registry.ARBITER_ROLE(), account.address):
        named = (getattr(deployment, "roles", None) or {}).get("arbiter")
        holder = f" (this deployment's arbiter is {named})" if named else ""
        raise GovernanceError(
            f"{account.address} does not hold the registry's arbiter role{holder}: only the "
            "arbiter freezes and unfreezes models (use their --account)"
        )


@dataclass(frozen=True)
class Freeze:
    model_id: int
    frozen: bool
    arbiter: str
    reason: str  # empty when unfreezing
    tx: str


def freeze(deployment: Any, arbiter: Any, model_id: int, reason: str) -> Freeze:
    """The arbiter freezes ``model_id`` (it sells, renews and serves nothing new) for ``reason``."""
    raw = reason_bytes(reason)
    info = _existing(deployment, model_id)
    _require_arbiter(deployment, arbiter)
    if info.frozen:
        raise GovernanceError(f"model {model_id:#x} is already frozen: `ape run unfreeze {model_id:#x}` lifts it")
    registry = deployment.registry
    receipt = registry.freeze(model_id, raw, sender=arbiter)
    log = receipt.events.filter(registry.ModelFrozen)[0]
    return Freeze(model_id, True, str(log.arbiter), reason_text(log.reason), str(receipt.txn_hash))


def unfreeze(deployment: Any, arbiter: Any, model_id: int) -> Freeze:
    """The arbiter lifts the freeze of ``model_id``."""
    info = _existing(deployment, model_id)
    _require_arbiter(deployment, arbiter)
    if not info.frozen:
        raise GovernanceError(f"model {model_id:#x} is not frozen: there is nothing to lift")
    registry = deployment.registry
    receipt = registry.unfreeze(model_id, sender=arbiter)
    log = receipt.events.filter(registry.ModelUnfrozen)[0]
    return Freeze(model_id, False, str(log.arbiter), "", str(receipt.txn_hash))


# ---------------------------------------------------------------- versions


@dataclass(frozen=True)
class VersionTerms:
    """What a new version of a parent keeps or takes over by default."""

    parent_id: int
    voice_owner: str  # the parent's voice owner, who must consent to the version again
    voice_owner_bps: int  # the parent's share, the default for the version
    royalty_bps: int
    dispute_window: int


def version_terms(deployment: Any, account: Any, parent_id: int) -> VersionTerms:
    """Check that ``account`` may register a new version of ``parent_id``; the parent's terms."""
    info = _existing(deployment, parent_id)
    _require_owner(deployment, account, parent_id, "registers new versions of it")
    if info.frozen:
        raise GovernanceError(
            f"model {parent_id:#x} is frozen by the arbiter: no new version can be registered "
            "under it until it is unfrozen"
        )
    voice_owner, bps = deployment.registry.consentOf(parent_id)
    return VersionTerms(parent_id, str(voice_owner), int(bps), int(info.royaltyBps), int(info.disputeWindow))


def register_version(
    creator: Any,
    deployment: Any,
    parent_id: int,
    folder: str | Path | ModelFolder,
    *,
    offers: Sequence[OfferTerms],
    operators: Sequence[str],
    store: Any = None,
    voice_owner: Any = None,
    voice_owner_bps: int | None = None,
    co_creators: Sequence[tuple[str, int]] = (),
    royalty_bps: int | None = None,
    dispute_window: int | None = None,
    hubert_dir: str | Path | None = None,
    bert_dir: str | Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> MintResult:
    """Mint the model in ``folder`` as a new version of ``parent_id`` (:func:`mint_voice` with a parent).

    ``voice_owner``: the Ape account of the parent's voice owner, who signs the consent again (None
    when the voice is ``creator``'s own). The share, royalty and dispute window default to the
    parent's.
    """
    terms = version_terms(deployment, creator, parent_id)
    if terms.voice_owner == creator.address:
        if voice_owner is not None and voice_owner.address != creator.address:
            raise GovernanceError(
                f"model {parent_id:#x} is your own voice: a new version keeps it, so drop --voice-owner"
            )
        voice_owner = None
    elif voice_owner is None:
        raise GovernanceError(
            f"model {parent_id:#x} is the voice of {terms.voice_owner}: a new version keeps its "
            "voice owner, who consents to it again; pass --voice-owner with their account (they "
            "sign)"
        )
    elif voice_owner.address != terms.voice_owner:
        raise GovernanceError(
            f"model {parent_id:#x} is the voice of {terms.voice_owner}, not {voice_owner.address}: "
            "a new version keeps its parent's voice owner; pass their account as --voice-owner"
        )
    share = terms.voice_owner_bps if voice_owner_bps is None else voice_owner_bps
    return mint_voice(
        creator,
        deployment,
        folder,
        offers=offers,
        operators=operators,
        store=store,
        voice_owner=voice_owner,
        voice_owner_bps=0 if voice_owner is None else share,
        co_creators=co_creators,
        royalty_bps=terms.royalty_bps if royalty_bps is None else royalty_bps,
        dispute_window=terms.dispute_window if dispute_window is None else dispute_window,
        parent_id=parent_id,
        hubert_dir=hubert_dir,
        bert_dir=bert_dir,
        on_progress=on_progress,
    )

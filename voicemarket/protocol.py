"""The protocol's vocabulary, defined once: enums, their labels and ODRL IRIs, and shared constants.

Every other module (the ODRL documents, minting, licensing, speech, the oracle, the commands, the
demo) takes tiers, actions, purposes, languages, fail reasons and request statuses from here, and
``tests/voicemarket/test_protocol.py`` checks them against the compiled contracts. Adding a
licence tier is a change to ``contracts/interfaces/ILicenseManager.sol`` (and the contract's
rules) and to :class:`Tier` below.

- :class:`Tier` mirrors ``ILicenseManager.Tier``; :class:`RequestStatus` and :class:`FailReason`
  mirror ``ISynthesisRouter``'s enums. Each member has a ``label`` (what commands print and what
  offer files say); tiers also have their ODRL ``iri``.
- :class:`Action` and :class:`Purpose` are the bit sets of an offer's permissions, prohibitions
  and purposes (``Protocol.ALL_ACTIONS``, ``Protocol.ALL_PURPOSES``); each single bit has a
  ``label`` and its ODRL ``iri`` (docs/licence-terms.md).
- :class:`Language` numbers the languages a model lists as bits (``Protocol.ALL_LANGUAGES``).
- :func:`model_id` is the registry's ``modelIdOf``; :func:`share` and :func:`split_revenue` are
  ``Protocol.share`` and ``RevenueLedger.distribute``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum, IntFlag
from typing import Any

__all__ = [
    "ETH",
    "BPS",
    "DAY",
    "RENEWAL_LEAD",
    "Tier",
    "Action",
    "Purpose",
    "Language",
    "FailReason",
    "RequestStatus",
    "LocalUseStatus",
    "language_bits",
    "model_id",
    "renewal_lead",
    "share",
    "split_revenue",
]

ETH = "0x0000000000000000000000000000000000000000"
"""The payment asset address that means ETH."""

BPS = 10_000
"""100% in basis points (``Protocol.BPS``)."""

DAY = 86_400

RENEWAL_LEAD = DAY
"""Keepers renew a subscription from min(RENEWAL_LEAD, period) before it expires (``Protocol.RENEWAL_LEAD``)."""


def _unknown(kind: str, text: Any, known: Iterable[str]) -> ValueError:
    return ValueError(f"unknown {kind} {text!r}: use one of {', '.join(known)}")


class Tier(IntEnum):
    """``ILicenseManager.Tier``: how a licence is paid for."""

    def __new__(cls, value: int, label: str, iri_name: str) -> Tier:
        member = int.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.iri = f"vm:tier/{iri_name}"
        return member

    BUYOUT = 0, "buyout", "buyout"
    SUBSCRIPTION = 1, "subscription", "subscription"
    PAY_PER_USE = 2, "pay-per-use", "payPerUse"

    @classmethod
    def parse(cls, text: str | int | Tier) -> Tier:
        """A tier from its label (``pay-per-use``; ``pay_per_use`` and ``payperuse`` too), IRI or number."""
        if isinstance(text, int):
            return cls(text)
        key = str(text).strip().lower().replace("_", "-")
        for member in cls:
            if key in (member.label, member.label.replace("-", ""), member.iri.lower()):
                return member
        raise _unknown("tier", text, (m.label for m in cls))


class _Bits(IntFlag):
    """A bit set whose single bits have a label and an ODRL IRI."""

    label: str
    iri: str

    def __new__(cls, bit: int, label: str, iri: str) -> _Bits:
        member = int.__new__(cls, 1 << bit)
        member._value_ = 1 << bit
        member.label = label
        member.iri = iri
        return member

    @classmethod
    def parse(cls, name: str) -> _Bits:
        """The bit named by its label (``commercialize``) or its IRI (``odrl:commercialize``)."""
        for member in cls:
            if name in (member.label, member.iri):
                return member
        raise _unknown(cls._kind(), name, (m.label for m in cls))

    @classmethod
    def bits(cls, names: Iterable[str]) -> int:
        """The bit set of ``names`` (labels or IRIs)."""
        bits = 0
        for name in names:
            bits |= cls.parse(name)
        return bits

    @classmethod
    def members_of(cls, bits: int) -> list[_Bits]:
        """The single bits set in ``bits``, in bit order."""
        return [member for member in cls if int(bits) & member]

    @classmethod
    def all_bits(cls) -> int:
        return sum(cls)

    @classmethod
    def _kind(cls) -> str:
        return cls.__name__.lower()


class Action(_Bits):
    """Action bits of an offer's permissions and prohibitions (``Protocol.ALL_ACTIONS``)."""

    TEXT_TO_SPEECH = 0, "textToSpeech", "vm:textToSpeech"
    COMMERCIAL_USE = 1, "commercialize", "odrl:commercialize"
    DISTRIBUTION = 2, "distribute", "odrl:distribute"
    BROADCAST = 3, "broadcast", "vm:broadcast"
    DERIVATION = 4, "derive", "odrl:derive"
    MODIFICATION = 5, "modify", "odrl:modify"
    REPRODUCTION = 6, "reproduce", "odrl:reproduce"
    SUBLICENSING = 7, "sublicense", "vm:sublicense"


class Purpose(_Bits):
    """Purpose bits of an offer (``Protocol.ALL_PURPOSES``); no bit set means any purpose."""

    ADVERTISING = 0, "advertising", "vm:purpose/advertising"
    AUDIOBOOKS = 1, "audiobooks", "vm:purpose/audiobooks"
    BROADCAST_MEDIA = 2, "broadcastMedia", "vm:purpose/broadcastMedia"
    EDUCATION = 3, "education", "vm:purpose/education"
    ENTERTAINMENT = 4, "entertainment", "vm:purpose/entertainment"
    ACCESSIBILITY = 5, "accessibility", "vm:purpose/accessibility"
    PERSONAL = 6, "personal", "vm:purpose/personal"
    INTERNAL = 7, "internal", "vm:purpose/internal"
    NEWS = 8, "news", "vm:purpose/news"
    RESEARCH = 9, "research", "vm:purpose/research"


class Language(IntEnum):
    """Language numbers: a model's ``languages`` is a bit set of these, a request names one."""

    ZH = 0
    EN = 1
    JA = 2
    KO = 3
    YUE = 4

    @property
    def label(self) -> str:
        """``zh``, ``en``, ``ja``, ``ko``, ``yue``: the codes synth/ and the commands use."""
        return self.name.lower()

    @classmethod
    def parse(cls, code: str | int | Language) -> Language:
        """``"zh"``, ``"en"``, ... or the number."""
        if isinstance(code, str):
            try:
                return cls[code.strip().upper()]
            except KeyError:
                raise _unknown("language", code, (m.label for m in cls)) from None
        return cls(code)

    @classmethod
    def members_of(cls, bits: int) -> list[Language]:
        """The languages set in a model's ``languages`` bit set."""
        return [lang for lang in cls if int(bits) >> lang & 1]


def language_bits(*languages: str | int | Language) -> int:
    """The ``languages`` bit set of a model: ``language_bits("zh", "en") == 0b11``."""
    bits = 0
    for language in languages:
        bits |= 1 << Language.parse(language)
    return bits


class FailReason(IntEnum):
    """``ISynthesisRouter.FailReason``: why an operator could not serve a request (the buyer is refunded)."""

    def __new__(cls, value: int, description: str) -> FailReason:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    MODEL_UNAVAILABLE = 0, "the operator does not (or can no longer) serve this model"
    BUNDLE_UNAVAILABLE = 1, "the operator cannot find the model's bundle in its store"
    BUNDLE_CORRUPT = 2, "the model's bundle does not match its CID or SHA-256"
    BUNDLE_UNDECRYPTABLE = 3, "the model's bundle is not sealed to this operator's key"
    INPUT_UNAVAILABLE = 4, "the operator cannot fetch the text by its CID"
    BAD_INPUT = 5, "the text or the parameters are malformed, do not match inputHash, or are sealed to another key"
    UNSUPPORTED_LANGUAGE = 6, "the operator's engine cannot speak this language"
    TEXT_TOO_LONG = 7, "the text is longer than this operator accepts"
    SYNTHESIS_ERROR = 8, "the operator's engine failed on this text"
    OUTPUT_STORAGE_ERROR = 9, "the operator could not store the audio"

    @property
    def label(self) -> str:
        """``TextTooLong``: the Solidity name, as explorers and logs show it."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    def explain(self) -> str:
        """``TextTooLong (7): the text is longer than this operator accepts``."""
        return f"{self.label} ({int(self)}): {self.description}"


class RequestStatus(IntEnum):
    """``ISynthesisRouter.RequestStatus``."""

    NONE = 0
    PENDING = 1
    FULFILLED = 2
    DISPUTED = 3
    SETTLED = 4
    REVERSED = 5
    FAILED = 6
    EXPIRED = 7

    @property
    def label(self) -> str:
        """``pending``, ``fulfilled``, ...: what logs and commands print."""
        return self.name.lower()

    @property
    def is_final(self) -> bool:
        """Nothing more happens to the request's fee: paid out for good or refunded."""
        return self in (RequestStatus.SETTLED, RequestStatus.REVERSED, RequestStatus.FAILED, RequestStatus.EXPIRED)


class LocalUseStatus(IntEnum):
    """``IKeyDelivery.Status``: a licence's local-use purchase (docs/local-use.md)."""

    NONE = 0
    PENDING = 1
    DELIVERED = 2
    REFUNDED = 3
    SETTLED = 4
    DISPROVED = 5

    @property
    def label(self) -> str:
        return self.name.lower()


# ---------------------------------------------------------------- rules the contracts apply


def renewal_lead(period: int) -> int:
    """How long before expiry a keeper may renew a subscription of ``period``: ``Protocol.renewalLead``."""
    return min(RENEWAL_LEAD, int(period))


def model_id(creator: str, bundle_digest: bytes) -> int:
    """The model id ``creator`` gets for a bundle: ``uint256(keccak256(abi.encode(creator, digest)))``
    (the registry's ``modelIdOf``). It binds the bundle to its creator, so no one else can take it."""
    from eth_abi import encode
    from eth_utils import keccak

    return int.from_bytes(keccak(encode(["address", "bytes32"], [str(creator), bytes(bundle_digest)])), "big")


def share(amount: int, bps: int) -> int:
    """``Protocol.share``: ``amount * bps / BPS``, rounded down."""
    return int(amount) * int(bps) // BPS


def split_revenue(amount: int, creator: str, payees: Sequence[tuple[str, int]]) -> dict[str, int]:
    """A model's ``amount`` split as ``RevenueLedger.distribute`` splits it.

    Each payee (``(account, bps)`` as ``registry.revenueSplit`` returns them) gets
    :func:`share` of ``amount``; the creator gets the rest, rounding included.
    """
    out: dict[str, int] = {}
    rest = int(amount)
    for account, bps in payees:
        cut = share(amount, bps)
        out[account] = out.get(account, 0) + cut
        rest -= cut
    out[creator] = out.get(creator, 0) + rest
    return out

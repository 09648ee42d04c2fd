"""The Python side of voicemarket's contracts, shared by scripts, the oracle, tests and benchmarks.

- :func:`deploy` deploys and wires the contracts (registry, licence manager with the offer book
  it creates, router), with roles, and returns a :class:`Deployment` of Ape contract instances.
- :func:`sign_consent` signs the voice owner's EIP-712 ``VoiceConsent`` with an Ape account;
  :func:`model_registration` builds the ``registerModel`` argument; :func:`model_id` is the id a
  creator gets for a bundle (``keccak256(abi.encode(creator, bundleDigest))``).
- :class:`SynthesisParams` packs and unpacks the request's ``params`` word; :func:`inline_input`,
  :func:`cid_input`, :func:`private_input`, :func:`private_cid_input` and :func:`input_hash` build the
  request's input fields, :class:`RequestInput` reads one back;
  :func:`request_from_log` turns a ``SynthesisRequested`` log into the struct that ``fulfil`` /
  ``fail`` / ``cancelExpired`` take back.
- :func:`cid_parts` / :func:`cid_from_chain` convert between CIDs and what the chain stores
  (a codec byte and a SHA2-256 digest; the binary CIDv1 the views return).

Contract addresses, ABIs and events are those of the compiled artifacts in ``.build/``
(``ape compile``). See docs/contracts.md for the architecture and the money flows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from voicemarket.content.multiformats import CID
from voicemarket.protocol import DAY, Language

MAX_INPUT_BYTES = 512
CONSENT_DOMAIN_NAME = "voicemarket VoiceModelRegistry"
CONSENT_DOMAIN_VERSION = "1"

__all__ = [
    "MAX_INPUT_BYTES",
    "SynthesisParams",
    "Deployment",
    "deploy",
    "consent_typed_data",
    "sign_consent",
    "model_registration",
    "cid_parts",
    "cid_from_chain",
    "inline_input",
    "cid_input",
    "private_input",
    "private_cid_input",
    "RequestInput",
    "input_hash",
    "request_from_log",
]


# ---------------------------------------------------------------- synthesis parameters and input


def _centi(value: float | None, name: str, low: float, high: float, bits: int) -> int:
    if value is None:
        return 0
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    scaled = round(value * 100)
    if not 0 < scaled < 1 << bits:
        raise ValueError(f"{name} {value} does not fit the packed parameters")
    return scaled


@dataclass(frozen=True)
class SynthesisParams:
    """The request's packed ``params`` (uint128). ``None`` (packed as 0) means the engine's default.

    Layout, low bits first: language (8), speed x100 (16), top-k (8), top-p x100 (8),
    temperature x100 (8), repetition penalty x100 (8), seed (32), the shortest dispute window in
    seconds the buyer accepts (24: the request reverts if the model's is shorter, so its owner
    cannot cut it under a request on its way); bits 112..127 are zero.
    """

    language: Language
    speed: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    repetition_penalty: float | None = None
    seed: int = 0
    min_dispute_window: int = 0

    def pack(self) -> int:
        language = Language.parse(self.language)
        top_k = self.top_k or 0
        if not 0 <= top_k < 256:
            raise ValueError(f"top_k must be 1..255, got {top_k}")
        if not 0 <= self.seed < 1 << 32:
            raise ValueError(f"seed must be a 32-bit unsigned integer, got {self.seed}")
        if not 0 <= self.min_dispute_window < 1 << 24:
            raise ValueError(f"min_dispute_window must be 0..{(1 << 24) - 1} seconds, got {self.min_dispute_window}")
        return (
            int(language)
            | _centi(self.speed, "speed", 0.25, 4.0, 16) << 8
            | top_k << 24
            | _centi(self.top_p, "top_p", 0.01, 1.0, 8) << 32
            | _centi(self.temperature, "temperature", 0.01, 2.55, 8) << 40
            | _centi(self.repetition_penalty, "repetition_penalty", 0.01, 2.55, 8) << 48
            | self.seed << 56
            | self.min_dispute_window << 88
        )

    @classmethod
    def unpack(cls, packed: int) -> SynthesisParams:
        if packed >> 112:
            raise ValueError(f"reserved bits set in params {packed:#x}")

        def centi(shift: int, bits: int) -> float | None:
            raw = (packed >> shift) & ((1 << bits) - 1)
            return raw / 100 if raw else None

        return cls(
            language=Language(packed & 0xFF),
            speed=centi(8, 16),
            top_k=((packed >> 24) & 0xFF) or None,
            top_p=centi(32, 8),
            temperature=centi(40, 8),
            repetition_penalty=centi(48, 8),
            seed=(packed >> 56) & 0xFFFFFFFF,
            min_dispute_window=(packed >> 88) & 0xFFFFFF,
        )


def inline_input(text: str) -> bytes:
    """The request's ``input`` for text carried inline: 0x00 then the UTF-8 text."""
    data = b"\x00" + text.encode("utf-8")
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(
            f"inline text is {len(data) - 1} bytes; at most {MAX_INPUT_BYTES - 1} fit on-chain: "
            "store the text and pass its CID (cid_input) instead"
        )
    return data


def cid_input(cid: CID | str | bytes) -> bytes:
    """The request's ``input`` for text stored elsewhere: the binary CID of the UTF-8 text file."""
    return CID.parse(cid).to_bytes()


PRIVATE_INLINE = 0x02
PRIVATE_BY_CID = 0x03


def private_input(box: bytes) -> bytes:
    """The request's ``input`` for a private request's sealed envelope carried inline: 0x02 then the box
    (:mod:`voicemarket.content.envelopes`). ValueError if it does not fit: store it, use :func:`private_cid_input`."""
    data = bytes([PRIVATE_INLINE]) + bytes(box)
    if len(data) > MAX_INPUT_BYTES:
        raise ValueError(f"the sealed envelope is {len(box)} bytes; at most {MAX_INPUT_BYTES - 1} fit on-chain")
    return data


def private_cid_input(cid: CID | str | bytes) -> bytes:
    """The request's ``input`` for a private request's sealed envelope stored elsewhere: 0x03 then its binary CID."""
    return bytes([PRIVATE_BY_CID]) + CID.parse(cid).to_bytes()


@dataclass(frozen=True)
class RequestInput:
    """What a request's ``input`` holds: inline bytes or a CID, of plain text or of a sealed envelope.

    Tags (the first byte): 0x00 text inline; 0x02 sealed envelope inline; 0x03 the CID of a sealed
    envelope; anything else is the binary CID of a text file (a CIDv1 starts with 0x01, a CIDv0 with 0x12).
    """

    private: bool
    inline: bytes | None = None  # the text's UTF-8 bytes, or the sealed box
    cid: CID | None = None

    @classmethod
    def parse(cls, data: bytes) -> RequestInput:
        """Raises :class:`~voicemarket.errors.InvalidCID` for bytes that are neither (a buyer's mistake)."""
        data = bytes(data)
        if not data:
            raise ValueError("the request carries no input")
        tag = data[0]
        if tag == 0x00:
            return cls(False, inline=data[1:])
        if tag == PRIVATE_INLINE:
            return cls(True, inline=data[1:])
        if tag == PRIVATE_BY_CID:
            return cls(True, cid=CID.from_bytes(data[1:]))
        return cls(False, cid=CID.from_bytes(data))


def input_hash(text: str) -> bytes:
    """The request's ``inputHash``: SHA-256 of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).digest()


# ---------------------------------------------------------------- content ids


def cid_parts(cid: CID | str | bytes) -> tuple[int, bytes]:
    """(codec, digest) as ``registerModel`` / ``setMetadata`` take a CID."""
    parsed = CID.parse(cid)
    return parsed.codec, parsed.digest


def cid_from_chain(data: bytes) -> CID:
    """The CID that a view such as ``registry.bundleCid(id)`` returns (binary CIDv1)."""
    return CID.from_bytes(bytes(data))


# ---------------------------------------------------------------- consent and registration


EIP712_DOMAIN = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
"""The EIP-712 domain fields every voicemarket contract signs under (name, version, chain, contract)."""


def consent_typed_data(
    registry_address: str,
    chain_id: int,
    *,
    voice_owner: str,
    bundle_digest: bytes,
    creator: str,
    policy_hash: bytes,
    voice_owner_bps: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The EIP-712 ``VoiceConsent`` message (eth_account's ``full_message`` form). It names the
    voice owner and their consent nonce (``registry.consentNonce``; ``revokeConsents`` raises it)."""
    return {
        "types": {
            "EIP712Domain": EIP712_DOMAIN,
            "VoiceConsent": [
                {"name": "voiceOwner", "type": "address"},
                {"name": "bundleDigest", "type": "bytes32"},
                {"name": "creator", "type": "address"},
                {"name": "policyHash", "type": "bytes32"},
                {"name": "voiceOwnerBps", "type": "uint16"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "VoiceConsent",
        "domain": {
            "name": CONSENT_DOMAIN_NAME,
            "version": CONSENT_DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": registry_address,
        },
        "message": {
            "voiceOwner": voice_owner,
            "bundleDigest": bytes(bundle_digest),
            "creator": creator,
            "policyHash": bytes(policy_hash),
            "voiceOwnerBps": voice_owner_bps,
            "nonce": nonce,
            "deadline": deadline,
        },
    }


def sign_consent(
    voice_owner,
    registry,
    *,
    bundle_digest: bytes,
    creator: str,
    policy_hash: bytes,
    voice_owner_bps: int,
    deadline: int,
    nonce: int | None = None,
) -> bytes:
    """The voice owner's 65-byte signature (r, s, v) of their consent, signed with an Ape account.

    ``registry`` is the registry contract (the chain id is the connected one). ``nonce`` defaults
    to the voice owner's current consent nonce, read from the registry.
    """
    import ape
    from eth_account.messages import encode_typed_data

    address = getattr(registry, "address", registry)
    if nonce is None:
        nonce = int(registry.consentNonce(voice_owner.address))
    message = consent_typed_data(
        address,
        ape.chain.chain_id,
        voice_owner=str(voice_owner.address),
        bundle_digest=bundle_digest,
        creator=str(creator),
        policy_hash=policy_hash,
        voice_owner_bps=voice_owner_bps,
        nonce=nonce,
        deadline=deadline,
    )
    signature = voice_owner.sign_message(encode_typed_data(full_message=message))
    if signature is None:
        raise PermissionError(f"account {voice_owner.address} declined to sign the consent")
    return signature.encode_rsv()


def model_registration(
    *,
    bundle_digest: bytes,
    bundle_cid: CID | str | bytes,
    metadata_cid: CID | str | bytes,
    languages: int,
    voice_owner: str,
    voice_owner_bps: int = 0,
    co_creators: list[tuple[str, int]] | tuple[()] = (),
    policy_hash: bytes = bytes(32),
    consent_deadline: int = 0,
    consent_signature: bytes = b"",
    royalty_bps: int = 0,
    dispute_window: int = 0,
    parent_id: int = 0,
) -> dict[str, Any]:
    """The ``ModelRegistration`` struct for ``registry.registerModel`` (a dict Ape encodes)."""
    bundle_codec, bundle_digest_in_cid = cid_parts(bundle_cid)
    metadata_codec, metadata_digest = cid_parts(metadata_cid)
    return {
        "bundleDigest": bytes(bundle_digest),
        "bundleCid": bundle_digest_in_cid,
        "bundleCodec": bundle_codec,
        "metadataCid": metadata_digest,
        "metadataCodec": metadata_codec,
        "languages": languages,
        "royaltyBps": royalty_bps,
        "disputeWindow": dispute_window,
        "parentId": parent_id,
        "voiceOwner": str(voice_owner),
        "voiceOwnerBps": voice_owner_bps,
        "coCreators": [(str(account), bps) for account, bps in co_creators],
        "policyHash": bytes(policy_hash),
        "consentDeadline": consent_deadline,
        "consentSignature": bytes(consent_signature),
    }


# ---------------------------------------------------------------- requests

REQUEST_FIELDS = (
    "id",
    "modelId",
    "licenseId",
    "requester",
    "operator",
    "asset",
    "usePrice",
    "fee",
    "params",
    "inputHash",
    "deadline",
    "disputeWindow",
    "useTag",
    "platformFeeBps",
)
"""The fields of ISynthesisRouter.SynthesisRequest, in order."""


def request_from_log(log) -> tuple:
    """The ``SynthesisRequest`` of a ``SynthesisRequested`` log, as the tuple that ``fulfil``,
    ``fail``, ``cancelExpired``, ``dispute``, ``resolveDispute`` and ``settle`` take back."""
    request = log.request if hasattr(log, "request") else log["request"]
    return tuple(_field(request, name, i) for i, name in enumerate(REQUEST_FIELDS))


def _field(struct, name: str, index: int):
    if isinstance(struct, dict):
        return struct[name]
    if hasattr(struct, name):
        return getattr(struct, name)
    return struct[index]


# ---------------------------------------------------------------- deployment


@dataclass
class Deployment:
    """The deployed, wired contracts (Ape contract instances)."""

    registry: Any
    licenses: Any
    router: Any
    stablecoin: Any | None = None
    deployer: Any = None
    roles: dict[str, str] = field(default_factory=dict)
    offers: Any = None  # the OfferBook the licence manager created (publishOffer, deactivateOffer)
    key_delivery: Any = None  # local-use licences: escrow and key deliveries (docs/local-use.md)

    def __post_init__(self) -> None:
        if self.offers is None:
            import ape

            self.offers = ape.project.OfferBook.at(self.licenses.offerBook())

    @property
    def addresses(self) -> dict[str, str]:
        out = {
            "registry": self.registry.address,
            "licenses": self.licenses.address,
            "offers": self.offers.address,
            "router": self.router.address,
        }
        if self.stablecoin is not None:
            out["stablecoin"] = self.stablecoin.address
        if self.key_delivery is not None:
            out["keyDelivery"] = self.key_delivery.address
        return out


def deploy(
    deployer,
    *,
    platform_fee_bps: int = 2_000,
    retirement_notice: int = 45 * DAY,
    stablecoin: Any | str | None = None,
    min_stake: int = 10**17,
    slash_amount: int = 10**16,
    unbonding_delay: int = 8 * DAY,
    dispute_bond: int = 0,
    admin=None,
    arbiter=None,
    treasurer=None,
    pauser=None,
    fee_manager=None,
    project=None,
) -> Deployment:
    """Deploy and wire the registry, the licence manager and the router; grant the roles.

    ``stablecoin``: ``None`` (ETH only), ``"mock"`` (deploy the test MockStablecoin), or an
    ERC-20 (contract or address) to allow-list as a payment asset. Every role defaults to the
    deployer. Each call deploys a fresh set (repeatable on any chain).
    """
    import ape

    project = project or ape.project
    admin = admin or deployer
    roles = {
        "admin": str(admin.address if hasattr(admin, "address") else admin),
        "arbiter": _address(arbiter or deployer),
        "treasurer": _address(treasurer or deployer),
        "pauser": _address(pauser or deployer),
        "fee_manager": _address(fee_manager or deployer),
    }
    # The deployer administers while wiring, then hands over to `admin` if they differ.
    registry = deployer.deploy(project.VoiceModelRegistry, deployer, retirement_notice)
    licenses = deployer.deploy(project.LicenseManager, deployer, registry, platform_fee_bps)
    router = deployer.deploy(
        project.SynthesisRouter, deployer, registry, licenses, min_stake, slash_amount, unbonding_delay
    )
    licenses.setRouter(router, sender=deployer)
    key_delivery = deployer.deploy(project.KeyDelivery, licenses)
    if dispute_bond:
        router.setDisputeBond(dispute_bond, sender=deployer)
    registry.grantRole(registry.ARBITER_ROLE(), roles["arbiter"], sender=deployer)
    licenses.grantRole(licenses.FEE_MANAGER_ROLE(), roles["fee_manager"], sender=deployer)
    for contract in (licenses, router):
        contract.grantRole(contract.PAUSER_ROLE(), roles["pauser"], sender=deployer)
        contract.grantRole(contract.TREASURER_ROLE(), roles["treasurer"], sender=deployer)
    router.grantRole(router.ARBITER_ROLE(), roles["arbiter"], sender=deployer)

    token = None
    if stablecoin == "mock":
        token = deployer.deploy(project.MockStablecoin)
    elif stablecoin is not None:
        token = stablecoin if hasattr(stablecoin, "address") else project.MockStablecoin.at(stablecoin)
    if token is not None:
        licenses.setAssetAllowed(token, True, sender=deployer)

    if roles["admin"] != deployer.address:
        for contract in (registry, licenses, router):
            contract.grantRole(contract.DEFAULT_ADMIN_ROLE(), roles["admin"], sender=deployer)
            contract.renounceRole(contract.DEFAULT_ADMIN_ROLE(), deployer, sender=deployer)
    offers = project.OfferBook.at(licenses.offerBook())
    return Deployment(registry, licenses, router, token, deployer, roles, offers, key_delivery)


def _address(account) -> str:
    return str(account.address if hasattr(account, "address") else account)

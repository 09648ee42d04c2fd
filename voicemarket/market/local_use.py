"""Local-use licences from Python: the option, the purchase, the wrapped key, fetch-model, usage reports.

A local-use licence lets a licence holder run a voice on their own machine: the model's data key
(the one key that opens its sealed bundle) is wrapped to the buyer's encryption key
(:class:`~voicemarket.market.buyer_key.BuyerKey`, derived from one wallet signature) by the model's
key holder, stored under a CID, and recorded on-chain by the ``KeyDelivery`` contract, which holds
the buyer's payment in escrow until then (docs/local-use.md).

- Each purchase names a **licence key** (:func:`license_private_key`: derived from the buyer's
  encryption key and the licence id, one per licence, so that revealing it in a dispute reveals
  nothing else).
- The wrapped key (:func:`wrap_license_key`, 66 bytes, public data) is ``0x01 || E || c``: E the
  compressed ephemeral public key, c the data key XOR keccak256(abi.encode(address(e·B), licence,
  chain id, KeyDelivery)). The contract can unwrap it itself given the licence key, which is what
  makes a wrong delivery provable on-chain (:func:`dispute_delivery`).
- :func:`fetch_model` reads the delivery from the chain, fetches the sealed bundle by CID and the
  wrapped key (from the store by its CID, else from the delivery's event), unwraps it with the
  licence key, checks its key id against the option's, decrypts, checks the bundle's SHA-256 against
  the model id and its creator, and extracts the voice folder atomically (complete or absent).
- Usage reports: :class:`UsageReport`, signed as EIP-712 typed data by the buyer's account
  (:func:`sign_usage_report`), submitted in batches (:func:`submit_usage_reports`); they are
  self-reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import coincurve
from eth_utils import keccak, to_canonical_address

from voicemarket.content.multiformats import CID
from voicemarket.content.sealing import key_id, normalise_public_key, public_key_from_private
from voicemarket.errors import DecryptionError, LocalUseError
from voicemarket.market.chain import EIP712_DOMAIN
from voicemarket.protocol import ETH, LocalUseStatus, Tier

DOMAIN_NAME = "voicemarket KeyDelivery"
DOMAIN_VERSION = "1"
USAGE_REPORT_FIELDS = (
    ("licenseId", "uint256"),
    ("periodStart", "uint40"),
    ("periodEnd", "uint40"),
    ("sentences", "uint32"),
    ("audioSeconds", "uint32"),
)
KEY_NOT_RETURNABLE = (
    "a delivered key cannot be taken back: the buyer can run the model on their own machines for good, "
    "whatever becomes of the licence"
)


# ---------------------------------------------------------------- the licence key and the wrapped key

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
WRAPPED_KEY_LENGTH = 66  # 0x01 | compressed ephemeral point (33) | masked data key (32)
_LICENSE_KEY_LABEL = b"voicemarket/local-use/license-key/v1"


def license_private_key(buyer_private_key: bytes, license_id: int) -> bytes:
    """The licence key: the private key that local use of ``license_id`` is bought for, derived from
    the buyer's encryption key (the same on every device). One per licence: a dispute reveals it."""
    scalar = int.from_bytes(keccak(_LICENSE_KEY_LABEL + bytes(buyer_private_key) + int(license_id).to_bytes(32)))
    return ((scalar % SECP256K1_ORDER) or 1).to_bytes(32, "big")


def license_public_key(buyer_private_key: bytes, license_id: int) -> bytes:
    """The 64-byte public key a purchase of ``license_id``'s local use names."""
    return public_key_from_private(license_private_key(buyer_private_key, license_id))


def _mask(shared_point: bytes, license_id: int, chain_id: int, key_delivery: str) -> bytes:
    """keccak256(abi.encode(address(shared point), licence, chain id, KeyDelivery)), as the contract computes it."""
    address = keccak(shared_point)[-20:]
    return keccak(
        address.rjust(32, b"\0")
        + int(license_id).to_bytes(32)
        + int(chain_id).to_bytes(32)
        + to_canonical_address(str(key_delivery)).rjust(32, b"\0")
    )


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def wrap_license_key(
    data_key: bytes, public_key: bytes | str, license_id: int, chain_id: int, key_delivery: str
) -> bytes:
    """The 66 bytes a delivery records: ``data_key`` wrapped to the purchase's public key (format above)."""
    recipient = coincurve.PublicKey(b"\x04" + normalise_public_key(public_key))  # ValueError: not a curve point
    while True:  # an ephemeral x at or above the group order is valid on the curve but not for ecrecover
        ephemeral = coincurve.PrivateKey()
        point = ephemeral.public_key.format(compressed=True)
        if int.from_bytes(point[1:]) < SECP256K1_ORDER:
            break
    shared = recipient.multiply(ephemeral.secret).format(compressed=False)[1:]
    return b"\x01" + point + _xor(data_key, _mask(shared, license_id, chain_id, key_delivery))


def unwrap_license_key(
    wrapped: bytes, license_key: bytes, license_id: int, chain_id: int, key_delivery: str, expected_key_id: bytes
) -> bytes:
    """The data key in a delivered wrapped key, unwrapped with the licence key. :class:`DecryptionError`
    if it is malformed or not the key of ``expected_key_id`` (the option's): a disputable delivery."""
    if len(wrapped) != WRAPPED_KEY_LENGTH or wrapped[0] != 1:
        raise DecryptionError(f"the delivered wrapped key is not a version-1 wrapped key ({len(wrapped)} bytes)")
    try:
        point = coincurve.PublicKey(bytes(wrapped[1:34]))
    except ValueError:
        raise DecryptionError("the delivered wrapped key's ephemeral point is not on the curve") from None
    shared = point.multiply(bytes(license_key)).format(compressed=False)[1:]
    data_key = _xor(bytes(wrapped[34:]), _mask(shared, license_id, chain_id, key_delivery))
    if key_id(data_key) != bytes(expected_key_id):
        raise DecryptionError(
            f"the delivered key of licence {license_id} is not the model's key (its id is {key_id(data_key).hex()}, "
            f"the offer commits to {bytes(expected_key_id).hex()})"
        )
    return data_key


# ---------------------------------------------------------------- reading the chain


def key_delivery_of(deployment: Any) -> Any:
    """The deployment's KeyDelivery contract, or :class:`LocalUseError` saying how to get one."""
    contract = getattr(deployment, "key_delivery", None)
    if contract is None:
        raise LocalUseError(
            "this deployment has no KeyDelivery contract (it was deployed before local-use licences): "
            "deploy again with `ape run deploy`"
        )
    return contract


RAW_CODEC = 0x55


@dataclass(frozen=True)
class LocalUse:
    """``IKeyDelivery.LocalUse`` of one licence, with the delivered key's CID."""

    license_id: int
    status: LocalUseStatus
    buyer: str
    deadline: int
    amount: int
    offer_id: int
    platform_fee_bps: int
    reported_until: int
    key_cid: CID | None  # the wrapped key's (CIDv1, raw), once delivered

    @classmethod
    def read(cls, key_delivery: Any, license_id: int) -> LocalUse:
        record = key_delivery.localUse(license_id)
        status = LocalUseStatus(int(record.status))
        digest = bytes(record.keyDigest)
        cid = CID(1, RAW_CODEC, digest) if any(digest) else None
        return cls(
            int(license_id),
            status,
            str(record.buyer),
            int(record.deadline),
            int(record.amount),
            int(record.offerId),
            int(record.platformFeeBps),
            int(record.reportedUntil),
            cid,
        )


@dataclass(frozen=True)
class LocalUseOption:
    """``IKeyDelivery.LocalUseOption`` of one offer (``None`` from :func:`local_use_option` if it has none)."""

    offer_id: int
    model_id: int
    asset: str
    price: int
    active: bool
    key_id: bytes  # the data key's id that deliveries must open (the sealed bundle's header)


def local_use_option(key_delivery: Any, offer_id: int) -> LocalUseOption | None:
    option = key_delivery.localUseOption(offer_id)
    if int(option.modelId) == 0:
        return None
    return LocalUseOption(
        int(offer_id),
        int(option.modelId),
        str(option.asset),
        int(option.price),
        bool(option.active),
        bytes(option.keyId),
    )


def offer_page_lines(deployment: Any, offers: list[Any]) -> list[str]:
    """What ``ape run offers`` prints about the local-use options of ``offers`` (licensing.OfferView)."""
    from voicemarket.units import format_amount

    key_delivery = getattr(deployment, "key_delivery", None)
    if key_delivery is None:
        return []
    lines = []
    for offer in offers:
        option = local_use_option(key_delivery, offer.offer_id)
        if option is not None and option.active:
            lines.append(
                f"Offer {offer.offer_id} also sells local use for {format_amount(option.price, offer.asset)} per "
                f"licence: the model's decryption key, for your own machines (ape run local-use buy LICENSE_ID)."
            )
    if lines:
        lines.append(f"Local use: {KEY_NOT_RETURNABLE}; the licence's terms still say how you may use the voice.")
    return lines


# ---------------------------------------------------------------- the creator's side


def sealed_key_id(store: Any, model_id: int, registry: Any) -> bytes:
    """The id of the data key that opens ``model_id``'s sealed bundle: the 16 bytes in its header."""
    import tempfile

    from voicemarket.content.sealing import read_header
    from voicemarket.market.chain import cid_from_chain

    cid = cid_from_chain(bytes(registry.bundleCid(model_id)))
    with tempfile.TemporaryDirectory(prefix="voicemarket-sealed-") as scratch:
        path = store.local_path(cid) if hasattr(store, "local_path") else store.get_to_file(cid, Path(scratch) / "b")
        with open(path, "rb") as sealed:
            return read_header(sealed)[2]


def offer_local_use(deployment: Any, offer_id: int, price: int, account: Any, key_id: bytes) -> LocalUseOption:
    """Add the local-use option at ``price`` (in the offer's asset) to a non-transferable buyout or
    subscription offer of ``account``'s model. Once per offer: a new price is a new offer. ``key_id``:
    the id of the data key in the model's sealed bundle (:func:`sealed_key_id`), what deliveries must open."""
    terms = deployment.licenses.offer(offer_id).terms
    if Tier(int(terms.tier)) == Tier.PAY_PER_USE or bool(terms.transferable):
        movable = " that may be transferred" if terms.transferable else ""
        raise LocalUseError(
            f"offer {offer_id} is a {Tier(int(terms.tier)).label} offer{movable}: "
            "local use is offered only on buyout and subscription offers whose licences cannot be transferred "
            "(publish such an offer first)"
        )
    key_delivery = key_delivery_of(deployment)
    key_delivery.offerLocalUse(offer_id, price, bytes(key_id), sender=account)
    option = local_use_option(key_delivery, offer_id)
    assert option is not None
    return option


def name_key_holder(deployment: Any, model_id: int, holder: str, account: Any) -> None:
    """Name ``holder`` (an operator whose key opens the model's keyring) to deliver the model's keys."""
    key_delivery_of(deployment).setKeyHolder(model_id, holder, sender=account)


def purchased_public_key(key_delivery: Any, license_id: int, start_block: int = 0) -> bytes:
    """The public key a licence's local use was bought for (its ``LocalUsePurchased`` event)."""
    import ape

    logs = key_delivery.LocalUsePurchased.range(
        start_block, ape.chain.blocks.head.number + 1, search_topics={"licenseId": int(license_id)}
    )
    for entry in logs:
        return bytes(entry.publicKey)
    raise LocalUseError(f"no local-use purchase of licence {license_id} on this chain since block {start_block}")


def deliver_key(deployment: Any, store: Any, license_id: int, keyring: Any, private_key: bytes, account: Any) -> CID:
    """The key holder's delivery by hand (what the key service does each round): unwrap the model's
    data key from ``keyring`` (a Keyring or its CID) with ``private_key`` (a recipient's), wrap it to
    the purchase's licence key, store it and record the delivery from ``account``. Returns its CID."""
    import ape

    from voicemarket.content.sealed_bundle import load_keyring

    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status != LocalUseStatus.PENDING:
        raise LocalUseError(f"licence {license_id}'s local use is {record.status.label}: there is nothing to deliver")
    start = int(getattr(deployment, "start_block", 0) or 0)
    data_key = load_keyring(store, keyring).unwrap(private_key)
    public_key = purchased_public_key(key_delivery, license_id, start)
    wrapped = wrap_license_key(data_key, public_key, license_id, ape.chain.chain_id, key_delivery.address)
    store.put_bytes(wrapped)
    key_delivery.recordDelivery(license_id, wrapped, sender=account)
    return LocalUse.read(key_delivery, license_id).key_cid


# ---------------------------------------------------------------- the buyer's side


def buy_local_use(deployment: Any, license_id: int, account: Any, public_key: bytes, *, max_price: int) -> LocalUse:
    """Buy local use for ``license_id`` (held by ``account``), the data key to be wrapped to
    ``public_key`` (64 bytes: the licence key's, :func:`license_public_key`; a contract wallet gives
    any key whose private key it keeps for this licence only); pays at most ``max_price`` into escrow
    (an ERC-20 price is approved to the contract first)."""
    key_delivery = key_delivery_of(deployment)
    offer_id = int(deployment.licenses.offerOf(license_id))
    option = local_use_option(key_delivery, offer_id)
    if option is None or not option.active:
        state = "has no local-use option" if option is None else "no longer sells local use"
        raise LocalUseError(f"licence {license_id}'s offer {offer_id} {state}")
    if option.price > max_price:
        raise LocalUseError(f"local use of licence {license_id} costs {option.price}, above --max-price {max_price}")
    key = normalise_public_key(public_key)
    if option.asset == ETH:
        key_delivery.buyLocalUse(license_id, key, max_price, value=option.price, sender=account)
    else:
        import ape

        token = ape.Contract(option.asset, abi=_ERC20_ABI)
        if int(token.allowance(account, key_delivery)) < option.price:
            token.approve(key_delivery, option.price, sender=account)
        key_delivery.buyLocalUse(license_id, key, max_price, sender=account)
    return LocalUse.read(key_delivery, license_id)


def refund_local_use(deployment: Any, license_id: int, account: Any) -> LocalUse:
    """Refund a purchase whose key was not delivered by the deadline (anyone may); the buyer then
    withdraws the credit from the KeyDelivery contract (``withdraw(asset)``)."""
    return _close(deployment, license_id, account, LocalUseStatus.PENDING, "refund")


def settle_local_use(deployment: Any, license_id: int, account: Any) -> LocalUse:
    """Move a delivered licence's payment to the model's pot once its dispute window has passed (anyone may)."""
    return _close(deployment, license_id, account, LocalUseStatus.DELIVERED, "settle")


def _close(deployment: Any, license_id: int, account: Any, status: LocalUseStatus, action: str) -> LocalUse:
    """``refund`` / ``settle`` (anyone's) for a licence in ``status``; :class:`LocalUseError` otherwise."""
    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status != status:
        raise LocalUseError(f"licence {license_id}'s local use is {record.status.label}: nothing to {action}")
    getattr(key_delivery, action)(license_id, sender=account)
    return LocalUse.read(key_delivery, license_id)


def delivered_wrapped_key(deployment: Any, store: Any, license_id: int) -> bytes:
    """The wrapped key recorded for ``license_id``: from the store by its CID, else from the delivery's
    event (the chain keeps it too); either way checked against the digest on-chain."""
    import hashlib

    import ape

    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.key_cid is None:
        raise LocalUseError(f"licence {license_id} has no delivered key")
    if store is not None and store.has(record.key_cid):
        return store.get_bytes(record.key_cid, max_bytes=WRAPPED_KEY_LENGTH)
    start = int(getattr(deployment, "start_block", 0) or 0)
    logs = key_delivery.KeyDelivered.range(
        start, ape.chain.blocks.head.number + 1, search_topics={"licenseId": int(license_id)}
    )
    for entry in logs:
        wrapped = bytes(entry.wrappedKey)
        if hashlib.sha256(wrapped).digest() == record.key_cid.digest:
            return wrapped
    raise LocalUseError(
        f"the wrapped key of licence {license_id} ({record.key_cid}) is neither in the store nor in the logs"
    )


def _license_key(private_key: bytes, license_id: int, license_key: bytes | None) -> bytes:
    return license_private_key(private_key, license_id) if license_key is None else bytes(license_key)


def fetch_model(  # noqa: ANN201
    deployment: Any,
    store: Any,
    license_id: int,
    private_key: bytes,
    out: str | Path,
    *,
    license_key: bytes | None = None,
):
    """Fetch, unwrap, decrypt, verify and extract licence ``license_id``'s voice into the new folder ``out``.

    ``private_key``: the buyer's encryption key (:attr:`BuyerKey.private_key`), from which the licence
    key is derived (or ``license_key``, given outright, e.g. by a contract wallet). Returns the
    :class:`~voicemarket.content.bundle.UnpackedBundle`. :class:`LocalUseError` before delivery;
    :class:`~voicemarket.errors.DecryptionError` for another account's key or a delivered key that is
    not the model's (dispute it: :func:`dispute_delivery`); the store's errors for a missing or
    altered file; the bundle must have the SHA-256 the model id commits to.
    """
    import ape

    from voicemarket.content.sealed_bundle import RegisteredModel, open_bundle_with_key
    from voicemarket.market.chain import cid_from_chain

    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status not in (LocalUseStatus.DELIVERED, LocalUseStatus.SETTLED):
        hint = {
            LocalUseStatus.NONE: "buy local use for it first",
            LocalUseStatus.PENDING: f"wait for the key holder's delivery (refundable from {record.deadline} if none)",
            LocalUseStatus.REFUNDED: "it was refunded without a key",
            LocalUseStatus.DISPROVED: "its delivery was disproved and refunded",
        }[record.status]
        raise LocalUseError(f"licence {license_id} has no delivered key: {hint}")
    option = local_use_option(key_delivery, record.offer_id)
    assert option is not None
    wrapped = delivered_wrapped_key(deployment, store, license_id)
    data_key = unwrap_license_key(
        wrapped,
        _license_key(private_key, license_id, license_key),
        license_id,
        ape.chain.chain_id,
        key_delivery.address,
        option.key_id,
    )
    info = deployment.registry.modelInfo(option.model_id)
    bundle_cid = cid_from_chain(bytes(deployment.registry.bundleCid(option.model_id)))
    registered = RegisteredModel(option.model_id, str(info.creator))
    return open_bundle_with_key(store, bundle_cid, data_key, registered, Path(out))


def dispute_delivery(
    deployment: Any, store: Any, license_id: int, private_key: bytes, account: Any, *, license_key: bytes | None = None
) -> LocalUse:
    """Prove on-chain that licence ``license_id``'s delivered key does not open the model: the buyer is
    refunded. The licence key is revealed, so this first unwraps the key here and refuses
    (:class:`LocalUseError`) if it is the model's: a dispute of a good key fails and would publish it."""
    import ape

    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status != LocalUseStatus.DELIVERED:
        raise LocalUseError(
            f"licence {license_id}'s local use is {record.status.label}: only a delivery in its "
            "dispute window can be disputed"
        )
    option = local_use_option(key_delivery, record.offer_id)
    assert option is not None
    wrapped = delivered_wrapped_key(deployment, store, license_id)
    secret = _license_key(private_key, license_id, license_key)
    try:
        unwrap_license_key(wrapped, secret, license_id, ape.chain.chain_id, key_delivery.address, option.key_id)
    except DecryptionError:
        key_delivery.disputeDelivery(license_id, wrapped, int.from_bytes(secret), sender=account)
        return LocalUse.read(key_delivery, license_id)
    raise LocalUseError(
        f"the key delivered for licence {license_id} is the model's key: there is nothing to dispute "
        "(a dispute would fail and reveal your licence key); if the voice does not open, the sealed bundle "
        "itself is at fault: tell the market's arbiter"
    )


def synth_command(unpacked: Any, hubert_dir: str = "HUBERT_DIR") -> list[str]:
    """The ``python -m synth say`` command line for an extracted voice folder."""
    manifest = unpacked.manifest
    return [
        "python",
        "-m",
        "synth",
        "say",
        "--gpt",
        str(unpacked.gpt_checkpoint),
        "--sovits",
        str(unpacked.sovits_checkpoint),
        "--hubert",
        str(hubert_dir),
        "--ref",
        str(unpacked.reference_audio),
        "--ref-text",
        manifest.reference_text,
        "--ref-lang",
        manifest.reference_language,
    ]


# ---------------------------------------------------------------- usage reports


@dataclass(frozen=True)
class UsageReport:
    """One device's account of a licence's use over [period_start, period_end) (unix seconds)."""

    license_id: int
    period_start: int
    period_end: int
    sentences: int
    audio_seconds: int

    def __post_init__(self) -> None:
        if not 0 <= self.period_start < self.period_end < 2**40:
            raise LocalUseError(f"a usage period must start before it ends, got {self.period_start}..{self.period_end}")
        if not (0 <= self.sentences < 2**32 and 0 <= self.audio_seconds < 2**32):
            raise LocalUseError("sentences and seconds of audio are counts below 2**32")

    def as_struct(self) -> dict[str, int]:
        values = (self.license_id, self.period_start, self.period_end, self.sentences, self.audio_seconds)
        return {name: int(value) for (name, _), value in zip(USAGE_REPORT_FIELDS, values, strict=True)}


def usage_report_typed_data(key_delivery: str, chain_id: int, report: UsageReport) -> dict[str, Any]:
    """The EIP-712 typed data (``eth_signTypedData_v4``) of ``report`` for the KeyDelivery at ``key_delivery``."""
    return {
        "types": {
            "EIP712Domain": EIP712_DOMAIN,
            "UsageReport": [{"name": name, "type": kind} for name, kind in USAGE_REPORT_FIELDS],
        },
        "primaryType": "UsageReport",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": int(chain_id),
            "verifyingContract": str(key_delivery),
        },
        "message": report.as_struct(),
    }


def sign_usage_report(account: Any, key_delivery: str, chain_id: int, report: UsageReport) -> bytes:
    """``account`` (an Ape account, or anything with ``sign_message``) signs ``report`` (65 bytes, r||s||v)."""
    from eth_account.messages import encode_typed_data

    typed = usage_report_typed_data(key_delivery, chain_id, report)
    signature = account.sign_message(encode_typed_data(full_message=typed))
    if signature is None:
        raise LocalUseError(f"account {account.address} did not sign the usage report")
    return signature.encode_rsv() if hasattr(signature, "encode_rsv") else bytes(signature.signature)


def submit_usage_reports(deployment: Any, signed: list[tuple[UsageReport, bytes]], account: Any) -> Any:
    """Submit signed reports in one transaction from ``account`` (anyone may); returns the receipt.
    Each licence's reports must be in time order and not overlap the last one on-chain."""
    key_delivery = key_delivery_of(deployment)
    ordered = sorted(signed, key=lambda pair: (pair[0].license_id, pair[0].period_start))
    for report, _ in ordered:
        record = LocalUse.read(key_delivery, report.license_id)
        if record.status not in (LocalUseStatus.DELIVERED, LocalUseStatus.SETTLED):
            raise LocalUseError(f"licence {report.license_id} has no delivered key: nothing to report on")
        if report.period_start < record.reported_until:
            raise LocalUseError(
                f"licence {report.license_id}: the period starting {report.period_start} overlaps what was reported "
                f"(up to {record.reported_until}); report from there on"
            )
    return key_delivery.reportUsage(
        [report.as_struct() for report, _ in ordered], [signature for _, signature in ordered], sender=account
    )


@dataclass(frozen=True)
class LicenceUsage:
    """What a licence's devices reported, summed (self-reported: docs/local-use.md)."""

    license_id: int
    buyer: str
    reports: int
    sentences: int
    audio_seconds: int
    first_start: int
    last_end: int


def usage_by_licence(deployment: Any, model_id: int, start_block: int | None = None) -> list[LicenceUsage]:
    """The usage reports on-chain for ``model_id``'s local-use licences, summed per licence."""
    import ape

    key_delivery = key_delivery_of(deployment)
    start = int(getattr(deployment, "start_block", 0) or 0) if start_block is None else start_block
    totals: dict[int, list[int]] = {}
    for entry in key_delivery.UsageReported.range(start, ape.chain.blocks.head.number + 1):
        row = totals.setdefault(int(entry.licenseId), [0, 0, 0, int(entry.periodStart), 0])
        row[0] += 1
        row[1] += int(entry.sentences)
        row[2] += int(entry.audioSeconds)
        row[3] = min(row[3], int(entry.periodStart))
        row[4] = max(row[4], int(entry.periodEnd))
    out = []
    for license_id, (reports, sentences, seconds, first, last) in sorted(totals.items()):
        record = LocalUse.read(key_delivery, license_id)
        if int(key_delivery.localUseOption(record.offer_id).modelId) == int(model_id):
            out.append(LicenceUsage(license_id, record.buyer, reports, sentences, seconds, first, last))
    return out


_ERC20_ABI = [
    {
        "type": "function",
        "name": "allowance",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
]

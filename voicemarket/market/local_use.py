"""Local-use licences from Python: the option, the purchase, the wrapped key, fetch-model, usage reports.

A local-use licence lets a licence holder run a voice on their own machine: the model's data key
(the one key that opens its sealed bundle) is wrapped to the buyer's encryption key
(:class:`~voicemarket.market.buyer_key.BuyerKey`, derived from one wallet signature) by the model's
key holder, stored under a CID, and recorded on-chain by the ``KeyDelivery`` contract, which holds
the buyer's payment in escrow until then (docs/local-use.md).

- The wrapped key is a keyring document (:class:`~voicemarket.content.sealing.Keyring`) with one
  recipient, the buyer's key: :func:`wrapped_key_document`. It is public data.
- :func:`fetch_model` reads the delivery from the chain, fetches the sealed bundle and the wrapped
  key by CID, unwraps with the buyer's key, decrypts, checks the bundle's SHA-256 against the
  model id and its creator, and extracts the voice folder atomically (a folder is either complete
  or absent).
- Usage reports: :class:`UsageReport`, signed as EIP-712 typed data by the buyer's account
  (:func:`sign_usage_report`), submitted in batches (:func:`submit_usage_reports`); they are
  self-reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicemarket.content.multiformats import CID
from voicemarket.content.sealing import Keyring, key_id, normalise_public_key, wrap_key
from voicemarket.errors import LocalUseError
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


# ---------------------------------------------------------------- the wrapped key


def wrapped_key_document(data_key: bytes, public_key: bytes | str) -> bytes:
    """The bytes stored under a delivery's CID: a keyring with the buyer's key as its one recipient."""
    return Keyring(key_id(data_key), (wrap_key(data_key, normalise_public_key(public_key)),)).to_bytes()


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
    key_cid: CID | None

    @classmethod
    def read(cls, key_delivery: Any, license_id: int) -> LocalUse:
        record = key_delivery.localUse(license_id)
        status = LocalUseStatus(int(record.status))
        cid = None
        if status == LocalUseStatus.DELIVERED:
            cid = CID(1, int(record.keyCodec), bytes(record.keyDigest))
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


def local_use_option(key_delivery: Any, offer_id: int) -> LocalUseOption | None:
    option = key_delivery.localUseOption(offer_id)
    if int(option.modelId) == 0:
        return None
    return LocalUseOption(int(offer_id), int(option.modelId), str(option.asset), int(option.price), bool(option.active))


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


def offer_local_use(deployment: Any, offer_id: int, price: int, account: Any) -> LocalUseOption:
    """Add the local-use option at ``price`` (in the offer's asset) to a non-transferable buyout or
    subscription offer of ``account``'s model. Once per offer: a new price is a new offer."""
    terms = deployment.licenses.offer(offer_id).terms
    if Tier(int(terms.tier)) == Tier.PAY_PER_USE or bool(terms.transferable):
        movable = " that may be transferred" if terms.transferable else ""
        raise LocalUseError(
            f"offer {offer_id} is a {Tier(int(terms.tier)).label} offer{movable}: "
            "local use is offered only on buyout and subscription offers whose licences cannot be transferred "
            "(publish such an offer first)"
        )
    key_delivery = key_delivery_of(deployment)
    key_delivery.offerLocalUse(offer_id, price, sender=account)
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
    the buyer's key, store it and record the delivery from ``account``. Returns the wrapped key's CID."""
    from voicemarket.content.sealed_bundle import load_keyring
    from voicemarket.market.chain import cid_parts

    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status != LocalUseStatus.PENDING:
        raise LocalUseError(f"licence {license_id}'s local use is {record.status.label}: there is nothing to deliver")
    start = int(getattr(deployment, "start_block", 0) or 0)
    data_key = load_keyring(store, keyring).unwrap(private_key)
    cid = store.put_bytes(wrapped_key_document(data_key, purchased_public_key(key_delivery, license_id, start)))
    codec, digest = cid_parts(cid)
    key_delivery.recordDelivery(license_id, codec, digest, sender=account)
    return cid


# ---------------------------------------------------------------- the buyer's side


def buy_local_use(deployment: Any, license_id: int, account: Any, public_key: bytes, *, max_price: int) -> LocalUse:
    """Buy local use for ``license_id`` (held by ``account``), the data key to be wrapped to
    ``public_key`` (the buyer's encryption key, 64 bytes); pays at most ``max_price`` into escrow
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
    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status != LocalUseStatus.PENDING:
        raise LocalUseError(f"licence {license_id}'s local use is {record.status.label}: nothing to refund")
    key_delivery.refund(license_id, sender=account)
    return LocalUse.read(key_delivery, license_id)


def fetch_model(deployment: Any, store: Any, license_id: int, private_key: bytes, out: str | Path):  # noqa: ANN201
    """Fetch, unwrap, decrypt, verify and extract licence ``license_id``'s voice into the new folder ``out``.

    ``private_key``: the buyer's encryption key (:attr:`BuyerKey.private_key`). Returns the
    :class:`~voicemarket.content.bundle.UnpackedBundle`. :class:`LocalUseError` before delivery;
    :class:`~voicemarket.errors.DecryptionError` for another account's key; the store's errors for a
    missing or altered file; the bundle must have the SHA-256 the model id commits to.
    """
    from voicemarket.content.sealed_bundle import RegisteredModel, open_bundle
    from voicemarket.market.chain import cid_from_chain

    key_delivery = key_delivery_of(deployment)
    record = LocalUse.read(key_delivery, license_id)
    if record.status != LocalUseStatus.DELIVERED:
        hint = {
            LocalUseStatus.NONE: "buy local use for it first",
            LocalUseStatus.PENDING: f"wait for the key holder's delivery (refundable from {record.deadline} if none)",
            LocalUseStatus.REFUNDED: "it was refunded without a key",
        }[record.status]
        raise LocalUseError(f"licence {license_id} has no delivered key: {hint}")
    model_id = int(key_delivery.localUseOption(record.offer_id).modelId)
    info = deployment.registry.modelInfo(model_id)
    bundle_cid = cid_from_chain(bytes(deployment.registry.bundleCid(model_id)))
    registered = RegisteredModel(model_id, str(info.creator))
    return open_bundle(store, bundle_cid, record.key_cid, private_key, registered, Path(out))


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
        if record.status != LocalUseStatus.DELIVERED:
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

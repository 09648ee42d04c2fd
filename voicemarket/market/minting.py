"""Minting a voice model in one call: pack, seal, store, register with consent, publish offers.

What ``ape run mint`` does (and what demos and tests call directly)::

    result = mint_voice(creator, deployment, "my-voice/", offers=read_offers("offers.yaml", deployment),
                        operators=["0xOperator..."], store=open_store("local:.voicemarket/store"))
    result.model_id, result.bundle_cid, result.keyring_cid, result.offers

1. The model folder (:func:`read_model_folder`, format below) becomes a bundle, sealed for the
   chosen operators' public keys (read from their on-chain registration,
   ``router.operatorPublicKey``) and the creator's own key, and stored with its keyring,
   preview clip and ERC-721 metadata. The preview is public, so it is never the reference clip
   or a recording (:func:`prepare_preview`): by default the model itself speaks a short text.
2. The voice owner consents: ``consent.json`` in the bundle records the offers' terms and
   their *consent policy hash* (:func:`consent_policy_hash`: keccak256 of the canonical terms,
   independent of the model id, so the bundle can record it), which the voice owner signs
   with EIP-712 ``VoiceConsent`` over the bundle digest. No signature is needed when the
   creator is the voice owner.
3. The model is registered, the operators allowed to serve it, and each offer published with
   the keccak256 of its ODRL document (:mod:`voicemarket.content.odrl`) as ``policyHash``; the ODRL
   documents are stored too (their CIDs are in the result).

Model folder::

    my-voice/
      voice.yaml        name, description, languages, reference {audio, text, language},
                        and optionally preview, gpt, sovits, version, sample_rate,
                        architecture_version, consent_statement
      *.ckpt            the GPT checkpoint (the only one, unless voice.yaml names it: gpt:)
      *.pth             the SoVITS checkpoint (the only one, unless voice.yaml names it: sovits:)
      reference.wav     the reference clip voice.yaml names (sealed in the bundle, never public)
      preview-<id>.wav  the preview the model spoke at an earlier mint (kept, reused while the
                        model, reference and text stay the same)

    preview:                      # left out: the model says DEFAULT_PREVIEW_TEXTS[reference language]
      text: Hello, I narrate.     # the model says this (one or two sentences, at most 15 s)
      language: en
    preview: teaser.wav           # or a WAV clip that is not a recording (checked: refused if it is
                                  # or holds the reference or any other WAV in the folder)

Offers YAML (docs/commands.md shows a full one)::

    asset: ETH                    # default for every offer: ETH, stablecoin, or an ERC-20 address
    offers:
      - tier: subscription        # buyout | subscription | pay-per-use
        price: 0.01 ether         # wei, '<n> ether|gwei', or '<n> <token symbol>'
        period: 30 days
        max_uses: 1000            # per period for subscriptions; 0 = unlimited
        permit: [textToSpeech, commercialize]
        prohibit: [sublicense]
      - tier: pay-per-use
        price: 0.0001 ether
        pack_size: 100            # 0: each use is paid when requested
    # also, per offer: asset, valid_until (unix time, YYYY-MM-DD or '90 days' from now), max_licenses,
    # attribution, transferable, territories [DE, FR], purposes [audiobooks, education]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from eth_utils import is_address, keccak, to_checksum_address

from voicemarket import protocol
from voicemarket.content.bundle import VoiceModelFiles
from voicemarket.content.canonical import canonical_json
from voicemarket.content.odrl import (
    OfferTerms,
    PolicySubject,
    build_policy,
    check_terms,
    contract_offer_terms,
    policy_bytes,
    policy_hash,
)
from voicemarket.content.previews import check_preview
from voicemarket.content.store import ContentStore, store_from_spec
from voicemarket.errors import MintError, PackageError, PreviewError
from voicemarket.market import chain as vm
from voicemarket.market.assets import asset_info
from voicemarket.market.deployments import home
from voicemarket.protocol import Action, Language, Purpose, Tier, language_bits, renewal_lead
from voicemarket.units import format_duration, parse_amount, parse_duration

CONSENT_POLICY_TYPE = "voicemarket/consent-policy"
DEFAULT_CONSENT_STATEMENT = (
    "I am the person whose voice this model reproduces. I consent to its registration and to the sale of "
    "licences to synthesise speech with it under exactly the offers listed here."
)
CONSENT_TTL = 86_400
OFFER_KEYS = {
    "tier",
    "price",
    "asset",
    "period",
    "max_uses",
    "pack_size",
    "valid_until",
    "max_licenses",
    "permit",
    "prohibit",
    "attribution",
    "transferable",
    "territories",
    "purposes",
}
VOICE_KEYS = {
    "name",
    "description",
    "languages",
    "reference",
    "preview",
    "gpt",
    "sovits",
    "version",
    "sample_rate",
    "architecture_version",
    "consent_statement",
}


_ANY_SUBJECT = PolicySubject(1, "0x" + "11" * 20, "0x" + "11" * 20, 0)
DEFAULT_PREVIEW_TEXTS = {
    "en": "Hello, this is a short preview of my voice, spoken by its model.",
    "zh": "你好，这是由我的声音模型朗读的一段简短试听。",
    "ja": "こんにちは、これは私の声のモデルが話す短い試聴です。",
    "ko": "안녕하세요, 이것은 제 목소리 모델이 읽는 짧은 미리 듣기입니다.",
    "yue": "你好，呢段係我把聲嘅模型讀出嚟嘅簡短試聽。",
}
"""What the model says as its preview when voice.yaml names none, by the reference clip's language."""
MAX_PREVIEW_TEXT = 200
PREVIEW_MAX_TOKENS = 250
"""Semantic tokens per sentence of a synthesised preview (25 a second): 10 s."""


# ---------------------------------------------------------------- stores


def default_store_spec() -> str:
    import os

    return os.environ.get("VOICEMARKET_STORE") or f"local:{home() / 'store'}"


def open_store(spec: str | None = None) -> ContentStore:
    """``local:PATH`` (a :class:`LocalStore`) or ``kubo:http://host:5001`` (a :class:`KuboStore`)."""
    try:
        return store_from_spec(spec or default_store_spec())
    except ValueError as exc:
        raise MintError(str(exc)) from None


# ---------------------------------------------------------------- the model folder


def _load_yaml(path: Path, what: str) -> Any:
    import yaml

    if not path.is_file():
        raise MintError(f"{what} {path} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MintError(f"{path} is not valid YAML: {exc}") from None


def _one_file(folder: Path, named: Any, pattern: str, what: str) -> Path:
    if named:
        path = folder / str(named)
        if not path.is_file():
            raise MintError(f"{folder / 'voice.yaml'} names the {what} {named}, which is not in {folder}")
        return path
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        have = ", ".join(p.name for p in found) or "none"
        raise MintError(
            f"{folder} must hold exactly one {pattern} file (the {what}; found: {have}), or voice.yaml must name it"
        )
    return found[0]


def _reject_unknown_keys(spec: dict, known: set[str], where: str) -> None:
    """A YAML mapping may hold only the keys this format knows; name the others and the known ones."""
    unknown = set(spec) - known
    if unknown:
        raise MintError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class PreviewText:
    """A preview the model will speak at minting (:func:`prepare_preview`)."""

    text: str
    language: str


@dataclass(frozen=True)
class ModelFolder:
    """A model folder as read from disk (files checked to exist).

    ``preview`` is a clip, or the text the model will speak (:func:`prepare_preview` turns it into a
    clip); ``recordings`` are the folder's other WAV files, which the preview must not hold;
    ``folder`` is where a synthesised preview is kept.
    """

    name: str
    description: str
    languages: tuple[str, ...]
    gpt: Path
    sovits: Path
    reference_audio: Path
    reference_text: str
    reference_language: str
    preview: Path | PreviewText
    version: str = "1"
    sample_rate: int = 32000
    architecture_version: str = "v2"
    consent_statement: str = DEFAULT_CONSENT_STATEMENT
    recordings: tuple[Path, ...] = ()
    folder: Path | None = None

    @property
    def size(self) -> int:
        files = (self.gpt, self.sovits, self.reference_audio)
        preview = self.preview.stat().st_size if isinstance(self.preview, Path) else 0
        return sum(p.stat().st_size for p in files) + preview


def read_model_folder(folder: str | Path) -> ModelFolder:
    """Read ``folder/voice.yaml`` and find the checkpoints and clips it describes."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MintError(f"the model folder {folder} does not exist")
    spec = _load_yaml(folder / "voice.yaml", "the model description")
    if not isinstance(spec, dict):
        raise MintError(f"{folder / 'voice.yaml'} must be a mapping (name:, languages:, reference:, ...)")
    _reject_unknown_keys(spec, VOICE_KEYS, f"{folder / 'voice.yaml'}")
    reference = spec.get("reference")
    if not isinstance(reference, dict) or not reference.get("audio") or not reference.get("text"):
        raise MintError(
            f"{folder / 'voice.yaml'} needs reference: {{audio: <clip>, text: <its transcript>, language: <code>}}}}"
        )
    languages = spec.get("languages")
    if isinstance(languages, str):
        languages = [languages]
    if not languages or not isinstance(languages, list):
        raise MintError(f"{folder / 'voice.yaml'} needs languages: [en, zh, ...] (zh, en, ja, ko, yue)")
    for code in languages:
        try:
            Language.parse(str(code))
        except ValueError as exc:
            raise MintError(f"{folder / 'voice.yaml'}: {exc}") from None
    reference_audio = _one_file(folder, reference["audio"], "*.wav", "reference clip")
    if not spec.get("name"):
        raise MintError(f"{folder / 'voice.yaml'} needs a name")
    reference_language = str(reference.get("language", languages[0]))
    preview = _preview_spec(folder, spec.get("preview"), reference_language, [str(code) for code in languages])
    recordings = tuple(
        path
        for path in sorted(folder.glob("*.wav"))
        if path not in (reference_audio, preview) and not path.name.startswith("preview-")
    )
    return ModelFolder(
        name=str(spec["name"]),
        description=str(spec.get("description", "")),
        languages=tuple(str(code) for code in languages),
        gpt=_one_file(folder, spec.get("gpt"), "*.ckpt", "GPT checkpoint"),
        sovits=_one_file(folder, spec.get("sovits"), "*.pth", "SoVITS checkpoint"),
        reference_audio=reference_audio,
        reference_text=str(reference["text"]),
        reference_language=reference_language,
        preview=preview,
        version=str(spec.get("version", "1")),
        sample_rate=int(spec.get("sample_rate", 32000)),
        architecture_version=str(spec.get("architecture_version", "v2")),
        consent_statement=str(spec.get("consent_statement", DEFAULT_CONSENT_STATEMENT)),
        recordings=(reference_audio, *recordings),
        folder=folder,
    )


def _preview_spec(folder: Path, spec: Any, reference_language: str, languages: list[str]) -> Path | PreviewText:
    """voice.yaml's ``preview``: a clip in the folder, or the text (and language) the model will say."""
    where = f"{folder / 'voice.yaml'}: preview"
    if spec is None:
        text = DEFAULT_PREVIEW_TEXTS.get(reference_language)
        if text is None:
            raise MintError(f"{where}: give the text the model should say (preview: {{text: ..., language: ...}})")
        return PreviewText(text, reference_language)
    if isinstance(spec, str):
        return _one_file(folder, spec, "", "preview clip")
    if not isinstance(spec, dict):
        raise MintError(
            f"{where} must name a clip (preview: teaser.wav) or say what the model should speak "
            "(preview: {text: ..., language: ...})"
        )
    _reject_unknown_keys(spec, {"text", "language"}, where)
    text = str(spec.get("text") or "").strip()
    if not text or len(text) > MAX_PREVIEW_TEXT:
        raise MintError(f"{where}: text must be 1 to {MAX_PREVIEW_TEXT} characters (one or two sentences)")
    language = str(spec.get("language", reference_language))
    if language not in languages:
        raise MintError(f"{where}: language {language!r} is not one of the model's ({', '.join(languages)})")
    return PreviewText(text, language)


def prepare_preview(
    model: ModelFolder,
    *,
    hubert_dir: str | Path | None = None,
    bert_dir: str | Path | None = None,
    max_tokens: int = PREVIEW_MAX_TOKENS,
) -> ModelFolder:
    """The model with its preview as a checked clip: spoken by the model if it is a :class:`PreviewText`
    (``python -m synth say``, with the reference clip as prompt, in a child process: the library does not
    import torch), then refused (:class:`MintError`) if it is or holds a recording or lasts too long.

    A spoken preview is kept in the model folder as ``preview-<id>.wav`` (the id hashes the checkpoints,
    the reference, the text and ``max_tokens``), so minting again reuses it and makes the same bundle.
    ``hubert_dir`` (and ``bert_dir`` for Chinese) are GPT-SoVITS's shared pretrained folders.
    """
    import dataclasses

    preview = model.preview
    if isinstance(preview, PreviewText):
        preview = _spoken_preview(model, preview, hubert_dir, bert_dir, max_tokens)
    try:
        check_preview(preview, model.recordings or (model.reference_audio,))
    except PreviewError as exc:
        raise MintError(str(exc)) from None
    return dataclasses.replace(model, preview=preview)


def _spoken_preview(model: ModelFolder, preview: PreviewText, hubert_dir: Any, bert_dir: Any, max_tokens: int) -> Path:
    import hashlib
    import subprocess
    import sys
    import tempfile

    from voicemarket.content.files import sha256_file

    identity = hashlib.sha256()
    for path in (model.gpt, model.sovits, model.reference_audio):
        identity.update(sha256_file(path))
    identity.update(canonical_json([model.reference_text, preview.text, preview.language, max_tokens]))
    folder = model.folder or model.reference_audio.parent
    dest = folder / f"preview-{identity.hexdigest()[:12]}.wav"
    if dest.is_file():
        return dest
    if hubert_dir is None:
        raise MintError(
            "the preview is spoken by your model, which needs GPT-SoVITS's shared HuBERT folder: give --hubert DIR "
            "(pretrained_models/chinese-hubert-base; and --bert DIR for Chinese), or name a clip that is not a "
            "recording in voice.yaml (preview: teaser.wav)"
        )
    with tempfile.TemporaryDirectory(prefix=".preview-", dir=folder) as scratch:
        out = Path(scratch) / "preview.wav"
        argv = [sys.executable, "-m", "synth", "say", "--gpt", str(model.gpt), "--sovits", str(model.sovits)]
        argv += ["--hubert", str(hubert_dir)] + (["--bert", str(bert_dir)] if bert_dir else [])
        argv += ["--ref", str(model.reference_audio), "--ref-text", model.reference_text]
        argv += ["--ref-lang", model.reference_language, "--text", preview.text, "--lang", preview.language]
        argv += ["-o", str(out), "--max-tokens", str(max_tokens), "--seed", "0"]
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise MintError(f"the model could not speak the preview {preview.text!r}: {detail}")
        out.replace(dest)
    return dest


def write_model_folder(
    folder: str | Path,
    *,
    name: str,
    languages: Sequence[str],
    gpt: Path,
    sovits: Path,
    reference_audio: Path,
    reference_text: str,
    reference_language: str | None = None,
    description: str = "",
    preview: Path | None = None,
) -> Path:
    """Make a model folder from files elsewhere (copies them in); returns ``folder``."""
    import shutil

    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "name": name,
        "description": description,
        "languages": list(languages),
        "reference": {"audio": "reference.wav", "text": reference_text, "language": reference_language or languages[0]},
        "gpt": "gpt.ckpt",
        "sovits": "sovits.pth",
    }
    shutil.copyfile(gpt, folder / "gpt.ckpt")
    shutil.copyfile(sovits, folder / "sovits.pth")
    shutil.copyfile(reference_audio, folder / "reference.wav")
    if preview is not None:
        shutil.copyfile(preview, folder / "preview.wav")
        spec["preview"] = "preview.wav"
    (folder / "voice.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return folder


# ---------------------------------------------------------------- offers


def _bits(kind: type[Action] | type[Purpose], names: Any, where: str) -> int:
    """The bit set of the actions or purposes an offer lists (labels or IRIs; one name or a list)."""
    if not names:
        return 0
    try:
        return kind.bits([names] if isinstance(names, str) else [str(name) for name in names])
    except ValueError as exc:
        raise MintError(f"{where}: {exc}") from None


def _valid_until(value: Any, where: str) -> int:
    if value in (None, 0):
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        return int(value.replace(tzinfo=value.tzinfo or UTC).timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=UTC).timestamp())
    try:
        return int(time.time()) + parse_duration(value, "valid_until")
    except ValueError:
        raise MintError(
            f"{where}: valid_until must be a unix time, a date (YYYY-MM-DD) or '<n> days' from now, got {value!r}"
        ) from None


def parse_offers(spec: Any, deployment: Any = None, *, source: str = "the offers") -> list[OfferTerms]:
    """The :class:`OfferTerms` of an offers description (the YAML format in the module docstring)."""
    if isinstance(spec, list):
        spec = {"offers": spec}
    if not isinstance(spec, dict) or not isinstance(spec.get("offers"), list) or not spec["offers"]:
        raise MintError(f"{source} must hold `offers:` with at least one offer (tier:, price:, ...)")
    unknown = set(spec) - {"asset", "offers"}
    if unknown:
        raise MintError(f"{source}: unknown key(s) {', '.join(sorted(unknown))} (expected asset:, offers:)")
    default_asset = spec.get("asset", "ETH")
    terms_list = []
    for index, offer in enumerate(spec["offers"], 1):
        where = f"{source}, offer {index}"
        if not isinstance(offer, dict):
            raise MintError(f"{where} must be a mapping (tier:, price:, ...)")
        _reject_unknown_keys(offer, OFFER_KEYS, where)
        try:
            tier = Tier.parse(str(offer.get("tier", "")))
        except ValueError as exc:
            raise MintError(f"{where}: {exc}") from None
        if "price" not in offer:
            raise MintError(f"{where}: price is missing (e.g. price: 0.01 ether)")
        asset = asset_info(offer.get("asset", default_asset), deployment)
        try:
            price = parse_amount(
                offer["price"],
                f"{where}: price",
                decimals=asset.decimals,
                symbol=None if asset.is_eth else asset.symbol,
            )
            period = parse_duration(offer.get("period", 0), f"{where}: period")
        except ValueError as exc:
            raise MintError(str(exc)) from None
        territories = offer.get("territories") or []
        codes = [territories] if isinstance(territories, str) else territories
        terms = OfferTerms(
            tier=tier,
            price=price,
            asset=asset.address,
            period=period,
            max_uses=int(offer.get("max_uses", 0)),
            pack_size=int(offer.get("pack_size", 0)),
            valid_until=_valid_until(offer.get("valid_until"), where),
            max_licenses=int(offer.get("max_licenses", 0)),
            permissions=_bits(Action, offer.get("permit", ["textToSpeech"]), where),
            prohibitions=_bits(Action, offer.get("prohibit"), where),
            attribution=bool(offer.get("attribution", False)),
            transferable=bool(offer.get("transferable", False)),
            territories="".join(str(code).upper() for code in codes).encode(),
            purposes=_bits(Purpose, offer.get("purposes"), where),
        )
        try:  # the subject does not change what is checked about the terms
            check_terms(terms, _ANY_SUBJECT)
        except PackageError as exc:
            raise MintError(f"{where}: {exc}") from None
        terms_list.append(terms)
    return terms_list


def check_periods_fit_notice(offers: Sequence[OfferTerms], notice: int) -> None:
    """Refuse a subscription whose period plus its renewal lead does not fit in the retirement notice
    (the offer book would revert ``Licensing_PeriodAboveNotice``: subscription time is never sold
    further ahead than the notice that a retirement gives)."""

    for index, terms in enumerate(offers, 1):
        if terms.tier == Tier.SUBSCRIPTION and terms.period + renewal_lead(terms.period) > notice:
            raise MintError(
                f"offer {index}: a subscription period of {format_duration(terms.period)} (plus its "
                f"{format_duration(renewal_lead(terms.period))} renewal lead) is longer than this deployment's "
                f"retirement notice of {format_duration(notice)}: choose a shorter period"
            )


def read_offers(path: str | Path, deployment: Any = None) -> list[OfferTerms]:
    """:func:`parse_offers` of a YAML file."""
    return parse_offers(_load_yaml(Path(path), "the offers file"), deployment, source=str(path))


def consent_policy(terms_list: Sequence[OfferTerms], chain_id: int) -> dict[str, Any]:
    """What the voice owner consents to: the offers' terms on this chain (prices as decimal strings)."""
    offers = []
    for terms in terms_list:
        fields = terms.as_contract_fields()
        fields["price"] = str(fields["price"])
        fields["territories"] = [terms.territories[i : i + 2].decode() for i in range(0, len(terms.territories), 2)]
        offers.append(fields)
    return {"type": CONSENT_POLICY_TYPE, "chainId": chain_id, "offers": offers}


def consent_policy_hash(terms_list: Sequence[OfferTerms], chain_id: int) -> bytes:
    """keccak256 of the canonical (RFC 8785) :func:`consent_policy`: the ``policyHash`` the voice owner signs."""
    return keccak(canonical_json(consent_policy(terms_list, chain_id)))


# ---------------------------------------------------------------- keys


def account_public_key(account: Any) -> bytes:
    """The 64-byte secp256k1 public key of an Ape account (from a signature, so any account type works)."""
    from eth_account.messages import encode_defunct
    from eth_keys import keys

    text = b"voicemarket: my public key, for sealing my voice models to myself"
    signature = account.sign_message(encode_defunct(primitive=text))
    if signature is None:
        raise MintError(f"account {account.address} declined to sign: its public key is needed to seal the bundle")
    message_hash = keccak(b"\x19Ethereum Signed Message:\n" + str(len(text)).encode() + text)  # EIP-191
    v = signature.v - 27 if signature.v >= 27 else signature.v
    sig = keys.Signature(vrs=(v, int.from_bytes(bytes(signature.r), "big"), int.from_bytes(bytes(signature.s), "big")))
    public = sig.recover_public_key_from_msg_hash(message_hash)
    if public.to_checksum_address() != account.address:
        raise MintError(f"the signature of {account.address} does not recover its own address")
    return public.to_bytes()


def operator_public_keys(router: Any, operators: Sequence[str]) -> dict[str, bytes]:
    """Each operator's registered 64-byte public key; refuses unregistered or unbonding operators."""
    keys: dict[str, bytes] = {}
    for operator in operators:
        if not is_address(str(operator)):
            raise MintError(f"operator {operator!r} is not an address")
        address = to_checksum_address(str(operator))
        info = router.operatorInfo(address)
        if not info.registered:
            raise MintError(
                f"{address} is not a registered operator on this deployment: the operator runs "
                "`ape run operator register` first (or choose another with --operator)"
            )
        if info.unbondingEndsAt:
            raise MintError(f"operator {address} is unbonding and can take no new requests: choose another")
        keys[address] = bytes(router.operatorPublicKey(address))
    return keys


# ---------------------------------------------------------------- minting


@dataclass(frozen=True)
class PublishedOffer:
    offer_id: int
    terms: OfferTerms
    policy_hash: bytes
    policy_cid: str


@dataclass(frozen=True)
class MintResult:
    """Everything a mint made: ids, content ids and the transactions' hashes."""

    model_id: int
    digest: bytes
    bundle_cid: str
    keyring_cid: str
    metadata_cid: str
    preview_cid: str
    consent_policy_hash: bytes
    offers: tuple[PublishedOffer, ...]
    operators: tuple[str, ...]
    transactions: tuple[str, ...] = field(default=())

    @property
    def model_hex(self) -> str:
        return f"{self.model_id:#066x}"

    def as_json(self) -> dict[str, Any]:
        return {
            "modelId": self.model_hex,
            "bundleSha256": "0x" + self.digest.hex(),
            "bundleCid": self.bundle_cid,
            "keyringCid": self.keyring_cid,
            "metadataCid": self.metadata_cid,
            "previewCid": self.preview_cid,
            "consentPolicyHash": "0x" + self.consent_policy_hash.hex(),
            "operators": list(self.operators),
            "offers": [
                {
                    "offerId": o.offer_id,
                    "tier": Tier(o.terms.tier).label,
                    "policyHash": "0x" + o.policy_hash.hex(),
                    "policyCid": o.policy_cid,
                }
                for o in self.offers
            ],
            "transactions": list(self.transactions),
        }


class _CountingStore(ContentStore):
    """A store that reports the bytes written through it (for progress bars while sealing)."""

    def __init__(self, inner: ContentStore, on_bytes: Callable[[int], None]) -> None:
        self._inner = inner
        self._on_bytes = on_bytes
        self.cid_version = inner.cid_version

    @contextmanager
    def writer(self) -> Iterator[Any]:
        with self._inner.writer() as inner:
            write = inner.write

            def counted(data: bytes) -> None:
                write(data)
                self._on_bytes(len(data))

            inner.write = counted
            yield inner

    def get_to_file(self, cid, dest):  # noqa: ANN001, ANN201
        return self._inner.get_to_file(cid, dest)

    def has(self, cid) -> bool:  # noqa: ANN001
        return self._inner.has(cid)

    def pin(self, cid) -> None:  # noqa: ANN001
        self._inner.pin(cid)


def _tx_hash(receipt: Any) -> str:
    return str(getattr(receipt, "txn_hash", ""))


def mint_voice(
    creator: Any,
    deployment: Any,
    folder: str | Path | ModelFolder,
    *,
    offers: Sequence[OfferTerms],
    operators: Sequence[str],
    store: ContentStore | None = None,
    voice_owner: Any = None,
    voice_owner_bps: int = 0,
    co_creators: Sequence[tuple[str, int]] = (),
    royalty_bps: int = 0,
    dispute_window: int = 0,
    parent_id: int = 0,
    consent_ttl: int = CONSENT_TTL,
    include_creator_key: bool = True,
    hubert_dir: str | Path | None = None,
    bert_dir: str | Path | None = None,
    preview_max_tokens: int = PREVIEW_MAX_TOKENS,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> MintResult:
    """Pack, seal, store, register (with the voice owner's consent) and publish ``offers``.

    ``creator``, ``voice_owner``: Ape accounts (``voice_owner`` None: the creator is the voice
    owner). ``operators``: addresses of registered operators to seal for and allow. ``parent_id``:
    the model this one is a new version of (see :func:`voicemarket.market.governance.register_version`).
    ``hubert_dir``, ``bert_dir``, ``preview_max_tokens``: for the model to speak its preview
    (:func:`prepare_preview`; not needed when the folder names a clip or the preview was spoken before).
    ``on_progress(step, done, total)`` is called while sealing (``step == "seal"``, bytes) and
    for each transaction (``step == "chain"``, transactions).
    """
    import ape

    progress = on_progress or (lambda step, done, total: None)
    model = folder if isinstance(folder, ModelFolder) else read_model_folder(folder)
    store = store if store is not None else open_store()
    if not offers:
        raise MintError("give at least one offer (an offers YAML file): a model nobody can license is not useful")
    if not operators:
        raise MintError(
            "name at least one operator (--operator ADDRESS) to seal the bundle for: nobody else "
            "could open it to synthesise speech"
        )
    registry, licenses, router = deployment.registry, deployment.licenses, deployment.router
    chain_id = int(ape.chain.chain_id)
    owner = voice_owner if voice_owner is not None else creator
    if owner.address == creator.address and voice_owner_bps:
        raise MintError("the creator is the voice owner: they take the creator's share, so voice_owner_bps must be 0")
    for terms in offers:
        if int(terms.asset, 16) and not licenses.isAssetAllowed(terms.asset):
            raise MintError(
                f"asset {terms.asset} is not allowed for payments on this deployment: use ETH or "
                "the deployment's stablecoin"
            )
    check_periods_fit_notice(offers, int(registry.retirementNotice()))
    keys = operator_public_keys(router, operators)
    model = prepare_preview(model, hubert_dir=hubert_dir, bert_dir=bert_dir, max_tokens=preview_max_tokens)
    recipients = list(keys.values())
    if include_creator_key:
        recipients.append(account_public_key(creator))

    policy = consent_policy(offers, chain_id)
    consent_hash = keccak(canonical_json(policy))
    consent_record = {
        "type": "voicemarket/voice-consent",
        "voiceOwner": owner.address,
        "creator": creator.address,
        "statement": model.consent_statement,
        "voiceOwnerBps": voice_owner_bps,
        "coCreators": [{"account": to_checksum_address(a), "bps": bps} for a, bps in co_creators],
        "policy": policy,
        "policyHash": "0x" + consent_hash.hex(),
    }
    files = VoiceModelFiles(
        name=model.name,
        description=model.description,
        languages=model.languages,
        gpt_checkpoint=model.gpt,
        sovits_checkpoint=model.sovits,
        reference_audio=model.reference_audio,
        reference_text=model.reference_text,
        reference_language=model.reference_language,
        preview_audio=model.preview,
        creator=creator.address,
        voice_owner=owner.address,
        consent=consent_record,
        architecture_version=model.architecture_version,
        sample_rate=model.sample_rate,
        version=model.version,
    )

    from voicemarket.content.sealed_bundle import publish_bundle

    total = model.size
    sealed = 0

    def on_bytes(count: int) -> None:
        nonlocal sealed
        sealed += count
        progress("seal", min(sealed, total), total)

    progress("seal", 0, total)
    try:
        published = publish_bundle(files, _CountingStore(store, on_bytes), recipients)
    except PackageError as exc:
        raise MintError(f"could not pack and seal {model.name!r}: {exc}") from None
    progress("seal", total, total)
    digest = published.digest
    model_id = protocol.model_id(creator.address, digest)
    if registry.modelTerms(model_id).exists:
        raise MintError(
            f"{creator.address} already registered this exact bundle as model {model_id:#066x}: see its "
            f"offers with `ape run offers {model_id:#x}`, or change the model (a new version is a new "
            "bundle)"
        )

    steps = 1 + len(keys) + len(offers)
    done = 0
    receipts: list[str] = []

    def sent(receipt: Any) -> Any:
        nonlocal done
        done += 1
        receipts.append(_tx_hash(receipt))
        progress("chain", done, steps)
        return receipt

    deadline = int(ape.chain.pending_timestamp) + consent_ttl
    signature = b""
    if owner.address != creator.address:
        signature = vm.sign_consent(
            owner,
            registry,
            bundle_digest=digest,
            creator=creator.address,
            policy_hash=consent_hash,
            voice_owner_bps=voice_owner_bps,
            deadline=deadline,
        )
    registration = vm.model_registration(
        bundle_digest=digest,
        bundle_cid=published.bundle_cid,
        metadata_cid=published.metadata_cid,
        languages=language_bits(*model.languages),
        voice_owner=owner.address,
        voice_owner_bps=voice_owner_bps,
        co_creators=list(co_creators),
        policy_hash=consent_hash,
        consent_deadline=deadline,
        consent_signature=signature,
        royalty_bps=royalty_bps,
        dispute_window=dispute_window,
        parent_id=parent_id,
    )
    progress("chain", 0, steps)
    sent(registry.registerModel(registration, sender=creator))
    for address in keys:
        sent(router.setOperatorAllowed(model_id, address, True, sender=creator))
    subject = PolicySubject(chain_id, registry.address, creator.address, model_id)
    published_offers = []
    for terms in offers:
        document = build_policy(terms, subject)
        hash_ = policy_hash(document)
        policy_cid = store.put_bytes(policy_bytes(document))
        receipt = sent(
            deployment.offers.publishOffer(
                contract_offer_terms(terms, model_id, hash_), terms.territories, sender=creator
            )
        )
        offer_id = int(receipt.events.filter(deployment.offers.OfferPublished)[0].offerId)
        published_offers.append(PublishedOffer(offer_id, terms, hash_, str(policy_cid)))
    return MintResult(
        model_id=model_id,
        digest=digest,
        bundle_cid=str(published.bundle_cid),
        keyring_cid=str(published.keyring_cid),
        metadata_cid=str(published.metadata_cid),
        preview_cid=str(published.preview_cid),
        consent_policy_hash=consent_hash,
        offers=tuple(published_offers),
        operators=tuple(keys),
        transactions=tuple(receipts),
    )


def save_mint_record(result: MintResult, network_key: str) -> Path:
    """Keep what operators need to serve the model (the keyring CID is not on-chain):
    ``<home>/models/<network>/<model id>.json``, written atomically."""
    import json

    from voicemarket.content.files import atomic_output

    path = home() / "models" / network_key / f"{result.model_hex}.json"
    with atomic_output(path) as out:
        out.write((json.dumps(result.as_json(), indent=2) + "\n").encode())
    return path

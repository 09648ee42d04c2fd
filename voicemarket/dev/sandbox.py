"""A local voicemarket for the oracle's tests, its benchmark and demos.

On a local chain that Ape is connected to (anvil, via ape-foundry): the contracts deployed
with :func:`voicemarket.market.chain.deploy`, a tiny random GPT-SoVITS voice sealed to the operators
and published to a :class:`~voicemarket.content.store.LocalStore`, registered and offered for sale;
licences bought; requests made; and the oracle's processes (Celery workers ``python -m oracle
worker``, the coordinator ``python -m oracle run``) started as
:class:`~voicemarket.dev.services.ManagedProcess` children that talk to the chain's RPC URL and a
Redis. Nothing here is a stand-in: it is the real market, small.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicemarket import protocol
from voicemarket.content.odrl import OfferTerms, contract_offer_terms
from voicemarket.dev.services import ManagedProcess
from voicemarket.market import chain as vm
from voicemarket.protocol import ETH, Action, Language, Tier, language_bits

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_FEE = 10**14
LICENCE_PRICE = 10**15
REFERENCE_TEXT = "The quick brown fox jumps over the lazy dog."
PREVIEW_TEXT = "Hello from a tiny voice."


def account_key(account) -> bytes:  # noqa: ANN001 - an Ape test account
    return bytes.fromhex(str(account.private_key).removeprefix("0x"))


def public_key(account) -> bytes:  # noqa: ANN001
    from coincurve import PrivateKey

    return PrivateKey(account_key(account)).public_key.format(compressed=False)[1:]


@dataclass(frozen=True)
class TinyVoiceFiles:
    """A tiny random voice on disk, plus its reference clip and the shared encoder folders."""

    gpt: Path
    sovits: Path
    hubert_dir: Path
    bert_dir: Path
    reference: Path


def tiny_voice_files(directory: Path, seed: int = 0) -> TinyVoiceFiles:
    """Write (once per directory) a tiny random GPT-SoVITS voice and a 4 s espeak-ng reference."""
    from synth.random_model import write_random_model
    from synth.testing import make_reference_wav

    marker = directory / "voice.json"
    if marker.is_file():
        return TinyVoiceFiles(**{k: Path(v) for k, v in json.loads(marker.read_text()).items()})
    files = write_random_model(directory / "model", "tiny", seed=seed)
    reference = make_reference_wav(directory / "reference.wav", REFERENCE_TEXT, seconds=4.0)
    voice = TinyVoiceFiles(files.gpt_path, files.sovits_path, files.hubert_dir, files.bert_dir, reference)
    marker.write_text(json.dumps({k: str(v) for k, v in voice.__dict__.items()}))
    return voice


def tiny_preview(files: TinyVoiceFiles) -> Path:
    """A public preview clip beside the tiny voice's reference: another espeak-ng line, never the reference."""
    from synth.testing import make_reference_wav

    path = files.reference.with_name("preview.wav")
    return path if path.is_file() else make_reference_wav(path, PREVIEW_TEXT, seconds=2.0)


@dataclass(frozen=True)
class PublishedVoice:
    """A voice registered on-chain and offered for sale (a buyout in ETH)."""

    model_id: int
    keyring_cid: str
    bundle_cid: str
    offer_id: int
    files: TinyVoiceFiles


class Sandbox:
    """One deployment, one content store, and the helpers to make requests and run the oracle."""

    def __init__(self, deployment: vm.Deployment, root: Path) -> None:
        from voicemarket.content.store import LocalStore

        self.d = deployment
        self.router = deployment.router
        self.root = Path(root)
        self.store = LocalStore(self.root / "store")
        self._labels = 0

    @classmethod
    def deploy(cls, deployer, root: Path, **parameters: Any) -> Sandbox:  # noqa: ANN001
        """A new deployment and store under ``root`` (``parameters``: :func:`voicemarket.market.chain.deploy`'s)."""
        return cls(vm.deploy(deployer, **{"min_stake": 10**17, **parameters}), root)

    # ------------------------------------------------------------ market
    def publish_voice(
        self,
        creator,
        operators,
        *,
        languages: tuple[str, ...] = ("en",),  # noqa: ANN001
        files: TinyVoiceFiles | None = None,
        recipients: list[bytes] | None = None,
        label: str | None = None,
        registered_digest: bytes | None = None,
        bundle_languages: tuple[str, ...] | None = None,
    ) -> PublishedVoice:
        """Seal a tiny voice to ``operators`` (and the creator), register it, allow the operators,
        and publish a buyout offer. ``recipients`` overrides who can open it; ``registered_digest``
        registers it under another digest than its own, ``bundle_languages`` lists other languages in
        the bundle's manifest than ``languages`` registers on-chain (a creator's mistakes, for tests)."""
        files = files or tiny_voice_files(self.root / "voice")
        keys = [public_key(op) for op in operators] + [public_key(creator)] if recipients is None else recipients
        published = self.seal_voice(creator, keys, languages=bundle_languages or languages, files=files, label=label)
        return self.register_voice(
            creator,
            published,
            operators,
            languages=languages,
            files=files,
            digest=registered_digest or published.digest,
        )

    def seal_voice(
        self,
        creator,
        recipients: list[bytes],
        *,
        languages: tuple[str, ...] = ("en",),  # noqa: ANN001
        files: TinyVoiceFiles | None = None,
        label: str | None = None,
    ):  # noqa: ANN201
        """Pack and seal a tiny voice into the store (a voicemarket PublishedBundle)."""
        from voicemarket.content.bundle import VoiceModelFiles
        from voicemarket.content.sealed_bundle import publish_bundle

        files = files or tiny_voice_files(self.root / "voice")
        self._labels += 1
        label = label or f"voice {self._labels}"
        model = VoiceModelFiles(
            name=f"Tiny {label}",
            description=f"random weights ({label})",
            languages=languages,
            gpt_checkpoint=files.gpt,
            sovits_checkpoint=files.sovits,
            reference_audio=files.reference,
            reference_text=REFERENCE_TEXT,
            reference_language="en",
            preview_audio=tiny_preview(files),
            creator=creator.address,
            voice_owner=creator.address,
            consent={"label": label},
        )
        return publish_bundle(model, self.store, recipients)

    def register_voice(
        self,
        creator,
        published,
        operators,
        *,
        languages: tuple[str, ...],  # noqa: ANN001
        files: TinyVoiceFiles,
        digest: bytes,
    ) -> PublishedVoice:
        """Register a sealed voice under ``digest`` (``creator``'s model id of it), allow ``operators``,
        publish a buyout offer."""
        label = digest.hex()[:12]
        registration = vm.model_registration(
            bundle_digest=digest,
            bundle_cid=published.bundle_cid,
            metadata_cid=published.metadata_cid,
            languages=language_bits(*languages),
            voice_owner=creator.address,
            policy_hash=hashlib.sha256(f"policy {label}".encode()).digest(),
        )
        self.d.registry.registerModel(registration, sender=creator)
        model_id = protocol.model_id(creator.address, digest)
        for operator in operators:
            self.add_operator(operator)
            self.router.setOperatorAllowed(model_id, operator, True, sender=creator)
        terms = contract_offer_terms(
            OfferTerms(tier=Tier.BUYOUT, price=LICENCE_PRICE, asset=ETH, permissions=int(Action.TEXT_TO_SPEECH)),
            model_id,
            hashlib.sha256(f"offer {label}".encode()).digest(),
        )
        receipt = self.d.offers.publishOffer(terms, b"", sender=creator)
        offer_id = receipt.events.filter(self.d.offers.OfferPublished)[0].offerId
        return PublishedVoice(model_id, str(published.keyring_cid), str(published.bundle_cid), offer_id, files)

    def add_operator(self, operator, fee: int = OPERATOR_FEE) -> None:  # noqa: ANN001
        if not self.router.operatorInfo(operator).registered:
            self.router.registerOperator(public_key(operator), value=self.router.minStake(), sender=operator)
            self.router.setFee(ETH, fee, sender=operator)

    def buy_license(self, buyer, voice: PublishedVoice) -> int:  # noqa: ANN001
        receipt = self.d.licenses.buy(voice.offer_id, LICENCE_PRICE, 1, value=LICENCE_PRICE, sender=buyer)
        return receipt.events.filter(self.d.licenses.LicensePurchased)[0].licenseId

    def request_params(
        self,
        voice: PublishedVoice,
        license: int,
        operator,
        text: str,
        *,  # noqa: ANN001
        language: str = "en",
        deadline_in: int = 3600,
        input_: bytes | None = None,
        input_hash: bytes | None = None,
        seed: int = 0,
        now: int | None = None,
    ) -> dict[str, Any]:
        import ape

        now = ape.chain.pending_timestamp if now is None else now
        return {
            "modelId": voice.model_id,
            "licenseId": license,
            "operator": operator.address,
            "maxFee": OPERATOR_FEE,
            "deadline": now + deadline_in,
            "params": vm.SynthesisParams(Language.parse(language), seed=seed).pack(),
            "inputHash": vm.input_hash(text) if input_hash is None else input_hash,
            "input": vm.inline_input(text) if input_ is None else input_,
        }

    def request(self, buyer, voice: PublishedVoice, license: int, operator, text: str, **kwargs) -> int:  # noqa: ANN001
        """Ask for speech (through Ape); returns the request id."""
        params = self.request_params(voice, license, operator, text, **kwargs)
        receipt = self.router.requestSynthesis(params, value=OPERATOR_FEE, sender=buyer)
        return receipt.events.filter(self.router.SynthesisRequested)[0].requestId

    def sign_request(self, buyer_key: bytes, nonce: int, params: dict[str, Any], chain_id: int) -> str:
        """A signed ``requestSynthesis`` transaction (raw hex), for sending without Ape."""
        from eth_account import Account

        from oracle.router import load_abi

        if not hasattr(self, "_router_w3"):
            from web3 import Web3

            self._router_w3 = Web3().eth.contract(address=self.router.address, abi=load_abi("ISynthesisRouter"))
        fields = ("modelId", "licenseId", "operator", "maxFee", "deadline", "params", "inputHash", "input")
        data = self._router_w3.encode_abi("requestSynthesis", [tuple(params[f] for f in fields)])
        tx = {
            "type": 2,
            "to": self.router.address,
            "data": data,
            "value": OPERATOR_FEE,
            "nonce": nonce,
            "gas": 400_000,
            "maxFeePerGas": 50 * 10**9,
            "maxPriorityFeePerGas": 10**9,
            "chainId": chain_id,
        }
        return "0x" + bytes(Account.sign_transaction(tx, buyer_key).raw_transaction).hex()

    def request_raw(self, buyer_key: bytes, nonce: int, params: dict[str, Any], w3=None) -> str:  # noqa: ANN001
        """Send ``requestSynthesis`` signed with ``buyer_key`` straight to the node, without waiting
        (not through Ape: usable while automining is off). Returns the transaction hash."""
        if w3 is None:
            import ape
            from web3 import Web3

            w3 = Web3(Web3.HTTPProvider(ape.chain.provider.uri))
        raw = self.sign_request(buyer_key, nonce, params, self.chain_id(w3))
        return w3.to_hex(w3.eth.send_raw_transaction(raw))

    def chain_id(self, w3) -> int:  # noqa: ANN001
        if not hasattr(self, "_chain_id"):
            self._chain_id = int(w3.eth.chain_id)
        return self._chain_id

    def credit(self, account) -> int:  # noqa: ANN001
        """What the router credits ``account`` in ETH (refunds land here, withdrawable)."""
        return int(self.router.creditOf(account, ETH))

    # ------------------------------------------------------------ the oracle's processes
    def oracle_env(
        self,
        *,
        rpc_url: str,
        redis_url: str,
        operator_index: int,
        voices: list[PublishedVoice],
        work_dir: Path,
        **overrides: Any,
    ) -> dict[str, str]:
        """Environment for oracle processes (settings as ``ORACLE_*`` variables), tuned for tests."""
        files = voices[0].files if voices else tiny_voice_files(self.root / "voice")
        settings: dict[str, Any] = {
            "rpc_url": rpc_url,
            "router": self.router.address,
            "redis_url": redis_url,
            "test_account": operator_index,
            "models": json.dumps({hex(v.model_id): {"keyring": v.keyring_cid} for v in voices}),
            "store": f"local:{self.store.root}",
            "models_dir": work_dir / "models",
            "hubert_dir": files.hubert_dir,
            "bert_dir": files.bert_dir,
            "confirmations": 0,
            "poll_interval_s": 0.1,
            "max_semantic_tokens": 10,
            "torch_threads": 1,
            "work_lease_s": 3,
            "leader_lease_s": 3,
            "requeue_after_s": 20,
            "sweep_interval_s": 1,
            "retry_backoff_max_s": 2,
            "visibility_timeout_s": 30,
            "metrics_port": 0,
            "log_format": "json",
            "stuck_after_s": 30,
            "batch_linger_s": 0.05,
        }
        settings.update(overrides)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
        env.update({f"ORACLE_{k.upper()}": str(v) for k, v in settings.items() if v is not None})
        env["PYTHONUNBUFFERED"] = "1"
        return env

    @staticmethod
    def start_worker(
        env: dict[str, str], log_path: Path, name: str = "worker", pool: str = "solo", concurrency: int = 1
    ) -> ManagedProcess:
        """``python -m oracle worker``: one Celery worker (settings from ``env``, see :meth:`oracle_env`)."""
        argv = [
            sys.executable,
            "-m",
            "oracle",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}-{os.urandom(3).hex()}@%h",
        ]
        return _started(
            ManagedProcess(argv, log_path=log_path, env=env, cwd=ROOT, name=name),
            lambda: "ready" in _log(log_path),
            "the Celery worker to be ready",
        )

    @staticmethod
    def start_coordinator(
        env: dict[str, str], log_path: Path, name: str = "coordinator", workers: int = 0, pool: str = "solo"
    ) -> ManagedProcess:
        """``python -m oracle run``: the listener and the batch submitter (and ``workers`` worker children)."""
        argv = [sys.executable, "-m", "oracle", "run", "--workers", str(workers), "--pool", pool]
        return _started(
            ManagedProcess(argv, log_path=log_path, env=env, cwd=ROOT, name=name),
            lambda: "oracle starting" in _log(log_path) and (not workers or "ready" in _log(log_path)),
            "the coordinator to start",
        )


def _started(process: ManagedProcess, ready, what: str) -> ManagedProcess:  # noqa: ANN001
    """Start ``process`` and wait until ``ready()``; stop it (by PID) if it never gets there."""
    process.start()
    try:
        process.wait_until(ready, 60, what)
    except BaseException:
        process.stop()
        raise
    return process


def _log(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def clear_directory(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)

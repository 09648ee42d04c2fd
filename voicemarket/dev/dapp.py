"""A local market to try the DApp in a browser (`make app`) and to test it (tests/app).

:func:`build_market` deploys the contracts (with the mock stablecoin) on the connected chain
through Ape and publishes tiny voices with random weights — sealed to an operator, registered,
with offers in every tier, in ETH and in the stablecoin, each with its ODRL document's hash —
into a local content store. :class:`DappServices` then starts what serves it: redis, the
operator's oracle (`python -m oracle run` with one Celery worker), the indexer
(`python -m voicemarket.index run`) and the web server (`python -m voicemarket.index serve`,
the read API plus the built DApp at /). Everything it starts is stopped by PID on close.

    python -m voicemarket.dev.dapp          # what `make app` runs: prints the URL, Ctrl-C stops all
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicemarket.dev.sandbox import PublishedVoice, Sandbox, public_key, tiny_voice_files
from voicemarket.dev.services import ManagedProcess, RedisServer, free_port, port_open
from voicemarket.errors import ServiceError

ROOT = Path(__file__).resolve().parents[2]
APP_DIST = ROOT / "app" / "dist"
ETHER = 10**18
MUSD = 10**6  # the mock stablecoin has 6 decimals
DAY = 86_400
OPERATOR_FEE = 10**14

# label, languages on-chain, languages in the bundle (a language on-chain that the bundle lacks
# makes the oracle fail that request: the refund path). Random weights: the audio is noise.
VOICES = (
    ("Ada", ("en", "ja"), ("en",)),
    ("Mei", ("yue", "en"), ("yue", "en")),
    ("Kai", ("zh", "en"), ("zh", "en")),
)


@dataclass
class DappMarket:
    """What a test (or a person) needs to know about the market."""

    sandbox: Sandbox
    deployment_file: Path
    start_block: int
    chain_id: int
    voices: dict[str, PublishedVoice] = field(default_factory=dict)
    offers: dict[str, dict[str, int]] = field(default_factory=dict)  # voice -> offer label -> id
    accounts: dict[str, str] = field(default_factory=dict)

    @property
    def stablecoin(self) -> str:
        return self.sandbox.d.stablecoin.address

    def model_hex(self, label: str) -> str:
        return f"0x{self.voices[label].model_id:064x}"


def offer_set(stablecoin: str) -> list[tuple[str, dict[str, Any]]]:
    """Offers in every tier: ETH and the stablecoin (label, OfferTerms keywords)."""
    from voicemarket.protocol import ETH, Action, Tier

    tts = int(Action.TEXT_TO_SPEECH)
    commercial = tts | int(Action.COMMERCIAL_USE)
    return [
        ("subscription", dict(tier=Tier.SUBSCRIPTION, price=ETHER // 100, asset=ETH, period=30 * DAY,
                              max_uses=1000, permissions=commercial, prohibitions=int(Action.SUBLICENSING))),
        ("pay-per-use", dict(tier=Tier.PAY_PER_USE, price=ETHER // 1000, asset=ETH, permissions=tts,
                             attribution=True)),
        ("pack", dict(tier=Tier.PAY_PER_USE, price=MUSD // 2, asset=stablecoin, pack_size=10, permissions=tts,
                      territories=b"CNHKTW")),
        ("buyout", dict(tier=Tier.BUYOUT, price=50 * MUSD, asset=stablecoin, permissions=commercial,
                        transferable=True)),
    ]  # fmt: skip


def voice_cache() -> Path:
    """Where the tiny random voice is written once and reused (about 15 s to make: torch, espeak-ng),
    keyed by the code that makes it, so that a change there makes a new one."""
    digest = hashlib.sha256()
    for source in ("synth/random_model.py", "synth/testing.py", "voicemarket/dev/sandbox.py"):
        digest.update((ROOT / source).read_bytes())
    return ROOT / ".demo-cache" / f"dapp-voice-{digest.hexdigest()[:12]}"


def build_market(accounts: list, chain_id: int, root: Path, *, voices: int = 2) -> DappMarket:  # noqa: ANN001
    """Deploy and fill the market (accounts: 0 deploys, 1 creates, 2 owns the voice, 3 operates,
    4 and 5 buy; ``voices`` of :data:`VOICES`)."""
    import ape

    from voicemarket.content.odrl import OfferTerms, PolicySubject, build_policy, contract_offer_terms, policy_hash
    from voicemarket.market import chain as vm
    from voicemarket.protocol import language_bits, model_id

    deployer, creator, _owner, operator, buyer, buyer2 = (accounts[i] for i in range(6))
    start = ape.chain.blocks.head.number
    sandbox = Sandbox.deploy(deployer, root, stablecoin="mock")
    d = sandbox.d
    deployment_file = root / "deployment.json"
    deployment_file.write_text(json.dumps({"chainId": chain_id, "startBlock": start, "contracts": d.addresses}))
    market = DappMarket(sandbox, deployment_file, start, chain_id)
    market.accounts = {
        "deployer": deployer.address,
        "creator": creator.address,
        "operator": operator.address,
        "buyer": buyer.address,
        "buyer2": buyer2.address,
    }
    sandbox.add_operator(operator, OPERATOR_FEE)
    d.router.setFee(d.stablecoin.address, MUSD // 10, sender=operator)
    files = tiny_voice_files(voice_cache())
    for label, languages, bundle_languages in VOICES[:voices]:
        published = sandbox.seal_voice(
            creator, [public_key(operator), public_key(creator)], languages=bundle_languages, files=files, label=label
        )
        registration = vm.model_registration(
            bundle_digest=published.digest,
            bundle_cid=published.bundle_cid,
            metadata_cid=published.metadata_cid,
            languages=language_bits(*languages),
            voice_owner=creator.address,
            policy_hash=hashlib.sha256(f"policy {label}".encode()).digest(),
        )
        d.registry.registerModel(registration, sender=creator)
        mid = model_id(creator.address, published.digest)
        d.router.setOperatorAllowed(mid, operator, True, sender=creator)
        market.voices[label] = PublishedVoice(mid, str(published.keyring_cid), str(published.bundle_cid), 0, files)
        market.offers[label] = {}
        subject = PolicySubject(chain_id, d.registry.address, creator.address, mid)
        for offer_label, keywords in offer_set(d.stablecoin.address):
            terms = OfferTerms(**keywords)
            digest = policy_hash(build_policy(terms, subject))
            receipt = d.offers.publishOffer(
                contract_offer_terms(terms, mid, digest), terms.territories or b"", sender=creator
            )
            market.offers[label][offer_label] = int(receipt.events.filter(d.offers.OfferPublished)[0].offerId)
    for account in (buyer, buyer2):
        d.stablecoin.mint(account, 1_000 * MUSD, sender=account)
    return market


class DappServices:
    """redis, the oracle (+ one Celery worker), the indexer and the web server for ``market``."""

    def __init__(self, market: DappMarket, rpc_url: str, work: Path, *, port: int | None = None,
                 operator_index: int = 3) -> None:  # fmt: skip
        self.market, self.rpc_url, self.work = market, rpc_url, Path(work)
        self.port = port or free_port()
        self.operator_index = operator_index
        self.stack = ExitStack()
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, oracle: bool = True, wait_for_oracle: bool = True) -> DappServices:
        """Start everything; the oracle's worker (seconds to import torch) starts beside the index,
        and with ``wait_for_oracle=False`` this returns once the web server is up (:meth:`wait_oracle`)."""
        import threading

        try:
            if not (APP_DIST / "index.html").is_file():
                build_app()
            self.work.mkdir(parents=True, exist_ok=True)
            if oracle:
                self._oracle_thread = threading.Thread(target=self._start_oracle_in_thread, daemon=True)
                self._oracle_thread.start()
            self.start_index()
            if oracle and wait_for_oracle:
                self.wait_oracle()
        except BaseException:
            self.close()
            raise
        return self

    def _start_oracle_in_thread(self) -> None:
        try:
            self.start_oracle()
        except BaseException as exc:  # noqa: BLE001 - handed to wait_oracle
            self._oracle_error = exc

    def wait_oracle(self) -> None:
        """Until the oracle (and its worker) is ready; raises what stopped it from starting."""
        thread = getattr(self, "_oracle_thread", None)
        if thread is not None:
            thread.join()
        error = getattr(self, "_oracle_error", None)
        if error is not None:
            raise ServiceError(f"the oracle did not start: {error}")

    def start_oracle(self) -> None:
        redis = self.stack.enter_context(RedisServer(directory=self.work / "redis"))
        env = self.market.sandbox.oracle_env(
            rpc_url=self.rpc_url,
            redis_url=redis.url,
            operator_index=self.operator_index,
            voices=list(self.market.voices.values()),
            work_dir=self.work / "oracle",
            max_semantic_tokens=10,
        )
        coordinator = Sandbox.start_coordinator(env, self.work / "oracle.log", workers=1)
        self.stack.callback(coordinator.stop, 3.0)  # its state is thrown away: no long warm shutdown
        self.processes["oracle"] = coordinator

    def start_index(self) -> None:
        db = f"sqlite:///{self.work / 'index.sqlite'}"
        store = f"local:{self.market.sandbox.store.root}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMARKET_INDEX_")}
        env.update(
            PYTHONUNBUFFERED="1",
            VOICEMARKET_INDEX_DB=db,
            VOICEMARKET_INDEX_RPC_URL=self.rpc_url,
            VOICEMARKET_INDEX_DEPLOYMENT=str(self.market.deployment_file),
            VOICEMARKET_INDEX_STORE=store,
            VOICEMARKET_INDEX_CONFIRMATIONS="0",
            VOICEMARKET_INDEX_POLL_INTERVAL_S="0.2",
            VOICEMARKET_INDEX_SSE_POLL_S="0.2",
            VOICEMARKET_INDEX_METADATA_RETRY_S="1",
        )
        python = [sys.executable, "-m", "voicemarket.index"]
        indexer = ManagedProcess(python + ["run"], log_path=self.work / "indexer.log", env=env, cwd=ROOT,
                                 name="indexer")  # fmt: skip
        indexer.start()
        self.stack.callback(indexer.stop, 3.0)
        self.processes["indexer"] = indexer
        indexer.wait_until(lambda: "indexer starting" in indexer.log_tail(50), 60, "the indexer to start")
        # the API refuses a database without the schema: wait until the indexer made it
        deadline = time.monotonic() + 60
        while not _has_schema(self.work / "index.sqlite"):
            if time.monotonic() > deadline or not indexer.alive():
                raise ServiceError(f"the indexer made no database; its log:\n{indexer.log_tail(30)}")
            time.sleep(0.1)
        server = ManagedProcess(python + ["serve", "--port", str(self.port)], log_path=self.work / "server.log",
                                env=env, cwd=ROOT, name="server")  # fmt: skip
        server.start()
        self.stack.callback(server.stop, 3.0)
        self.processes["server"] = server
        server.wait_until(lambda: port_open(self.port), 60, "the web server to listen")

    def wait_indexed(self, block: int | None = None, timeout: float = 30) -> None:
        """Until the index has read ``block`` (default: the chain's head now)."""
        import httpx

        if block is None:
            block = int(
                httpx.post(self.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"}).json()[
                    "result"
                ],
                16,
            )
        deadline = time.monotonic() + timeout
        while httpx.get(f"{self.url}/health").json()["indexed_to_block"] < block:
            if time.monotonic() > deadline:
                raise ServiceError(f"the index did not reach block {block} in {timeout} s")
            time.sleep(0.1)

    def close(self) -> None:
        thread = getattr(self, "_oracle_thread", None)
        if thread is not None:
            thread.join()  # whatever it started is registered on the stack before it is closed
        self.stack.close()

    def __enter__(self) -> DappServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_schema(path: Path) -> bool:
    import sqlite3

    if not path.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            return bool(connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'index_state'").fetchone())
    except sqlite3.Error:
        return False


def build_app(force: bool = False) -> Path:
    """``vite build`` of app/ into app/dist/ (skipped when app/dist is newer than every source)."""
    sources = [ROOT / "package-lock.json", *(ROOT / "app").glob("*.*"), *(ROOT / "app" / "src").rglob("*"),
               *(ROOT / "app" / "public").rglob("*")]  # fmt: skip
    stamp = APP_DIST / "index.html"
    if not force and stamp.is_file() and all(p.stat().st_mtime <= stamp.stat().st_mtime for p in sources):
        return APP_DIST
    vite = ROOT / "node_modules" / ".bin" / "vite"
    if not vite.exists():
        raise ServiceError("vite is not installed: run `make setup` (npm ci installs it)")
    result = subprocess.run(
        [str(vite), "build", "--config", str(ROOT / "app" / "vite.config.mjs"), "--logLevel", "warn"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ServiceError(f"vite build failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return APP_DIST


def main() -> None:
    """`make app`: a local market with everything serving it, until Ctrl-C."""
    import ape

    from voicemarket.dev.services import local_chain

    missing = [tool for tool in ("anvil", "redis-server", "espeak-ng") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing tools: {', '.join(missing)}. Run `make setup`.")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    work = Path(tempfile.mkdtemp(prefix="voicemarket-app-"))
    try:
        with local_chain() as provider, ExitStack() as stack:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            print("building the app, deploying the market and publishing 3 tiny voices (about a minute)...")
            build_app()
            accounts = ape.accounts.test_accounts
            market = build_market(accounts, int(provider.chain_id), work, voices=3)
            services = stack.enter_context(DappServices(market, provider.uri, work / "services", port=8600
                                                        if not port_open(8600) else None).start())  # fmt: skip
            print(f"\nvoicemarket is open at {services.url}/  (Ctrl-C stops everything)\n")
            print(f"chain      {provider.uri}  (chain id {provider.chain_id}); add it to your wallet as a network")
            print("accounts   of the standard test mnemonic 'test test ... junk' (public test keys: never use them")
            print("           on a real network); import a buyer's (or the creator's) private key into your wallet:")
            keys = {account.address: str(account.private_key) for account in accounts}
            for role, address in market.accounts.items():
                print(f"  {role:<9} {address}" + (f"  key {keys[address]}" if role in ("buyer", "creator") else ""))
            print(f"stablecoin {market.stablecoin} (mUSD, 6 decimals; the buyers hold 1,000)")
            print(f"logs       {work / 'services'}")
            while True:
                for name, process in services.processes.items():
                    if not process.alive():
                        raise ServiceError(f"the {name} stopped; its log:\n{process.log_tail(30)}")
                time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopped: anvil, redis, the oracle, the indexer and the web server")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""`make bench-index`: how fast the index fills from a busy chain, and how fast it answers.

1. **A market on a local anvil** (started through ape-foundry; the contracts deployed with
   ``voicemarket.market.chain.deploy``), at the issue's size by default: 10,000 models (three
   creators, names and descriptions from a word list, 1-2 languages each, metadata in a
   LocalStore), 20,000 offers (per model a buyout in ETH and a subscription in the 6-decimal
   stablecoin, with their real ODRL policy hashes), 100,000 licences (five buyers; 70% buyouts,
   30% subscriptions) and 100,000 synthesis requests on the buyouts (one operator, every model
   allows it), half of them fulfilled (50 a ``fulfilBatch``; dispute window 0, so each is paid
   out at once). Transactions are sent as ``eth_sendTransaction`` from anvil's unlocked accounts
   and mined about 30 M gas to a block, as full as mainnet's (automining off, ``evm_mine``).
2. **Indexing**, once into SQLite and once into PostgreSQL (a throwaway server,
   :class:`voicemarket.dev.postgres.PostgresServer`): ``python -m voicemarket.index run --once``
   as a child process, confirmations 0. ``events_per_s`` is the logs it applied over the time
   it spent reading and applying them (its own "caught up" log line; process start and the
   metadata fetches after it are timed apart); memory is the child's peak RSS (its own VmHWM, sampled every 0.1 s).
3. **Queries**: each filter and sort of ``GET /models`` run 40 times (after one warm-up)
   through :func:`voicemarket.index.queries.find_models` on a read-only connection, as the API
   runs it; p50 and p95 per query in ms.

``--scale 0.1`` makes everything ten times smaller. Writes benchmarks/results/index.json.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import print_table, write_results

COMMAND = "make bench-index"
SIZES = {"models": 10_000, "offers": 20_000, "licenses": 100_000, "requests": 100_000}
TARGETS = {"events_per_s": ">= 5,000", "query_p95_ms": "<= 50 ms", "peak_rss_mb": "< 300 MB"}
BLOCK_GAS = 30_000_000  # mainnet's block gas limit: blocks as full as a busy real chain's
GAS = {  # what each call costs, about (BENCHMARKS.md, gas): to fill blocks, not to pay
    "registerModel": 170_000,
    "publishOffer": 155_000,
    "setOperatorAllowed": 50_000,
    "buy": 130_000,
    "requestSynthesis": 110_000,
    "fulfilBatch": 1_400_000,
}
RPC_BATCH = 250
QUERY_RUNS = 40
ROOT = Path(__file__).resolve().parents[1]
REGISTRATION_FIELDS = (
    "bundleDigest bundleCid bundleCodec metadataCid metadataCodec languages royaltyBps disputeWindow "
    "parentId voiceOwner voiceOwnerBps coCreators policyHash consentDeadline consentSignature"
).split()

WORDS = (
    "calm warm bright deep gentle lively crisp smooth husky clear soft bold youthful mature cheerful "
    "narrator storyteller announcer podcaster teacher singer actor reporter guide companion "
    "audiobooks news games ads radio trailers lessons meditation documentaries cartoons"
).split()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Sender:
    """``eth_sendTransaction`` from anvil's unlocked accounts, RPC_BATCH a request, BLOCK_GAS (about) a block."""

    def __init__(self, rpc, contracts: dict[str, Any]) -> None:  # noqa: ANN001
        from eth_abi import encode
        from eth_utils import function_signature_to_4byte_selector

        from voicemarket.index.chain import _abi_type

        self.rpc = rpc
        self.pending: list[dict[str, Any]] = []
        self.nonces: dict[str, int] = {}
        self.pending_bytes = 0
        self.unmined_gas = 0
        self.unmined = 0
        self.sent = 0
        self._encode = encode
        self._functions: dict[tuple[str, str], tuple[str, bytes, list[str]]] = {}
        for name, (address, abi) in contracts.items():
            for item in abi:
                if item.get("type") == "function":
                    types = [_abi_type(i) for i in item["inputs"]]
                    selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
                    self._functions[(name, item["name"])] = (address, selector, types)

    def call(self, sender: str, contract: str, function: str, *args: Any, value: int = 0, gas: int = 600_000) -> None:
        address, selector, types = self._functions[(contract, function)]
        data = "0x" + (selector + self._encode(types, list(args))).hex()
        if sender not in self.nonces:  # nonces are ours: anvil would give two calls of one batch the same
            self.nonces[sender] = int(self.rpc.call("eth_getTransactionCount", sender, "pending"), 16)
        nonce = self.nonces[sender]
        self.nonces[sender] += 1
        tx = {"from": sender, "to": address, "data": data, "gas": hex(gas), "value": hex(value), "nonce": hex(nonce)}
        tx.update(maxFeePerGas=hex(10**10), maxPriorityFeePerGas=hex(1))
        self.pending.append(tx)
        self.pending_bytes += len(data)
        self.unmined_gas += GAS.get(function, 50_000)
        if self.unmined_gas >= BLOCK_GAS:
            self.mine()
        elif len(self.pending) >= RPC_BATCH or self.pending_bytes > 2_000_000:  # anvil refuses ~10 MB bodies
            self.flush()

    def _send(self) -> None:
        if self.pending:
            self.rpc.batch([("eth_sendTransaction", [tx]) for tx in self.pending])
            self.unmined += len(self.pending)
            self.sent += len(self.pending)
            self.pending, self.pending_bytes = [], 0

    def flush(self) -> None:
        self._send()

    def mine(self) -> None:
        self._send()
        self.unmined_gas = 0
        while self.unmined:
            self.rpc.call("evm_mine")
            block = self.rpc.call("eth_getBlockByNumber", "latest", False)
            self.unmined -= len(block["transactions"])
            if not block["transactions"]:
                raise RuntimeError("anvil mined an empty block with transactions pending: a transaction was refused")


def build_market(sizes: dict[str, int], root: Path, seed: int = 7) -> dict[str, Any]:
    """Deploy and fill the market (see the module docstring) on the connected anvil."""
    import ape

    from voicemarket.content.metadata import metadata_bytes
    from voicemarket.content.odrl import OfferTerms, PolicySubject, build_policy, contract_offer_terms, policy_hash
    from voicemarket.content.store import LocalStore
    from voicemarket.dev.sandbox import public_key
    from voicemarket.index.chain import JsonRpc
    from voicemarket.market import chain as vm
    from voicemarket.protocol import ETH, Language, Tier, model_id

    rng = random.Random(seed)
    accounts = ape.accounts.test_accounts
    creators = [accounts[i] for i in (1, 2, 3)]
    buyers = [accounts[i] for i in (4, 5, 6, 7, 8)]
    operator = accounts[9]
    start = ape.chain.blocks.head.number
    d = vm.deploy(accounts[0], stablecoin="mock")
    chain_id = ape.chain.chain_id
    rpc = JsonRpc(ape.chain.provider.uri, timeout=600)
    manifest = json.loads((ROOT / ".build" / "__local__.json").read_text())["contractTypes"]
    sender = Sender(
        rpc,
        {
            "registry": (d.registry.address, manifest["VoiceModelRegistry"]["abi"]),
            "offers": (d.offers.address, manifest["OfferBook"]["abi"]),
            "licenses": (d.licenses.address, manifest["LicenseManager"]["abi"]),
            "router": (d.router.address, manifest["SynthesisRouter"]["abi"]),
            "usd": (d.stablecoin.address, manifest["MockStablecoin"]["abi"]),
        },
    )
    usd = d.stablecoin.address
    d.router.registerOperator(public_key(operator), value=d.router.minStake(), sender=operator)
    d.router.setFee(ETH, 1, sender=operator)
    rpc.call("evm_setAutomine", False)
    started = time.perf_counter()
    store = LocalStore(root / "store")

    from voicemarket.index.chain import Contracts, LogDecoder

    contracts = Contracts(chain_id, d.registry.address, d.offers.address, d.licenses.address, d.router.address, start)
    decoder = LogDecoder(contracts)

    def logs(name: str, since: int) -> list[Any]:
        """The decoded ``name`` events from block ``since`` on (what the chain did, in its order)."""
        head = int(rpc.call("eth_blockNumber"), 16)
        out = []
        for first in range(since, head + 1, 20):
            raw = rpc.call("eth_getLogs", decoder.logs_filter(first, min(head, first + 19)))
            out += [e for r in raw if (e := decoder.decode(r)) is not None and e.name == name]
        return out

    # models, their offers (a buyout in ETH; a subscription in the stablecoin), the operator allowed
    models: dict[int, int] = {}  # model id -> languages
    for n in range(sizes["models"]):
        creator = creators[n % len(creators)]
        languages = rng.sample(list(Language), rng.choice((1, 1, 2)))
        bits = sum(1 << int(lang) for lang in languages)
        name = f"{rng.choice(WORDS[:15]).title()} {rng.choice(WORDS[15:25])} {n}"
        description = " ".join(rng.choice(WORDS) for _ in range(12))
        document = {"name": name, "description": description, "properties": {"languages": [x.label for x in languages]}}
        cid = store.put_bytes(metadata_bytes(document))
        digest = hashlib.sha256(f"bench model {n}".encode()).digest()
        registration = vm.model_registration(
            bundle_digest=digest,
            bundle_cid=cid,
            metadata_cid=cid,
            languages=bits,
            voice_owner=creator.address,
            policy_hash=hashlib.sha256(b"policy").digest(),
        )
        sender.call(creator.address, "registry", "registerModel", tuple(registration[f] for f in REGISTRATION_FIELDS))
        mid = model_id(creator.address, digest)
        models[mid] = bits
        subject = PolicySubject(chain_id, d.registry.address, creator.address, mid)
        offers = [OfferTerms(tier=Tier.BUYOUT, price=rng.randrange(1, 1000) * 10**12, permissions=1)]
        if n < sizes["offers"] - sizes["models"]:
            period = rng.choice((7, 30)) * 86_400
            offers.append(
                OfferTerms(
                    tier=Tier.SUBSCRIPTION, price=rng.randrange(1, 50) * 10**6, asset=usd, period=period, permissions=1
                )
            )
        for terms in offers:
            hash_ = policy_hash(build_policy(terms, subject))
            sender.call(creator.address, "offers", "publishOffer", contract_offer_terms(terms, mid, hash_), b"")
        sender.call(creator.address, "router", "setOperatorAllowed", mid, operator.address, True)
    for buyer in buyers:
        sender.call(buyer.address, "usd", "mint", buyer.address, 10**15)
        sender.call(buyer.address, "usd", "approve", d.licenses.address, 2**256 - 1)
    sender.mine()
    published = logs("OfferPublished", start)
    buyout_offers = [(e.args["offerId"], e.args["terms"]["price"]) for e in published if e.args["terms"]["tier"] == 0]
    other_offers = [(e.args["offerId"], e.args["terms"]["price"]) for e in published if e.args["terms"]["tier"] != 0]
    offer_model = {e.args["offerId"]: e.args["modelId"] for e in published}

    # licences: 30% subscriptions (while there are subscription offers), else buyouts in ETH
    mark = int(rpc.call("eth_blockNumber"), 16) + 1
    for n in range(sizes["licenses"]):
        buyer = buyers[n % len(buyers)]
        if other_offers and rng.random() < 0.3:
            offer_id, price = rng.choice(other_offers)
            sender.call(buyer.address, "licenses", "buy", offer_id, price, 1)
        else:
            offer_id, price = rng.choice(buyout_offers)
            sender.call(buyer.address, "licenses", "buy", offer_id, price, 1, value=price)
    sender.mine()
    buyouts = [
        (e.args["licenseId"], offer_model[e.args["offerId"]], e.args["buyer"])
        for e in logs("LicensePurchased", mark)
        if e.args["offerId"] in dict(buyout_offers)
    ]

    # requests on buyouts (in one of the model's languages), half of them fulfilled 50 a batch
    now = int(rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    mark = int(rpc.call("eth_blockNumber"), 16) + 1
    for n in range(sizes["requests"]):
        license_id, mid, buyer = buyouts[rng.randrange(len(buyouts))]
        language = next(lang for lang in Language if models[mid] >> int(lang) & 1)
        text = f"bench {n}"
        params = (
            mid,
            license_id,
            operator.address,
            1,
            now + 20 * 3600,
            vm.SynthesisParams(language).pack(),
            vm.input_hash(text),
            vm.inline_input(text),
        )
        sender.call(buyer, "router", "requestSynthesis", params, value=1)
    sender.mine()
    digest = hashlib.sha256(b"bench audio").digest()
    output = b"\x01\x55\x12\x20" + digest
    requested = logs("SynthesisRequested", mark)
    batch: list[tuple] = []
    for event in requested[: len(requested) // 2]:
        r = event.args["request"]
        request = tuple(bytes.fromhex(r[f][2:]) if f == "inputHash" else r[f] for f in vm.REQUEST_FIELDS)
        batch.append((request, digest, output))
        if len(batch) == 50:
            sender.call(operator.address, "router", "fulfilBatch", batch, gas=5_000_000)
            batch = []
    if batch:
        sender.call(operator.address, "router", "fulfilBatch", batch, gas=5_000_000)
    sender.mine()
    rpc.call("evm_setAutomine", True)
    return {
        "deployment": {"chainId": chain_id, "startBlock": start, "contracts": d.addresses},
        "store": str(store.root),
        "transactions": sender.sent,
        "blocks": ape.chain.blocks.head.number - start,
        "generate_s": round(time.perf_counter() - started, 1),
        "offers": int(d.licenses.nextOfferId()) - 1,
        "licenses": int(d.licenses.nextLicenseId()) - 1,
        "requests": int(d.router.nextRequestId()) - 1,
        "models": len(models),
    }


def index_into(db: str, market: dict[str, Any], rpc_url: str, work: Path) -> dict[str, Any]:
    """``python -m voicemarket.index run --once`` into ``db``: its figures and its peak RSS."""
    deployment = work / "deployment.json"
    deployment.write_text(json.dumps(market["deployment"]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMARKET_INDEX_")}
    env.update(
        VOICEMARKET_INDEX_DB=db,
        VOICEMARKET_INDEX_RPC_URL=rpc_url,
        VOICEMARKET_INDEX_DEPLOYMENT=str(deployment),
        VOICEMARKET_INDEX_STORE=f"local:{market['store']}",
        VOICEMARKET_INDEX_CONFIRMATIONS="0",
        VOICEMARKET_INDEX_BATCH_BLOCKS="2000",
        VOICEMARKET_INDEX_METADATA_BATCH="500",
    )
    load_before = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    log_path = work / f"indexer-{db.split(':', 1)[0]}.log"
    # The log goes to a file: a pipe read only after the child ends fills (64 KB) on a chain of a
    # thousand blocks and the indexer then blocks forever on its next log line.
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicemarket.index", "run", "--once"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
        status, usage, peak_kb = _wait_sampling_peak_rss(process.pid)
    log = log_path.read_text()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"the indexer failed:\n{log[-3000:]}")
    line = next(line for line in log.splitlines() if " caught up " in line)
    fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
    events, seconds = int(fields["events"]), float(fields["seconds"])
    return {
        "events": events,
        "index_s": seconds,
        "events_per_s": round(events / seconds),
        "metadata_documents": int(fields["metadata_tried"]),
        "metadata_s": float(fields["metadata_seconds"]),
        "wall_s": round(time.perf_counter() - started, 1),
        "rss_mb": round(peak_kb / 1024, 1),
        # the indexer's own CPU (reading, decoding, applying; start-up and metadata included): on a
        # busy machine wall-clock rates fall with the load, this does not
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "load_average_before": load_before,  # the machine's 1/5/15-minute load: the rates depend on it
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def _wait_sampling_peak_rss(pid: int) -> tuple[int, Any, int]:
    """Wait for the child ``pid``; returns its wait status, its rusage and its peak RSS in KiB.

    The peak is the child's own ``VmHWM`` (``/proc/PID/status``), sampled every 0.1 s until it
    exits. Not ``ru_maxrss``: Linux counts in it the memory of the process that forked the child,
    as it was before the child's ``exec`` — the benchmark's own 440 MB, whatever the indexer used."""
    peak_kb = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, peak_kb
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        time.sleep(0.1)


def query_latencies(db: str, usd: str) -> dict[str, dict[str, float]]:
    """p50/p95 (ms) of each filter and sort, through the query layer the API runs."""
    from voicemarket.index import db as databases
    from voicemarket.index import queries

    engine = databases.open_engine(db, readonly=True)
    cases = {
        "newest": {},
        "language": {"language": "yue"},
        "tier": {"tier": "subscription"},
        "asset_price_range": {"asset": usd, "min_price": "5000000", "max_price": "20000000"},
        "monthly_under_10": {"tier": "subscription", "asset": usd, "max_price": "10000000", "language": "ja"},
        "creator": {"creator": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
        "status_active": {"status": "active"},
        "text": {"q": "calm narrator"},
        "most_used": {"sort": "most_used"},
        "cheapest": {"sort": "cheapest", "asset": "ETH"},
        "cheapest_page_3": {"sort": "cheapest", "asset": "ETH", "_pages": 3},
    }
    out = {}
    with engine.connect() as connection:
        for name, params in cases.items():
            params = dict(params)
            pages = params.pop("_pages", 1)
            after = None
            for _ in range(pages - 1):  # start from a later page: keyset pagination costs the same
                _, after, _ = queries.find_models(connection, {**params, "limit": 20}, after)
            times = []
            for run in range(QUERY_RUNS + 1):
                started = time.perf_counter()
                items, _, _ = queries.find_models(connection, {**params, "limit": 20}, after)
                if run:
                    times.append((time.perf_counter() - started) * 1000)
            out[name] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(_percentile(times, 0.95), 2),
                "items": len(items),
            }
    engine.dispose()
    return out


@contextlib.contextmanager
def anvil(work: Path) -> Iterator[None]:
    """An anvil of our own (Ape connects to it through APE_FOUNDRY_HOST): ape-foundry's own would
    run with --steps-tracing, several times slower for a chain of a quarter million transactions,
    and would keep every block's state on disk."""
    from voicemarket.dev.services import ManagedProcess, free_port, port_open

    port = free_port()
    argv = ["anvil", "--port", str(port), "--host", "127.0.0.1", "--silent", "--gas-limit", str(10**12)]
    argv += ["--hardfork", "cancun", "--base-fee", "0"]
    # Without this anvil writes old blocks' states to ~/.foundry/anvil/tmp: about 17 GB for this
    # chain, left behind if anvil is killed. The indexer reads logs and the latest state only.
    argv += ["--prune-history", "64"]
    with ManagedProcess(argv, log_path=work / "anvil.log") as process:
        process.wait_until(lambda: port_open(port), 30, "anvil to listen")
        previous = os.environ.get("APE_FOUNDRY_HOST")
        os.environ["APE_FOUNDRY_HOST"] = f"http://127.0.0.1:{port}"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("APE_FOUNDRY_HOST", None)
            else:
                os.environ["APE_FOUNDRY_HOST"] = previous


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the issue's size (default 1)")
    args = parser.parse_args()
    sizes = {k: max(10, int(v * args.scale)) for k, v in SIZES.items()}

    import ape

    from voicemarket.dev.postgres import PostgresServer
    from voicemarket.dev.services import local_chain

    figures: dict[str, Any] = {"scale": args.scale, "sizes": sizes}
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    figures["cpu_model"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "unknown")
    with tempfile.TemporaryDirectory(prefix="vm-bench-index-") as scratch, anvil(Path(scratch)), local_chain():
        work = Path(scratch)
        print(f"building the market ({sizes}) ...", flush=True)
        market = build_market(sizes, work)
        figures["market"] = {k: v for k, v in market.items() if k not in ("deployment", "store")}
        print(f"  {market['transactions']:,} transactions in {market['blocks']} blocks, {market['generate_s']} s")
        rpc_url = ape.chain.provider.uri
        usd = market["deployment"]["contracts"]["stablecoin"]
        print("indexing into SQLite ...", flush=True)
        sqlite_url = f"sqlite:///{work / 'index.sqlite'}"
        figures["sqlite"] = index_into(sqlite_url, market, rpc_url, work)
        figures["sqlite"]["queries"] = query_latencies(sqlite_url, usd)
        print("indexing into PostgreSQL ...", flush=True)
        with PostgresServer() as server:
            pg_url = server.create_database("bench")
            figures["postgres"] = index_into(pg_url, market, rpc_url, work)
            figures["postgres"]["queries"] = query_latencies(pg_url, usd)
    for kind in ("sqlite", "postgres"):
        figures[kind]["query_p95_ms"] = max(q["p95_ms"] for q in figures[kind]["queries"].values())
        figures[kind]["query_p50_ms"] = max(q["p50_ms"] for q in figures[kind]["queries"].values())
    figures["peak_rss_mb"] = max(figures["sqlite"]["rss_mb"], figures["postgres"]["rss_mb"])
    path = write_results("index", figures, COMMAND + (f" (--scale {args.scale})" if args.scale != 1 else ""))
    rows = [("scale", args.scale), *((f"market.{k}", v) for k, v in figures["market"].items())]
    for kind in ("sqlite", "postgres"):
        f = figures[kind]
        rows += [
            (f"{kind}.events", f["events"]),
            (f"{kind}.events_per_s", f["events_per_s"]),
            (f"{kind}.metadata_s", f["metadata_s"]),
            (f"{kind}.query_p95_ms", f["query_p95_ms"]),
            (f"{kind}.rss_mb", f["rss_mb"]),
            (f"{kind}.cpu_s", f["cpu_s"]),
            (f"{kind}.load_average", f"{f['load_average_before'][0]} -> {f['load_average_after'][0]}"),
        ]
        rows += [(f"{kind}.q.{name}", f"{q['p50_ms']} / {q['p95_ms']} ms") for name, q in f["queries"].items()]
    rows.append(("peak_rss_mb", figures["peak_rss_mb"]))
    print_table(
        "Index (p50 / p95 per query)",
        rows,
        {f"{k}.{t}": v for k in ("sqlite", "postgres") for t, v in TARGETS.items()}
        | {"peak_rss_mb": TARGETS["peak_rss_mb"]},
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

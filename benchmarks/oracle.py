"""Oracle benchmark: 200 requests against a tiny voice on anvil, 1 then 2 worker processes
(`make bench-oracle` -> benchmarks/results/oracle.json).

Everything is real and local: anvil (started through ape-foundry, automining: every
transaction is mined in its own block as it arrives), a private redis-server, the contracts
deployed with `voicemarket.market.chain.deploy`, a tiny random GPT-SoVITS voice sealed to the operator
in a LocalStore, and the oracle run as operators run it: `python -m oracle run --workers 0`
(listener + batch submitter) and N `python -m oracle worker --pool solo` processes, each
with one torch thread. Settings: confirmations 0 (an automining chain makes no blocks between
requests to confirm with), listener poll 0.05 s, batches up to 50 fulfilments, 25 semantic
tokens per request (1 s of audio), fp32.

Per run: each worker first serves two warm-up requests (its voice loads: not timed), then the
load generator sends REQUESTS pre-signed `requestSynthesis` transactions from 6 buyers at
RATE per second (open loop) while a watcher polls the chain every 20 ms for
`SynthesisRequested` and `SynthesisFulfilled`. Latency is the wall time between the watcher
first seeing a request mined and first seeing its fulfilment mined (both ends observed by the
same 20 ms poll); throughput is fulfilments over the time from the first request seen mined
to the last fulfilment seen. Duplicates: fulfilment events beyond one per request, plus batch entries the
router skipped (gas paid for nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import print_table, write_results

REQUESTS = 200
RATE = 25.0
BUYERS = range(4, 10)
OPERATOR = 2
TARGETS = {"throughput_per_s": ">= 20 with 2 workers", "latency_p95_s": "< 3 s", "duplicates": "0"}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Watcher(threading.Thread):
    """Polls the chain every ``interval`` and notes when each request's SynthesisRequested and
    SynthesisFulfilled were first seen: both ends of a latency are observed the same way."""

    def __init__(self, client, from_block: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.from_block = from_block
        self.interval = interval
        self.requested: dict[int, float] = {}
        self.fulfilled: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        import requests

        from oracle.rpc import JsonRpc

        rpc = JsonRpc(self.client.rpc.url)
        topics = {
            self.client.topics["SynthesisRequested"]: self.requested,
            self.client.topics["SynthesisFulfilled"]: self.fulfilled,
        }
        query = {"address": self.client.address, "topics": [list(topics)]}
        next_block = self.from_block
        while not self.stop.is_set():
            try:
                head = int(rpc.call("eth_blockNumber"), 16)
                if head >= next_block:
                    logs = rpc.call("eth_getLogs", {**query, "fromBlock": hex(next_block), "toBlock": hex(head)})
                    now = time.perf_counter()
                    for entry in logs:
                        topics[entry["topics"][0]].setdefault(int(entry["topics"][1], 16), now)
                    next_block = head + 1
            except requests.RequestException:
                pass  # the node was busy; ask again
            self.stop.wait(self.interval)


def _send(rpc, raw: str) -> str:  # noqa: ANN001
    import requests

    for _ in range(20):
        try:
            return rpc.call("eth_sendRawTransaction", raw)
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError("the node refused a request transaction 20 times")


def run_once(
    box,
    voice,
    licenses,
    buyer_accounts,
    operator,
    workers: int,
    requests: int,
    rate: float,
    work: Path,
    rpc_url: str,
    anvil_pid: int,
    burst: int = 0,
) -> dict:
    from web3 import Web3

    from oracle.router import RouterClient
    from oracle.rpc import JsonRpc
    from voicemarket.dev.sandbox import account_key
    from voicemarket.dev.services import RedisServer

    w3 = Web3(Web3.HTTPProvider(rpc_url))
    client = RouterClient.connect(rpc_url, box.router.address)
    with RedisServer(directory=work / f"redis-{workers}") as redis_server:
        env = box.oracle_env(
            rpc_url=rpc_url,
            redis_url=redis_server.url,
            operator_index=OPERATOR,
            voices=[voice],
            work_dir=work / f"oracle-{workers}",
            start_block=w3.eth.block_number,
            poll_interval_s=0.05,
            max_semantic_tokens=10,
            max_batch=50,
            batch_linger_s=0.2,
            requeue_after_s=120,
        )
        processes = [box.start_coordinator(env, work / f"logs-{workers}" / "coordinator.log")]
        try:
            for i in range(workers):
                processes.append(box.start_worker(env, work / f"logs-{workers}" / f"worker{i}.log", name=f"w{i}"))
            nonces = {b.address: w3.eth.get_transaction_count(b.address) for b in buyer_accounts}

            def send(count: int, label: str) -> list[tuple[str, float]]:
                now = w3.eth.get_block("latest")["timestamp"]
                signed = []
                for i in range(count):
                    buyer = buyer_accounts[i % len(buyer_accounts)]
                    params = box.request_params(
                        voice, licenses[buyer.address], operator, f"{label} {i}.", seed=i, now=now
                    )
                    signed.append((buyer, params, nonces[buyer.address]))
                    nonces[buyer.address] += 1
                return [(box.request_raw(account_key(b), n, p, w3=w3), time.perf_counter()) for b, p, n in signed]

            # Warm-up: every worker loads its voice (not timed).
            warm = send(2 * workers, "Warm up")
            warm_ids = _request_ids(w3, client, [h for h, _ in warm])
            deadline = time.monotonic() + 180
            while not set(warm_ids) <= {r for n, r, _ in client.outcome_logs(0) if n == "SynthesisFulfilled"}:
                if time.monotonic() > deadline:
                    raise RuntimeError("warm-up requests were not fulfilled in 180 s; see " + str(work))
                time.sleep(0.2)

            start_block = w3.eth.block_number + 1
            watcher = Watcher(client, start_block)
            watcher.start()
            # Pre-sign everything, then send open-loop at `rate`.
            now = w3.eth.get_block("latest")["timestamp"]
            plan = []
            chain_id = w3.eth.chain_id
            for i in range(requests):
                buyer = buyer_accounts[i % len(buyer_accounts)]
                params = box.request_params(
                    voice, licenses[buyer.address], operator, f"Request number {i}.", seed=i, now=now
                )
                plan.append(box.sign_request(account_key(buyer), nonces[buyer.address], params, chain_id))
                nonces[buyer.address] += 1
            rpc = JsonRpc(rpc_url)
            hashes: list[str] = []
            busy_before = _machine_busy_seconds()
            pids = {
                "coordinator": processes[0].pid,
                "redis": redis_server.pid,
                "anvil": anvil_pid,
                "benchmark": os.getpid(),
                **{f"worker{i}": p.pid for i, p in enumerate(processes[1:])},
            }
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
            t0 = time.perf_counter()
            for i, raw in enumerate(plan):
                delay = t0 + i / rate - time.perf_counter() if rate > 0 else 0
                if delay > 0:
                    time.sleep(delay)
                hashes.append(_send(rpc, raw))
            ids = _request_ids(w3, client, hashes)
            deadline = time.monotonic() + 300
            while len(set(ids) & set(watcher.fulfilled)) < len(ids) and time.monotonic() < deadline:
                time.sleep(0.1)
            wall = time.perf_counter() - t0
            cpu = {name: round(_cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
            cpu["others"] = round(_machine_busy_seconds() - busy_before - sum(cpu.values()), 2)
            time.sleep(1.0)  # anything sent twice would land now
            watcher.stop.set()
            watcher.join()
            burst_figures = (
                _burst(box, voice, licenses, buyer_accounts, operator, burst, w3, client, env) if burst else None
            )
        finally:
            for process in reversed(processes):
                process.stop()

    wanted = set(ids)
    events = [(n, r) for n, r, _ in client.outcome_logs(start_block) if r in wanted]
    fulfil_counts = Counter(r for n, r in events if n == "SynthesisFulfilled")
    skipped = sum(1 for n, _ in events if n == "FulfilmentSkipped")
    failed = sum(1 for n, _ in events if n == "SynthesisFailed")
    seen = [r for r in ids if r in watcher.fulfilled and r in watcher.requested]
    latencies = [watcher.fulfilled[r] - watcher.requested[r] for r in seen]
    fulfilled = len(fulfil_counts)
    span = (max(watcher.fulfilled[r] for r in seen) - min(watcher.requested[r] for r in seen)) if seen else 0.0
    batches = _batch_sizes(w3, client, start_block)
    return {
        "requests": requests,
        "fulfilled": fulfilled,
        "failed": failed,
        "lost": requests - fulfilled - failed,
        "duplicates": sum(c - 1 for c in fulfil_counts.values()) + skipped,
        "throughput_per_s": round(fulfilled / span, 2) if span else 0.0,
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(_percentile(latencies, 0.95), 3) if latencies else None,
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "offered_rate_per_s": rate,
        "fulfil_transactions": len(batches),
        "mean_batch": round(statistics.mean(batches), 2) if batches else 0.0,
        "cpu_s": {**cpu, "wall": round(wall, 2)},
        "worker_cpu_ms_per_request": round(
            1000 * sum(v for k, v in cpu.items() if k.startswith("worker")) / fulfilled, 1
        )
        if fulfilled
        else None,
        **({"burst": burst_figures} if burst_figures else {}),
    }


def _burst(box, voice, licenses, buyer_accounts, operator, count: int, w3, client, env) -> dict:  # noqa: ANN001
    """``count`` requests mined in two blocks (automining off while they are sent) to the running oracle:
    the time from the second block to the last fulfilment seen, the fulfilBatch transactions and the
    tasks the sweeper queued a second time."""
    import redis as redis_module

    from oracle.ledger import Ledger
    from voicemarket.dev.sandbox import account_key

    ledger = Ledger(
        redis_module.Redis.from_url(env["ORACLE_REDIS_URL"]),
        f"oracle:{box.router.address.lower()}:{operator.address.lower()}",
    )
    requeued_before = ledger.stats().get("requeued", 0)
    now = w3.eth.get_block("latest")["timestamp"]
    chain_id = w3.eth.chain_id
    nonces = {b.address: w3.eth.get_transaction_count(b.address, "pending") for b in buyer_accounts}
    plan = []
    for i in range(count):
        buyer = buyer_accounts[i % len(buyer_accounts)]
        params = box.request_params(voice, licenses[buyer.address], operator, f"Burst {i}.", seed=i, now=now)
        plan.append(box.sign_request(account_key(buyer), nonces[buyer.address], params, chain_id))
        nonces[buyer.address] += 1
    first_block = w3.eth.block_number + 1
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = []
        for i, raw in enumerate(plan):
            hashes.append(w3.to_hex(w3.eth.send_raw_transaction(raw)))
            if i == count // 2:
                w3.provider.make_request("evm_mine", [])
        w3.provider.make_request("evm_mine", [])
        t0 = time.perf_counter()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    ids = set(_request_ids(w3, client, hashes))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = {r for n, r, _ in client.outcome_logs(first_block) if n == "SynthesisFulfilled"}
        if ids <= done:
            break
        time.sleep(0.1)
    drained = time.perf_counter() - t0
    sizes = _batch_sizes(w3, client, first_block)
    return {
        "requests": count,
        "blocks": 2,
        "fulfilled": len(ids & done),
        "drain_s": round(drained, 2),
        "fulfil_transactions": len(sizes),
        "mean_batch": round(statistics.mean(sizes), 2) if sizes else 0.0,
        "requeued_by_sweeper": ledger.stats().get("requeued", 0) - requeued_before,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all processes, all cores), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(limit_s: float, threshold_cores: float = 0.25) -> float:
    """Wait (up to ``limit_s``) until the machine is nearly idle; returns the busy cores last seen.

    This machine is shared: other work running at the same time slows every figure here."""
    deadline = time.monotonic() + limit_s
    while True:
        before = _machine_busy_seconds()
        time.sleep(2.0)
        busy = (_machine_busy_seconds() - before) / 2.0
        if busy <= threshold_cores or time.monotonic() >= deadline:
            return round(busy, 2)
        print(f"waiting for a quiet machine: {busy:.2f} cores busy", flush=True)


def _request_ids(w3, client, tx_hashes: list[str]) -> list[int]:  # noqa: ANN001
    ids = []
    for tx in tx_hashes:
        receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=60, poll_latency=0.05)
        if receipt["status"] != 1:
            raise RuntimeError(f"request transaction {tx} reverted")
        (log,) = [
            entry
            for entry in receipt["logs"]
            if entry["topics"] and w3.to_hex(entry["topics"][0]) == client.requested_topic
        ]
        ids.append(client.decode_requested(log).request.id)
    return ids


def _batch_sizes(w3, client, from_block: int) -> list[int]:  # noqa: ANN001
    """Fulfilments per fulfilBatch transaction."""
    per_tx = Counter()
    for entry in w3.eth.get_logs(
        {
            "address": client.address,
            "fromBlock": from_block,
            "toBlock": "latest",
            "topics": [client.topics["SynthesisFulfilled"]],
        }
    ):
        per_tx[w3.to_hex(entry["transactionHash"])] += 1
    return list(per_tx.values())


def profile_serving(box, voice, licenses, buyer_accounts, operator, work: Path, rpc_url: str, count: int) -> dict:  # noqa: ANN001
    """Serve ``count`` requests in this process under cProfile (what a worker does per request, without
    Celery's own share): the coordinator queues them and submits the outcomes; its workers are not started.
    Prints the functions that take the time; returns the CPU per request."""
    import cProfile
    import io
    import pstats

    import redis as redis_module

    from oracle.app import serve
    from oracle.ledger import Ledger
    from oracle.runtime import namespace
    from oracle.settings import load_settings
    from voicemarket.dev.services import RedisServer

    with RedisServer(directory=work / "redis-profile") as redis_server:
        import ape

        env = box.oracle_env(
            rpc_url=rpc_url,
            redis_url=redis_server.url,
            operator_index=OPERATOR,
            voices=[voice],
            work_dir=work / "oracle-profile",
            start_block=ape.chain.blocks.head.number,
            poll_interval_s=0.05,
            max_semantic_tokens=10,
        )
        coordinator = box.start_coordinator(env, work / "logs-profile" / "coordinator.log")
        saved = dict(os.environ)
        try:
            os.environ.update({k: v for k, v in env.items() if k.startswith("ORACLE_")})
            settings = load_settings()
            ledger = Ledger(redis_module.Redis.from_url(redis_server.url), namespace(settings))
            ids = []
            for i in range(count + 2):
                buyer = buyer_accounts[i % len(buyer_accounts)]
                ids.append(box.request(buyer, voice, licenses[buyer.address], operator, f"Request number {i}.", seed=i))
            deadline = time.monotonic() + 60
            while not all(ledger.known(r) for r in ids):
                if time.monotonic() > deadline:
                    raise RuntimeError("the coordinator did not queue the requests in 60 s; see " + str(work))
                time.sleep(0.1)
            blocks = {r: int(ledger.request(r)["block"]) for r in ids}
            for request_id in ids[:2]:  # the voice loads (not measured)
                serve(settings, request_id, blocks[request_id])
            profiler = cProfile.Profile(time.process_time)  # CPU time, not wall time
            cpu0, wall0 = time.process_time(), time.perf_counter()
            profiler.enable()
            outcomes = [serve(settings, request_id, blocks[request_id]) for request_id in ids[2:]]
            profiler.disable()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            os.environ.clear()
            os.environ.update(saved)
            coordinator.stop()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    print(out.getvalue())
    return {
        "requests": count,
        "outcomes": dict(Counter(outcomes)),
        "cpu_ms_per_request": round(1000 * cpu / count, 2),
        "wall_ms_per_request": round(1000 * wall / count, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--rate", type=float, default=RATE, help="offered requests per second (0: as fast as possible)")
    parser.add_argument("--workers", default="1,2", help="worker process counts to run, comma-separated")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and data in this folder")
    parser.add_argument("--output", default="oracle", help="results file name (benchmarks/results/<name>.json)")
    parser.add_argument(
        "--burst",
        type=int,
        default=300,
        metavar="N",
        help="after the last run, N requests mined in two blocks (0: none)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="only serve N requests in this process under cProfile and print where the CPU goes",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each run, wait up to this long for the (shared) machine to be idle",
    )
    args = parser.parse_args()
    import ape

    from voicemarket.dev.sandbox import Sandbox

    figures = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-oracle-") as scratch,
        ape.networks.parse_network_choice("ethereum:local:foundry") as provider,
    ):
        work = args.keep or Path(scratch)
        accounts = ape.accounts.test_accounts
        box = Sandbox.deploy(accounts[0], work / "market")
        operator = accounts[OPERATOR]
        voice = box.publish_voice(accounts[1], [operator])
        buyers = [accounts[i] for i in BUYERS]
        licenses = {b.address: box.buy_license(b, voice) for b in buyers}
        if args.profile:
            print(profile_serving(box, voice, licenses, buyers, operator, work, provider.uri, args.profile))
            return
        counts = [int(x) for x in args.workers.split(",")]
        for count in counts:
            busy = wait_for_quiet(args.wait_quiet) if args.wait_quiet else None
            load_before = [round(x, 2) for x in os.getloadavg()]
            result = run_once(
                box,
                voice,
                licenses,
                buyers,
                operator,
                count,
                args.requests,
                args.rate,
                work,
                provider.uri,
                provider.process.pid,
                burst=args.burst if count == counts[-1] else 0,
            )
            if busy is not None:
                result["busy_cores_before"] = busy
            result["load_average_before"] = load_before  # `uptime`'s 1, 5, 15 min: the machine is shared
            result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            figures[f"workers_{count}"] = result
            print_table(
                f"oracle, {count} worker process(es), {args.requests} requests offered at {args.rate or 'max'}/s",
                result,
                TARGETS,
            )
    command = (
        f"python -m benchmarks.oracle --requests {args.requests} --rate {args.rate} --workers {args.workers}"
        f" --burst {args.burst}"
    )
    if args.wait_quiet:
        command += f" --wait-quiet {args.wait_quiet:g}"
    if args.output != "oracle":
        command += f" --output {args.output}"
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu_model = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "unknown")
    figures["cpu_model"] = cpu_model
    path = write_results(args.output, figures, command)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

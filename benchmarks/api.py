"""Speech API benchmark (`make bench-api` -> benchmarks/results/api.json).

Everything real and local: anvil (through ape-foundry), the contracts, a private redis-server, and
`python -m oracle api` (uvicorn, its own synth engine with continuous batching: ``--slots`` streams,
``--batch-rows``, ``--vocoder-slots``; one torch thread) serving a voice sealed to the operator.

- Latency and throughput, per voice (``tiny``: the tests' random voice; ``full``: a full-size
  GPT-SoVITS v2 voice with random weights, the compute of a real one, unless VOICEMARKET_WEIGHTS
  names real pretrained weights: see the ``full.weights`` key): C = 1, 4, 8, 16 concurrent
  clients, each its own buyer (licence, channel, token), each saying SENTENCES short sentences one
  after the other through :class:`voicemarket.market.speech_api.SpeechClient` (a voucher signed per
  sentence, the stream read as it comes, the receipt checked). First audio = from sending the
  request to the first PCM piece; sentences/s = all sentences / wall time of the run;
  ``speedup_8_clients`` = sentences/s at 8 clients over sentences/s at 1.
- Gas: 100 buyers' vouchers redeemed in one ``redeem`` transaction: fresh lanes (the first
  redemption of each lane writes its slot), then the same lanes again (steady state), with 1 use
  per voucher and with 10 uses per voucher. ``gas_per_use_batch100`` is the steady state with
  10 uses per voucher (a lane's latest voucher covers every use since the last redemption);
  the other keys give the rest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.common import print_table, write_results

OPERATOR = 2
USE_PRICE = 10**15
SENTENCES = 3
TEXT = "The quick brown fox jumps over the lazy dog."
TARGETS = {
    "first_audio_p50_s": "<= 1.5 s (full, short sentence)",
    "speedup_8_clients": ">= 1.5",
    "gas_per_use_batch100": "<= 5,000",
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ppu_offer(box, voice, creator) -> int:  # noqa: ANN001
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "api"))
    from api_helpers import publish_ppu

    return publish_ppu(box, voice, creator)


def _buyers(ape, box, offer: int, operator, count: int, deposit: int) -> list:  # noqa: ANN001
    from api_helpers import buy

    channels = ape.project.PaymentChannels.at(box.d.licenses.paymentChannels())
    out = []
    for _ in range(count):
        account = ape.accounts.test_accounts.generate_test_account()
        ape.chain.set_balance(account, 10**21)
        license_id = buy(box, offer, account)
        channels.deposit(operator, "0x" + "00" * 20, deposit, value=deposit, sender=account)
        out.append((account, license_id))
    return out


def gas_figures(ape, box, voice, offer: int, operator) -> dict:  # noqa: ANN001
    from voicemarket.market.channels import Voucher, domain_separator, key_signer
    from voicemarket.protocol import ETH

    channels = ape.project.PaymentChannels.at(box.d.licenses.paymentChannels())
    fee = box.router.operatorFee(operator, ETH)
    domain = domain_separator(channels.address, ape.chain.chain_id)
    buyers = _buyers(ape, box, offer, operator, 100, 10**18)
    figures = {}
    for label, uses_each in (("fresh_1", 1), ("steady_1", 1), ("steady_10", 10)):
        vouchers = []
        for account, license_id in buyers:
            done = channels.redeemed(channels.channelId(account, operator, ETH), license_id)
            uses = done[1] + uses_each
            amount = done[0] + uses_each * (USE_PRICE + fee)
            v = Voucher(account.address, operator.address, ETH, license_id, voice.model_id, amount, uses)
            vouchers.append(v.signed(domain, key_signer(str(account.private_key))).as_call())
        receipt = channels.redeem(vouchers, sender=operator)
        assert len(receipt.events.filter(channels.VoucherRedeemed)) == 100, "every voucher must be redeemed"
        figures[f"gas_batch100_{label}"] = receipt.gas_used
        figures[f"gas_per_voucher_batch100_{label}"] = receipt.gas_used // 100
        figures[f"gas_per_use_batch100_{label}"] = receipt.gas_used // (100 * uses_each)
    figures["gas_per_use_batch100"] = figures["gas_per_use_batch100_steady_10"]
    return figures


def _client_run(url: str, buyers: list, count: int, sentences: int, tmp: Path) -> dict:
    from voicemarket.market.channels import key_signer
    from voicemarket.market.speech_api import SpeechClient

    firsts: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    clients = []
    for account, _license in buyers[:count]:
        client = SpeechClient(url, key_signer(str(account.private_key)), account.address, timeout=600)
        client.sign_in()
        clients.append(client)
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        client, (_account, license_id) = clients[index], buyers[index]
        barrier.wait()
        for n in range(sentences):
            voucher_ready = time.perf_counter()
            seen: list[float] = []

            def on_audio(piece: bytes, seen=seen, started=voucher_ready) -> None:
                if len(piece) > 44 and not seen:  # the first PCM piece (the header comes alone)
                    seen.append(time.perf_counter() - started)

            try:
                client.say(license_id, f"{TEXT} ({n})", out=tmp / f"c{index}-{n}.wav", on_audio=on_audio)
            except Exception as exc:  # noqa: BLE001 - counted and shown
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                firsts.extend(seen)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for client in clients:
        client.close()
    done = len(firsts)
    return {
        "clients": count,
        "sentences": done,
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "first_audio_p50_s": round(statistics.median(firsts), 3) if firsts else None,
        "first_audio_p95_s": round(_percentile(firsts, 0.95), 3) if firsts else None,
        "sentences_per_s": round(done / wall, 3),
        "wall_s": round(wall, 2),
    }


def voice_figures(ape, box, voice, offer, operator, work: Path, label: str, args) -> dict:  # noqa: ANN001, PLR0913
    from voicemarket.dev.services import ManagedProcess, RedisServer, free_port

    counts = [int(x) for x in args.clients.split(",")]
    buyers = _buyers(ape, box, offer, operator, max(counts), 10**18)
    port = free_port()
    with RedisServer() as redis:
        env = box.oracle_env(
            rpc_url=ape.chain.provider.uri,
            redis_url=redis.url,
            operator_index=OPERATOR,
            voices=[voice],
            work_dir=work / label,
            max_semantic_tokens=args.tokens,
            torch_threads=1,
        )
        env.update(
            {
                "ORACLE_API_PORT": str(port),
                "ORACLE_API_PUBLIC_URI": f"http://127.0.0.1:{port}",
                "ORACLE_API_DOMAIN": "127.0.0.1",
                "ORACLE_API_SYNTH_SLOTS": str(args.slots),
                "ORACLE_API_RATE_PER_MINUTE": "100000",
                "ORACLE_API_MAX_WAITING": "64",
                "ORACLE_API_STREAM_TIMEOUT_S": "600",
                "ORACLE_API_SEND_TIMEOUT_S": "120",
                "ORACLE_API_REDEEM_INTERVAL_S": "3600",
                "ORACLE_API_CHUNK_TOKENS": str(args.chunk_tokens),
                "ORACLE_API_FIRST_CHUNK_TOKENS": str(args.first_chunk_tokens),
                "ORACLE_API_BATCH_ROWS": str(args.batch_rows),
                "ORACLE_API_VOCODER_SLOTS": str(args.vocoder_slots),
            }
        )
        log = work / f"api-{label}.log"
        root = Path(__file__).resolve().parents[1]
        process = ManagedProcess([sys.executable, "-m", "oracle", "api"], log_path=log, env=env, cwd=root, name="api")
        process.start()
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, process, log)
            # Warm-up (not timed): the voice loads, the front end and the engine warm up.
            _client_run(url, buyers, 1, 1, work)
            runs = {}
            for count in counts:
                seen = len(_stream_logs(log))
                load = os.getloadavg()[0]
                runs[count] = _client_run(url, buyers, count, args.sentences, work)
                runs[count]["load_1min_before"] = round(load, 2)
                runs[count]["server"] = _server_timings(_stream_logs(log)[seen:])
                print_table(f"{label} voice, {count} client(s) x {args.sentences} sentences", runs[count], TARGETS)
            import httpx

            decode = httpx.get(url + "/v1/metrics", timeout=30).json()["voices"]
        finally:
            process.stop()
    one = runs[counts[0]]
    figures = {f"clients_{c}": r for c, r in runs.items()}
    figures["first_audio_p50_s"] = one["first_audio_p50_s"]
    figures["first_audio_p95_s"] = one["first_audio_p95_s"]
    if 8 in runs and one["sentences_per_s"]:
        figures["speedup_8_clients"] = round(runs[8]["sentences_per_s"] / one["sentences_per_s"], 3)
    figures["decode"] = next(iter(decode.values()), {})  # the API's decode loop over every run (warm-up included)
    return figures


def _stream_logs(log: Path) -> list[dict]:
    """The API's "speech stream ended" lines (JSON logs)."""
    import json

    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"speech stream ended"' in line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def _server_timings(lines: list[dict]) -> dict:
    """Medians, over a run's streams, of the API's own clock from a request's arrival: checks done
    (token, licence, voucher: ``checked_s``), first PCM piece queued (``first_audio_s``), and the
    front end + reference (``prepare_s``)."""
    out = {}
    for key in ("checked_s", "prepare_s", "first_audio_s"):
        values = [line[key] for line in lines if key in line]
        if values:
            out[f"{key}_p50"] = round(statistics.median(values), 3)
    return out


def _wait_ready(url: str, process, log: Path) -> None:  # noqa: ANN001
    import httpx

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not process.alive():
            break
        time.sleep(0.3)
    raise RuntimeError(f"the API did not start:\n{log.read_text()[-3000:]}")


def _full_voice_files(work: Path):  # noqa: ANN202
    """Real pretrained weights (VOICEMARKET_WEIGHTS), else a full-size random voice (bench-synth's)."""
    from synth.random_model import write_random_model
    from synth.testing import make_reference_wav
    from voicemarket.dev.sandbox import TinyVoiceFiles

    folder = Path(os.environ.get("SYNTH_BENCH_DIR", Path(tempfile.gettempdir()) / "voicemarket-synth-full"))
    files = write_random_model(folder, "full")
    reference = make_reference_wav(work / "full-ref.wav", "A reference sentence for the full-size voice.", seconds=4.0)
    return TinyVoiceFiles(files.gpt_path, files.sovits_path, files.hubert_dir, files.bert_dir, reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,4,8,16", help="concurrent clients per run, comma-separated")
    parser.add_argument("--sentences", type=int, default=SENTENCES, help="sentences per client per run")
    parser.add_argument("--tokens", type=int, default=25, help="max semantic tokens per sentence (25 = 1 s)")
    parser.add_argument("--chunk-tokens", type=int, default=25, help="tokens per streamed piece")
    parser.add_argument("--first-chunk-tokens", type=int, default=8, help="tokens of a sentence's first piece")
    parser.add_argument("--slots", type=int, default=8, help="streams synthesised at once in the API process")
    parser.add_argument("--batch-rows", type=int, default=8, help="sentences decoded together in one GPT step")
    parser.add_argument("--vocoder-slots", type=int, default=1, help="SoVITS pieces computed at once")
    parser.add_argument("--voices", default="tiny,full", help="tiny, full or both")
    parser.add_argument("--no-gas", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and data in this folder")
    args = parser.parse_args()
    load_at_start = os.getloadavg()
    import ape

    from voicemarket.dev.sandbox import Sandbox

    figures: dict = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-api-") as scratch,
        ape.networks.parse_network_choice("ethereum:local:foundry"),
    ):
        work = args.keep or Path(scratch)
        accounts = ape.accounts.test_accounts
        box = Sandbox.deploy(accounts[0], work / "market")
        operator = accounts[OPERATOR]
        voices = {"tiny": box.publish_voice(accounts[1], [operator])}
        if not args.no_gas:
            offer = _ppu_offer(box, voices["tiny"], accounts[1])
            figures.update(gas_figures(ape, box, voices["tiny"], offer, operator))
            print_table("redeem: 100 vouchers in one transaction", dict(figures), TARGETS)
        for label in [x for x in args.voices.split(",") if x]:
            if label == "full":
                voices["full"] = box.publish_voice(accounts[1], [operator], files=_full_voice_files(work))
                figures["full.weights"] = (
                    "random full-size GPT-SoVITS v2 weights (the compute of a real voice); real pretrained weights "
                    f"(VOICEMARKET_WEIGHTS={os.environ.get('VOICEMARKET_WEIGHTS', 'unset')}) are not used"
                )
            offer = _ppu_offer(box, voices[label], accounts[1])
            for key, value in voice_figures(ape, box, voices[label], offer, operator, work, label, args).items():
                figures[f"{label}.{key}"] = value
    command = (
        f"python -m benchmarks.api --clients {args.clients} --sentences {args.sentences} --tokens {args.tokens} "
        f"--chunk-tokens {args.chunk_tokens} --first-chunk-tokens {args.first_chunk_tokens} --slots {args.slots} "
        f"--batch-rows {args.batch_rows} --vocoder-slots {args.vocoder_slots} --voices {args.voices}"
    )
    figures["load_avg_at_end"] = os.getloadavg()
    figures["load_avg_at_start"] = load_at_start
    path = write_results("api", figures, command)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()

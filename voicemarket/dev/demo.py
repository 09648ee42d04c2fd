"""`make demo`: the whole market on this machine, end to end, with real parts.

A private chain (anvil, through Ape's foundry provider) and a redis-server start on 127.0.0.1;
the contracts are deployed; an operator registers with a stake and starts its oracle
(`python -m oracle run`: the listener, the batch submitter and one Celery worker); a creator
mints a voice (sealed to the operator, registered with the voice owner's consent, offers
published from a YAML description); a buyer buys a subscription and a pay-per-use licence and
asks for a sentence in English, one in Mandarin and one in Cantonese; the oracle synthesises and delivers; the
WAV files are fetched by CID, checked against the SHA-256 on-chain and written to
``demo-output/``; the revenue is split and every party's withdrawable balance shown. Everything
started is stopped at the end, also on Ctrl-C or a failure.

The voice: the public GPT-SoVITS v2 weights when ``VOICEMARKET_WEIGHTS`` names their folder
(see :func:`find_real_weights`), otherwise randomly initialised weights of the full-size
architecture (written once into ``.demo-cache/``), whose audio is noise.

    python -m voicemarket.dev.demo [--output demo-output] [--tiny]
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import click

from voicemarket.errors import DemoError
from voicemarket.protocol import ETH, Language, Tier
from voicemarket.units import ETH_ASSET, format_amount

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".demo-cache"
WEIGHTS_ENV = "VOICEMARKET_WEIGHTS"
RANDOM_VOICE_TOKENS = 25  # semantic tokens per sentence for a random voice (25 tokens = 1 s of audio)
OPERATOR_FEE = 2 * 10**14  # 0.0002 ETH per request
VOICE_OWNER_BPS = 2_500
REFERENCE_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs away."
PREVIEW_LINE = "A preview of the demo voice."
SENTENCES = (
    ("en", "subscription", "Welcome to the voice market, where every voice is licensed."),
    ("zh", "pay-per-use", "欢迎来到声音市场，每一个声音都有授权。"),
    ("yue", "pay-per-use", "歡迎嚟到聲音市場，每一把聲都有授權。"),
)
OFFERS_YAML = """\
asset: ETH
offers:
  - tier: subscription
    price: 0.01 ether
    period: 30 days
    max_uses: 1000
    permit: [textToSpeech, commercialize]
    prohibit: [sublicense]
  - tier: pay-per-use
    price: 0.001 ether
    pack_size: 0            # each use is paid when it is requested
    permit: [textToSpeech]
"""
# Ape test accounts (funded on the local chain) and their parts in the story.
DEPLOYER, CREATOR, VOICE_OWNER, OPERATOR, BUYER = 0, 1, 2, 3, 4


# ---------------------------------------------------------------- the voice's weights


@dataclass(frozen=True)
class Weights:
    gpt: Path
    sovits: Path
    hubert_dir: Path
    bert_dir: Path
    real: bool
    description: str


WEIGHTS_HELP = f"""\
To hear speech, configure the public GPT-SoVITS v2 pretrained weights (they cannot be downloaded
on this machine; get them where you can, e.g. the Hugging Face repository lj1995/GPT-SoVITS, the
folder GPT-SoVITS calls GPT_SoVITS/pretrained_models):
    {WEIGHTS_ENV}=/path/to/pretrained_models make demo
The folder must hold
    chinese-hubert-base/                  (config.json, preprocessor_config.json, the weights)
    chinese-roberta-wwm-ext-large/        (config.json, tokenizer files, the weights)
    gsv-v2final-pretrained/s1bert25hz-5kh-longer-epoch=12-step=369668.ckpt   (GPT, v2)
    gsv-v2final-pretrained/s2G2333k.pth                                      (SoVITS, v2)
(or exactly one v2 .ckpt and one v2 .pth at its top level)."""


def find_real_weights(folder: str | Path) -> Weights:
    """The v2 GPT and SoVITS files and the two encoder folders in a GPT-SoVITS ``pretrained_models`` folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DemoError(f"{WEIGHTS_ENV}={folder} is not a folder.\n{WEIGHTS_HELP}")
    missing = [
        name
        for name in ("chinese-hubert-base", "chinese-roberta-wwm-ext-large")
        if not (folder / name / "config.json").is_file()
    ]
    if missing:
        raise DemoError(f"{folder} has no {' or '.join(missing)} folder (with its config.json).\n{WEIGHTS_HELP}")
    v2 = folder / "gsv-v2final-pretrained"
    place = v2 if v2.is_dir() else folder
    ckpts, pths = sorted(place.glob("*.ckpt")), sorted(place.glob("*.pth"))
    if len(ckpts) != 1 or len(pths) != 1:
        raise DemoError(
            f"{place} must hold exactly one .ckpt (GPT) and one .pth (SoVITS) of GPT-SoVITS v2; found "
            f"{[p.name for p in ckpts + pths] or 'none'}.\n{WEIGHTS_HELP}"
        )
    return Weights(
        ckpts[0],
        pths[0],
        folder / "chinese-hubert-base",
        folder / "chinese-roberta-wwm-ext-large",
        True,
        f"GPT-SoVITS v2 weights from {folder}",
    )


def random_weights(size: str) -> Weights:
    """Randomly initialised weights of the real architecture, written once into ``.demo-cache/``."""
    from synth.random_model import write_random_model

    files = write_random_model(CACHE / f"random-{size}", size)
    return Weights(
        files.gpt_path,
        files.sovits_path,
        files.hubert_dir,
        files.bert_dir,
        False,
        f"random {size}-size GPT-SoVITS v2 weights (cached in {CACHE.relative_to(ROOT)}/)",
    )


# ---------------------------------------------------------------- output


class Steps:
    """Numbered steps with their timings."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0
        self.started = time.monotonic()
        self._step_started: float | None = None

    def __call__(self, title: str) -> None:
        self.end()
        self.number += 1
        self._step_started = time.monotonic()
        click.secho(f"\n[{self.number}/{self.total}] {title}", bold=True)

    def end(self) -> None:
        if self._step_started is not None:
            click.echo(f"      ({time.monotonic() - self._step_started:.1f} s)")
            self._step_started = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def say(text: str = "") -> None:
    click.echo(f"      {text}" if text else "")


def short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


# ---------------------------------------------------------------- the oracle


def oracle_config(
    path: Path,
    *,
    rpc_url: str,
    router: str,
    redis_url: str,
    model_id: int,
    keyring_cid: str,
    store: Path,
    work: Path,
    weights: Weights,
    max_tokens: int | None,
) -> Path:
    """The operator's ``oracle.toml`` (docs/oracle.md), as an operator would write it for this machine."""
    lines = [
        "[oracle]",
        f'rpc_url = "{rpc_url}"',
        f'router = "{router}"',
        f'test_account = {OPERATOR}            # a local chain\'s test account (else: account = "<ape alias>")',
        f'redis_url = "{redis_url}"',
        "confirmations = 0                    # a private chain does not reorganise",
        "poll_interval_s = 0.2",
        "batch_linger_s = 0.05",
        f'store = "local:{store}"',
        f'models_dir = "{work / "oracle-models"}"',
        f'hubert_dir = "{weights.hubert_dir}"',
        f'bert_dir = "{weights.bert_dir}"',
        f"torch_threads = {os.cpu_count() or 1}",
        "metrics_port = 0",
        'log_format = "text"',
    ]
    if max_tokens is not None:
        lines.append(f"max_semantic_tokens = {max_tokens}           # random weights never stop by themselves")
    lines += ["", f'[oracle.models."{model_id:#066x}"]', f'keyring = "{keyring_cid}"', ""]
    path.write_text("\n".join(lines))
    return path


def start_oracle(config: Path, log_path: Path):  # noqa: ANN201 - a ManagedProcess
    """``python -m oracle run --workers 1``: listener + submitter + one Celery worker, stopped by PID later."""
    from voicemarket.dev.services import ManagedProcess

    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = ManagedProcess(
        [sys.executable, "-m", "oracle", "run", "--config", str(config), "--workers", "1", "--pool", "solo"],
        log_path=log_path,
        env=env,
        cwd=ROOT,
        name="oracle",
    )
    process.start()
    return process


# ---------------------------------------------------------------- the story


def run(output: Path, size: str) -> None:  # noqa: PLR0915 - one story, told in order
    import ape
    import yaml
    from ape.logging import LogLevel, logger

    from voicemarket.content.store import LocalStore
    from voicemarket.dev.services import RedisServer, local_chain
    from voicemarket.market import chain as vm
    from voicemarket.market import earnings, licensing, operators, speech
    from voicemarket.market.buyer_key import BuyerKey
    from voicemarket.market.deployments import LOCAL_DEFAULTS
    from voicemarket.market.minting import DEFAULT_PREVIEW_TEXTS, ModelFolder, PreviewText, mint_voice, parse_offers

    logger.set_level(LogLevel.WARNING)  # not a line per confirmed transaction

    def eth(amount: int) -> str:
        return format_amount(amount, ETH_ASSET)

    weights_folder = os.environ.get(WEIGHTS_ENV)
    steps = Steps(10)
    click.secho("voicemarket demo: a voice market on this machine, from deployment to paid, verified speech", bold=True)
    output.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="voicemarket-demo-"))
        stack.callback(shutil.rmtree, work, True)
        logs = output / "logs"
        shutil.rmtree(logs, ignore_errors=True)

        steps("Start a private chain (anvil) and Redis")
        provider = stack.enter_context(local_chain())
        _interruptible()  # Ape's provider installed handlers that exit at once; ours unwind the ExitStack
        redis_server = stack.enter_context(RedisServer(directory=work / "redis"))
        accounts = ape.accounts.test_accounts
        deployer, creator, owner, operator, buyer = (
            accounts[i] for i in (DEPLOYER, CREATOR, VOICE_OWNER, OPERATOR, BUYER)
        )
        anvil = getattr(provider, "process", None)
        say(f"anvil     {provider.uri} (chain id {provider.chain_id}" + (f", pid {anvil.pid})" if anvil else ")"))
        say(f"redis     {redis_server.url} (pid {redis_server.pid})")
        say(
            f"accounts  deployer/platform {short(deployer.address)}, creator {short(creator.address)}, "
            f"voice owner {short(owner.address)}, operator {short(operator.address)}, buyer {short(buyer.address)}"
        )

        steps("Deploy the registry, the licence manager (with its offer book) and the router")
        d = vm.deploy(deployer, **{**LOCAL_DEFAULTS, "stablecoin": None})
        for name, address in d.addresses.items():
            say(f"{name:<9} {address}")
        say(
            f"platform fee {LOCAL_DEFAULTS['platform_fee_bps'] / 100:.0f}%, operator minimum stake "
            f"{eth(LOCAL_DEFAULTS['min_stake'])}"
        )

        steps("The operator registers with a stake and sets its fee")
        stake = operators.register(d, operator)  # what `ape run operator register` and `... fee` do
        operators.set_fee(d, operator, ETH_ASSET, OPERATOR_FEE)
        say(
            f"operator {operator.address}: staked {eth(stake)} (its public key is on-chain for creators to seal "
            f"to), fee {eth(OPERATOR_FEE)} per request"
        )

        steps("The creator mints a voice (pack, seal for the operator, store, register with consent, offers)")
        if weights_folder:
            weights = find_real_weights(weights_folder)
            max_tokens = None
            say(f"weights: {weights.description}")
        else:
            first = not (CACHE / f"random-{size}" / "random-model.json").is_file()
            if first:
                say(f"writing random {size}-size weights into {CACHE.relative_to(ROOT)}/ (once; later runs reuse them)")
            weights = random_weights(size)
            max_tokens = RANDOM_VOICE_TOKENS
            say(f"weights: {weights.description}")
            click.secho(
                f"      NOTE: {WEIGHTS_ENV} is not set, so this voice has RANDOM weights of the real "
                "architecture:\n      its audio will be NOISE, not speech.",
                fg="yellow",
            )
            for line in WEIGHTS_HELP.splitlines():
                say(line)
            say("A random voice never emits its end-of-speech token: it would babble until the oracle's limit (1500")
            say("semantic tokens = 60 s of audio, minutes of CPU per sentence). So the operator's oracle.toml caps")
            say(
                f"it at max_semantic_tokens = {max_tokens} ({max_tokens / 25:.0f} s of audio per sentence); "
                "real weights end speech by themselves."
            )
        from synth.testing import make_reference_wav

        reference = make_reference_wav(work / "reference.wav", REFERENCE_TEXT, seconds=5.0)
        if weights.real:  # the public preview: never the reference clip (it would let anyone clone the voice)
            preview = PreviewText(DEFAULT_PREVIEW_TEXTS["en"], "en")
            say(f"preview   the model speaks {preview.text!r} (public; the reference stays sealed)")
        else:
            preview = make_reference_wav(work / "preview.wav", PREVIEW_LINE, seconds=3.0)
            say("preview   an espeak-ng line, not the reference (a random voice's own preview would be noise;")
            say("          with real weights the model speaks it); the reference clip stays sealed in the bundle")
        voice = ModelFolder(
            name="Demo voice",
            description=f"voicemarket demo voice ({weights.description})",
            languages=("en", "zh", "yue"),
            gpt=weights.gpt,
            sovits=weights.sovits,
            reference_audio=reference,
            reference_text=REFERENCE_TEXT,
            reference_language="en",
            preview=preview,
            folder=work,
        )
        store = LocalStore(work / "store")
        say("offers (YAML):")
        for line in OFFERS_YAML.splitlines():
            say(f"  {line}")
        offers = parse_offers(yaml.safe_load(OFFERS_YAML), d, source="the demo's offers")
        minted = mint_voice(
            creator,
            d,
            voice,
            offers=offers,
            operators=[operator.address],
            store=store,
            voice_owner=owner,
            voice_owner_bps=VOICE_OWNER_BPS,
            hubert_dir=weights.hubert_dir,
            bert_dir=weights.bert_dir,
        )
        say(
            f"model     {minted.model_hex}  (keccak256 of the creator and the bundle's SHA-256 "
            f"{minted.digest.hex()[:16]}…; {voice.size / 1e6:.0f} MB packed and sealed)"
        )
        say(f"bundle    {minted.bundle_cid}  (AES-256-GCM, key wrapped to the operator and the creator)")
        say(f"keyring   {minted.keyring_cid}")
        say(
            f"consent   the voice owner {short(owner.address)} signed it (EIP-712), "
            f"taking {VOICE_OWNER_BPS / 100:.0f}% of the model's revenue"
        )
        offer_ids = {}
        for published in minted.offers:
            label = Tier(published.terms.tier).label
            offer_ids[label] = published.offer_id
            say(
                f"offer {published.offer_id}   {label:<12} {eth(published.terms.price)}  "
                f"policy {published.policy_hash.hex()[:16]}… (ODRL document {published.policy_cid})"
            )

        steps("The operator starts its oracle (python -m oracle run: listener, submitter, one worker)")
        config = oracle_config(
            work / "oracle.toml",
            rpc_url=provider.uri,
            router=d.router.address,
            redis_url=redis_server.url,
            model_id=minted.model_id,
            keyring_cid=minted.keyring_cid,
            store=store.root,
            work=work,
            weights=weights,
            max_tokens=max_tokens,
        )
        oracle = start_oracle(config, logs / "oracle.log")
        stack.callback(oracle.stop)
        oracle.wait_until(
            lambda: "ready" in oracle.log_tail(200) and "oracle starting" in oracle.log_tail(200),
            120,
            "the oracle and its worker to start",
        )
        say(
            f"oracle pid {oracle.pid}, config {config.name} (copied to {output / 'oracle.toml'}), log {oracle.log_path}"
        )
        shutil.copyfile(config, output / "oracle.toml")

        steps("The buyer buys a subscription and a pay-per-use licence")
        licenses, buyer_paid = {}, 0
        for label in (Tier.SUBSCRIPTION.label, Tier.PAY_PER_USE.label):
            # as `ape run buy` does (--auto-renew: keepers may renew the subscription from the buyer's funds)
            purchase = licensing.buy(
                d, buyer, offer_ids[label], max_price=10**16, auto_renew=label == Tier.SUBSCRIPTION.label
            )
            licenses[label] = purchase.license_id
            buyer_paid += purchase.paid
            paid = (
                f"paid {eth(purchase.paid)} for 30 days, auto-renewal on"
                if purchase.paid
                else f"free licence; each use pays {eth(int(purchase.offer.terms.price))} when requested"
            )
            say(f"licence {purchase.license_id}  {label:<12} {paid}")

        steps("The buyer asks for speech in English, Mandarin and Cantonese; the oracle synthesises and delivers")
        buyer_key = BuyerKey.derive(buyer, int(ape.chain.chain_id))  # as `ape run say` does unless --public
        say("private: the texts go sealed to the operator; the audio comes back sealed to the buyer's key")
        say(f"          {buyer_key.key_address} (made from the buyer's signature of a fixed message)")
        submitted = []
        for language, label, text in SENTENCES:
            license = speech.license_use(d.licenses, licenses[label], buyer.address)
            params = vm.SynthesisParams(Language.parse(language), seed=1)
            request = speech.submit(
                d.router,
                buyer,
                license,
                text,
                params,
                operator=operator.address,
                max_fee=OPERATOR_FEE,
                ttl_s=600,
                buyer=buyer_key,
            )
            submitted.append((language, label, text, request))
            say(f"request {request.request_id} ({language}, {label} licence {licenses[label]}): {text}")
            say(
                f"          escrow {eth(request.escrow)} (use price {eth(int(request.fields['usePrice']))} + "
                f"fee {eth(int(request.fields['fee']))})"
            )
        outcomes = []
        for language, _label, _text, request in submitted:
            started = time.monotonic()
            outcome = speech.wait_for_outcome(d.router, request, timeout_s=240)
            if not outcome.delivered:
                reason = f" ({outcome.reason.name})" if outcome.reason is not None else ""
                raise DemoError(
                    f"request {request.request_id} ended {outcome.status.name}{reason}; the oracle's log "
                    f"is {oracle.log_path}:\n{oracle.log_tail(30)}"
                )
            say(
                f"request {request.request_id}: {outcome.status.label} (waited {time.monotonic() - started:.1f} s), "
                f"audio {outcome.output_cid}"
            )
            outcomes.append((language, request, outcome))

        steps("Fetch the audio by CID, open it with the buyer's key and verify it against the chain")
        for language, request, outcome in outcomes:
            path = speech.fetch_audio(
                store, outcome, output / f"request-{request.request_id}-{language}.wav", buyer_key
            )
            say(f"{path}  {_wav_length(path):.1f} s, SHA-256 {outcome.output_digest.hex()[:16]}… = the digest on-chain")
        if not weights.real:
            say(f"(noise: random weights; set {WEIGHTS_ENV} to hear speech)")

        steps("Split the revenue and show what each party can withdraw")
        buyer_paid += sum(request.escrow for _, _, _, request in submitted)
        split = earnings.model_earnings(d, minted.model_id, {ETH: ETH_ASSET}).revenue[ETH]
        for ledger in (d.licenses, d.router):  # anyone may distribute a pot (`ape run withdraw` does it first)
            ledger.distribute(minted.model_id, ETH, sender=deployer)
        say(
            f"{'party':<12} {'address':<13} {'revenue':>11}   "
            f"{'withdrawable: sales':>19} {'+ router':>11} {'= total':>11}"
        )
        held = 0
        for name, party, address in (
            ("creator", "creator", creator.address),
            ("voice owner", "voice owner", owner.address),
            ("operator", "operators", operator.address),
            ("platform", "platform", None),
        ):
            if address is None:  # the platform's share waits for its treasurer (withdrawPlatformFees)
                sales, uses = int(d.licenses.platformBalance(ETH)), int(d.router.platformBalance(ETH))
            else:
                sales, uses = int(d.licenses.creditOf(address, ETH)), int(d.router.creditOf(address, ETH))
            held += sales + uses
            say(
                f"{name:<12} {short(address) if address else '(treasurer)':<13} {eth(split.get(party, 0)):>11}   "
                f"{eth(sales):>19} {eth(uses):>11} {eth(sales + uses):>11}"
            )
            if split.get(party, 0) != sales + uses:
                raise DemoError(
                    f"the {name}'s revenue from the events ({split.get(party, 0)}) is not what it can "
                    f"withdraw ({sales + uses})"
                )
        say(
            f"the buyer paid {eth(buyer_paid)} (licences, use price, fees); the parties can withdraw {eth(held)}"
            + (": every wei accounted for" if held == buyer_paid else ": MISMATCH")
        )
        if held != buyer_paid:
            raise DemoError("the revenue split does not add up to what the buyer paid")
        say("each party takes its share with `ape run withdraw` (the treasurer: withdrawPlatformFees)")

        steps("Stop everything the demo started (the oracle, redis-server, anvil, the scratch folder)")
    steps.end()
    click.secho(f"\ndone in {steps.elapsed():.0f} s. The audio files are in {output}/.", bold=True)


def _wav_length(path: Path) -> float:
    import wave

    with wave.open(str(path), "rb") as audio:
        return audio.getnframes() / audio.getframerate()


def _terminate(signum, frame) -> None:  # noqa: ANN001
    raise KeyboardInterrupt


def _interruptible() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, so that everything started is stopped on the way out
    (also when the demo was started with SIGINT ignored, as `cmd &` does)."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)


@click.command()
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / "demo-output",
    show_default=True,
    help="where the WAV files (and the oracle's log and config) go",
)
@click.option("--tiny", is_flag=True, help="a tiny random voice instead of the full-size one (for tests)")
def main(output: Path, tiny: bool) -> None:
    """The whole voicemarket story on a private chain, with every part real."""
    missing = [tool for tool in ("anvil", "redis-server", "espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        raise click.ClickException(f"missing tools: {', '.join(missing)}. Run `make setup` (or `make demo`).")
    _interruptible()
    try:
        run(output, "tiny" if tiny else "full")
    except KeyboardInterrupt:
        click.echo("\ninterrupted: everything the demo started was stopped")
        sys.exit(130)
    except DemoError as exc:
        raise click.ClickException(f"{exc}\n(everything the demo started was stopped)") from None


if __name__ == "__main__":
    main()

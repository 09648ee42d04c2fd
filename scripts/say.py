"""`ape run say`: text -> a synthesis request on your licence -> the operator's audio, verified, in a WAV file.

    ape run say "Hello there." --licence 3 -o hello.wav --network ethereum:local --account alice
    ape run say --text-file chapter.txt --licence 3 --language en --seed 7 --max-fee "0.001 ether"
    ape run say "我哋今日去飲茶。" --licence 3 --lang yue      # Cantonese (English words inside read as English)
    ape run say --request 12 -o hello.wav              # follow (or fetch) an earlier request again
    ape run say --request 12 --cancel-expired          # refund a request its operator never delivered
    ape run say "Chapter one." --licence 3 --public     # text and audio in plain sight (e.g. a public-domain reading)

The request escrows the operator's fee (and, on a pay-per-use licence, the use price); the
audio is fetched by the CID the operator delivered and written only if its SHA-256 is the
digest on-chain. Requests are private unless --public: the text goes sealed to the operator's
registered key, the audio comes back sealed to your encryption key, which your account's
signature of a fixed message makes (your wallet asks once per run; see docs/privacy.md). A
failed or expired request is refunded in full to your credit on the router (`ape run withdraw`)
and the licence use is given back.
"""

from __future__ import annotations

import signal
import sys
import time
import wave
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option

from voicemarket.errors import SpeechError
from voicemarket.market import chain as vm
from voicemarket.market import speech
from voicemarket.market.assets import asset_info
from voicemarket.market.buyer_key import BuyerKey
from voicemarket.protocol import Language, RequestStatus
from voicemarket.units import format_amount, format_time

SPINNER = "|/-\\"


class ProgressLine:
    """One line that redraws itself on a terminal; a line every 10 s otherwise (logs, pipes)."""

    def __init__(self, operator: str) -> None:
        self.operator = operator
        self.tty = sys.stdout.isatty()
        self.last = -10.0
        self.ticks = 0

    def __call__(self, status: RequestStatus, waited: float, left: int) -> None:
        if status != RequestStatus.PENDING:
            return
        text = (
            f"waiting for operator {_short(self.operator)}: {status.label}, {waited:4.0f} s "
            f"(deadline in {_duration(max(left, 0))})"
        )
        if self.tty:
            self.ticks += 1
            click.echo(f"\r{SPINNER[self.ticks % 4]} {text}  ", nl=False)
        elif waited - self.last >= 10:
            self.last = waited
            click.echo(f"  {text}")

    def done(self) -> None:
        if self.tty and self.ticks:
            click.echo("\r" + " " * 100 + "\r", nl=False)


def _buyer_key(account) -> BuyerKey:  # noqa: ANN001 - an Ape account
    """The account's encryption key (its wallet signs the fixed message; a keystore asks for its passphrase)."""
    import ape

    buyer = BuyerKey.derive(account, int(ape.chain.chain_id))
    click.echo(f"private: your encryption key {buyer.key_address} (from your signature) opens the audio")
    return buyer


def _short(address: str) -> str:
    return f"{address[:6]}…{address[-4:]}"


def _duration(seconds: int) -> str:
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _wav_summary(path: Path) -> str:
    try:
        with wave.open(str(path), "rb") as audio:
            return (
                f"{audio.getnframes() / audio.getframerate():.2f} s at {audio.getframerate()} Hz, "
                f"{path.stat().st_size:,} bytes"
            )
    except (wave.Error, EOFError):
        return f"{path.stat().st_size:,} bytes (not a WAV file the wave module reads)"


def report_outcome(
    deployment,
    account,
    submitted: speech.SubmittedRequest,
    outcome: speech.Outcome,  # noqa: ANN001
    store,
    output: Path,
    *,
    cancel: bool,
    waited: float,
    buyer: BuyerKey | None = None,
) -> int:  # noqa: ANN001
    """Print what happened to the request (and fetch, open, verify and write the audio). The exit code."""

    router = deployment.router
    asset = asset_info(submitted.asset, deployment)
    request_id = submitted.request_id
    if outcome.delivered:
        sealed = " (sealed to your key)" if submitted.private else ""
        click.echo(f"{outcome.status.label} after {waited:.1f} s: audio {outcome.output_cid}{sealed}")
        path = speech.fetch_audio(store, outcome, output, buyer if submitted.private else None)
        click.echo(f"verified: the audio's SHA-256 {outcome.output_digest.hex()[:16]}… is the digest on-chain")
        click.echo(f"wrote {path} ({_wav_summary(path)})")
        if outcome.status == RequestStatus.FULFILLED:
            click.echo(
                f"the payout settles at {format_time(outcome.settle_after, seconds=True)}; "
                f"until then you may dispute request {request_id}"
            )
        return 0
    refund = format_amount(submitted.escrow, asset)
    if outcome.status == RequestStatus.FAILED:
        click.echo(f"failed: the operator reported {outcome.reason.explain()}")
    elif outcome.status == RequestStatus.EXPIRED:
        click.echo("expired: the operator did not deliver by the deadline; the request was cancelled")
    elif outcome.status == RequestStatus.REVERSED:
        click.echo("reversed: your dispute was upheld")
    elif outcome.status == RequestStatus.PENDING:
        import ape

        if int(ape.chain.pending_timestamp) <= submitted.deadline:
            click.echo(f"still pending after {waited:.0f} s; follow it again with `ape run say --request {request_id}`")
            return 3
        if not cancel:
            click.echo(
                f"expired: the operator did not deliver by the deadline. Cancel it for a full refund of "
                f"{refund}: `ape run say --request {request_id} --cancel-expired`"
            )
            return 2
        outcome = speech.cancel_expired(router, account, submitted)
        click.echo(f"expired: the operator did not deliver by the deadline; cancelled request {request_id}")
    if outcome.refunded:
        credit = format_amount(speech.credit(router, account.address, submitted.asset), asset)
        click.echo(
            f"refunded {refund} to your credit on the router (now {credit}; `ape run withdraw` pays it out); "
            "the licence use was given back"
        )
    return 1


def _say_via_api(api_url, account, license_id, text, language, params, output, receipts) -> None:  # noqa: ANN001, PLR0913
    """``--api``: sign in, sign the next voucher, write the stream as it arrives, check the receipt."""
    from voicemarket.market.channels import account_signer
    from voicemarket.market.speech_api import SpeechClient

    if not text or license_id is None:
        raise click.UsageError("give the text and --licence")
    out = output or Path(f"speech-{int(time.time())}.wav")
    client = SpeechClient(api_url, account_signer(account), account.address, receipts=receipts)
    started = time.monotonic()
    first: list[float] = []
    try:
        receipt = client.say(
            license_id,
            text,
            out=out,
            language=language,
            params=params,
            on_audio=lambda _piece: first or first.append(time.monotonic() - started),
        )
    except (SpeechError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()
    click.echo(
        f"{out}: {_wav_summary(out)}; first audio after {first[0]:.2f} s, all after "
        f"{time.monotonic() - started:.2f} s; use {receipt.uses} of this licence on your channel "
        f"(paid {receipt.amount} in all); receipt signed by {receipt.operator}, kept in {receipts}"
    )


@click.command(
    cls=ConnectedProviderCommand, short_help="Speak text with a licensed voice (request, wait, verify, save)"
)
@click.argument("text", required=False)
@click.option(
    "--text-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="read the text from this UTF-8 file instead",
)
@click.option("--licence", "--license", "license_id", type=int, help="your licence (token id) for the voice")
@click.option(
    "--language", "--lang", default="en", show_default=True, help="zh, en, ja, ko or yue (one of the model's)"
)
@click.option("--speed", type=float, help="0.25 .. 4.0 (default: the engine's 1.0)")
@click.option("--seed", type=int, default=0, show_default=True, help="sampling seed: the same seed, the same speech")
@click.option("--top-k", type=int)
@click.option("--top-p", type=float)
@click.option("--temperature", type=float)
@click.option("--repetition-penalty", type=float)
@click.option("--operator", help="the operator to ask (default: the cheapest one the model allows)")
@click.option("--max-fee", help="the most you pay the operator, e.g. '0.001 ether' or '2 mUSD' (default: its fee now)")
@click.option("--ttl", default=speech.DEFAULT_TTL_S, show_default=True, help="seconds the operator has to deliver")
@click.option(
    "--min-dispute-window",
    type=click.IntRange(min=0),
    default=None,
    help="the shortest dispute window (seconds) you accept; the request is refused if the model's owner "
    "shortened it below this (default: the model's window now)",
)
@click.option(
    "--store",
    "store_spec",
    help="where the audio (and a long text) is: local:PATH or kubo:URL "
    "(default: $VOICEMARKET_STORE or local:.voicemarket/store)",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="the WAV file to write (default: request-<id>.wav)",
)
@click.option("--timeout", type=float, help="stop waiting after this many seconds (default: until the deadline)")
@click.option("--request", "request_id", type=int, help="follow an earlier request instead of making one")
@click.option("--cancel-expired", is_flag=True, help="if the deadline passes undelivered, cancel for a full refund")
@click.option(
    "--public",
    is_flag=True,
    help="a public request: the text on-chain (or in the store) and the audio in the store in plain sight "
    "(default: private, sealed to the operator and to you)",
)
@click.option(
    "--api",
    "api_url",
    help="ask an operator's speech API at this URL instead of the chain: paid by a voucher on your channel with "
    "it (`ape run channel open`), the audio streamed as it is made (docs/api.md)",
)
@click.option(
    "--receipts",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("speech-receipts.jsonl"),
    show_default=True,
    help="--api: where the operator's signed receipts are kept (JSON lines)",
)
@account_option()
def cli(
    text,
    text_file,
    license_id,
    language,
    speed,
    seed,
    top_k,
    top_p,
    temperature,
    repetition_penalty,  # noqa: ANN001, PLR0913
    operator,
    max_fee,
    ttl,
    min_dispute_window,
    store_spec,
    output,
    timeout,
    request_id,
    cancel_expired,
    public,
    api_url,
    receipts,
    account,
) -> None:
    """Say TEXT with the voice of your licence --licence, and save the verified audio."""
    if api_url is not None:
        if text_file is not None:
            text = text_file.read_text(encoding="utf-8")
        knobs = {"seed": seed, "speed": speed, "top_k": top_k, "top_p": top_p, "temperature": temperature}
        knobs["repetition_penalty"] = repetition_penalty
        _say_via_api(api_url, account, license_id, text, language, knobs, output, receipts)
        return
    from voicemarket.cli.console import amount_in, user_errors
    from voicemarket.cli.console import deployment as saved_deployment
    from voicemarket.market.minting import open_store

    with user_errors():  # the deployment, the store, and the contracts' custom errors: one line with what to do
        deployment = saved_deployment()
        store = open_store(store_spec)
    router = deployment.router
    try:
        if request_id is not None:
            if text or text_file or license_id is not None:
                raise click.UsageError("--request follows an existing request: give no text or licence with it")
            submitted = speech.find_request(router, request_id, deployment.start_block)
            click.echo(
                f"request {request_id}: operator {submitted.operator}, deadline "
                f"{format_time(submitted.deadline, seconds=True)}{', private' if submitted.private else ''}"
            )
            with user_errors():
                buyer = _buyer_key(account) if submitted.private else None
        else:
            if text_file is not None:
                if text:
                    raise click.UsageError("give the text as an argument or with --text-file, not both")
                text = text_file.read_text(encoding="utf-8")
            if not text:
                raise click.UsageError("give the text to say (an argument or --text-file)")
            if license_id is None:
                raise click.UsageError("give --licence: the id of your licence for the voice (`ape run buy` prints it)")
            license = speech.license_use(deployment.licenses, license_id, account.address)
            license.check_language(Language.parse(language))
            asset = asset_info(license.asset, deployment)
            chosen, fee = speech.choose_operator(
                router, license.model_id, license.asset, operator, deployment.start_block
            )
            cap = fee if max_fee is None else amount_in(max_fee, asset, "--max-fee")
            uses = "unlimited uses" if license.uses_left is None else f"{license.uses_left} uses left"
            click.echo(
                f"licence {license_id}: {license.tier.label}, model "
                f"{license.model_id:#x} ({', '.join(license.language_codes)}), {uses}"
            )
            price = f"use price {format_amount(license.use_price, asset)}, " if license.use_price else ""
            click.echo(
                f"operator {chosen}: {price}fee {format_amount(fee, asset)} (your maximum {format_amount(cap, asset)})"
            )
            params = vm.SynthesisParams(
                Language.parse(language),
                speed=speed,
                top_k=top_k,
                top_p=top_p,
                temperature=temperature,
                repetition_penalty=repetition_penalty,
                seed=seed,
            )
            with user_errors():
                buyer = None if public else _buyer_key(account)
                submitted = speech.submit(
                    router,
                    account,
                    license,
                    text,
                    params,
                    operator=chosen,
                    max_fee=cap,
                    ttl_s=ttl,
                    store=store,
                    min_dispute_window=min_dispute_window,
                    buyer=buyer,
                )
            how = f"by CID {submitted.input_cid}" if submitted.input_cid else "inline"
            how = f"sealed to the operator, {how}" if submitted.private else how
            click.echo(
                f"request {submitted.request_id} sent in block {submitted.block_number} "
                f"(text {how}, {format_amount(submitted.escrow, asset)} in escrow, deadline in {_duration(ttl)})"
            )
        progress = ProgressLine(submitted.operator)
        started = time.monotonic()
        # Ctrl-C while waiting says how to come back (Ape's own handler would exit without a word).
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            outcome = speech.wait_for_outcome(router, submitted, timeout_s=timeout, on_progress=progress)
        except KeyboardInterrupt:
            raise click.ClickException(
                f"interrupted: request {submitted.request_id} stays on-chain; follow it with "
                f"`ape run say --request {submitted.request_id}`"
            ) from None
        finally:
            signal.signal(signal.SIGINT, previous)
            progress.done()
        with user_errors():
            code = report_outcome(
                deployment,
                account,
                submitted,
                outcome,
                store,
                output or Path(f"request-{submitted.request_id}.wav"),
                cancel=cancel_expired,
                waited=time.monotonic() - started,
                buyer=buyer,
            )
    except (SpeechError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if code:
        sys.exit(code)

"""`ape run report-usage LICENSE_ID --sentences N --seconds S --since TIME`: sign and submit a usage report.

A local-use licence's device accounts for its use: sentences spoken and seconds of audio over a
period (from --since, default the end of the last report on-chain, to now). The licence holder's
account signs it (EIP-712) and it is submitted to the KeyDelivery contract, which keeps it as an
event. Reports are self-reported: see docs/local-use.md for what a creator can and cannot infer.
`--sign-only` prints the signed report as JSON instead (another account may submit it later with
`--submit FILE`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import console, deployment, parse_id, user_errors


@click.command(cls=ConnectedProviderCommand, short_help="Sign and submit a local-use licence's usage report")
@network_option()
@account_option()
@click.argument("license_id", required=False)
@click.option("--sentences", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--seconds", type=click.IntRange(min=0), default=0, show_default=True, help="seconds of audio")
@click.option("--since", type=int, help="start of the period (unix time; default: the end of the last report)")
@click.option("--sign-only", is_flag=True, help="print the signed report as JSON; submit nothing")
@click.option(
    "--submit", "submit_file", type=click.Path(exists=True, path_type=Path), help="submit reports from a JSON file"
)
def cli(account, license_id, sentences: int, seconds: int, since: int | None, sign_only: bool, submit_file) -> None:  # noqa: ANN001
    """Report LICENSE_ID's use, or submit the signed reports of --submit FILE."""
    import ape

    from voicemarket.market.local_use import (
        LocalUse,
        UsageReport,
        key_delivery_of,
        sign_usage_report,
        submit_usage_reports,
    )

    with user_errors():
        market = deployment()
        kd = key_delivery_of(market)
        if submit_file is not None:
            items = json.loads(submit_file.read_text())
            signed = [(UsageReport(**item["report"]), bytes.fromhex(item["signature"][2:])) for item in items]
        else:
            licence = parse_id(license_id or "", "LICENSE_ID")
            start = LocalUse.read(kd, licence).reported_until if since is None else since
            now = int(ape.chain.blocks.head.timestamp)
            report = UsageReport(licence, start, now, sentences, seconds)
            signature = sign_usage_report(account, kd.address, int(ape.chain.chain_id), report)
            signed = [(report, signature)]
            if sign_only:
                click.echo(json.dumps([{"report": report.__dict__, "signature": "0x" + signature.hex()}], indent=2))
                return
        receipt = submit_usage_reports(market, signed, account)
    out = console()
    for report, _ in signed:
        out.print(
            f"licence {report.license_id}: {report.sentences} sentences, {report.audio_seconds} s of audio "
            f"from {report.period_start} to {report.period_end} (self-reported)"
        )
    out.print(f"submitted in {receipt.txn_hash}")

"""`ape run models`: find voice models in the index (for buyers).

Filters: --language, --tier, --asset, --min-price / --max-price (per --period for subscriptions,
default 30 days), --creator, --status, --search; sorted --sort newest | most_used | cheapest.
Reads a running read API (--api URL) or the index's database directly (--db, default the
indexer's: .voicemarket/index.sqlite or $VOICEMARKET_INDEX_DB). Prints a table, or --json.

    ape run models --language yue --tier subscription --max-price "10 mUSD"

It reads only the index (no --network): the index knows each asset's symbol and decimals.
"""

from __future__ import annotations

import json

import click

from voicemarket.cli.console import console, table, user_errors
from voicemarket.index.client import find_models
from voicemarket.index.settings import IndexSettings
from voicemarket.units import AssetInfo, format_amount


def asset_of(answer: dict) -> AssetInfo:
    """The asset the answer's prices are in (the client adds it to the answer)."""
    asset = answer["asset"]
    return AssetInfo(asset["address"], asset["symbol"], asset["decimals"])


@click.command(short_help="Find voice models by language, tier, price, creator")
@click.option("--language", help="zh, en, ja, ko or yue")
@click.option("--tier", help="buyout, subscription or pay-per-use")
@click.option("--asset", help="ETH, a token's symbol (mUSD) or address; else the prices' unit says")
@click.option("--min-price", help="e.g. '5 mUSD' or '0.01 ether' (subscriptions: per --period)")
@click.option("--max-price", help="e.g. '10 mUSD' or '0.5 ether' (subscriptions: per --period)")
@click.option("--period", default="30 days", show_default=True, help="subscription prices are compared per this")
@click.option("--creator", help="the creator's address")
@click.option("--status", type=click.Choice(["active", "retiring", "retired", "frozen"]))
@click.option("--search", "q", help="words in the name or description")
@click.option("--sort", type=click.Choice(["newest", "most_used", "cheapest"]), default="newest", show_default=True)
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True)
@click.option("--cursor", help="the next page (printed under the table)")
@click.option("--api", help="a read API's URL (python -m voicemarket.index serve), e.g. http://127.0.0.1:8600")
@click.option("--db", help="the index's database (default: the indexer's, .voicemarket/index.sqlite)")
@click.option("--json", "as_json", is_flag=True, help="print the answer as JSON")
def cli(api: str | None, db: str | None, as_json: bool, **params: str | int | None) -> None:
    """Search the index for voice models; every filter narrows the list."""
    with user_errors():
        answer = find_models(params, api=api, db=None if api else (db or IndexSettings.load().db))
    if as_json:
        click.echo(json.dumps(answer, indent=2))
        return
    out = console()
    items = answer["items"]
    if not items:
        out.print("No model matches.")
        return
    columns = ["model", "name", "languages", "status", "uses", "licences", "creator"]
    if answer.get("asset") and "min_price_30d" in items[0]:
        columns.append("lowest price")
    grid = table(None, *columns)
    for item in items:
        row = [
            item["model_id"],
            item["name"] or f"(metadata: {item['metadata_error'] or item['metadata_state']})",
            " ".join(item["languages"]),
            item["status"],
            str(item["uses"]),
            str(item["licenses_sold"]),
            item["creator"][:6] + "…" + item["creator"][-4:],
        ]
        if "lowest price" in columns:
            row.append(format_amount(int(item["min_price_30d"]), asset_of(answer)))
        grid.add_row(*row)
    out.print(grid)
    if "lowest price" in columns:
        out.print("lowest price: of the matching offers; a subscription's is for 30 days")
    if answer.get("next_cursor"):
        out.print(f"More: add --cursor {answer['next_cursor']}")
    out.print("A model's offers: ape run offers MODEL_ID")

"""`ape run offers MODEL_ID`: a model's offers as a table (for buyers).

Tier, price, asset, period, uses, permitted and prohibited actions, territories, purposes,
transferable, licences sold, and whether the offer still sells. Each offer's ODRL document is
regenerated from the chain and its hash compared with the offer's policyHash ("terms" column).
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, network_option

from voicemarket.cli.console import console, deployment, parse_id, table, user_errors
from voicemarket.market import licensing, minting
from voicemarket.units import format_time


@click.command(cls=ConnectedProviderCommand, short_help="Show a voice model's offers")
@network_option()
@click.argument("model_id")
@click.option("--all", "show_all", is_flag=True, help="also show retired, expired and sold-out offers")
@click.option("--store", "store_spec", default=None, help="where to read the model's name (default .voicemarket/store)")
def cli(model_id: str, show_all: bool, store_spec: str | None) -> None:
    """Show the offers of MODEL_ID (0x... as `ape run mint` printed it)."""
    model = parse_id(model_id, "MODEL_ID")
    with user_errors():
        market = deployment()
        offers = licensing.model_offers(market, model)
        summary = licensing.model_summary(market, model, minting.open_store(store_spec))
    out = console()
    state = "on sale"
    if summary.frozen:
        state = "frozen by the arbiter"
    elif summary.service_ends_at:
        state = f"retired: licences work until {format_time(summary.service_ends_at)}"
    out.print(f"Model {summary.name or ''} {model:#x}".replace("  ", " "))
    out.print(
        f"  creator {summary.creator}, voice owner {summary.voice_owner}; languages: {summary.languages}; {state}"
    )
    shown = [o for o in offers if show_all or o.status == "on sale"]
    if not shown:
        hidden = len(offers) - len(shown)
        out.print(f"No offer on sale ({hidden} retired, expired or sold out: --all shows them).")
        return
    grid = table(None, "offer", "tier", "price", "uses", "actions", "regions", "purposes", "transfer", "sold", "status")
    for offer in shown:
        terms = offer.terms
        grid.add_row(
            str(offer.offer_id),
            offer.tier,
            offer.price_text(),
            offer.uses_text(),
            licensing.rights_text(terms),
            licensing.territory_names(terms.territories),
            licensing.purpose_names(terms.purposes),
            "yes" if terms.transferable else "no",
            f"{offer.sold}" + (f"/{terms.max_licenses}" if terms.max_licenses else ""),
            offer.status + (f" until {format_time(terms.valid_until)}" if terms.valid_until else ""),
        )
    out.print(grid)
    mismatched = [str(o.offer_id) for o in shown if not o.policy_matches]
    if mismatched:
        out.print(
            f"WARNING: offer(s) {', '.join(mismatched)}: the policyHash is not the hash of the ODRL document "
            "regenerated from the offer's terms; do not buy them."
        )
    else:
        out.print("Each offer's ODRL document, regenerated from the chain, matches its policyHash.")
    from voicemarket.market.local_use import offer_page_lines

    for line in offer_page_lines(market, shown):
        out.print(line)
    out.print("Buy one with: ape run buy OFFER --max-price PRICE --account YOU")

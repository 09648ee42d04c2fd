"""`ape run local-use ...`: local-use licences — the model's decryption key for the buyer's own machines.

    ape run local-use offer OFFER_ID --price "0.05 ether"      # the model's owner, once per offer
    ape run local-use key-holder MODEL_ID OPERATOR             # the owner names who delivers keys
    ape run local-use buy LICENSE_ID --max-price "0.05 ether"  # the licence holder pays into escrow
    ape run local-use status LICENSE_ID                        # pending, delivered, settled, refunded, disproved
    ape run local-use refund LICENSE_ID                        # anyone, from the deadline, if no key came
    ape run local-use dispute LICENSE_ID                       # the buyer: the delivered key does not open
    ape run local-use settle LICENSE_ID                        # anyone, after the dispute window
    ape run local-use usage MODEL_ID                           # the creator: use reported per licence

The buyer's key is made from one wallet signature (docs/privacy.md); the key holder's service
(`python -m oracle.key_delivery`) delivers; `ape run fetch-model` opens the voice. A delivered key
cannot be taken back: see docs/local-use.md.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option, network_option

from voicemarket.cli.console import amount_in, console, deployment, parse_id, user_errors
from voicemarket.units import format_time


@click.group(short_help="Local-use licences: offer, name the key holder, buy, follow, refund, usage")
def cli() -> None:
    """Local-use licences (docs/local-use.md)."""


@cli.command(cls=ConnectedProviderCommand, short_help="Add a local-use option to your offer")
@network_option()
@account_option()
@click.argument("offer_id")
@click.option("--price", required=True, help="per licence, in the offer's asset: '0.05 ether', '20 mUSD'")
@click.option("--store", "store_spec", help="where the sealed bundle is (default: $VOICEMARKET_STORE or local)")
def offer(account, offer_id: str, price: str, store_spec: str | None) -> None:  # noqa: ANN001
    """Sell local use with OFFER_ID's licences (a buyout or subscription offer that is not transferable).
    The option commits to the data key of the model's sealed bundle (the key id in its header)."""
    from voicemarket.market import licensing
    from voicemarket.market.local_use import KEY_NOT_RETURNABLE, offer_local_use, sealed_key_id
    from voicemarket.market.minting import open_store

    number = parse_id(offer_id, "OFFER_ID")
    with user_errors():
        market = deployment()
        view = licensing.offer_view(market, number)
        key_id = sealed_key_id(open_store(store_spec), view.model_id, market.registry)
        option = offer_local_use(market, number, amount_in(price, view.asset, "--price"), account, key_id)
    console().print(f"Offer {number} sells local use for {price} per licence. Remember: {KEY_NOT_RETURNABLE}.")
    console().print(f"Your key holder (you, or `ape run local-use key-holder {option.model_id:#x} OPERATOR`) delivers.")


@cli.command("key-holder", cls=ConnectedProviderCommand, short_help="Name the account that delivers keys")
@network_option()
@account_option()
@click.argument("model_id")
@click.argument("holder")
def key_holder(account, model_id: str, holder: str) -> None:  # noqa: ANN001
    """Name HOLDER (an operator whose key opens the model's keyring) to deliver MODEL_ID's keys."""
    from voicemarket.market.local_use import name_key_holder

    model = parse_id(model_id, "MODEL_ID")
    with user_errors():
        name_key_holder(deployment(), model, holder, account)
    console().print(f"{holder} delivers the local-use keys of model {model:#x} (as long as you own the model).")


@cli.command(cls=ConnectedProviderCommand, short_help="Buy local use for your licence")
@network_option()
@account_option()
@click.argument("license_id")
@click.option("--max-price", required=True, help="the most you pay, e.g. '0.05 ether' or '20 mUSD'")
def buy(account, license_id: str, max_price: str) -> None:  # noqa: ANN001
    """Buy local use for LICENSE_ID: the price waits in escrow until the key is delivered, or comes back."""
    import ape

    from voicemarket.market import licensing
    from voicemarket.market.buyer_key import BuyerKey
    from voicemarket.market.local_use import KEY_NOT_RETURNABLE, buy_local_use, license_public_key

    licence = parse_id(license_id, "LICENSE_ID")
    with user_errors():
        market = deployment()
        view = licensing.offer_view(market, int(market.licenses.offerOf(licence)))
        cap = amount_in(max_price, view.asset, "--max-price")
        key = BuyerKey.derive(account, int(ape.chain.chain_id))
        record = buy_local_use(market, licence, account, license_public_key(key.private_key, licence), max_price=cap)
    out = console()
    out.print(
        f"Local use of licence {licence} bought; the key is wrapped to this licence's key (from your encryption key)."
    )
    out.print(f"The key holder must deliver by {format_time(record.deadline)}, or anyone may refund you.")
    out.print(f"Then: ape run fetch-model {licence} --out DIR. ({KEY_NOT_RETURNABLE}.)")


@cli.command(cls=ConnectedProviderCommand, short_help="Where a licence's local use stands")
@network_option()
@click.argument("license_id")
def status(license_id: str) -> None:
    """Show LICENSE_ID's local use: pending (until when), delivered (the key's CID), settled, refunded, disproved."""
    from voicemarket.market.local_use import LocalUse, key_delivery_of

    licence = parse_id(license_id, "LICENSE_ID")
    with user_errors():
        record = LocalUse.read(key_delivery_of(deployment()), licence)
    detail = {
        "pending": f"waiting for the key until {format_time(record.deadline)}",
        "delivered": f"wrapped key {record.key_cid}; disputable until {format_time(record.deadline)}",
        "settled": f"wrapped key {record.key_cid}; paid to the model's revenue",
        "refunded": "refunded: withdraw it from the KeyDelivery contract",
        "disproved": f"the delivered key {record.key_cid} did not open: refunded (withdraw it from KeyDelivery)",
        "none": "no local use bought",
    }[record.status.label]
    console().print(f"licence {licence}: {record.status.label} ({detail})")


@cli.command(cls=ConnectedProviderCommand, short_help="Refund a purchase whose key never came")
@network_option()
@account_option()
@click.argument("license_id")
def refund(account, license_id: str) -> None:  # noqa: ANN001
    """Refund LICENSE_ID's local use to its buyer (anyone may, from the deadline on)."""
    from voicemarket.market.local_use import refund_local_use

    licence = parse_id(license_id, "LICENSE_ID")
    with user_errors():
        record = refund_local_use(deployment(), licence, account)
    console().print(f"licence {licence}: refunded to {record.buyer}, who withdraws it with the KeyDelivery's withdraw.")


@cli.command(cls=ConnectedProviderCommand, short_help="Prove that a delivered key does not open the model")
@network_option()
@account_option()
@click.argument("license_id")
@click.option("--store", "store_spec", help="where the wrapped key is (default: $VOICEMARKET_STORE or local)")
def dispute(account, license_id: str, store_spec: str | None) -> None:  # noqa: ANN001
    """Dispute LICENSE_ID's delivery within its window: checked here first; if the key is not the model's,
    this licence's key is revealed on-chain, the contract unwraps the key itself and you are refunded."""
    import ape

    from voicemarket.market.buyer_key import BuyerKey
    from voicemarket.market.local_use import dispute_delivery
    from voicemarket.market.minting import open_store

    licence = parse_id(license_id, "LICENSE_ID")
    with user_errors():
        key = BuyerKey.derive(account, int(ape.chain.chain_id))
        record = dispute_delivery(deployment(), open_store(store_spec), licence, key.private_key, account)
    console().print(
        f"licence {licence}: the delivery is {record.status.label}; withdraw the refund with `ape run withdraw`."
    )


@cli.command(cls=ConnectedProviderCommand, short_help="Pay a delivery whose dispute window passed to the model")
@network_option()
@account_option()
@click.argument("license_id")
def settle(account, license_id: str) -> None:  # noqa: ANN001
    """Settle LICENSE_ID's local use (anyone may, once its dispute window passed): the price goes to the model."""
    from voicemarket.market.local_use import settle_local_use

    licence = parse_id(license_id, "LICENSE_ID")
    with user_errors():
        settle_local_use(deployment(), licence, account)
    console().print(f"licence {licence}: settled; the model's parties withdraw their shares with `ape run withdraw`.")


@cli.command(cls=ConnectedProviderCommand, short_help="The use reported per local-use licence of a model")
@network_option()
@click.argument("model_id")
def usage(model_id: str) -> None:
    """Sum the signed usage reports of MODEL_ID's local-use licences (self-reported: see docs/local-use.md)."""
    from voicemarket.cli.console import table
    from voicemarket.market.local_use import usage_by_licence

    model = parse_id(model_id, "MODEL_ID")
    with user_errors():
        rows = usage_by_licence(deployment(), model)
    out = console()
    if not rows:
        out.print(f"No usage report for the local-use licences of model {model:#x}.")
        return
    grid = table(
        f"Reported use of model {model:#x} (self-reported)",
        "licence",
        "holder",
        "reports",
        "sentences",
        "seconds",
        "from",
        "to",
    )
    for row in rows:
        grid.add_row(
            str(row.license_id),
            row.buyer,
            str(row.reports),
            str(row.sentences),
            str(row.audio_seconds),
            format_time(row.first_start),
            format_time(row.last_end),
        )
    out.print(grid)
    out.print("The figures are the holders' own; a device that under-reports or stops reporting is not seen.")

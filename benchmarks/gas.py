"""`make bench-gas`: what each contract operation costs a user, in gas, on anvil.

Each figure is the median receipt ``gasUsed`` of five operations after one warm-up operation of
the same kind by the same accounts (so storage that a user's earlier activity already created
is warm, as it is for a returning user). Writes benchmarks/results/gas.json.

Scenario: a creator registers models with the voice owner's consent (voice owner 20%, the
platform fee 20%) and publishes offers through the offer book; a buyer buys a buyout in ETH and
subscriptions in a 6-decimal stablecoin, and turns auto-renewal on for them; a keeper renews the
due subscriptions from the buyer's allowance; the creator withdraws ETH; the buyer
requests speech from one operator (fee in ETH, inline text), which fulfils, fulfils in batches
of ten, fails; expired requests are cancelled by a keeper. The same sentence asked privately
(issue 22): sealed to the operator inline (0x02 + the sealed envelope, 268 bytes instead of 65),
and by the CID of the sealed envelope (0x03 + 36 bytes). Local-use licences (issue 19): the
option, a purchase into KeyDelivery's escrow, the key holder's delivery, a refund after the
deadline, one signed usage report.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
from collections.abc import Callable

from benchmarks.common import print_table, write_results

COMMAND = "make bench-gas"
TARGETS = {
    "registerModel": 175_000,
    "buy_buyout_eth": 150_000,
    "buy_subscription_erc20": 150_000,
    "renewSubscription": 80_000,
    "withdraw": 50_000,
    "requestSynthesis": 120_000,
    "fulfil": 100_000,
    "fulfilBatch10_per_request": 50_000,
}
RUNS = 5


def median_gas(operation: Callable[[int], int], runs: int = RUNS) -> int:
    """Run ``operation(i)`` once to warm up and ``runs`` times more; the median gas of the runs."""
    operation(0)
    return int(statistics.median(operation(i + 1) for i in range(runs)))


def main() -> int:
    import ape

    from voicemarket import protocol
    from voicemarket.content.multiformats import CID, DAG_PB, RAW
    from voicemarket.dev.services import local_chain
    from voicemarket.market import chain as vm
    from voicemarket.market.buyer_key import BuyerKey
    from voicemarket.market.speech import request_input
    from voicemarket.protocol import DAY, ETH, Action, FailReason, Language, Tier, language_bits

    with local_chain():
        accounts = ape.accounts.test_accounts
        deployer, creator, voice_owner, buyer, operator, keeper, co_creator = accounts[:7]
        d = vm.deploy(deployer, stablecoin="mock")
        registry, licenses, router, usd, offers = d.registry, d.licenses, d.router, d.stablecoin, d.offers
        figures: dict[str, int] = {}
        counter = iter(range(10**6))
        registered: list[int] = []

        def register(co_creators: list[tuple[str, int]]) -> Callable[[int], int]:
            def operation(_: int) -> int:
                n = next(counter)
                digest = hashlib.sha256(f"bundle {n}".encode()).digest()
                policy = hashlib.sha256(f"policy {n}".encode()).digest()
                deadline = ape.chain.pending_timestamp + 3600
                signature = vm.sign_consent(
                    voice_owner,
                    registry,
                    bundle_digest=digest,
                    creator=creator.address,
                    policy_hash=policy,
                    voice_owner_bps=2_000,
                    deadline=deadline,
                )
                r = vm.model_registration(
                    bundle_digest=digest,
                    bundle_cid=CID(1, RAW, hashlib.sha256(b"sealed" + digest).digest()),
                    metadata_cid=CID(0, DAG_PB, hashlib.sha256(b"meta" + digest).digest()),
                    languages=language_bits("zh", "en"),
                    voice_owner=voice_owner.address,
                    voice_owner_bps=2_000,
                    co_creators=co_creators,
                    policy_hash=policy,
                    consent_deadline=deadline,
                    consent_signature=signature,
                    royalty_bps=500,
                )
                registered.append(protocol.model_id(creator.address, digest))
                return registry.registerModel(r, sender=creator).gas_used

            return operation

        figures["registerModel"] = median_gas(register([]))
        figures["registerModel_with_co_creator"] = median_gas(register([(co_creator.address, 1_000)]))
        model_id = registered[-1]

        router.registerOperator(_public_key(operator), value=router.minStake(), sender=operator)
        router.setOperatorAllowed(model_id, operator, True, sender=creator)
        router.setFee(ETH, 10**14, sender=operator)

        def offer_terms(tier: Tier, asset: str, price: int, period: int = 0, n: int = 0) -> dict:
            return {
                "modelId": model_id,
                "tier": int(tier),
                "asset": asset,
                "price": price,
                "period": period,
                "maxUses": 0,
                "packSize": 0,
                "validUntil": 0,
                "maxLicenses": 0,
                "permissions": int(Action.TEXT_TO_SPEECH | Action.COMMERCIAL_USE),
                "prohibitions": int(Action.SUBLICENSING),
                "attribution": True,
                "transferable": False,
                "purposes": 0,
                "policyHash": hashlib.sha256(f"offer {n}".encode()).digest(),
            }

        figures["publishOffer"] = median_gas(
            lambda i: (
                offers.publishOffer(
                    offer_terms(Tier.BUYOUT, ETH, 10**16, n=next(counter)), b"USGBDE", sender=creator
                ).gas_used
            )
        )

        def publish(terms: dict) -> int:
            receipt = offers.publishOffer(terms, b"", sender=creator)
            return receipt.events.filter(offers.OfferPublished)[0].offerId

        buyout_id = publish(offer_terms(Tier.BUYOUT, ETH, 10**16, n=-1))
        month = 30 * DAY
        sub_id = publish(offer_terms(Tier.SUBSCRIPTION, usd.address, 9_990_000, month, -2))

        figures["buy_buyout_eth"] = median_gas(
            lambda i: licenses.buy(buyout_id, 10**16, 1, value=10**16, sender=buyer).gas_used
        )
        usd.mint(buyer, 10**12, sender=deployer)
        usd.approve(licenses, 10**11, sender=buyer)  # a finite allowance, spent by every purchase
        subscriptions: list[int] = []

        def buy_subscription(_: int) -> int:
            receipt = licenses.buy(sub_id, 9_990_000, 1, sender=buyer)
            subscriptions.append(receipt.events.filter(licenses.LicensePurchased)[0].licenseId)
            return receipt.gas_used

        figures["buy_subscription_erc20"] = median_gas(buy_subscription)
        # Keepers renew only what the holder agreed to (H-1): the buyer turns auto-renewal on.
        auto_renew = iter(subscriptions)
        figures["setAutoRenew"] = median_gas(
            lambda i: licenses.setAutoRenew(next(auto_renew), True, sender=buyer).gas_used
        )
        ape.chain.pending_timestamp += month - 3600  # all six subscriptions are now due
        renewals = iter(subscriptions)
        figures["renewSubscription"] = median_gas(
            lambda i: licenses.renewSubscription(next(renewals), month, sender=keeper).gas_used
        )

        def withdraw(_: int) -> int:
            licenses.buy(buyout_id, 10**16, 1, value=10**16, sender=buyer)
            licenses.distribute(model_id, ETH, sender=keeper)
            return licenses.withdraw(ETH, sender=creator).gas_used

        figures["withdraw"] = median_gas(withdraw)

        license_id = (
            licenses.buy(buyout_id, 10**16, 1, value=10**16, sender=buyer)
            .events.filter(licenses.LicensePurchased)[0]
            .licenseId
        )
        params = vm.SynthesisParams(Language.EN, speed=1.0, seed=7).pack()
        text = "Hello from voicemarket: a sentence of ordinary length to speak."

        def request(deadline_in: int = 3600, asked: tuple[bytes, bytes] | None = None) -> tuple[tuple, int]:
            input_hash, input_ = asked or (vm.input_hash(text), vm.inline_input(text))
            receipt = router.requestSynthesis(
                {
                    "modelId": model_id,
                    "licenseId": license_id,
                    "operator": operator.address,
                    "maxFee": 10**14,
                    "deadline": ape.chain.pending_timestamp + deadline_in,
                    "params": params,
                    "inputHash": input_hash,
                    "input": input_,
                },
                value=10**14,
                sender=buyer,
            )
            return vm.request_from_log(receipt.events.filter(router.SynthesisRequested)[0]), receipt.gas_used

        figures["requestSynthesis"] = median_gas(lambda i: request()[1])
        buyer_key = BuyerKey.derive(buyer, ape.chain.chain_id)
        sealed = request_input(text, operator_key=_public_key(operator), buyer=buyer_key)
        figures["requestSynthesis_private"] = median_gas(lambda i: request(asked=(sealed.input_hash, sealed.data))[1])
        by_cid = vm.private_cid_input(CID(1, RAW, hashlib.sha256(sealed.data).digest()))
        figures["requestSynthesis_private_cid"] = median_gas(lambda i: request(asked=(sealed.input_hash, by_cid))[1])
        output_cid = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
        output_digest = hashlib.sha256(b"wav").digest()
        figures["fulfil"] = median_gas(
            lambda i: router.fulfil(request()[0], output_digest, output_cid, sender=operator).gas_used
        )

        def batch(_: int) -> int:
            items = [(request()[0], output_digest, output_cid) for _ in range(10)]
            return router.fulfilBatch(items, sender=operator).gas_used

        figures["fulfilBatch10_per_request"] = median_gas(batch) // 10
        figures["fail"] = median_gas(
            lambda i: router.fail(request()[0], int(FailReason.BAD_INPUT), sender=operator).gas_used
        )
        expiring = [request(deadline_in=60)[0] for _ in range(RUNS + 1)]
        ape.chain.pending_timestamp += 120
        pending = iter(expiring)
        figures["cancelExpired"] = median_gas(lambda i: router.cancelExpired(next(pending), sender=keeper).gas_used)

        _local_use(figures, d, buyout_id, creator, buyer, keeper, _public_key(buyer))

        sizes = {
            name: len(getattr(ape.project, name).contract_type.runtime_bytecode.bytecode[2:]) // 2
            for name in ("VoiceModelRegistry", "LicenseManager", "OfferBook", "SynthesisRouter", "KeyDelivery")
        }

    targets = {k: f"target <= {v:,}" + ("" if figures[k] <= v else "  MISSED") for k, v in TARGETS.items()}
    print_table("Gas (median receipt gasUsed of 5 after 1 warm-up)", figures, targets)
    print_table("Runtime code size (bytes, limit 24,576)", sizes)
    write_results("gas", {**figures, "code_size_bytes": sizes}, COMMAND)
    return 0 if all(figures[k] <= v for k, v in TARGETS.items()) else 1


def _local_use(figures: dict, d, offer_id: int, creator, buyer, keeper, buyer_key: bytes) -> None:  # noqa: ANN001
    """Local-use licences (issue 19): the option, a purchase into escrow (ETH), the key holder's
    delivery, a refund after the deadline, and one signed usage report."""
    import ape

    from voicemarket.market.local_use import UsageReport, sign_usage_report

    kd, price = d.key_delivery, 10**15
    figures["offerLocalUse"] = kd.offerLocalUse(offer_id, price, b"\x01" * 16, sender=creator).gas_used
    licences = [
        d.licenses.buy(offer_id, 10**16, 1, value=10**16, sender=buyer).events.filter(d.licenses.LicensePurchased)[0]
        for _ in range(2 * (RUNS + 1))
    ]
    ids = iter(event.licenseId for event in licences)
    bought = []

    def buy(_: int) -> int:
        bought.append(next(ids))
        return kd.buyLocalUse(bought[-1], buyer_key, price, value=price, sender=buyer).gas_used

    figures["buyLocalUse_eth"] = median_gas(buy)
    delivered = iter(bought)
    digest = hashlib.sha256(b"wrapped key").digest()
    wrapped = b"\x01\x02" + digest + digest  # the 66-byte shape of a wrapped key (its content costs the same)
    figures["recordDelivery"] = median_gas(
        lambda i: kd.recordDelivery(next(delivered), wrapped, sender=creator).gas_used
    )
    ape.chain.pending_timestamp += kd.DISPUTE_WINDOW()
    settled = iter(bought)
    figures["settle_local_use"] = median_gas(lambda i: kd.settle(next(settled), sender=keeper).gas_used)
    late = [next(ids) for _ in range(RUNS + 1)]
    for licence in late:
        kd.buyLocalUse(licence, buyer_key, price, value=price, sender=buyer)
    ape.chain.pending_timestamp += kd.DELIVERY_WINDOW()
    refunds = iter(late)
    figures["refund_local_use"] = median_gas(lambda i: kd.refund(next(refunds), sender=keeper).gas_used)
    start = ape.chain.pending_timestamp - 3600
    reported = bought[0]

    def report(i: int) -> int:
        item = UsageReport(reported, start + 60 * i, start + 60 * (i + 1), 10, 30)
        signature = sign_usage_report(buyer, kd.address, ape.chain.chain_id, item)
        return kd.reportUsage([item.as_struct()], [signature], sender=keeper).gas_used

    figures["reportUsage_one"] = median_gas(report)


def _public_key(account) -> bytes:
    """The 64-byte uncompressed public key of an Ape test account."""
    from coincurve import PrivateKey

    return PrivateKey(bytes.fromhex(account.private_key[2:])).public_key.format(compressed=False)[1:]


if __name__ == "__main__":
    sys.exit(main())

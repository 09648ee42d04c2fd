"""An offer's ODRL document, published on-chain through its policyHash, can be rebuilt from the
chain alone and checked: the Python licence documents (voicemarket.content.odrl) and the licence
manager agree on every field, territories and purposes included."""

from __future__ import annotations

from voicemarket.content.odrl import (
    OfferTerms,
    PolicySubject,
    build_policy,
    contract_offer_terms,
    parse_policy,
    policy_hash,
    terms_from_contract,
    territories_bytes,
)
from voicemarket.protocol import DAY, Action, Purpose, Tier

MONTH = 30 * DAY


def test_published_offer_rebuilds_to_its_policy_hash(market, licenses, offers, registry, usd, actors, chain):
    model_id = market.register()
    terms = OfferTerms(
        tier=Tier.SUBSCRIPTION,
        price=9_990_000,
        asset=usd.address,
        period=MONTH,
        max_uses=500,
        valid_until=chain.pending_timestamp + 365 * DAY,
        max_licenses=1_000,
        permissions=int(Action.TEXT_TO_SPEECH | Action.COMMERCIAL_USE | Action.BROADCAST),
        prohibitions=int(Action.DERIVATION | Action.SUBLICENSING),
        attribution=True,
        transferable=True,
        territories=territories_bytes("DE", "FR", "US"),
        purposes=int(Purpose.AUDIOBOOKS | Purpose.EDUCATION),
    )
    subject = PolicySubject(
        chain_id=chain.chain_id, registry=registry.address, owner=actors.creator.address, model_id=model_id
    )
    document = build_policy(terms, subject)
    receipt = offers.publishOffer(
        contract_offer_terms(terms, model_id, policy_hash(document)), terms.territories, sender=actors.creator
    )
    event = receipt.events.filter(offers.OfferPublished)[0]

    # A buyer, from the chain alone: the stored terms and the event's territories.
    onchain, onchain_model, onchain_hash = terms_from_contract(
        licenses.offer(event.offerId).terms, bytes(event.territories)
    )
    assert (onchain, onchain_model) == (terms, model_id)
    rebuilt = build_policy(onchain, subject)
    assert policy_hash(rebuilt) == onchain_hash == policy_hash(document)
    assert parse_policy(rebuilt)[0] == terms


def test_a_different_document_does_not_match(market, licenses, offers, registry, actors, chain):
    model_id = market.register()
    terms = OfferTerms(tier=Tier.BUYOUT, price=10**16, permissions=int(Action.TEXT_TO_SPEECH))
    subject = PolicySubject(
        chain_id=chain.chain_id, registry=registry.address, owner=actors.creator.address, model_id=model_id
    )
    receipt = offers.publishOffer(
        contract_offer_terms(terms, model_id, policy_hash(build_policy(terms, subject))), b"", sender=actors.creator
    )
    offer_id = receipt.events.filter(offers.OfferPublished)[0].offerId
    _, _, onchain_hash = terms_from_contract(licenses.offer(offer_id).terms)
    # The same terms offered by someone else, or with attribution required, are other documents.
    other_owner = PolicySubject(
        chain_id=subject.chain_id, registry=subject.registry, owner=actors.other.address, model_id=model_id
    )
    assert policy_hash(build_policy(terms, other_owner)) != onchain_hash
    stricter = OfferTerms(tier=Tier.BUYOUT, price=10**16, permissions=int(Action.TEXT_TO_SPEECH), attribution=True)
    assert policy_hash(build_policy(stricter, subject)) != onchain_hash

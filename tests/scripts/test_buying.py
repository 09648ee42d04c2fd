"""`ape run offers`, `buy`, `renew`, `cancel`: a buyer's commands and their errors."""

from __future__ import annotations

import re

from conftest import fails, ok

BUYER, TOKEN_BUYER, KEEPER = 5, 6, 7


def _license(output: str) -> int:
    return int(re.search(r"Licence (\d+)", output)[1])


def test_offers_shows_every_tier_with_verified_terms(run, minted):
    out = ok(run("offers", hex(minted["model_id"])))
    assert "subscription 0.01 ETH / 30 days 100 / period +textToSpeech worldwide any no" in out
    assert "+commercialize -sublicense" in out
    assert "pay-per-use 0.05 mUSD / use packs of 10 (0.5 mUSD) +textToSpeech DE FR audiobooks no" in out
    assert "buyout 0.1 ETH unlimited +textToSpeech worldwide any yes" in out
    assert "matches its policyHash" in out and "WARNING" not in out


def test_offers_of_an_unknown_model(run, market):
    assert "there is no model 0x1234" in fails(run("offers", "0x1234"))


def test_buy_a_subscription_within_the_cap(run, minted, market, accounts):
    out = ok(run("buy", str(minted["offers"]["subscription"]), "--max-price", "0.02 ether", account=BUYER))
    license = _license(out)
    assert market.licenses.ownerOf(license) == accounts[BUYER].address and "paid 0.01 ETH" in out
    assert "expires" in out and "auto-renew off: only you renew it" in out
    assert not market.licenses.license(license).autoRenew


def test_subscription_time_is_not_sold_beyond_the_retirement_notice(run, minted, market, accounts, chain):
    """Two 30-day periods end past now + the 45-day notice: refused before anything is sent."""
    before = chain.provider.get_balance(accounts[BUYER].address)
    out = fails(
        run("buy", str(minted["offers"]["subscription"]), "--max-price", "0.02 ether", "--quantity", "2", account=BUYER)
    )
    assert "2 period(s) of offer" in out and "the retirement notice (45 days) ahead" in out
    assert "at most 1 period(s) fit now" in out
    assert chain.provider.get_balance(accounts[BUYER].address) == before


def test_auto_renew_is_for_subscriptions_only(run, minted, accounts):
    out = fails(run("buy", str(minted["offers"]["buyout"]), "--max-price", "0.1 ether", "--auto-renew", account=BUYER))
    assert "only subscriptions renew" in out


def test_buy_refuses_a_price_above_the_cap(run, minted, accounts, chain):
    before = chain.provider.get_balance(accounts[BUYER].address)
    out = fails(run("buy", str(minted["offers"]["buyout"]), "--max-price", "0.05 ether", account=BUYER))
    assert "costs 0.1 ETH" in out and "more than your --max-price 0.05 ETH" in out
    assert chain.provider.get_balance(accounts[BUYER].address) == before  # nothing sent, no gas spent


def test_a_token_offer_says_approve_then_buys_with_approve(run, minted, market, accounts):
    market.stablecoin.mint(accounts[TOKEN_BUYER], 10 * 10**6, sender=accounts[TOKEN_BUYER])
    offer = str(minted["offers"]["pay-per-use"])
    out = fails(run("buy", offer, "--max-price", "1 mUSD", account=TOKEN_BUYER))
    assert "Approve it: rerun with --approve" in out and "needs 0.5 mUSD" in out
    out = ok(run("buy", offer, "--max-price", "1 mUSD", "--approve", account=TOKEN_BUYER))
    assert "paid 0.5 mUSD" in out and market.stablecoin.balanceOf(accounts[TOKEN_BUYER]) == 9_500_000


def test_a_retired_offer_is_refused_by_name(run, market, minted, accounts):
    import ape

    from voicemarket.content.odrl import PolicySubject, build_policy, contract_offer_terms, policy_hash
    from voicemarket.market.minting import parse_offers

    terms = parse_offers({"offers": [{"tier": "buyout", "price": "0.2 ether"}]}, market)[0]
    subject = PolicySubject(ape.chain.chain_id, market.registry.address, accounts[1].address, minted["model_id"])
    receipt = market.offers.publishOffer(
        contract_offer_terms(terms, minted["model_id"], policy_hash(build_policy(terms, subject))),
        b"",
        sender=accounts[1],
    )
    offer = receipt.events.filter(market.offers.OfferPublished)[0].offerId
    market.offers.deactivateOffer(offer, sender=accounts[1])
    out = fails(run("buy", str(offer), "--max-price", "1 ether", account=BUYER))
    assert f"offer {offer} is retired" in out and "ape run offers" in out
    assert "retired" in ok(run("offers", hex(minted["model_id"]), "--all"))


def test_renew_and_cancel_a_subscription(run, minted, market, accounts, chain):
    """Keepers renew one due period of a subscription whose holder turned auto-renewal on, never a lapsed
    one; the holder renews when time fits the notice (a lapsed one restarts); cancelling stops keepers."""
    license = _license(
        ok(
            run(
                "buy", str(minted["offers"]["subscription"]), "--max-price", "0.01 ether", "--auto-renew", account=BUYER
            )
        )
    )
    state = market.licenses.license(license)
    expires, period = state.expiresAt, 30 * 86400
    assert state.autoRenew
    # 30 days bought, 45 days of notice: no second period may be sold yet, by anyone.
    out = fails(run("renew", str(license), account=BUYER))
    assert "the retirement notice (45 days) ahead" in out and "no whole period fits now" in out
    assert "not due for renewal until" in fails(run("renew", str(license), account=KEEPER))
    chain.mine(timestamp=expires - 3600)  # due: in its last day
    assert "renews exactly one period" in fails(run("renew", str(license), "--periods", "2", account=KEEPER))
    out = ok(run("renew", str(license), account=KEEPER))  # an ETH subscription: the keeper pays
    assert market.licenses.license(license).expiresAt == expires + period and "renewed by 1 period(s)" in out
    chain.mine(timestamp=expires + period + 10)  # lapsed
    assert "keepers never revive a lapsed subscription" in fails(run("renew", str(license), account=KEEPER))
    ok(run("renew", str(license), account=BUYER))  # the holder restarts it now
    assert market.licenses.license(license).expiresAt >= expires + 2 * period + 10
    out = ok(run("cancel", str(license), account=BUYER))
    assert not market.licenses.license(license).autoRenew and "cancelled: no keeper renews it now" in out
    assert "does not auto-renew" in fails(run("cancel", str(license), account=BUYER))
    out = fails(run("renew", str(license), account=KEEPER))
    assert "has not turned auto-renewal on" in out and f"ape run autorenew {license} on" in out


def test_renew_and_cancel_refuse_what_is_not_a_subscription(run, minted, accounts):
    license = _license(ok(run("buy", str(minted["offers"]["buyout"]), "--max-price", "0.1 ether", account=BUYER)))
    assert "not a subscription" in fails(run("renew", str(license), account=BUYER))
    assert "not a subscription" in fails(run("cancel", str(license), account=BUYER))
    assert "there is no licence 999" in fails(run("cancel", "999", account=BUYER))


def test_a_keeper_renewal_the_holder_did_not_agree_to_reverts_and_is_explained(run, minted, market, accounts):
    """Past the command's own checks, the contract refuses with its custom error, and the advice says what to do."""
    import pytest

    from voicemarket.cli.console import explain_revert

    license = _license(
        ok(run("buy", str(minted["offers"]["subscription"]), "--max-price", "0.01 ether", account=BUYER))
    )
    with pytest.raises(market.licenses.Licensing_AutoRenewOff) as refused:
        market.licenses.renewSubscription(license, 30 * 86400, value=10**16, sender=accounts[KEEPER])
    assert refused.value.inputs == {"licenseId": license}
    assert explain_revert(refused.value).startswith(
        f"licence {license}'s holder has not turned auto-renewal on: only the holder renews it"
    )

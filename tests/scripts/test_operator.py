"""`ape run operator`: register with stake, fees, status, unbonding and the stake back."""

from __future__ import annotations

from conftest import fails, ok
from voicemarket.protocol import ETH

OPERATOR = 8


def test_an_operator_registers_sets_fees_unbonds_and_takes_its_stake_back(run, market, accounts, chain):
    account = accounts[OPERATOR]
    out = ok(run("operator register", "--stake", "0.2 ether", "--fee", "0.0001 ether", account=OPERATOR))
    info = market.router.operatorInfo(account)
    assert info.registered and info.stake == 2 * 10**17 and "state active" in out
    assert market.router.operatorFee(account, ETH) == 10**14
    from voicemarket.content.sealing import address_from_public_key

    assert address_from_public_key(bytes(market.router.operatorPublicKey(account))) == account.address

    assert "already registered" in fails(run("operator register", account=OPERATOR))
    ok(run("operator fee", "--amount", "0.02 mUSD", "--asset", "stablecoin", account=OPERATOR))
    assert market.router.operatorFee(account, market.stablecoin) == 20_000
    assert "0.3 ETH" in ok(run("operator add-stake", "--amount", "0.1 ether", account=OPERATOR))

    assert "start unbonding first" in fails(run("operator withdraw-stake", account=OPERATOR))
    ok(run("operator unbond", account=OPERATOR))
    ends = market.router.operatorInfo(account).unbondingEndsAt
    assert "slashable until" in fails(run("operator withdraw-stake", account=OPERATOR))
    assert "already unbonding" in fails(run("operator unbond", account=OPERATOR))
    chain.mine(timestamp=ends + 1)
    before = chain.provider.get_balance(account.address)
    out = ok(run("operator withdraw-stake", account=OPERATOR))
    assert "Withdrew 0.3 ETH" in out and not market.router.operatorInfo(account).registered
    assert chain.provider.get_balance(account.address) > before + 3 * 10**17 - 10**16


def test_a_stake_below_the_minimum_is_refused(run, market, accounts):
    out = fails(run("operator register", "--stake", "0.01 ether", account=9))
    assert "at least 0.1 ETH" in out and not market.router.operatorInfo(accounts[9]).registered
    assert "not a registered operator" in fails(run("operator fee", "--amount", "1 gwei", account=9))

"""Hostile contracts take nothing: re-entrant tokens, re-entrant payees, requesters and operators."""

from __future__ import annotations

import hashlib

import pytest
from ape.exceptions import ContractLogicError
from eth_abi import encode
from eth_utils import keccak

from market_helpers import OPERATOR_FEE, offer_terms, public_key
from voicemarket import protocol
from voicemarket.content.multiformats import CID, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import ETH, Tier

REENTRANT_CALL = keccak(text="ReentrancyGuardReentrantCall()")[:4]
OUT_CID = CID(1, RAW, hashlib.sha256(b"audio").digest()).to_bytes()
OUT_DIGEST = hashlib.sha256(b"wav").digest()


@pytest.fixture
def hostile(project, actors):
    return actors.deployer.deploy(project.HostileAccount)


@pytest.fixture
def evil_token(project, actors, licenses):
    token = actors.deployer.deploy(project.ReentrantToken)
    licenses.setAssetAllowed(token, True, sender=actors.deployer)
    return token


def call(contract, name: str, *args) -> bytes:
    return getattr(contract, name).as_transaction(*args).data


def assert_custom_error(exc: ContractLogicError, name: str, types: list[str], values: list) -> None:
    """The revert bubbled up through the hostile account is `name(values)`. Ape decodes a bubbled
    custom error when it can attribute it, and otherwise reports the raw revert data."""
    if str(exc.revert_message).startswith("0x"):
        signature = f"{name}({','.join(types)})"
        assert exc.revert_message == "0x" + (keccak(text=signature)[:4] + encode(types, values)).hex()
    else:
        assert type(exc).__name__ == name
        assert list(exc.inputs.values()) == values


def test_reentrant_token_cannot_reenter_a_purchase(market, licenses, evil_token, actors):
    model = market.register()
    offer = market.publish(model, asset=evil_token.address, price=1_000)
    evil_token.mint(actors.buyer, 2_000, sender=actors.deployer)
    evil_token.approve(licenses, 2_000, sender=actors.buyer)
    evil_token.arm(licenses, call(licenses, "buy", offer, 1_000, 1), sender=actors.deployer)
    licenses.buy(offer, 1_000, 1, sender=actors.buyer)

    assert evil_token.attempts() == 1 and not evil_token.lastAttemptSucceeded()
    assert bytes(evil_token.lastAttemptResult())[:4] == REENTRANT_CALL
    assert licenses.offer(offer).sold == 1
    assert evil_token.balanceOf(licenses) == 1_000 == sum(licenses.potOf(model, evil_token))


def test_reentrant_token_cannot_reenter_a_withdrawal(market, licenses, evil_token, actors):
    model = market.register()
    market.buy(market.publish(model, asset=evil_token.address, price=1_000))
    licenses.distribute(model, evil_token, sender=actors.other)
    evil_token.arm(licenses, call(licenses, "withdraw", evil_token.address), sender=actors.deployer)
    licenses.withdraw(evil_token, sender=actors.creator)

    assert not evil_token.lastAttemptSucceeded()
    assert bytes(evil_token.lastAttemptResult())[:4] == REENTRANT_CALL
    assert evil_token.balanceOf(actors.creator) == 640
    assert licenses.creditOf(actors.creator, evil_token) == 0
    left = licenses.creditOf(actors.voice, evil_token) + licenses.platformBalance(evil_token)
    assert evil_token.balanceOf(licenses) == 360 == left


def test_reentrant_token_cannot_renew_twice_in_one_keeper_renewal(market, licenses, evil_token, actors, chain):
    """A keeper renewal pulls one period from the holder; the token calling renewSubscription again
    from inside that transfer is refused, so the holder pays once."""
    model = market.register()
    offer = market.publish(model, Tier.SUBSCRIPTION, asset=evil_token.address, price=1_000, period=3600)
    license_id = market.buy(offer)
    licenses.setAutoRenew(license_id, True, sender=actors.buyer)
    evil_token.mint(actors.buyer, 10_000, sender=actors.deployer)
    evil_token.approve(licenses, 10_000, sender=actors.buyer)
    expires = licenses.expiresAt(license_id)
    chain.pending_timestamp = expires - 60
    evil_token.arm(licenses, call(licenses, "renewSubscription", license_id, 3600), sender=actors.deployer)
    licenses.renewSubscription(license_id, 3600, sender=actors.keeper)

    assert evil_token.attempts() == 1 and not evil_token.lastAttemptSucceeded()
    assert bytes(evil_token.lastAttemptResult())[:4] == REENTRANT_CALL
    assert licenses.expiresAt(license_id) == expires + 3600
    assert evil_token.balanceOf(actors.buyer) == 9_000 and evil_token.balanceOf(licenses) == 2_000


def test_reentrant_token_cannot_reenter_the_router_escrow(market, router, evil_token, actors):
    model = market.register()
    market.operator(models=[model], fee=100, asset=evil_token.address)
    license_id = market.buy(market.publish(model, Tier.PAY_PER_USE, asset=evil_token.address, price=900))
    evil_token.mint(actors.buyer, 1_000, sender=actors.deployer)
    evil_token.approve(router, 1_000, sender=actors.buyer)
    p = market.request_params(model, license_id, max_fee=100)
    evil_token.arm(router, call(router, "requestSynthesis", p), sender=actors.deployer)
    req, _ = market.request(model, license_id, max_fee=100, value=0)

    assert bytes(evil_token.lastAttemptResult())[:4] == REENTRANT_CALL
    assert router.nextRequestId() == req[0] + 1
    assert evil_token.balanceOf(router) == 1_000


def test_reentrant_payee_gets_its_credit_once(market, licenses, offers, hostile, actors, registry):
    """A creator that is a contract re-entering withdraw (and withdrawStake) from its receive()."""
    r = market.registration(creator=actors.creator, voice_owner=hostile.address, sign=False, label="hostile")
    r = {**r, "voiceOwner": hostile.address, "voiceOwnerBps": 0, "consentSignature": b""}
    hostile.execute(registry, 0, call(registry, "registerModel", r), sender=actors.other)
    model = protocol.model_id(hostile.address, r["bundleDigest"])
    assert registry.ownerOf(model) == hostile.address
    hostile.execute(offers, 0, call(offers, "publishOffer", offer_terms(model, price=10**16), b""), sender=actors.other)
    market.buy(licenses.nextOfferId() - 1)
    licenses.distribute(model, ETH, sender=actors.other)
    credit = licenses.creditOf(hostile, ETH)
    assert credit == 8 * 10**15

    hostile.execute(licenses, 0, call(licenses, "withdraw", ETH), sender=actors.other)
    assert hostile.balance == credit == hostile.received()
    assert hostile.reentryAttempts() == 2 and hostile.reentrySuccesses() == 0
    assert bytes(hostile.reentryResults(0))[:4] == REENTRANT_CALL  # withdraw(ETH) again: refused
    assert licenses.creditOf(hostile, ETH) == 0 and licenses.balance == 2 * 10**15


def test_a_payee_refusing_eth_keeps_its_credit(market, licenses, offers, hostile, actors, registry):
    r = {
        **market.registration(voice_owner=actors.creator, sign=False, label="refuser"),
        "voiceOwner": hostile.address,
        "voiceOwnerBps": 0,
    }
    hostile.execute(registry, 0, call(registry, "registerModel", r), sender=actors.other)
    model = protocol.model_id(hostile.address, r["bundleDigest"])
    assert registry.ownerOf(model) == hostile.address
    hostile.execute(offers, 0, call(offers, "publishOffer", offer_terms(model, price=10**16), b""), sender=actors.other)
    market.buy(licenses.nextOfferId() - 1)
    licenses.distribute(model, ETH, sender=actors.other)
    hostile.setRefuse(True, sender=actors.other)
    with pytest.raises(ContractLogicError) as failure:
        hostile.execute(licenses, 0, call(licenses, "withdraw", ETH), sender=actors.other)
    assert_custom_error(
        failure.value, "Ledger_EthTransferFailed", ["address", "uint256"], [hostile.address, 8 * 10**15]
    )
    assert licenses.creditOf(hostile, ETH) == 8 * 10**15  # nothing lost


def test_reentrant_requester_gets_its_refund_once(market, router, licenses, hostile, actors, chain):
    model = market.register()
    market.operator(models=[model])
    offer = market.publish(model, Tier.PAY_PER_USE, price=10**15)
    hostile.execute(licenses, 0, call(licenses, "buy", offer, 0, 1), sender=actors.other)
    license_id = licenses.nextLicenseId() - 1
    p = market.request_params(model, license_id, deadline_in=100)
    escrow = 10**15 + OPERATOR_FEE
    receipt = hostile.execute(router, escrow, call(router, "requestSynthesis", p), value=escrow, sender=actors.other)
    req = vm.request_from_log(receipt.events.filter(router.SynthesisRequested)[0])
    chain.pending_timestamp += 200
    router.cancelExpired(req, sender=actors.keeper)
    assert router.creditOf(hostile, ETH) == escrow

    hostile.execute(router, 0, call(router, "withdraw", ETH), sender=actors.other)
    assert hostile.received() == escrow and hostile.reentrySuccesses() == 0
    assert router.creditOf(hostile, ETH) == 0
    assert router.balance == router.operatorInfo(actors.operator).stake


def test_reentrant_operator_gets_its_fees_and_stake_once(market, router, project, actors, chain):
    """The operator's address turns into a re-entering contract (anvil_setCode) after it registered."""
    model = market.register()
    operator = market.operator(models=[model])
    license_id = market.buy(market.publish(model))
    for _ in range(2):
        req, _ = market.request(model, license_id)
        router.fulfil(req, OUT_DIGEST, OUT_CID, sender=operator)
    fees = router.creditOf(operator, ETH)
    stake = router.operatorInfo(operator).stake
    assert fees == 2 * OPERATOR_FEE

    chain.provider.set_code(operator.address, project.HostileAccount.contract_type.runtime_bytecode.bytecode)
    as_contract = project.HostileAccount.at(operator.address)
    start = chain.provider.get_balance(operator.address)
    as_contract.execute(router, 0, call(router, "withdraw", ETH), sender=actors.other)
    assert chain.provider.get_balance(operator.address) == start + fees
    assert as_contract.reentrySuccesses() == 0 and as_contract.reentryAttempts() == 2

    as_contract.execute(router, 0, call(router, "startUnbonding"), sender=actors.other)
    chain.pending_timestamp += router.unbondingDelay() + 1
    as_contract.execute(router, 0, call(router, "withdrawStake"), sender=actors.other)
    assert chain.provider.get_balance(operator.address) == start + fees + stake
    assert as_contract.reentrySuccesses() == 0 and as_contract.reentryAttempts() == 4
    assert router.balance == 0


def test_contracts_cannot_register_as_operators(router, hostile, actors):
    """An operator must prove its key: no contract has a public key hashing to its address."""
    key = public_key(actors.operator)
    with pytest.raises(ContractLogicError) as failure:
        hostile.execute(router, 10**17, call(router, "registerOperator", key), value=10**17, sender=actors.other)
    assert_custom_error(
        failure.value, "Router_PublicKeyMismatch", ["address", "address"], [actors.operator.address, hostile.address]
    )
    assert not router.operatorInfo(hostile).registered

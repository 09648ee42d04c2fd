"""voicemarket.market.chain: parameter packing, inputs, CIDs, enums and deployment roles."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicemarket import protocol
from voicemarket.content.multiformats import CID, DAG_PB, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import DAY, Action, Language, RequestStatus, language_bits, renewal_lead

centi = st.one_of(st.none(), st.integers(1, 255).map(lambda x: x / 100))


@given(
    language=st.sampled_from(list(Language)),
    speed=st.one_of(st.none(), st.integers(25, 400).map(lambda x: x / 100)),
    top_k=st.one_of(st.none(), st.integers(1, 255)),
    top_p=st.one_of(st.none(), st.integers(1, 100).map(lambda x: x / 100)),
    temperature=centi,
    repetition_penalty=centi,
    seed=st.integers(0, 2**32 - 1),
    min_dispute_window=st.integers(0, 2**24 - 1),
)
def test_params_round_trip(language, speed, top_k, top_p, temperature, repetition_penalty, seed, min_dispute_window):
    """Packing then unpacking gives the parameters back, and never sets the reserved bits (112..127);
    the buyer's dispute-window floor sits in bits 88..111."""
    params = vm.SynthesisParams(
        language, speed, top_k, top_p, temperature, repetition_penalty, seed, min_dispute_window
    )
    packed = params.pack()
    assert packed >> 112 == 0 and packed & 0xFF == int(language)
    assert (packed >> 88) & 0xFFFFFF == min_dispute_window
    assert vm.SynthesisParams.unpack(packed) == params


@pytest.mark.parametrize(
    "kwargs",
    [
        {"speed": 0.1},
        {"speed": 5.0},
        {"top_p": 1.5},
        {"temperature": 3.0},
        {"top_k": 256},
        {"seed": 2**32},
        {"min_dispute_window": 2**24},
        {"min_dispute_window": -1},
    ],
)
def test_params_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError):
        vm.SynthesisParams(Language.EN, **kwargs).pack()


def test_reserved_bits_are_refused_when_unpacking():
    with pytest.raises(ValueError, match="reserved"):
        vm.SynthesisParams.unpack(1 << 112)
    assert vm.SynthesisParams.unpack(1 << 100).min_dispute_window == 1 << 12


def test_model_ids_and_renewal_leads(registry):
    """vm.model_id is the registry's modelIdOf; keepers' lead is min(1 day, period)."""
    creator, digest = "0x" + "ab" * 20, hashlib.sha256(b"bundle").digest()
    assert protocol.model_id(creator, digest) == registry.modelIdOf(creator, digest)
    assert protocol.model_id(creator, digest) != protocol.model_id("0x" + "cd" * 20, digest)
    assert (renewal_lead(3600), renewal_lead(30 * DAY)) == (3600, DAY)


def test_inputs():
    assert vm.inline_input("héllo") == b"\x00" + "héllo".encode()
    assert vm.input_hash("héllo") == hashlib.sha256("héllo".encode()).digest()
    with pytest.raises(ValueError, match="cid_input"):
        vm.inline_input("x" * vm.MAX_INPUT_BYTES)
    cid = CID(0, DAG_PB, hashlib.sha256(b"text").digest())
    assert vm.cid_input(str(cid)) == b"\x12\x20" + cid.digest


def test_cids_convert_to_and_from_what_the_chain_stores():
    v0 = CID(0, DAG_PB, hashlib.sha256(b"a").digest())
    assert vm.cid_parts(str(v0)) == (DAG_PB, v0.digest)
    assert vm.cid_from_chain(b"\x01\x70\x12\x20" + v0.digest) == v0.to_v1()
    raw = CID(1, RAW, hashlib.sha256(b"b").digest())
    assert vm.cid_parts(raw.to_bytes()) == (RAW, raw.digest)


def test_languages_and_enums():
    assert language_bits("zh", "en") == 0b11 and language_bits(Language.YUE) == 0b10000
    with pytest.raises(ValueError, match="unknown language"):
        Language.parse("fr")
    assert RequestStatus.SETTLED.is_final and not RequestStatus.DISPUTED.is_final
    assert int(Action.TEXT_TO_SPEECH | Action.SUBLICENSING) == 0x81


def test_deploy_can_hand_every_role_to_another_admin(project, accounts):
    deployer, admin = accounts[0], accounts[9]
    d = vm.deploy(deployer, admin=admin, stablecoin="mock", project=project)
    for contract in (d.registry, d.licenses, d.router):
        assert contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), admin)
        assert not contract.hasRole(contract.DEFAULT_ADMIN_ROLE(), deployer)
    assert d.licenses.router() == d.router.address
    assert d.licenses.isAssetAllowed(d.stablecoin)
    assert d.offers.address == d.licenses.offerBook() and d.offers.licenseManager() == d.licenses.address
    # KeyDelivery has no roles of its own: it asks the licence manager's (admin, treasurer).
    assert d.key_delivery.licenses() == d.licenses.address and d.key_delivery.registry() == d.registry.address
    assert set(d.addresses) == {"registry", "licenses", "offers", "router", "stablecoin", "keyDelivery"}
    assert d.registry.retirementNotice() == 45 * DAY and d.router.disputeBond() == 0


def test_deploy_sets_the_dispute_bond_and_notice(project, accounts):
    d = vm.deploy(accounts[0], dispute_bond=10**15, retirement_notice=2 * DAY, project=project)
    assert d.router.disputeBond() == 10**15 and d.registry.retirementNotice() == 2 * DAY
    assert d.stablecoin is None and "stablecoin" not in d.addresses

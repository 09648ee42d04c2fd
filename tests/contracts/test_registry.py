"""VoiceModelRegistry: registration with consent, versions, metadata, retirement, freezes, views."""

from __future__ import annotations

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from market_helpers import digest_of, reverts, view_reverts
from voicemarket import protocol
from voicemarket.content.multiformats import CID, DAG_PB, RAW
from voicemarket.market import chain as vm
from voicemarket.protocol import ETH, language_bits


def test_register_with_eoa_consent_mints_to_creator_and_records_everything(market, registry, actors):
    r = market.registration(co_creators=[(actors.co.address, 1_000)], dispute_window=3600, royalty_bps=700)
    receipt = registry.registerModel(r, sender=actors.creator)
    model_id = protocol.model_id(actors.creator.address, r["bundleDigest"])
    assert model_id == registry.modelIdOf(actors.creator, r["bundleDigest"])

    assert registry.ownerOf(model_id) == actors.creator
    event = receipt.events.filter(registry.ModelRegistered)[0]
    assert (event.modelId, event.creator, event.voiceOwner) == (model_id, actors.creator, actors.voice)
    assert (event.bundleDigest, event.parentId) == (r["bundleDigest"], 0)
    assert event.policyHash == r["policyHash"] and event.voiceOwnerBps == 2_000
    assert event.languages == language_bits("zh", "en")
    assert registry.consentOf(model_id) == (actors.voice, 2_000)
    info = registry.modelInfo(model_id)
    assert info.creator == actors.creator and info.royaltyBps == 700 and info.disputeWindow == 3600
    assert info.languages == language_bits("zh", "en") and not info.frozen and info.serviceEndsAt == 0
    assert info.bundleCodec == RAW and info.metadataCodec == DAG_PB
    creator, payees = registry.revenueSplit(model_id)
    assert creator == actors.creator
    assert [tuple(p) for p in payees] == [(actors.voice, 2_000), (actors.co, 1_000)]


def test_cid_views_round_trip_to_the_registered_cids(market, registry):
    r = market.registration(label="cid round trip")
    model_id = market.register(label="cid round trip")
    bundle = vm.cid_from_chain(registry.bundleCid(model_id))
    metadata = vm.cid_from_chain(registry.metadataCid(model_id))
    assert bundle == CID(1, RAW, digest_of("sealed cid round trip"))
    assert metadata == CID(1, DAG_PB, digest_of("metadata cid round trip"))
    assert registry.tokenURI(model_id) == f"ipfs://{metadata}"
    assert CID(0, DAG_PB, r["metadataCid"]).to_v1() == metadata


def test_creator_who_is_the_voice_owner_needs_no_signature(market, registry, actors):
    model_id = market.register(voice_owner=actors.creator, sign=False)
    assert registry.consentOf(model_id) == (actors.creator, 0)
    creator, payees = registry.revenueSplit(model_id)
    assert creator == actors.creator and list(payees) == []


def test_consent_by_erc1271_contract_wallet(market, registry, actors, project):
    wallet = actors.deployer.deploy(project.ConsentWallet, actors.voice)
    model_id = market.register(voice_owner=wallet.address, signer=actors.voice)
    assert registry.consentOf(model_id)[0] == wallet.address


def test_erc1271_wallet_refusing_the_signature_reverts(market, registry, actors, project):
    wallet = actors.deployer.deploy(project.ConsentWallet, actors.other)  # owned by someone else
    r = market.registration(voice_owner=wallet.address, signer=actors.voice)
    with reverts(registry.Registry_InvalidConsent, voiceOwner=wallet.address):
        registry.registerModel(r, sender=actors.creator)


def test_consent_signed_by_someone_else_reverts(market, registry, actors):
    r = market.registration(signer=actors.other)
    with reverts(registry.Registry_InvalidConsent, voiceOwner=actors.voice.address):
        registry.registerModel(r, sender=actors.creator)


def test_consent_for_another_creator_cannot_be_replayed(market, registry, actors):
    r = market.registration(creator=actors.creator)
    with reverts(registry.Registry_InvalidConsent, voiceOwner=actors.voice.address):
        registry.registerModel(r, sender=actors.other)


def test_missing_signature_reverts(market, registry, actors):
    r = market.registration(sign=False)
    with reverts(registry.Registry_InvalidConsent, voiceOwner=actors.voice.address):
        registry.registerModel(r, sender=actors.creator)


def test_expired_consent_reverts(market, registry, actors, chain):
    deadline = chain.pending_timestamp - 1
    r = market.registration(deadline=deadline)
    with reverts(registry.Registry_ConsentExpired, deadline=deadline):
        registry.registerModel(r, sender=actors.creator)


def test_consent_digest_is_the_eip712_hash_wallets_sign(registry, chain):
    args = dict(
        voice_owner="0x" + "22" * 20,
        bundle_digest=digest_of("a"),
        creator="0x" + "11" * 20,
        policy_hash=digest_of("p"),
        voice_owner_bps=123,
        nonce=7,
        deadline=456,
    )
    message = vm.consent_typed_data(registry.address, chain.chain_id, **args)
    signable = encode_typed_data(full_message=message)
    expected = keccak(b"\x19" + signable.version + signable.header + signable.body)
    assert registry.consentDigest(*args.values()) == expected
    assert registry.CONSENT_TYPEHASH() == keccak(
        text="VoiceConsent(address voiceOwner,bytes32 bundleDigest,address creator,bytes32 policyHash,"
        "uint16 voiceOwnerBps,uint256 nonce,uint256 deadline)"
    )


def test_sign_consent_signs_under_the_current_nonce(market, registry, actors, chain):
    """voicemarket.market.chain.sign_consent reads the voice owner's nonce: its signature registers."""
    digest, policy, deadline = (
        digest_of("sign_consent bundle"),
        digest_of("consent policy sign_consent bundle"),
        market.now + 600,
    )
    registry.revokeConsents(sender=actors.voice)
    signature = vm.sign_consent(
        actors.voice,
        registry,
        bundle_digest=digest,
        creator=actors.creator.address,
        policy_hash=policy,
        voice_owner_bps=100,
        deadline=deadline,
    )
    assert signature == market.consent(
        actors.voice.address,
        actors.voice,
        digest=digest,
        creator=actors.creator,
        policy_hash=policy,
        voice_owner_bps=100,
        deadline=deadline,
        nonce=1,
    )
    r = {
        **market.registration(label="sign_consent bundle", voice_owner_bps=100),
        "consentSignature": signature,
        "consentDeadline": deadline,
    }
    registry.registerModel(r, sender=actors.creator)
    assert registry.consentOf(protocol.model_id(actors.creator.address, digest)) == (actors.voice, 100)


def test_revoking_consents_voids_every_unused_signature(market, registry, actors):
    """revokeConsents raises the nonce: a signature given before no longer registers; one under the
    new nonce does, and registrations do not use nonces up."""
    stale = market.registration()
    receipt = registry.revokeConsents(sender=actors.voice)
    event = receipt.events.filter(registry.ConsentsRevoked)[0]
    assert (event.voiceOwner, event.nonce) == (actors.voice, 1) and registry.consentNonce(actors.voice) == 1
    with reverts(registry.Registry_InvalidConsent, voiceOwner=actors.voice.address):
        registry.registerModel(stale, sender=actors.creator)
    market.register()
    market.register()
    assert registry.consentNonce(actors.voice) == 1 and registry.consentNonce(actors.creator) == 0


def test_the_same_bundle_cannot_be_registered_twice_by_its_creator(market, registry, actors):
    model_id = market.register(label="twice")
    r = market.registration(label="twice")
    with reverts(registry.Registry_ModelExists, modelId=model_id):
        registry.registerModel(r, sender=actors.creator)


def test_model_ids_bind_the_bundle_to_its_creator(market, registry, actors):
    """Two creators registering the same bundle get two ids (each their own)."""
    mine = market.register(label="shared bundle")
    theirs = market.register(creator=actors.other, voice_owner=actors.other, label="shared bundle")
    digest = digest_of("shared bundle")
    assert mine == registry.modelIdOf(actors.creator, digest) != theirs == registry.modelIdOf(actors.other, digest)
    assert (registry.ownerOf(mine), registry.ownerOf(theirs)) == (actors.creator, actors.other)


@pytest.mark.parametrize(
    ("change", "error", "args"),
    [
        ({"bundleDigest": bytes(32)}, "Registry_EmptyDigest", {}),
        ({"bundleCodec": 0x71}, "Registry_UnsupportedCodec", {"codec": 0x71}),
        ({"metadataCodec": 0}, "Registry_UnsupportedCodec", {"codec": 0}),
        ({"bundleCid": bytes(32)}, "Registry_EmptyCid", {}),
        ({"metadataCid": bytes(32)}, "Registry_EmptyCid", {}),
        ({"languages": 0}, "Registry_BadLanguages", {"languages": 0}),
        ({"languages": 0b100000}, "Registry_BadLanguages", {"languages": 0b100000}),
        ({"royaltyBps": 1_001}, "Registry_RoyaltyTooHigh", {"bps": 1_001, "max": 1_000}),
        ({"disputeWindow": 7 * 86_400 + 1}, "Registry_DisputeWindowTooLong", {"window": 7 * 86_400 + 1}),
    ],
)
def test_malformed_registration_reverts(market, registry, actors, change, error, args):
    r = {**market.registration(), **change}
    with reverts(getattr(registry, error), **args):
        registry.registerModel(r, sender=actors.creator)


def test_split_checks(market, registry, actors):
    co = actors.co.address
    with reverts(registry.Registry_SplitTooLarge, totalBps=10_001):
        registry.registerModel(
            market.registration(voice_owner_bps=9_000, co_creators=[(co, 1_001)]), sender=actors.creator
        )
    with reverts(registry.Registry_BadCoCreator, index=1, account=ETH, bps=5):
        registry.registerModel(market.registration(co_creators=[(co, 5), (ETH, 5)]), sender=actors.creator)
    with reverts(registry.Registry_BadCoCreator, index=0, account=co, bps=0):
        registry.registerModel(market.registration(co_creators=[(co, 0)]), sender=actors.creator)
    with reverts(registry.Registry_TooManyCoCreators, count=9, max=8):
        registry.registerModel(market.registration(co_creators=[(co, 1)] * 9), sender=actors.creator)
    r = {**market.registration(voice_owner=actors.creator, sign=False), "voiceOwnerBps": 10}
    with reverts(registry.Registry_SelfShare, voiceOwnerBps=10):
        registry.registerModel(r, sender=actors.creator)
    r = {**market.registration(sign=False), "voiceOwner": ETH}
    with reverts(registry.Registry_ZeroVoiceOwner):
        registry.registerModel(r, sender=actors.creator)


def test_whole_split_may_go_to_others(market, registry, actors):
    model_id = market.register(voice_owner_bps=9_000, co_creators=[(actors.co.address, 1_000)])
    assert [p[1] for p in registry.revenueSplit(model_id)[1]] == [9_000, 1_000]


def test_versions_link_to_their_parent_and_only_its_owner_may_add_one(market, registry, actors):
    parent = market.register()
    child = market.register(parent_id=parent)
    assert registry.parentOf(child) == parent and registry.parentOf(parent) == 0
    assert registry.modelInfo(child).parentId == parent
    assert registry.consentOf(child) == (actors.voice, 2_000)
    r = market.registration(creator=actors.other, parent_id=parent)
    with reverts(registry.Registry_NotModelOwner, modelId=parent, caller=actors.other.address):
        registry.registerModel(r, sender=actors.other)
    r = market.registration(parent_id=12345)
    with reverts(registry.Registry_UnknownModel, modelId=12345):
        registry.registerModel(r, sender=actors.creator)
    # A new owner of the parent may publish the next version, with the same voice owner's consent.
    registry.transferFrom(actors.creator, actors.other, parent, sender=actors.creator)
    grandchild = market.register(creator=actors.other, parent_id=parent)
    assert registry.parentOf(grandchild) == parent
    assert registry.revenueSplit(grandchild)[0] == actors.other


def test_a_version_keeps_its_parents_voice_owner(market, registry, actors):
    """The child must name the parent's voice owner (the parent's creator when it had none), and the
    parent must not be frozen."""
    parent = market.register()
    r = market.registration(voice_owner=actors.creator, parent_id=parent)
    with reverts(
        registry.Registry_VoiceOwnerChanged,
        parentId=parent,
        parentVoiceOwner=actors.voice.address,
        voiceOwner=actors.creator.address,
    ):
        registry.registerModel(r, sender=actors.creator)
    own = market.register(voice_owner=actors.creator)
    r = market.registration(parent_id=own)
    with reverts(
        registry.Registry_VoiceOwnerChanged,
        parentId=own,
        parentVoiceOwner=actors.creator.address,
        voiceOwner=actors.voice.address,
    ):
        registry.registerModel(r, sender=actors.creator)
    assert registry.parentOf(market.register(voice_owner=actors.creator, parent_id=own)) == own
    registry.freeze(parent, b"\x02" * 32, sender=actors.arbiter)
    r = market.registration(parent_id=parent)
    with reverts(registry.Registry_ParentFrozen, parentId=parent):
        registry.registerModel(r, sender=actors.creator)


def test_metadata_update_emits_erc4906_and_keeps_the_bundle(market, registry, actors):
    model_id = market.register()
    bundle = registry.bundleCid(model_id)
    new = CID(1, RAW, digest_of("new metadata"))
    receipt = registry.setMetadata(model_id, new.digest, RAW, sender=actors.creator)
    assert receipt.events.filter(registry.MetadataUpdate)[0]._tokenId == model_id
    assert registry.tokenURI(model_id) == f"ipfs://{new}"
    assert registry.bundleCid(model_id) == bundle
    with reverts(registry.Registry_NotModelOwner, modelId=model_id, caller=actors.other.address):
        registry.setMetadata(model_id, new.digest, RAW, sender=actors.other)
    with reverts(registry.Registry_UnsupportedCodec, codec=0x71):
        registry.setMetadata(model_id, new.digest, 0x71, sender=actors.creator)
    with reverts(registry.Registry_EmptyCid):
        registry.setMetadata(model_id, bytes(32), RAW, sender=actors.creator)
    with reverts(registry.Registry_UnknownModel, modelId=7):
        registry.setMetadata(7, new.digest, RAW, sender=actors.creator)


def test_dispute_window_is_the_owners_to_set(market, registry, actors):
    model_id = market.register()
    registry.setDisputeWindow(model_id, 600, sender=actors.creator)
    assert registry.modelTerms(model_id).disputeWindow == 600
    with reverts(registry.Registry_DisputeWindowTooLong, window=7 * 86_400 + 1):
        registry.setDisputeWindow(model_id, 7 * 86_400 + 1, sender=actors.creator)
    with reverts(registry.Registry_NotModelOwner, modelId=model_id, caller=actors.other.address):
        registry.setDisputeWindow(model_id, 1, sender=actors.other)


def test_retirement_sets_the_end_of_service_once(market, registry, actors, chain):
    model_id = market.register()
    with reverts(registry.Registry_NotModelOwner, modelId=model_id, caller=actors.other.address):
        registry.retire(model_id, sender=actors.other)
    receipt = registry.retire(model_id, sender=actors.creator)
    ends = receipt.events.filter(registry.ModelRetired)[0].serviceEndsAt
    assert ends == receipt.timestamp + registry.retirementNotice()
    assert registry.modelTerms(model_id).serviceEndsAt == ends
    with reverts(registry.Registry_AlreadyRetired, modelId=model_id, serviceEndsAt=ends):
        registry.retire(model_id, sender=actors.creator)


def test_freeze_is_the_arbiters(market, registry, actors):
    model_id = market.register()
    role = registry.ARBITER_ROLE()
    with reverts(registry.AccessControlUnauthorizedAccount, account=actors.creator.address, neededRole=role):
        registry.freeze(model_id, b"\x01" * 32, sender=actors.creator)
    receipt = registry.freeze(model_id, b"\x01" * 32, sender=actors.arbiter)
    assert receipt.events.filter(registry.ModelFrozen)[0].arbiter == actors.arbiter
    assert registry.modelTerms(model_id).frozen
    with reverts(registry.Registry_AlreadyFrozen, modelId=model_id):
        registry.freeze(model_id, b"\x01" * 32, sender=actors.arbiter)
    with reverts(registry.AccessControlUnauthorizedAccount, account=actors.creator.address, neededRole=role):
        registry.unfreeze(model_id, sender=actors.creator)
    registry.unfreeze(model_id, sender=actors.arbiter)
    assert not registry.modelTerms(model_id).frozen
    with reverts(registry.Registry_NotFrozen, modelId=model_id):
        registry.unfreeze(model_id, sender=actors.arbiter)
    with reverts(registry.Registry_UnknownModel, modelId=5):
        registry.freeze(5, b"\x01" * 32, sender=actors.arbiter)


def test_retirement_notice_is_the_admins_within_bounds(registry, actors):
    day = 86_400
    assert registry.retirementNotice() == 45 * day  # vm.deploy's default
    assert (registry.MIN_RETIREMENT_NOTICE(), registry.MAX_RETIREMENT_NOTICE()) == (day, 400 * day)
    receipt = registry.setRetirementNotice(60 * day, sender=actors.deployer)
    assert receipt.events.filter(registry.RetirementNoticeSet)[0].retirementNotice == 60 * day
    assert registry.retirementNotice() == 60 * day  # a longer notice applies at once
    with reverts(registry.Registry_NoticeTooLong, notice=400 * day + 1, max=400 * day):
        registry.setRetirementNotice(400 * day + 1, sender=actors.deployer)
    with reverts(registry.Registry_NoticeTooShort, notice=day - 1, min=day):
        registry.setRetirementNotice(day - 1, sender=actors.deployer)
    with reverts(registry.AccessControlUnauthorizedAccount, account=actors.other.address):
        registry.setRetirementNotice(day, sender=actors.other)


def test_a_shortened_notice_runs_down_with_time(registry, actors, chain):
    """Shortening the notice from 45 to 1 day: it shrinks by the time passed, never faster, so
    now + notice never decreases."""
    day = 86_400
    start = registry.setRetirementNotice(day, sender=actors.deployer).timestamp
    assert registry.retirementNotice() == 45 * day - (chain.blocks.head.timestamp - start)
    chain.pending_timestamp = start + 10 * day
    chain.mine()
    assert registry.retirementNotice() == 35 * day
    # A second shortening starts from the notice in force, not from the first value.
    second = registry.setRetirementNotice(2 * day, sender=actors.deployer).timestamp
    assert registry.retirementNotice() == 45 * day - (second - start)
    chain.pending_timestamp = start + 44 * day
    chain.mine()
    assert registry.retirementNotice() == 2 * day  # the floor now in force
    chain.pending_timestamp = start + 50 * day
    chain.mine()
    assert registry.retirementNotice() == 2 * day


def test_royalty_info_pays_the_creator(market, registry, actors):
    model_id = market.register(royalty_bps=250)
    assert registry.royaltyInfo(model_id, 10**18) == (actors.creator, 25 * 10**15)
    registry.transferFrom(actors.creator, actors.other, model_id, sender=actors.creator)
    assert registry.royaltyInfo(model_id, 10**18)[0] == actors.creator
    assert registry.royaltyInfo(42, 10**18) == (ETH, 0)


def test_interfaces(registry):
    for interface_id in ("0x80ac58cd", "0x5b5e139f", "0x2a55205a", "0x49064906", "0x7965db0b", "0x01ffc9a7"):
        assert registry.supportsInterface(interface_id), interface_id
    assert not registry.supportsInterface("0xffffffff")


def test_views_of_unknown_models_revert(registry):
    for view in (
        registry.modelInfo,
        registry.consentOf,
        registry.parentOf,
        registry.bundleCid,
        registry.metadataCid,
        registry.revenueSplit,
    ):
        view_reverts(registry.Registry_UnknownModel, view, 9, modelId=9)
    assert not registry.modelTerms(9).exists

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";

/// @title Voice models as ERC-721 tokens (with ERC-2981 royalties and ERC-4906 metadata events)
/// @notice Anyone registers a voice model; the voice owner (the person whose voice it is) must
/// consent with an EIP-712 signature unless they are the creator. A model's id binds the
/// SHA-256 of its bundle to its creator (`modelIdOf(creator, bundleDigest)`), so nobody can
/// take a pending or published bundle's id before its creator, the digest of a registered model
/// never changes, and a new bundle is a new token: a new version names its parent and keeps its
/// voice owner, who consents to it again.
///
/// Revenue split: every payment for a model, after the platform fee (set in the licence
/// manager), is split into the voice
/// owner's share, each co-creator's share (basis points, fixed at registration) and the
/// creator's share: the rest of 10,000, plus all rounding dust.
///
/// Languages are a bit set: bit 0 zh, 1 en, 2 ja, 3 ko, 4 yue (bits 5..7 reserved).
/// Content ids are stored as (codec, sha2-256 digest): codec 0x70 dag-pb (Kubo's CIDv0 default)
/// or 0x55 raw; `bundleCid` returns the binary CIDv1 `0x01 <codec> 0x12 0x20 <digest>`.
interface IVoiceModelRegistry is IERC721, IERC2981 {
    // ------------------------------------------------------------------ types

    /// @notice A party of a split other than the creator.
    struct Payee {
        address account;
        uint16 bps;
    }

    /// @notice Everything `registerModel` records.
    struct ModelRegistration {
        bytes32 bundleDigest; //      SHA-256 of the bundle; the model id is modelIdOf(creator, bundleDigest)
        bytes32 bundleCid; //         sha2-256 digest in the bundle's CID
        uint8 bundleCodec; //         0x70 (dag-pb) or 0x55 (raw)
        bytes32 metadataCid; //       sha2-256 digest in the CID of the ERC-721 metadata JSON
        uint8 metadataCodec; //       0x70 or 0x55
        uint8 languages; //           bit set, at least one of bits 0..4
        uint16 royaltyBps; //         ERC-2981 royalty to the creator, at most MAX_ROYALTY_BPS
        uint24 disputeWindow; //      seconds, at most MAX_DISPUTE_WINDOW (see the synthesis router)
        uint256 parentId; //          the previous version's model id (owned by the caller, not frozen), or 0
        address voiceOwner; //        whose voice it is (the creator themself is allowed); a version keeps its parent's
        uint16 voiceOwnerBps; //      the voice owner's share (0 when the voice owner is the creator)
        Payee[] coCreators; //        at most MAX_CO_CREATORS, each with a non-zero share
        bytes32 policyHash; //        the licence-policy hash the voice owner consented to
        uint256 consentDeadline; //   the consent signature is void after this unix time
        bytes consentSignature; //    EIP-712 VoiceConsent by voiceOwner (ECDSA or ERC-1271) under their current
        //                            consent nonce; empty if voiceOwner == creator
    }

    /// @notice What the licence manager and the router read on every sale and use.
    struct ModelTerms {
        bool exists;
        bool frozen;
        uint40 serviceEndsAt; //   0 unless retired: licences work until then, nothing sells after retirement
        uint8 languages;
        uint24 disputeWindow;
    }

    /// @notice A model's full record (view).
    struct ModelInfo {
        address creator;
        address voiceOwner;
        uint16 voiceOwnerBps;
        uint16 royaltyBps;
        uint8 languages;
        uint24 disputeWindow;
        bool frozen;
        uint40 serviceEndsAt;
        uint256 parentId;
        bytes32 bundleCid;
        uint8 bundleCodec;
        bytes32 metadataCid;
        uint8 metadataCodec;
    }

    // ------------------------------------------------------------------ errors

    error Registry_UnknownModel(uint256 modelId);
    error Registry_ModelExists(uint256 modelId);
    error Registry_EmptyDigest();
    error Registry_UnsupportedCodec(uint8 codec);
    error Registry_EmptyCid();
    /// @notice `languages` is empty or sets a reserved bit.
    error Registry_BadLanguages(uint8 languages);
    error Registry_NotModelOwner(uint256 modelId, address caller);
    error Registry_ZeroVoiceOwner();
    error Registry_ConsentExpired(uint256 deadline, uint256 nowTime);
    /// @notice The consent signature is not `voiceOwner`'s (ECDSA or ERC-1271).
    error Registry_InvalidConsent(address voiceOwner);
    error Registry_TooManyCoCreators(uint256 count, uint256 max);
    /// @notice Co-creator `index` has the zero address or a zero share.
    error Registry_BadCoCreator(uint256 index, address account, uint16 bps);
    /// @notice The voice owner's and co-creators' shares exceed 10,000 basis points.
    error Registry_SplitTooLarge(uint256 totalBps);
    /// @notice A voice owner who is also the creator takes the creator's share, not a separate one.
    error Registry_SelfShare(uint16 voiceOwnerBps);
    error Registry_RoyaltyTooHigh(uint16 bps, uint16 max);
    error Registry_DisputeWindowTooLong(uint24 window, uint24 max);
    error Registry_NoticeTooLong(uint40 notice, uint40 max);
    error Registry_NoticeTooShort(uint40 notice, uint40 min);
    /// @notice A new version cannot be registered under a frozen model.
    error Registry_ParentFrozen(uint256 parentId);
    /// @notice A new version must keep its parent's voice owner (who consents to it again).
    error Registry_VoiceOwnerChanged(uint256 parentId, address parentVoiceOwner, address voiceOwner);
    error Registry_AlreadyRetired(uint256 modelId, uint40 serviceEndsAt);
    error Registry_AlreadyFrozen(uint256 modelId);
    error Registry_NotFrozen(uint256 modelId);

    // ------------------------------------------------------------------ events

    /// @notice A model was registered (minted to its creator) with the voice owner's consent.
    event ModelRegistered(
        uint256 indexed modelId,
        address indexed creator,
        address indexed voiceOwner,
        bytes32 bundleDigest,
        uint256 parentId,
        bytes32 policyHash,
        uint16 voiceOwnerBps,
        uint8 languages
    );

    /// @notice The model's metadata CID was set (also at registration). ERC-4906's
    /// `MetadataUpdate` follows every change after registration.
    event MetadataSet(uint256 indexed modelId, bytes32 metadataCid, uint8 codec);

    /// @notice ERC-4906: the metadata of `_tokenId` changed.
    event MetadataUpdate(uint256 _tokenId);

    /// @notice ERC-4906: the metadata of a range of tokens changed.
    event BatchMetadataUpdate(uint256 _fromTokenId, uint256 _toTokenId);

    event DisputeWindowSet(uint256 indexed modelId, uint24 disputeWindow);
    event ModelRetired(uint256 indexed modelId, uint40 serviceEndsAt);
    event ModelFrozen(uint256 indexed modelId, address indexed arbiter, bytes32 reason);
    event ModelUnfrozen(uint256 indexed modelId, address indexed arbiter);
    event RetirementNoticeSet(uint40 retirementNotice);
    /// @notice The voice owner voided every consent signed under a nonce below `nonce`.
    event ConsentsRevoked(address indexed voiceOwner, uint256 nonce);

    // ------------------------------------------------------------------ functions

    /// @notice Registers a model and mints its token to the caller (the creator). A new version
    /// names its parent: only the parent's current owner may register it, not under a frozen
    /// parent, and with the parent's voice owner (whose consent it needs unless they are the caller).
    /// @return modelId `modelIdOf(msg.sender, r.bundleDigest)`.
    function registerModel(ModelRegistration calldata r) external returns (uint256 modelId);

    /// @notice The owner points the model at new ERC-721 metadata (ERC-4906 `MetadataUpdate`).
    /// The bundle never changes: a new bundle is a new version.
    function setMetadata(uint256 modelId, bytes32 metadataCid, uint8 codec) external;

    /// @notice The owner sets the dispute window for future requests (at most MAX_DISPUTE_WINDOW).
    function setDisputeWindow(uint256 modelId, uint24 disputeWindow) external;

    /// @notice The owner retires the model: sales stop now; licences already sold keep working
    /// until now + retirementNotice.
    function retire(uint256 modelId) external;

    /// @notice Arbiter role: freeze a model (disputed consent, infringement): it sells nothing and
    /// serves no new synthesis. Escrow stays refundable, credits withdrawable.
    function freeze(uint256 modelId, bytes32 reason) external;

    /// @notice Arbiter role: lift a freeze.
    function unfreeze(uint256 modelId) external;

    /// @notice Admin: the notice period granted to licensees when a model is retired, between
    /// MIN_RETIREMENT_NOTICE and MAX_RETIREMENT_NOTICE. A longer notice applies at once; a shorter
    /// one runs down from the old one as time passes (`retirementNotice`), so no licence sold
    /// under the old notice (subscriptions are sold at most that far ahead) loses any of it.
    function setRetirementNotice(uint40 retirementNotice) external;

    /// @notice The voice owner voids every consent signature they gave that has not been used
    /// yet (it raises their consent nonce). Models already registered keep their consent.
    function revokeConsents() external returns (uint256 nonce);

    // ------------------------------------------------------------------ views

    function modelTerms(uint256 modelId) external view returns (ModelTerms memory);

    function modelInfo(uint256 modelId) external view returns (ModelInfo memory);

    /// @notice The split: the creator (who takes the rest of 10,000 bps and the dust) and the
    /// other payees (the voice owner first when they are not the creator, then the co-creators).
    function revenueSplit(uint256 modelId) external view returns (address creator, Payee[] memory payees);

    /// @notice Who consented and to which share (the creator with 0 when the creator is the voice
    /// owner). The policy hash the voice owner signed is in `ModelRegistered` (and in the bundle's
    /// consent record, which the model id commits to); it is not kept in storage, for gas.
    function consentOf(uint256 modelId) external view returns (address voiceOwner, uint16 voiceOwnerBps);

    /// @notice The previous version of `modelId`, or 0.
    function parentOf(uint256 modelId) external view returns (uint256);

    /// @notice The binary CIDv1 of the bundle: 0x01 <codec> 0x12 0x20 <digest>.
    function bundleCid(uint256 modelId) external view returns (bytes memory);

    /// @notice The binary CIDv1 of the ERC-721 metadata JSON.
    function metadataCid(uint256 modelId) external view returns (bytes memory);

    /// @notice The EIP-712 digest the voice owner signs (VoiceConsent under this registry's domain).
    /// It names the voice owner (no replay of one ERC-1271 wallet's signature for another) and
    /// their consent nonce (`revokeConsents` voids outstanding signatures).
    function consentDigest(
        address voiceOwner,
        bytes32 bundleDigest,
        address creator,
        bytes32 policyHash,
        uint16 voiceOwnerBps,
        uint256 nonce,
        uint256 deadline
    ) external view returns (bytes32);

    /// @notice keccak256("VoiceConsent(address voiceOwner,bytes32 bundleDigest,address creator,bytes32 policyHash,uint16 voiceOwnerBps,uint256 nonce,uint256 deadline)")
    function CONSENT_TYPEHASH() external view returns (bytes32);

    /// @notice The nonce the voice owner's next consent must be signed under.
    function consentNonce(address voiceOwner) external view returns (uint256);

    /// @notice The id `creator` gets for a bundle: uint256(keccak256(abi.encode(creator, bundleDigest))).
    function modelIdOf(address creator, bytes32 bundleDigest) external pure returns (uint256);

    /// @notice The retirement notice in force now (a shortened notice runs down from the old one).
    function retirementNotice() external view returns (uint40);

    /// @notice The shortest notice the admin may set (1 day, at least a request's lifetime).
    function MIN_RETIREMENT_NOTICE() external view returns (uint40);
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC2981} from "@openzeppelin/contracts/interfaces/IERC2981.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {ContentId} from "./libraries/ContentId.sol";
import {Protocol} from "./libraries/Protocol.sol";

/// @title VoiceModelRegistry
/// @notice Voice models as ERC-721 tokens whose id is the SHA-256 of the model's bundle.
/// @dev Storage is laid out for the gas budget of `registerModel`: one slot holds everything a
/// sale or a use reads (creator, royalty, languages, codecs, frozen, dispute window, end of
/// service); the consent slot is written only when the voice owner is not the creator or there
/// are co-creators; each CID is one 32-byte digest. The policy hash the voice owner consented to
/// is signed and emitted, not stored (a slot would cost 22,100 gas; the bundle's consent record,
/// which the model id commits to, holds it as well).
contract VoiceModelRegistry is IVoiceModelRegistry, ERC721, AccessControl, EIP712 {
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");

    /// @notice keccak256 of the EIP-712 VoiceConsent type.
    bytes32 public constant CONSENT_TYPEHASH = keccak256(
        "VoiceConsent(address voiceOwner,bytes32 bundleDigest,address creator,bytes32 policyHash,uint16 voiceOwnerBps,uint256 nonce,uint256 deadline)"
    );

    uint16 public constant MAX_ROYALTY_BPS = 1_000;
    uint24 public constant MAX_DISPUTE_WINDOW = Protocol.MAX_DISPUTE_WINDOW;
    uint40 public constant MAX_RETIREMENT_NOTICE = 400 days; // a yearly subscription and its renewal lead fit
    /// @inheritdoc IVoiceModelRegistry
    uint40 public constant MIN_RETIREMENT_NOTICE = Protocol.MIN_RETIREMENT_NOTICE;
    uint256 public constant MAX_CO_CREATORS = 8;

    uint8 private constant _BUNDLE_RAW = 1 << 0;
    uint8 private constant _METADATA_RAW = 1 << 1;
    uint8 private constant _FROZEN = 1 << 2;

    struct Model {
        // slot 0: read by every sale and every use
        address creator;
        uint16 royaltyBps;
        uint8 languages;
        uint8 flags; // _BUNDLE_RAW | _METADATA_RAW | _FROZEN
        uint24 disputeWindow;
        uint40 serviceEndsAt; // 0 = not retired
        // slot 1: the consent; zero when the creator is the voice owner and there are no co-creators
        address voiceOwner;
        uint16 voiceOwnerBps;
        uint8 coCreatorCount;
        // slots 2, 3
        bytes32 bundleCid;
        bytes32 metadataCid;
    }

    mapping(uint256 modelId => Model) private _modelRecords;
    mapping(uint256 modelId => mapping(uint256 index => Payee)) private _coCreators;
    mapping(uint256 modelId => uint256) private _parents;
    mapping(address voiceOwner => uint256) private _consentNonces;

    /// @dev The notice in force, and the one before it with when it changed: a shorter notice
    /// takes effect only as fast as time passes (see `retirementNotice`), so no licence sold under
    /// a longer notice loses any of it.
    uint40 private _retirementNotice;
    uint40 private _previousNotice;
    uint40 private _noticeChangedAt;

    /// @param admin Gets the admin role (grants the others).
    /// @param retirementNotice_ Initial notice period for retirements, in seconds.
    constructor(address admin, uint40 retirementNotice_)
        ERC721("voicemarket voice model", "VOICE")
        EIP712("voicemarket VoiceModelRegistry", "1")
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRetirementNotice(retirementNotice_);
    }

    // ------------------------------------------------------------------ registration

    /// @inheritdoc IVoiceModelRegistry
    function registerModel(ModelRegistration calldata r) external returns (uint256 modelId) {
        if (r.bundleDigest == 0) revert Registry_EmptyDigest();
        // The id binds the bundle to its creator: nobody can take another creator's id first.
        modelId = modelIdOf(msg.sender, r.bundleDigest);
        if (_modelRecords[modelId].creator != address(0)) revert Registry_ModelExists(modelId);
        uint8 flags = _codecFlag(r.bundleCodec, _BUNDLE_RAW) | _codecFlag(r.metadataCodec, _METADATA_RAW);
        if (r.bundleCid == 0 || r.metadataCid == 0) revert Registry_EmptyCid();
        if (r.languages == 0 || r.languages & ~Protocol.ALL_LANGUAGES != 0) revert Registry_BadLanguages(r.languages);
        if (r.royaltyBps > MAX_ROYALTY_BPS) revert Registry_RoyaltyTooHigh(r.royaltyBps, MAX_ROYALTY_BPS);
        if (r.disputeWindow > MAX_DISPUTE_WINDOW) {
            revert Registry_DisputeWindowTooLong(r.disputeWindow, MAX_DISPUTE_WINDOW);
        }
        if (r.parentId != 0) _checkParent(r);
        _checkSplit(r);
        if (r.voiceOwner != msg.sender) _checkConsent(r);

        // Effects:
        Model storage m = _modelRecords[modelId];
        m.creator = msg.sender;
        m.royaltyBps = r.royaltyBps;
        m.languages = r.languages;
        m.flags = flags;
        m.disputeWindow = r.disputeWindow;
        uint256 coCreatorCount = r.coCreators.length;
        if (r.voiceOwner != msg.sender || coCreatorCount != 0) {
            m.voiceOwner = r.voiceOwner;
            m.voiceOwnerBps = r.voiceOwnerBps;
            m.coCreatorCount = uint8(coCreatorCount);
            for (uint256 i; i < coCreatorCount; ++i) {
                _coCreators[modelId][i] = r.coCreators[i];
            }
        }
        m.bundleCid = r.bundleCid;
        m.metadataCid = r.metadataCid;
        if (r.parentId != 0) _parents[modelId] = r.parentId;
        _mint(msg.sender, modelId);

        emit ModelRegistered(
            modelId, msg.sender, r.voiceOwner, r.bundleDigest, r.parentId, r.policyHash, r.voiceOwnerBps, r.languages
        );
        emit MetadataSet(modelId, r.metadataCid, r.metadataCodec);
    }

    // ------------------------------------------------------------------ owner actions

    /// @inheritdoc IVoiceModelRegistry
    function setMetadata(uint256 modelId, bytes32 metadataCid_, uint8 codec) external {
        _requireOwner(modelId);
        if (metadataCid_ == 0) revert Registry_EmptyCid();
        Model storage m = _modelRecords[modelId];
        m.flags = (m.flags & ~_METADATA_RAW) | _codecFlag(codec, _METADATA_RAW);
        m.metadataCid = metadataCid_;
        emit MetadataSet(modelId, metadataCid_, codec);
        emit MetadataUpdate(modelId);
    }

    /// @inheritdoc IVoiceModelRegistry
    function setDisputeWindow(uint256 modelId, uint24 disputeWindow) external {
        _requireOwner(modelId);
        if (disputeWindow > MAX_DISPUTE_WINDOW) {
            revert Registry_DisputeWindowTooLong(disputeWindow, MAX_DISPUTE_WINDOW);
        }
        _modelRecords[modelId].disputeWindow = disputeWindow;
        emit DisputeWindowSet(modelId, disputeWindow);
    }

    /// @inheritdoc IVoiceModelRegistry
    function retire(uint256 modelId) external {
        _requireOwner(modelId);
        Model storage m = _modelRecords[modelId];
        if (m.serviceEndsAt != 0) revert Registry_AlreadyRetired(modelId, m.serviceEndsAt);
        uint40 endsAt = uint40(block.timestamp) + retirementNotice();
        m.serviceEndsAt = endsAt;
        emit ModelRetired(modelId, endsAt);
        emit MetadataUpdate(modelId);
    }

    /// @inheritdoc IVoiceModelRegistry
    function revokeConsents() external returns (uint256 nonce) {
        nonce = ++_consentNonces[msg.sender];
        emit ConsentsRevoked(msg.sender, nonce);
    }

    // ------------------------------------------------------------------ roles

    /// @inheritdoc IVoiceModelRegistry
    function freeze(uint256 modelId, bytes32 reason) external onlyRole(ARBITER_ROLE) {
        Model storage m = _existing(modelId);
        if (m.flags & _FROZEN != 0) revert Registry_AlreadyFrozen(modelId);
        m.flags |= _FROZEN;
        emit ModelFrozen(modelId, msg.sender, reason);
        emit MetadataUpdate(modelId);
    }

    /// @inheritdoc IVoiceModelRegistry
    function unfreeze(uint256 modelId) external onlyRole(ARBITER_ROLE) {
        Model storage m = _existing(modelId);
        if (m.flags & _FROZEN == 0) revert Registry_NotFrozen(modelId);
        m.flags &= ~_FROZEN;
        emit ModelUnfrozen(modelId, msg.sender);
        emit MetadataUpdate(modelId);
    }

    /// @inheritdoc IVoiceModelRegistry
    function setRetirementNotice(uint40 retirementNotice_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setRetirementNotice(retirementNotice_);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IVoiceModelRegistry
    function modelTerms(uint256 modelId) external view returns (ModelTerms memory t) {
        Model storage m = _modelRecords[modelId];
        t.exists = m.creator != address(0);
        t.frozen = m.flags & _FROZEN != 0;
        t.serviceEndsAt = m.serviceEndsAt;
        t.languages = m.languages;
        t.disputeWindow = m.disputeWindow;
    }

    /// @inheritdoc IVoiceModelRegistry
    function modelInfo(uint256 modelId) external view returns (ModelInfo memory info) {
        Model storage m = _existing(modelId);
        info.creator = m.creator;
        (info.voiceOwner, info.voiceOwnerBps) = _voiceOwner(m);
        info.royaltyBps = m.royaltyBps;
        info.languages = m.languages;
        info.disputeWindow = m.disputeWindow;
        info.frozen = m.flags & _FROZEN != 0;
        info.serviceEndsAt = m.serviceEndsAt;
        info.parentId = _parents[modelId];
        info.bundleCid = m.bundleCid;
        info.bundleCodec = _codec(m.flags, _BUNDLE_RAW);
        info.metadataCid = m.metadataCid;
        info.metadataCodec = _codec(m.flags, _METADATA_RAW);
    }

    /// @inheritdoc IVoiceModelRegistry
    function revenueSplit(uint256 modelId) external view returns (address creator, Payee[] memory payees) {
        Model storage m = _existing(modelId);
        creator = m.creator;
        uint256 count = m.coCreatorCount;
        bool separateVoiceOwner = m.voiceOwner != address(0) && m.voiceOwner != creator;
        payees = new Payee[](count + (separateVoiceOwner ? 1 : 0));
        uint256 next;
        if (separateVoiceOwner) payees[next++] = Payee(m.voiceOwner, m.voiceOwnerBps);
        for (uint256 i; i < count; ++i) {
            payees[next++] = _coCreators[modelId][i];
        }
    }

    /// @inheritdoc IVoiceModelRegistry
    function consentOf(uint256 modelId) external view returns (address voiceOwner, uint16 voiceOwnerBps) {
        return _voiceOwner(_existing(modelId));
    }

    /// @inheritdoc IVoiceModelRegistry
    function parentOf(uint256 modelId) external view returns (uint256) {
        _existing(modelId);
        return _parents[modelId];
    }

    /// @inheritdoc IVoiceModelRegistry
    function bundleCid(uint256 modelId) external view returns (bytes memory) {
        Model storage m = _existing(modelId);
        return ContentId.toBytes(_codec(m.flags, _BUNDLE_RAW), m.bundleCid);
    }

    /// @inheritdoc IVoiceModelRegistry
    function metadataCid(uint256 modelId) external view returns (bytes memory) {
        Model storage m = _existing(modelId);
        return ContentId.toBytes(_codec(m.flags, _METADATA_RAW), m.metadataCid);
    }

    /// @notice `ipfs://<CIDv1 of the metadata JSON>`.
    function tokenURI(uint256 modelId) public view override returns (string memory) {
        _requireOwned(modelId);
        Model storage m = _modelRecords[modelId];
        return ContentId.toIpfsUri(_codec(m.flags, _METADATA_RAW), m.metadataCid);
    }

    /// @notice ERC-2981: the creator receives `royaltyBps` of a secondary sale of the model token.
    function royaltyInfo(uint256 modelId, uint256 salePrice) external view returns (address, uint256) {
        Model storage m = _modelRecords[modelId];
        if (m.creator == address(0)) return (address(0), 0);
        return (m.creator, Protocol.share(salePrice, m.royaltyBps));
    }

    /// @inheritdoc IVoiceModelRegistry
    function consentDigest(
        address voiceOwner,
        bytes32 bundleDigest,
        address creator,
        bytes32 policyHash,
        uint16 voiceOwnerBps,
        uint256 nonce,
        uint256 deadline
    ) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CONSENT_TYPEHASH, voiceOwner, bundleDigest, creator, policyHash, voiceOwnerBps, nonce, deadline
                )
            )
        );
    }

    /// @inheritdoc IVoiceModelRegistry
    function consentNonce(address voiceOwner) external view returns (uint256) {
        return _consentNonces[voiceOwner];
    }

    /// @inheritdoc IVoiceModelRegistry
    function modelIdOf(address creator, bytes32 bundleDigest) public pure returns (uint256) {
        return uint256(keccak256(abi.encode(creator, bundleDigest)));
    }

    /// @inheritdoc IVoiceModelRegistry
    function retirementNotice() public view returns (uint40) {
        (uint40 notice, uint40 previous, uint40 changedAt) = (_retirementNotice, _previousNotice, _noticeChangedAt);
        uint256 elapsed = block.timestamp - changedAt;
        // A shortened notice shrinks no faster than time passes.
        if (previous > notice && previous > elapsed && previous - elapsed > notice) return uint40(previous - elapsed);
        return notice;
    }

    /// @notice ERC-165: ERC-721, ERC-2981, ERC-4906 (0x49064906) and AccessControl.
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl, IERC165) returns (bool) {
        return interfaceId == type(IERC2981).interfaceId || interfaceId == bytes4(0x49064906)
            || ERC721.supportsInterface(interfaceId) || AccessControl.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ internal

    function _checkSplit(ModelRegistration calldata r) private view {
        if (r.voiceOwner == address(0)) revert Registry_ZeroVoiceOwner();
        if (r.voiceOwner == msg.sender && r.voiceOwnerBps != 0) revert Registry_SelfShare(r.voiceOwnerBps);
        uint256 count = r.coCreators.length;
        if (count > MAX_CO_CREATORS) revert Registry_TooManyCoCreators(count, MAX_CO_CREATORS);
        uint256 total = r.voiceOwnerBps;
        for (uint256 i; i < count; ++i) {
            Payee calldata p = r.coCreators[i];
            if (p.account == address(0) || p.bps == 0) revert Registry_BadCoCreator(i, p.account, p.bps);
            total += p.bps;
        }
        if (total > Protocol.BPS) revert Registry_SplitTooLarge(total);
    }

    /// @dev A new version: the parent exists, is the caller's, is not frozen, and the child keeps
    /// the parent's voice owner (who must consent again unless they are the caller).
    function _checkParent(ModelRegistration calldata r) private view {
        _requireOwner(r.parentId);
        Model storage parent = _modelRecords[r.parentId];
        if (parent.flags & _FROZEN != 0) revert Registry_ParentFrozen(r.parentId);
        (address parentVoice,) = _voiceOwner(parent);
        if (r.voiceOwner != parentVoice) revert Registry_VoiceOwnerChanged(r.parentId, parentVoice, r.voiceOwner);
    }

    function _checkConsent(ModelRegistration calldata r) private view {
        if (block.timestamp > r.consentDeadline) revert Registry_ConsentExpired(r.consentDeadline, block.timestamp);
        bytes32 digest = consentDigest(
            r.voiceOwner,
            r.bundleDigest,
            msg.sender,
            r.policyHash,
            r.voiceOwnerBps,
            _consentNonces[r.voiceOwner],
            r.consentDeadline
        );
        // An EOA's ECDSA signature first: it needs no code-size lookup of the signer (2,600 gas).
        // Anything else is asked of the signer as an ERC-1271 contract wallet.
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecoverCalldata(digest, r.consentSignature);
        if (err == ECDSA.RecoverError.NoError && recovered == r.voiceOwner) return;
        if (!SignatureChecker.isValidERC1271SignatureNowCalldata(r.voiceOwner, digest, r.consentSignature)) {
            revert Registry_InvalidConsent(r.voiceOwner);
        }
    }

    function _requireOwner(uint256 modelId) private view {
        address owner = _ownerOf(modelId);
        if (owner == address(0)) revert Registry_UnknownModel(modelId);
        if (owner != msg.sender) revert Registry_NotModelOwner(modelId, msg.sender);
    }

    function _existing(uint256 modelId) private view returns (Model storage m) {
        m = _modelRecords[modelId];
        if (m.creator == address(0)) revert Registry_UnknownModel(modelId);
    }

    function _voiceOwner(Model storage m) private view returns (address, uint16) {
        return m.voiceOwner == address(0) ? (m.creator, 0) : (m.voiceOwner, m.voiceOwnerBps);
    }

    function _setRetirementNotice(uint40 notice) private {
        if (notice > MAX_RETIREMENT_NOTICE) revert Registry_NoticeTooLong(notice, MAX_RETIREMENT_NOTICE);
        if (notice < MIN_RETIREMENT_NOTICE) revert Registry_NoticeTooShort(notice, MIN_RETIREMENT_NOTICE);
        // The notice in force now (a shortening still running down) is what a later shortening starts from.
        _previousNotice = _retirementNotice == 0 ? notice : retirementNotice();
        _noticeChangedAt = uint40(block.timestamp);
        _retirementNotice = notice;
        emit RetirementNoticeSet(notice);
    }

    function _codecFlag(uint8 codec, uint8 rawFlag) private pure returns (uint8) {
        if (!ContentId.isSupportedCodec(codec)) revert Registry_UnsupportedCodec(codec);
        return codec == ContentId.RAW ? rawFlag : 0;
    }

    function _codec(uint8 flags, uint8 rawFlag) private pure returns (uint8) {
        return flags & rawFlag != 0 ? ContentId.RAW : ContentId.DAG_PB;
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";

import {IKeyDelivery} from "./interfaces/IKeyDelivery.sol";
import {ILicenseManager} from "./interfaces/ILicenseManager.sol";
import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {RevenueLedger} from "./RevenueLedger.sol";
import {ContentId} from "./libraries/ContentId.sol";
import {Protocol} from "./libraries/Protocol.sol";

/// @title KeyDelivery
/// @notice Local-use licences: options, escrow, key deliveries, refunds and usage reports (see
/// IKeyDelivery). It reads the licence manager and the registry and needs nothing from them but
/// their public views: no hook in either contract.
/// @dev Only non-transferable offers get a local-use option, so the buyer of a licence's local
/// use holds it for good: refunds and usage reports are the buyer's.
contract KeyDelivery is IKeyDelivery, RevenueLedger, EIP712 {
    using SafeERC20 for IERC20;

    /// @inheritdoc IKeyDelivery
    uint256 public constant DELIVERY_WINDOW = Protocol.MIN_RETIREMENT_NOTICE;

    bytes32 private constant _TREASURER_ROLE = keccak256("TREASURER_ROLE");
    bytes32 private constant _USAGE_TYPEHASH = keccak256(
        "UsageReport(uint256 licenseId,uint40 periodStart,uint40 periodEnd,uint32 sentences,uint32 audioSeconds)"
    );

    /// @dev Who a model's owner named to deliver keys; valid only while that owner still owns the model.
    struct KeyHolder {
        address holder;
        address namedBy;
    }

    ILicenseManager private immutable _licenses;

    mapping(uint256 offerId => LocalUseOption) private _options;
    mapping(uint256 licenseId => LocalUse) private _localUses;
    mapping(uint256 modelId => KeyHolder) private _keyHolders;

    constructor(ILicenseManager licenses_)
        RevenueLedger(IVoiceModelRegistry(licenses_.registry()))
        EIP712("voicemarket KeyDelivery", "1")
    {
        _licenses = licenses_;
    }

    // ------------------------------------------------------------------ options and key holders

    /// @inheritdoc IKeyDelivery
    function offerLocalUse(uint256 offerId, uint128 price) external {
        ILicenseManager.Offer memory o = _licenses.offer(offerId); // reverts for an unknown offer
        uint256 modelId = o.terms.modelId;
        _requireModelOwner(modelId);
        if (o.terms.tier == ILicenseManager.Tier.PayPerUse || o.terms.transferable) {
            revert KeyDelivery_OfferNotEligible(offerId);
        }
        if (!o.active) revert KeyDelivery_OfferInactive(offerId);
        if (_options[offerId].modelId != 0) revert KeyDelivery_OptionExists(offerId);
        _requireSellable(modelId);
        // Effects:
        _options[offerId] = LocalUseOption({modelId: modelId, asset: o.terms.asset, active: true, price: price});
        emit LocalUseOffered(offerId, modelId, o.terms.asset, price);
    }

    /// @inheritdoc IKeyDelivery
    function closeLocalUse(uint256 offerId) external {
        LocalUseOption storage option = _options[offerId];
        uint256 modelId = option.modelId;
        if (modelId == 0) revert KeyDelivery_NoOption(offerId);
        if (
            _models.ownerOf(modelId) != msg.sender
                && !IAccessControl(address(_licenses)).hasRole(bytes32(0), msg.sender)
        ) revert KeyDelivery_NotModelOwner(modelId, msg.sender);
        if (!option.active) revert KeyDelivery_OptionClosed(offerId);
        option.active = false;
        emit LocalUseClosed(offerId);
    }

    /// @inheritdoc IKeyDelivery
    function setKeyHolder(uint256 modelId, address holder) external {
        _requireModelOwner(modelId);
        _keyHolders[modelId] = KeyHolder(holder, msg.sender);
        emit KeyHolderSet(modelId, holder, msg.sender);
    }

    // ------------------------------------------------------------------ purchase, delivery, refund

    /// @inheritdoc IKeyDelivery
    function buyLocalUse(uint256 licenseId, bytes calldata publicKey, uint256 maxPrice)
        external
        payable
        nonReentrant
        returns (uint40 deadline)
    {
        if (Pausable(address(_licenses)).paused()) revert KeyDelivery_Paused();
        if (publicKey.length != 64) revert KeyDelivery_BadPublicKey(publicKey.length);
        LocalUse storage u = _localUses[licenseId];
        if (u.status != Status.None) revert KeyDelivery_AlreadyBought(licenseId);
        uint256 offerId = _licenses.offerOf(licenseId); // reverts for an unknown licence
        LocalUseOption memory option = _options[offerId];
        if (option.modelId == 0) revert KeyDelivery_NoOption(offerId);
        if (!option.active) revert KeyDelivery_OptionClosed(offerId);
        // The licence works now for its holder: not expired, within its uses, model not frozen.
        (bool licensed,) = _licenses.isLicensed(licenseId, msg.sender, option.modelId, 0);
        if (!licensed) revert KeyDelivery_NotLicensed(licenseId, msg.sender);
        if (!_licenses.offer(offerId).active) revert KeyDelivery_OfferInactive(offerId);
        if (!_licenses.isAssetAllowed(option.asset)) revert KeyDelivery_AssetNotAllowed(option.asset);
        _requireSellable(option.modelId);
        if (option.price > maxPrice) revert KeyDelivery_PriceAboveMax(option.price, maxPrice);

        // Effects:
        deadline = uint40(block.timestamp + DELIVERY_WINDOW);
        (u.buyer, u.deadline, u.platformFeeBps, u.status) =
        (msg.sender, deadline, _licenses.platformFeeBps(), Status.Pending);
        (u.amount, u.offerId) = (option.price, uint64(offerId));
        emit LocalUsePurchased(licenseId, option.modelId, msg.sender, offerId, publicKey, option.price, deadline);
        // Interaction:
        if (option.asset == address(0)) {
            if (msg.value != option.price) revert KeyDelivery_WrongPayment(option.price, msg.value);
        } else {
            if (msg.value != 0) revert KeyDelivery_WrongPayment(0, msg.value);
            if (option.price != 0) IERC20(option.asset).safeTransferFrom(msg.sender, address(this), option.price);
        }
    }

    /// @inheritdoc IKeyDelivery
    function recordDelivery(uint256 licenseId, uint8 codec, bytes32 digest) external nonReentrant {
        LocalUse storage u = _localUses[licenseId];
        Status status = u.status;
        if (status != Status.Pending) revert KeyDelivery_NotPending(licenseId, status);
        LocalUseOption storage option = _options[u.offerId];
        uint256 modelId = option.modelId;
        if (!_isKeyHolder(modelId, msg.sender)) revert KeyDelivery_NotKeyHolder(modelId, msg.sender);
        uint40 deadline = u.deadline;
        if (block.timestamp >= deadline) revert KeyDelivery_DeadlinePassed(licenseId, deadline);
        if (!ContentId.isSupportedCodec(codec)) revert KeyDelivery_BadCodec(codec);
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(modelId);
        if (m.frozen) revert KeyDelivery_ModelFrozen(modelId);
        if (m.serviceEndsAt != 0 && block.timestamp >= m.serviceEndsAt) {
            revert KeyDelivery_ServiceEnded(modelId, m.serviceEndsAt);
        }
        // Effects (no transfer: the payment moves into the model's pot):
        (u.status, u.keyCodec, u.keyDigest) = (Status.Delivered, codec, digest);
        emit KeyDelivered(licenseId, modelId, msg.sender, ContentId.toBytes(codec, digest));
        uint256 amount = u.amount;
        if (amount != 0) _accrue(modelId, option.asset, amount, u.platformFeeBps);
    }

    /// @inheritdoc IKeyDelivery
    function refund(uint256 licenseId) external nonReentrant {
        LocalUse storage u = _localUses[licenseId];
        Status status = u.status;
        if (status != Status.Pending) revert KeyDelivery_NotPending(licenseId, status);
        uint40 deadline = u.deadline;
        if (block.timestamp < deadline) revert KeyDelivery_DeadlineNotReached(licenseId, deadline);
        // Effects only: a credit the buyer withdraws.
        u.status = Status.Refunded;
        address buyer = u.buyer;
        uint256 amount = u.amount;
        emit LocalUseRefunded(licenseId, buyer, amount);
        _credit(buyer, _options[u.offerId].asset, amount);
    }

    // ------------------------------------------------------------------ usage reports

    /// @inheritdoc IKeyDelivery
    function reportUsage(UsageReport[] calldata reports, bytes[] calldata signatures) external {
        if (reports.length != signatures.length) revert KeyDelivery_LengthMismatch(reports.length, signatures.length);
        for (uint256 i; i < reports.length; ++i) {
            UsageReport calldata r = reports[i];
            LocalUse storage u = _localUses[r.licenseId];
            if (u.status != Status.Delivered) revert KeyDelivery_NotDelivered(r.licenseId);
            uint40 reportedUntil = u.reportedUntil;
            if (r.periodStart < reportedUntil || r.periodEnd <= r.periodStart || r.periodEnd > block.timestamp) {
                revert KeyDelivery_BadPeriod(r.licenseId, r.periodStart, r.periodEnd, reportedUntil);
            }
            if (!SignatureChecker.isValidSignatureNow(u.buyer, _usageDigest(r), signatures[i])) {
                revert KeyDelivery_BadSignature(i);
            }
            u.reportedUntil = r.periodEnd;
            emit UsageReported(r.licenseId, r.periodStart, r.periodEnd, r.sentences, r.audioSeconds);
        }
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IKeyDelivery
    function localUseOption(uint256 offerId) external view returns (LocalUseOption memory) {
        return _options[offerId];
    }

    /// @inheritdoc IKeyDelivery
    function localUse(uint256 licenseId) external view returns (LocalUse memory) {
        return _localUses[licenseId];
    }

    /// @inheritdoc IKeyDelivery
    function keyCid(uint256 licenseId) external view returns (bytes memory) {
        LocalUse storage u = _localUses[licenseId];
        if (u.status != Status.Delivered) return "";
        return ContentId.toBytes(u.keyCodec, u.keyDigest);
    }

    /// @inheritdoc IKeyDelivery
    function isKeyHolder(uint256 modelId, address account) external view returns (bool) {
        return _isKeyHolder(modelId, account);
    }

    /// @inheritdoc IKeyDelivery
    function keyHolderOf(uint256 modelId) external view returns (address) {
        KeyHolder memory k = _keyHolders[modelId];
        return k.namedBy != address(0) && _models.ownerOf(modelId) == k.namedBy ? k.holder : address(0);
    }

    /// @inheritdoc IKeyDelivery
    function usageReportDigest(UsageReport calldata report) external view returns (bytes32) {
        return _usageDigest(report);
    }

    /// @inheritdoc IKeyDelivery
    function licenses() external view returns (address) {
        return address(_licenses);
    }

    /// @inheritdoc IKeyDelivery
    function registry() external view returns (address) {
        return address(_models);
    }

    // ------------------------------------------------------------------ internal

    function _authorizeTreasurer() internal view override {
        if (!IAccessControl(address(_licenses)).hasRole(_TREASURER_ROLE, msg.sender)) {
            revert IAccessControl.AccessControlUnauthorizedAccount(msg.sender, _TREASURER_ROLE);
        }
    }

    function _requireModelOwner(uint256 modelId) private view {
        if (_models.ownerOf(modelId) != msg.sender) revert KeyDelivery_NotModelOwner(modelId, msg.sender);
    }

    /// @dev Reverts unless the model sells now (exists, not frozen, not retired).
    function _requireSellable(uint256 modelId) private view {
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(modelId);
        if (m.frozen) revert KeyDelivery_ModelFrozen(modelId);
        if (m.serviceEndsAt != 0) revert KeyDelivery_ModelRetired(modelId, m.serviceEndsAt);
    }

    /// @dev The model's current owner, or the holder that this same owner named.
    function _isKeyHolder(uint256 modelId, address account) private view returns (bool) {
        address owner = _models.ownerOf(modelId);
        if (account == owner) return true;
        KeyHolder memory k = _keyHolders[modelId];
        return k.holder == account && k.namedBy == owner && account != address(0);
    }

    function _usageDigest(UsageReport calldata r) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(_USAGE_TYPEHASH, r.licenseId, r.periodStart, r.periodEnd, r.sentences, r.audioSeconds))
        );
    }
}

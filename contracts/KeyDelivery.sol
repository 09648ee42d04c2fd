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
    /// @inheritdoc IKeyDelivery
    uint256 public constant DISPUTE_WINDOW = 2 days;

    /// @dev A wrapped key: 0x01 | compressed ephemeral point (33) | masked data key (32).
    uint256 private constant _WRAPPED_KEY_LENGTH = 66;
    uint8 private constant _RAW_CODEC = 0x55;
    /// @dev secp256k1: the group order and the generator's x (its y is even).
    uint256 private constant _N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    uint256 private constant _GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798;

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
    function offerLocalUse(uint256 offerId, uint128 price, bytes16 keyId) external {
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
        _options[offerId] =
            LocalUseOption({modelId: modelId, asset: o.terms.asset, active: true, price: price, keyId: keyId});
        emit LocalUseOffered(offerId, modelId, o.terms.asset, price, keyId);
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
        u.keyAddress = address(uint160(uint256(keccak256(publicKey))));
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
    function recordDelivery(uint256 licenseId, bytes calldata wrappedKey) external nonReentrant {
        LocalUse storage u = _localUses[licenseId];
        Status status = u.status;
        if (status != Status.Pending) revert KeyDelivery_NotPending(licenseId, status);
        LocalUseOption storage option = _options[u.offerId];
        uint256 modelId = option.modelId;
        if (!_isKeyHolder(modelId, msg.sender)) revert KeyDelivery_NotKeyHolder(modelId, msg.sender);
        uint40 deadline = u.deadline;
        if (block.timestamp >= deadline) revert KeyDelivery_DeadlinePassed(licenseId, deadline);
        if (wrappedKey.length != _WRAPPED_KEY_LENGTH || wrappedKey[0] != 0x01 || uint8(wrappedKey[1]) | 1 != 0x03) {
            revert KeyDelivery_BadWrappedKey(wrappedKey.length);
        }
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(modelId);
        if (m.frozen) revert KeyDelivery_ModelFrozen(modelId);
        if (m.serviceEndsAt != 0 && block.timestamp >= m.serviceEndsAt) {
            revert KeyDelivery_ServiceEnded(modelId, m.serviceEndsAt);
        }
        // Effects (the payment stays in escrow through the dispute window):
        bytes32 digest = sha256(wrappedKey);
        (u.status, u.keyDigest, u.deadline) = (Status.Delivered, digest, uint40(block.timestamp + DISPUTE_WINDOW));
        emit KeyDelivered(licenseId, modelId, msg.sender, ContentId.toBytes(_RAW_CODEC, digest), wrappedKey);
    }

    /// @inheritdoc IKeyDelivery
    function disputeDelivery(uint256 licenseId, bytes calldata wrappedKey, uint256 licenseKey) external nonReentrant {
        LocalUse storage u = _localUses[licenseId];
        if (u.status != Status.Delivered) revert KeyDelivery_NotDelivered(licenseId);
        uint40 disputeEnd = u.deadline;
        if (block.timestamp >= disputeEnd) revert KeyDelivery_DisputeWindowOver(licenseId, disputeEnd);
        if (sha256(wrappedKey) != u.keyDigest) revert KeyDelivery_NotTheDeliveredKey(licenseId);
        // The revealed scalar must be the private key of the purchase's public key: b·G.
        if (_multiply(_GX, 0, licenseKey) != u.keyAddress) revert KeyDelivery_WrongLicenseKey(licenseId);
        // Unwrap as the buyer does: the shared point b·E (its address), the mask, the data key.
        address shared = _multiply(uint256(bytes32(wrappedKey[2:34])), uint8(wrappedKey[1]) & 1, licenseKey);
        bytes32 mask = keccak256(abi.encode(shared, licenseId, block.chainid, address(this)));
        bytes32 dataKey = bytes32(wrappedKey[34:66]) ^ mask;
        LocalUseOption storage option = _options[u.offerId];
        if (bytes16(sha256(abi.encodePacked("voicemarket/sealing/key-id/v1", dataKey))) == option.keyId) {
            revert KeyDelivery_KeyOpens(licenseId);
        }
        // Effects only: the payment is credited back to the buyer.
        u.status = Status.Disproved;
        address buyer = u.buyer;
        uint256 amount = u.amount;
        emit DeliveryDisproved(licenseId, buyer, amount);
        _credit(buyer, option.asset, amount);
    }

    /// @inheritdoc IKeyDelivery
    function settle(uint256 licenseId) external nonReentrant {
        LocalUse storage u = _localUses[licenseId];
        if (u.status != Status.Delivered) revert KeyDelivery_NotDelivered(licenseId);
        uint40 disputeEnd = u.deadline;
        if (block.timestamp < disputeEnd) revert KeyDelivery_DisputeWindowOpen(licenseId, disputeEnd);
        // Effects only: the payment moves into the model's pot.
        u.status = Status.Settled;
        LocalUseOption storage option = _options[u.offerId];
        uint256 amount = u.amount;
        emit LocalUseSettled(licenseId, option.modelId, amount);
        if (amount != 0) _accrue(option.modelId, option.asset, amount, u.platformFeeBps);
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
            if (u.status != Status.Delivered && u.status != Status.Settled) {
                revert KeyDelivery_NotDelivered(r.licenseId);
            }
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
        if (u.keyDigest == 0) return "";
        return ContentId.toBytes(_RAW_CODEC, u.keyDigest);
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

    /// @dev address(k·R) for the point R with x coordinate `x` and y of parity `odd`, by ecrecover:
    /// with hash 0 and s = x·k it returns the address of x⁻¹·(s·R) = k·R. 0 for an invalid point or k.
    function _multiply(uint256 x, uint8 odd, uint256 k) private pure returns (address) {
        if (x == 0 || x >= _N) return address(0);
        return ecrecover(bytes32(0), 27 + odd, bytes32(x), bytes32(mulmod(x, k, _N)));
    }

    function _usageDigest(UsageReport calldata r) private view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(_USAGE_TYPEHASH, r.licenseId, r.periodStart, r.periodEnd, r.sentences, r.audioSeconds))
        );
    }
}

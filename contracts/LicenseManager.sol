// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ILicenseManager} from "./interfaces/ILicenseManager.sol";
import {IERC5643} from "./interfaces/IERC5643.sol";
import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {IOfferBook} from "./interfaces/IOfferBook.sol";
import {OfferBook} from "./OfferBook.sol";
import {PaymentChannels} from "./PaymentChannels.sol";
import {RevenueLedger} from "./RevenueLedger.sol";
import {Protocol} from "./libraries/Protocol.sol";
import {OfferRecords} from "./libraries/OfferRecords.sol";

/// @title LicenseManager
/// @notice Offers, licence tokens, subscriptions and the revenue ledger of licence sales. Offers
/// are published through the OfferBook this contract deploys (`offerBook()`), and stored here.
/// @dev Offers are immutable once published (only `active` changes), so a licence needs to store
/// only its own state (one slot): its terms are its offer's. Model state (frozen, retired,
/// platform fee) is read from the registry on every sale and use.
contract LicenseManager is ILicenseManager, ERC721, AccessControl, RevenueLedger, Pausable {
    using SafeERC20 for IERC20;

    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant TREASURER_ROLE = keccak256("TREASURER_ROLE");
    bytes32 public constant FEE_MANAGER_ROLE = keccak256("FEE_MANAGER_ROLE");

    /// @inheritdoc ILicenseManager
    uint16 public constant MAX_PLATFORM_FEE_BPS = 2_000;

    /// @inheritdoc ILicenseManager
    uint256 public constant RENEWAL_LEAD = Protocol.RENEWAL_LEAD;

    /// @inheritdoc ILicenseManager
    uint256 public constant ROUTER_DELAY = 2 days;

    uint8 private constant _ATTRIBUTION = OfferRecords.ATTRIBUTION;
    uint8 private constant _TRANSFERABLE = OfferRecords.TRANSFERABLE;
    uint8 private constant _ACTIVE = OfferRecords.ACTIVE;

    // These share one slot with Pausable's flag (Pausable is the last base): a sale reads the
    // flag, the fee and the licence counter in one cold read.
    uint16 private _platformFeeBps;
    uint64 private _nextLicenseId = 1;
    uint64 private _nextOfferId = 1;

    mapping(uint256 offerId => OfferRecords.Record) private _offers;
    mapping(uint256 licenseId => License) private _licenses;
    mapping(address asset => bool) private _allowedAssets;
    /// @dev Routers replaced by a newer one: they may still give uses back (their refunds), nothing else.
    mapping(address router => bool) private _formerRouters;
    address private _router;
    address private _pendingRouter;
    uint40 private _pendingRouterAt;

    /// @dev Publishes offers (checks, events) and is the only account that records and closes them.
    IOfferBook private immutable _offerBook;

    /// @dev The speech API's payment channels: the only account besides the router that consumes uses.
    address private immutable _channels;

    /// @param admin Gets the admin role (grants the others).
    /// @param models The voice-model registry.
    /// @param platformFeeBps_ Initial platform fee (the original design's 80/20 split: 2,000).
    constructor(address admin, IVoiceModelRegistry models, uint16 platformFeeBps_)
        ERC721("voicemarket licence", "VMLIC")
        RevenueLedger(models)
    {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setPlatformFee(platformFeeBps_);
        _offerBook = new OfferBook(models);
        _channels = address(new PaymentChannels(models));
    }

    // ------------------------------------------------------------------ offers

    /// @inheritdoc ILicenseManager
    function recordOffer(uint256[5] calldata words) external returns (uint256 offerId) {
        if (msg.sender != address(_offerBook)) revert Licensing_NotOfferBook(msg.sender);
        _requireSellable(words[2]);
        offerId = _nextOfferId++;
        OfferRecords.Record storage o = _offers[offerId];
        // Effects: the five words as OfferRecords.pack laid them out.
        assembly ("memory-safe") {
            let slot := o.slot
            for { let i := 0 } lt(i, 5) { i := add(i, 1) } {
                sstore(add(slot, i), calldataload(add(words, mul(i, 0x20))))
            }
        }
    }

    /// @inheritdoc ILicenseManager
    function closeOffer(uint256 offerId, address caller) external returns (uint256 modelId) {
        if (msg.sender != address(_offerBook)) revert Licensing_NotOfferBook(msg.sender);
        OfferRecords.Record storage o = _existingOffer(offerId);
        modelId = o.modelId;
        if (!hasRole(DEFAULT_ADMIN_ROLE, caller) && _models.ownerOf(modelId) != caller) {
            revert Licensing_NotModelOwner(modelId, caller);
        }
        if (o.flags & _ACTIVE == 0) revert Licensing_OfferInactive(offerId);
        o.flags &= ~_ACTIVE;
    }

    // ------------------------------------------------------------------ sales

    /// @inheritdoc ILicenseManager
    function buy(uint256 offerId, uint256 maxPrice, uint256 quantity)
        external
        payable
        nonReentrant
        whenNotPaused
        returns (uint256 licenseId)
    {
        OfferRecords.Record storage o = _offers[offerId];
        uint256 modelId = _checkSale(offerId, o);
        uint16 feeBps = _requireSellable(modelId);
        (License memory l, uint256 cost) = _licenseFor(offerId, o, quantity);
        if (l.expiresAt != 0) _checkPaidUntil(o, l.expiresAt);
        if (cost > maxPrice) revert Licensing_PriceAboveMax(cost, maxPrice);

        // Effects (the offer's sold count was raised by _checkSale):
        licenseId = _nextLicenseId++;
        _licenses[licenseId] = l;
        _mint(msg.sender, licenseId);
        emit LicensePurchased(licenseId, offerId, msg.sender, quantity, cost);
        if (l.expiresAt != 0) emit SubscriptionUpdate(licenseId, l.expiresAt);
        address asset = o.asset;
        if (cost != 0) _accrue(modelId, asset, cost, feeBps);
        // Interaction:
        _collect(asset, msg.sender, cost);
    }

    /// @inheritdoc IERC5643
    function renewSubscription(uint256 tokenId, uint64 duration) external payable nonReentrant whenNotPaused {
        address holder = _ownerOf(tokenId);
        if (holder == address(0)) revert Licensing_UnknownLicense(tokenId);
        License memory l = _licenses[tokenId];
        OfferRecords.Record storage o = _offers[l.offerId];
        uint256 cost = _extend(tokenId, holder, l, o, duration);
        uint256 modelId = o.modelId;
        uint16 feeBps = _requireSellable(modelId);
        _checkPaidUntil(o, l.expiresAt);

        // Effects:
        _licenses[tokenId] = l;
        emit SubscriptionUpdate(tokenId, l.expiresAt);
        address asset = o.asset;
        if (cost != 0) _accrue(modelId, asset, cost, feeBps);
        // Interaction: ETH from the caller. An ERC-20 from the holder: their own renewal, or a
        // keeper's renewal of one due period that the holder agreed to (autoRenew) — never on
        // anyone else's word.
        if (asset == address(0) || cost == 0) {
            _collect(asset, msg.sender, cost);
        } else {
            if (msg.value != 0) revert Licensing_WrongPayment(0, msg.value);
            _pullRenewal(tokenId, IERC20(asset), holder, cost);
        }
    }

    /// @inheritdoc IERC5643
    function cancelSubscription(uint256 tokenId) external payable {
        if (msg.value != 0) revert Licensing_WrongPayment(0, msg.value);
        _setAutoRenew(tokenId, false, true);
    }

    /// @inheritdoc ILicenseManager
    function setAutoRenew(uint256 tokenId, bool autoRenew) external {
        _setAutoRenew(tokenId, autoRenew, false);
    }

    // ------------------------------------------------------------------ the router's hooks

    /// @inheritdoc ILicenseManager
    function consumeUse(uint256 licenseId, address user, uint256 modelId, uint16 actions)
        external
        returns (UseGrant memory)
    {
        if (msg.sender != _router) revert Licensing_NotRouter(msg.sender);
        return _consume(licenseId, user, modelId, actions, 1);
    }

    /// @inheritdoc ILicenseManager
    function consumeUses(uint256 licenseId, address user, uint256 modelId, uint256 count)
        external
        returns (UseGrant memory)
    {
        if (msg.sender != _channels) revert Licensing_NotRouter(msg.sender);
        return _consume(licenseId, user, modelId, Protocol.ACTION_TEXT_TO_SPEECH, count);
    }

    function _consume(uint256 licenseId, address user, uint256 modelId, uint16 actions, uint256 count)
        private
        whenNotPaused
        returns (UseGrant memory grant)
    {
        if (_ownerOf(licenseId) != user) {
            if (_ownerOf(licenseId) == address(0)) revert Licensing_UnknownLicense(licenseId);
            revert Licensing_NotLicenseHolder(licenseId, user);
        }
        License memory l = _licenses[licenseId];
        OfferRecords.Record storage o = _offers[l.offerId];
        if (o.modelId != modelId) revert Licensing_WrongModel(licenseId, modelId);
        if (o.permissions & actions != actions) revert Licensing_ActionNotPermitted(licenseId, actions);
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(modelId);
        if (m.frozen) revert Licensing_ModelFrozen(modelId);
        if (m.serviceEndsAt != 0 && block.timestamp >= m.serviceEndsAt) {
            revert Licensing_ServiceEnded(modelId, m.serviceEndsAt);
        }
        (uint256 limit, uint40 useTag) = _rollQuota(licenseId, l, o);
        uint256 used = l.used + count;
        if (limit != 0 && used > limit) revert Licensing_UsesExhausted(licenseId, limit);
        l.used = SafeCast.toUint32(used);
        _licenses[licenseId] = l;

        grant.asset = o.asset;
        if (o.tier == Tier.PayPerUse && o.packSize == 0) grant.usePrice = o.price;
        grant.useTag = useTag;
        grant.platformFeeBps = _platformFeeBps;
        grant.disputeWindow = m.disputeWindow;
        grant.languages = m.languages;
    }

    /// @inheritdoc ILicenseManager
    function restoreUse(uint256 licenseId, uint40 useTag) external {
        // A replaced router keeps this one power, so that its escrow can always be refunded.
        if (msg.sender != _router && !_formerRouters[msg.sender]) revert Licensing_NotRouter(msg.sender);
        License storage l = _licenses[licenseId];
        // A subscription's use comes back only into the quota period it was taken from.
        if (l.used != 0 && l.periodStart == useTag) --l.used;
    }

    // ------------------------------------------------------------------ administration

    /// @inheritdoc ILicenseManager
    function setAssetAllowed(address asset, bool allowed) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _allowedAssets[asset] = allowed;
        emit AssetAllowed(asset, allowed);
    }

    /// @inheritdoc ILicenseManager
    function setRouter(address router_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (router_.code.length == 0) revert Licensing_RouterNotContract(router_);
        address current = _router;
        if (current != address(0)) {
            // A replacement is announced ROUTER_DELAY ahead, then made by calling again.
            (address pending, uint40 at) = (_pendingRouter, _pendingRouterAt);
            if (pending != router_ || at == 0) {
                at = uint40(block.timestamp + ROUTER_DELAY);
                (_pendingRouter, _pendingRouterAt) = (router_, at);
                emit RouterProposed(router_, at);
                return;
            }
            if (block.timestamp < at) revert Licensing_RouterNotYet(router_, at);
            (_pendingRouter, _pendingRouterAt) = (address(0), 0);
            _formerRouters[current] = true;
        }
        _router = router_;
        emit RouterSet(router_);
    }

    /// @inheritdoc ILicenseManager
    function setPlatformFee(uint16 platformFeeBps_) external onlyRole(FEE_MANAGER_ROLE) {
        _setPlatformFee(platformFeeBps_);
    }

    /// @inheritdoc ILicenseManager
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc ILicenseManager
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ILicenseManager
    function isLicensed(uint256 licenseId, address account, uint256 modelId, uint16 actions)
        external
        view
        returns (bool licensed, uint256 usesLeft)
    {
        if (_ownerOf(licenseId) != account || account == address(0)) return (false, 0);
        License memory l = _licenses[licenseId];
        OfferRecords.Record storage o = _offers[l.offerId];
        if (o.modelId != modelId || o.permissions & actions != actions) return (false, 0);
        if (o.validUntil != 0 && block.timestamp > o.validUntil) return (false, 0);
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(modelId);
        if (m.frozen || (m.serviceEndsAt != 0 && block.timestamp >= m.serviceEndsAt)) return (false, 0);
        if (o.tier == Tier.Subscription && block.timestamp >= l.expiresAt) return (false, 0);
        (uint256 limit,) = _quota(l, o);
        if (limit == 0) return (true, type(uint256).max);
        if (l.used >= limit) return (false, 0);
        return (true, limit - l.used);
    }

    /// @inheritdoc ILicenseManager
    function offer(uint256 offerId) external view returns (Offer memory view_) {
        OfferRecords.Record storage o = _existingOffer(offerId);
        view_.terms = OfferTerms({
            modelId: o.modelId,
            tier: o.tier,
            asset: o.asset,
            price: o.price,
            period: o.period,
            maxUses: o.maxUses,
            packSize: o.packSize,
            validUntil: o.validUntil,
            maxLicenses: o.maxLicenses,
            permissions: o.permissions,
            prohibitions: o.prohibitions,
            attribution: o.flags & _ATTRIBUTION != 0,
            transferable: o.flags & _TRANSFERABLE != 0,
            purposes: o.purposes,
            policyHash: o.policyHash
        });
        view_.active = o.flags & _ACTIVE != 0;
        view_.sold = o.sold;
    }

    /// @inheritdoc ILicenseManager
    function license(uint256 licenseId) external view returns (License memory) {
        _requireOwned(licenseId);
        return _licenses[licenseId];
    }

    /// @inheritdoc ILicenseManager
    function offerOf(uint256 licenseId) external view returns (uint256) {
        _requireOwned(licenseId);
        return _licenses[licenseId].offerId;
    }

    /// @inheritdoc IERC5643
    function expiresAt(uint256 tokenId) external view returns (uint64) {
        _requireOwned(tokenId);
        License storage l = _licenses[tokenId];
        return _offers[l.offerId].tier == Tier.Subscription ? l.expiresAt : 0;
    }

    /// @inheritdoc IERC5643
    function isRenewable(uint256 tokenId) external view returns (bool) {
        _requireOwned(tokenId);
        License storage l = _licenses[tokenId];
        OfferRecords.Record storage o = _offers[l.offerId];
        if (o.tier != Tier.Subscription || o.flags & _ACTIVE == 0) return false;
        // One more period from the later of now and the expiry, within both caps of a renewal.
        uint256 end = (block.timestamp > l.expiresAt ? block.timestamp : l.expiresAt) + o.period;
        if (o.validUntil != 0 && end > o.validUntil) return false;
        if (end > block.timestamp + _models.retirementNotice()) return false;
        if (o.asset != address(0) && !_allowedAssets[o.asset]) return false;
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(o.modelId);
        return !m.frozen && m.serviceEndsAt == 0;
    }

    /// @inheritdoc ILicenseManager
    function isAssetAllowed(address asset) external view returns (bool) {
        return asset == address(0) || _allowedAssets[asset];
    }

    /// @inheritdoc ILicenseManager
    function platformFeeBps() external view returns (uint16) {
        return _platformFeeBps;
    }

    /// @inheritdoc ILicenseManager
    function nextOfferId() external view returns (uint256) {
        return _nextOfferId;
    }

    /// @inheritdoc ILicenseManager
    function nextLicenseId() external view returns (uint256) {
        return _nextLicenseId;
    }

    /// @inheritdoc ILicenseManager
    function registry() external view returns (address) {
        return address(_models);
    }

    /// @inheritdoc ILicenseManager
    function offerBook() external view returns (address) {
        return address(_offerBook);
    }

    /// @inheritdoc ILicenseManager
    function paymentChannels() external view returns (address) {
        return _channels;
    }

    /// @inheritdoc ILicenseManager
    function router() external view returns (address) {
        return _router;
    }

    /// @inheritdoc ILicenseManager
    function pendingRouter() external view returns (address, uint40) {
        return (_pendingRouter, _pendingRouterAt);
    }

    /// @notice ERC-165: ERC-721, ERC-5643 and AccessControl.
    function supportsInterface(bytes4 interfaceId) public view override(ERC721, AccessControl, IERC165) returns (bool) {
        return interfaceId == type(IERC5643).interfaceId || ERC721.supportsInterface(interfaceId)
            || AccessControl.supportsInterface(interfaceId);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Licences move only when their offer says they are transferable (mint and burn always).
    /// A holder's agreement to keeper renewals is theirs alone: it does not pass to the next holder.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0)) {
            License storage l = _licenses[tokenId];
            if (_offers[l.offerId].flags & _TRANSFERABLE == 0) revert Licensing_NotTransferable(tokenId);
            if (l.autoRenew) {
                l.autoRenew = false;
                emit AutoRenewSet(tokenId, false);
            }
        }
    }

    /// @dev The holder turns keeper renewals on or off (off also by an approved account: cancelling).
    function _setAutoRenew(uint256 tokenId, bool on, bool cancelling) private {
        address holder = _ownerOf(tokenId);
        if (holder == address(0)) revert Licensing_UnknownLicense(tokenId);
        if (msg.sender != holder && !(cancelling && _isAuthorized(holder, msg.sender, tokenId))) {
            revert Licensing_NotLicenseHolder(tokenId, msg.sender);
        }
        License storage l = _licenses[tokenId];
        if (_offers[l.offerId].tier != Tier.Subscription) revert Licensing_NotSubscription(tokenId);
        l.autoRenew = on;
        emit AutoRenewSet(tokenId, on);
        if (cancelling) emit SubscriptionCancelled(tokenId, l.expiresAt);
    }

    /// @dev A subscription is sold or renewed no further than its offer's validUntil, nor further
    /// ahead than the registry's retirement notice (so a retirement never cuts paid-up time).
    function _checkPaidUntil(OfferRecords.Record storage o, uint256 end) private view {
        uint64 validUntil = o.validUntil;
        if (validUntil != 0 && end > validUntil) revert Licensing_BeyondValidUntil(end, validUntil);
        uint256 latest = block.timestamp + _models.retirementNotice();
        if (end > latest) revert Licensing_BeyondNotice(end, latest);
    }

    function _authorizeTreasurer() internal view override {
        _checkRole(TREASURER_ROLE);
    }

    /// @dev Checks that the offer sells now and counts the sale; returns its model.
    function _checkSale(uint256 offerId, OfferRecords.Record storage o) private returns (uint256 modelId) {
        modelId = o.modelId;
        if (modelId == 0) revert Licensing_UnknownOffer(offerId);
        if (o.flags & _ACTIVE == 0) revert Licensing_OfferInactive(offerId);
        uint64 validUntil = o.validUntil;
        if (validUntil != 0 && block.timestamp > validUntil) revert Licensing_OfferExpired(offerId, validUntil);
        (uint32 sold, uint32 maxLicenses) = (o.sold, o.maxLicenses);
        if (maxLicenses != 0 && sold >= maxLicenses) revert Licensing_SoldOut(offerId, maxLicenses);
        address asset = o.asset;
        if (asset != address(0) && !_allowedAssets[asset]) revert Licensing_AssetNotAllowed(asset);
        o.sold = sold + 1;
    }

    /// @dev The new licence's state and its cost for `quantity` (periods, packs, or 1).
    function _licenseFor(uint256 offerId, OfferRecords.Record storage o, uint256 quantity)
        private
        view
        returns (License memory l, uint256 cost)
    {
        l.offerId = uint64(offerId);
        (Tier tier, uint128 price, uint32 packSize) = (o.tier, o.price, o.packSize);
        if (tier == Tier.Subscription) {
            uint256 end = block.timestamp + uint256(o.period) * quantity;
            if (quantity == 0 || end > type(uint40).max) revert Licensing_BadQuantity(tier, quantity);
            l.anchor = uint40(block.timestamp);
            l.expiresAt = uint40(end);
            cost = price * quantity;
        } else if (tier == Tier.PayPerUse && packSize != 0) {
            if (quantity == 0 || quantity > type(uint32).max) revert Licensing_BadQuantity(tier, quantity);
            uint256 uses = quantity * packSize;
            uint32 maxUses = o.maxUses;
            if (uses > type(uint32).max || (maxUses != 0 && uses > maxUses)) {
                revert Licensing_TooManyUses(uses, maxUses);
            }
            l.limit = uint32(uses);
            cost = uint256(price) * uses;
        } else {
            if (quantity != 1) revert Licensing_BadQuantity(tier, quantity);
            if (tier == Tier.Buyout) cost = price; // pay-per-use without packs: each use pays at request time
        }
    }

    /// @dev Checks a renewal by `duration` and applies it to `l` (in memory); returns its cost.
    /// The holder may renew by whole periods at any time (resuming a lapsed subscription). Anyone
    /// else (a keeper, an approved account) may renew exactly one period, only if the current
    /// holder turned autoRenew on, and only once it is due: in the last min(RENEWAL_LEAD, period)
    /// before expiry, never after (so at most once per period, and never reviving a lapsed one).
    /// Either way the offer must still sell in the asset it names.
    function _extend(uint256 tokenId, address holder, License memory l, OfferRecords.Record storage o, uint64 duration)
        private
        view
        returns (uint256 cost)
    {
        (Tier tier, uint8 flags, uint32 period, address asset) = (o.tier, o.flags, o.period, o.asset);
        if (tier != Tier.Subscription) revert Licensing_NotSubscription(tokenId);
        if (duration == 0 || duration % period != 0) revert Licensing_BadDuration(duration, period);
        if (flags & _ACTIVE == 0) revert Licensing_OfferInactive(l.offerId);
        if (asset != address(0) && !_allowedAssets[asset]) revert Licensing_AssetNotAllowed(asset);
        uint256 expires = l.expiresAt;
        if (msg.sender != holder) {
            if (!l.autoRenew) revert Licensing_AutoRenewOff(tokenId);
            if (duration != period) revert Licensing_BadDuration(duration, period);
            if (block.timestamp >= expires) revert Licensing_SubscriptionLapsed(tokenId, uint40(expires));
            uint256 lead = Protocol.renewalLead(period);
            if (block.timestamp + lead < expires) revert Licensing_RenewalNotDue(tokenId, uint40(expires - lead));
        }
        bool lapsed = block.timestamp >= expires;
        uint256 end = (lapsed ? block.timestamp : expires) + uint256(duration);
        if (end > type(uint40).max) revert Licensing_BadDuration(duration, period);
        if (lapsed) {
            // A new run of periods starts now, with a fresh quota.
            l.anchor = uint40(block.timestamp);
            l.used = 0;
            l.periodStart = 0;
        }
        l.expiresAt = uint40(end);
        cost = uint256(o.price) * (duration / period);
    }

    /// @dev Reverts unless the model sells now; returns the platform fee in force.
    function _requireSellable(uint256 modelId) private view returns (uint16) {
        IVoiceModelRegistry.ModelTerms memory m = _models.modelTerms(modelId);
        if (!m.exists) revert Licensing_UnknownModel(modelId);
        if (m.frozen) revert Licensing_ModelFrozen(modelId);
        if (m.serviceEndsAt != 0) revert Licensing_ModelRetired(modelId, m.serviceEndsAt);
        return _platformFeeBps;
    }

    function _setPlatformFee(uint16 bps) private {
        if (bps > MAX_PLATFORM_FEE_BPS) revert Licensing_PlatformFeeTooHigh(bps, MAX_PLATFORM_FEE_BPS);
        _platformFeeBps = bps;
        emit PlatformFeeSet(bps);
    }

    /// @dev Checks that `l` works now and returns its use limit (0 = unlimited) and use tag.
    function _rollQuota(uint256 licenseId, License memory l, OfferRecords.Record storage o)
        private
        view
        returns (uint256 limit, uint40 useTag)
    {
        if (o.validUntil != 0 && block.timestamp > o.validUntil) {
            revert Licensing_OfferExpired(l.offerId, o.validUntil);
        }
        if (o.tier == Tier.Subscription && block.timestamp >= l.expiresAt) {
            revert Licensing_LicenseExpired(licenseId, l.expiresAt);
        }
        return _quota(l, o);
    }

    /// @dev The use limit of `l` (0 = unlimited) and its use tag. A subscription's quota counts per
    /// period from its anchor: when a new period has begun, `l` (in memory) moves to it with no
    /// use counted, and the tag is the period's start.
    function _quota(License memory l, OfferRecords.Record storage o)
        private
        view
        returns (uint256 limit, uint40 useTag)
    {
        Tier tier = o.tier;
        if (tier == Tier.Subscription) {
            uint256 period = o.period;
            useTag = uint40(l.anchor + ((block.timestamp - l.anchor) / period) * period);
            if (l.periodStart != useTag) {
                l.periodStart = useTag;
                l.used = 0;
            }
            return (o.maxUses, useTag);
        }
        if (tier == Tier.PayPerUse && o.packSize != 0) return (l.limit, 0);
        return (o.maxUses, 0);
    }

    function _existingOffer(uint256 offerId) private view returns (OfferRecords.Record storage o) {
        o = _offers[offerId];
        if (o.modelId == 0) revert Licensing_UnknownOffer(offerId);
    }

    /// @dev Takes a payment: exactly `amount` ETH as msg.value, or an ERC-20 from `payer`.
    function _collect(address asset, address payer, uint256 amount) private {
        if (asset == address(0)) {
            if (msg.value != amount) revert Licensing_WrongPayment(amount, msg.value);
        } else {
            if (msg.value != 0) revert Licensing_WrongPayment(0, msg.value);
            if (amount != 0) IERC20(asset).safeTransferFrom(payer, address(this), amount);
        }
    }

    /// @dev An ERC-20 renewal from the holder; a refusal is explained (allowance, balance) so a
    /// keeper knows why the renewal cannot happen.
    function _pullRenewal(uint256 tokenId, IERC20 token, address holder, uint256 cost) private {
        if (token.trySafeTransferFrom(holder, address(this), cost)) return;
        uint256 allowance = token.allowance(holder, address(this));
        if (allowance < cost) revert Licensing_RenewalAllowanceTooLow(tokenId, allowance, cost);
        uint256 balance = token.balanceOf(holder);
        if (balance < cost) revert Licensing_RenewalBalanceTooLow(tokenId, balance, cost);
        revert Licensing_PaymentFailed(address(token), holder, cost);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IERC721} from "@openzeppelin/contracts/token/ERC721/IERC721.sol";
import {IERC5643} from "./IERC5643.sol";
import {IRevenueLedger} from "./IRevenueLedger.sol";

/// @title ODRL-style licence offers in three tiers, licences as ERC-721 tokens, subscriptions (ERC-5643)
/// @notice A model's owner publishes offers; buyers buy licences (tokens). The fields of an offer
/// are those of docs/licence-terms.md. Offer terms never change after publication (an offer can
/// only be deactivated; a new price is a new offer), so every licence keeps the terms it was
/// sold under: renewals are at the price of the offer it was bought from.
///
/// Tiers:
/// - Buyout: one payment; perpetual (up to the offer's validUntil); `maxUses` lifetime uses (0 = unlimited).
/// - Subscription: `price` per `period` seconds, renewable (ERC-5643); `maxUses` uses per period.
/// - PayPerUse: `packSize` > 0 sells credit packs (`quantity` packs of `packSize` uses at
///   `packSize * price` each); `packSize` == 0 sells a free licence and each use pays `price`
///   when it is requested (escrowed by the synthesis router); `maxUses` caps lifetime uses.
///
/// Action bits (permissions / prohibitions): 0 text-to-speech, 1 commercial use, 2 distribution,
/// 3 broadcast, 4 derivation (fine-tuning), 5 modification, 6 reproduction, 7 sublicensing.
/// Purpose bits: 0 advertising, 1 audiobooks, 2 broadcast media, 3 education, 4 entertainment,
/// 5 accessibility, 6 personal, 7 internal, 8 news, 9 research.
interface ILicenseManager is IERC721, IERC5643, IRevenueLedger {
    // ------------------------------------------------------------------ types

    enum Tier {
        Buyout,
        Subscription,
        PayPerUse
    }

    /// @notice The terms of an offer (docs/licence-terms.md); fixed at publication.
    struct OfferTerms {
        uint256 modelId;
        Tier tier;
        address asset; //        address(0) = ETH, else an allow-listed ERC-20
        uint128 price; //        Buyout: once; Subscription: per period; PayPerUse: per use
        uint32 period; //        Subscription: seconds (> 0); else 0
        uint32 maxUses; //       0 = unlimited; Subscription: per period
        uint32 packSize; //      PayPerUse only: uses per credit pack; 0 = pay each use at request time
        uint64 validUntil; //    0 = none; after it the offer sells nothing and its licences stop working
        uint32 maxLicenses; //   0 = unlimited
        uint16 permissions; //   action bits
        uint16 prohibitions; //  action bits, disjoint from permissions
        bool attribution; //     duty: attribute the voice
        bool transferable; //    the licence token may change hands
        uint32 purposes; //      purpose bits; 0 = any (checked off-chain)
        bytes32 policyHash; //   keccak256 of the offer's canonical ODRL document
    }

    /// @notice An offer as stored: its terms, whether it still sells, and how many licences it sold.
    struct Offer {
        OfferTerms terms;
        bool active;
        uint32 sold;
    }

    /// @notice A licence's own state (its terms are its offer's).
    struct License {
        uint64 offerId;
        uint40 expiresAt; //  Subscription: paid until; 0 for the other tiers
        uint40 anchor; //     Subscription: start of the current run of periods (quota periods count from it)
        uint32 used; //       uses consumed: lifetime, or in the quota period starting at `periodStart`
        uint40 periodStart; // Subscription: start of the quota period `used` counts
        uint32 limit; //      PayPerUse with packs: uses bought; else 0 (the offer's maxUses applies)
        bool autoRenew; //    Subscription: the current holder lets keepers renew it from their funds
        //                    (one due period at a time, at the offer's price); cleared on transfer
    }

    /// @notice What the router needs to escrow and record a use (returned by `consumeUse`).
    struct UseGrant {
        address asset;
        uint128 usePrice; //      > 0 only for PayPerUse without packs
        uint40 useTag; //         pass back to restoreUse (a subscription's quota-period start, else 0)
        uint16 platformFeeBps;
        uint24 disputeWindow;
        uint8 languages;
    }

    // ------------------------------------------------------------------ errors

    error Licensing_UnknownOffer(uint256 offerId);
    error Licensing_OfferInactive(uint256 offerId);
    /// @notice The offer's validUntil has passed: it sells nothing and its licences stopped working.
    error Licensing_OfferExpired(uint256 offerId, uint64 validUntil);
    error Licensing_SoldOut(uint256 offerId, uint32 maxLicenses);
    error Licensing_NotModelOwner(uint256 modelId, address caller);
    error Licensing_UnknownModel(uint256 modelId);
    error Licensing_ModelFrozen(uint256 modelId);
    /// @notice The model was retired: nothing more is sold or renewed.
    error Licensing_ModelRetired(uint256 modelId, uint40 serviceEndsAt);
    /// @notice The retired model's notice period is over: its licences stopped working.
    error Licensing_ServiceEnded(uint256 modelId, uint40 serviceEndsAt);
    error Licensing_AssetNotAllowed(address asset);
    /// @notice Buyout and pay-per-use without packs sell quantity 1; the others at least 1.
    error Licensing_BadQuantity(Tier tier, uint256 quantity);
    /// @notice The uses bought (packs x packSize) exceed the offer's maxUses.
    error Licensing_TooManyUses(uint256 uses, uint32 maxUses);
    error Licensing_PriceAboveMax(uint256 cost, uint256 maxPrice);
    /// @notice ETH sent must equal the cost exactly (and be 0 for an ERC-20 offer).
    error Licensing_WrongPayment(uint256 expected, uint256 sent);
    error Licensing_NotTransferable(uint256 licenseId);
    error Licensing_UnknownLicense(uint256 licenseId);
    error Licensing_NotSubscription(uint256 licenseId);
    error Licensing_NotLicenseHolder(uint256 licenseId, address account);
    error Licensing_WrongModel(uint256 licenseId, uint256 modelId);
    error Licensing_ActionNotPermitted(uint256 licenseId, uint16 actions);
    error Licensing_LicenseExpired(uint256 licenseId, uint40 expiresAt);
    error Licensing_UsesExhausted(uint256 licenseId, uint256 limit);
    /// @notice Renewals run in whole periods (keepers: exactly one).
    error Licensing_BadDuration(uint64 duration, uint32 period);
    error Licensing_SubscriptionCancelled(uint256 licenseId);
    /// @notice Keepers may renew only from `dueAt` (min(RENEWAL_LEAD, period) before expiry).
    error Licensing_RenewalNotDue(uint256 licenseId, uint40 dueAt);
    /// @notice Only the holder renews a subscription that has lapsed (keepers never revive one).
    error Licensing_SubscriptionLapsed(uint256 licenseId, uint40 expiresAt);
    /// @notice The holder has not agreed to keeper renewals (`setAutoRenew`).
    error Licensing_AutoRenewOff(uint256 licenseId);
    /// @notice Subscription time is not sold past the offer's validUntil.
    error Licensing_BeyondValidUntil(uint256 end, uint64 validUntil);
    /// @notice Subscription time is not sold further ahead than the registry's retirement notice.
    error Licensing_BeyondNotice(uint256 end, uint256 latest);
    /// @notice Only the synthesis router (or, to give uses back, a router it replaced).
    error Licensing_NotRouter(address caller);
    error Licensing_RouterNotContract(address router);
    /// @notice Only the OfferBook this manager deployed records and closes offers.
    error Licensing_NotOfferBook(address caller);
    /// @notice A router replacement takes effect only from `at` (ROUTER_DELAY after it was proposed).
    error Licensing_RouterNotYet(address router, uint40 at);
    error Licensing_RenewalAllowanceTooLow(uint256 licenseId, uint256 allowance, uint256 cost);
    error Licensing_RenewalBalanceTooLow(uint256 licenseId, uint256 balance, uint256 cost);
    error Licensing_PlatformFeeTooHigh(uint16 bps, uint16 max);
    /// @notice The token refused the transfer for another reason.
    error Licensing_PaymentFailed(address asset, address from, uint256 amount);

    // ------------------------------------------------------------------ events

    /// @notice A licence was sold: `quantity` (periods or packs) for `paid` in the offer's asset.
    event LicensePurchased(
        uint256 indexed licenseId,
        uint256 indexed offerId,
        address indexed buyer,
        uint256 quantity,
        uint256 paid
    );

    /// @notice The holder cancelled: keepers renew no more; the licence works until `expiresAt`.
    event SubscriptionCancelled(uint256 indexed licenseId, uint64 expiresAt);

    /// @notice The holder turned keeper renewals on or off (off also on every transfer).
    event AutoRenewSet(uint256 indexed licenseId, bool autoRenew);

    /// @notice The admin proposed a new router; `setRouter(router)` makes it the router from `at`.
    event RouterProposed(address indexed router, uint40 at);

    event AssetAllowed(address indexed asset, bool allowed);
    /// @notice The platform fee (basis points of every payment for a model) changed.
    event PlatformFeeSet(uint16 platformFeeBps);
    event RouterSet(address indexed router);

    // ------------------------------------------------------------------ offers (through the OfferBook)

    /// @notice The OfferBook only (`publishOffer` there): stores checked terms, packed by
    /// `OfferRecords.pack`, of a model that sells now (not frozen, not retired) and returns the
    /// new offer's id (sequential from 1).
    function recordOffer(uint256[5] calldata words) external returns (uint256 offerId);

    /// @notice The OfferBook only (`deactivateOffer` there, by `caller`: the model's owner or the
    /// admin): the offer sells and renews no more. Returns its model.
    function closeOffer(uint256 offerId, address caller) external returns (uint256 modelId);

    // ------------------------------------------------------------------ licences

    /// @notice Buys a licence token from an active offer, paying at most `maxPrice` in total.
    /// @param quantity Subscription: periods prepaid; PayPerUse with packs: packs; otherwise 1.
    /// ETH: msg.value must equal the cost. ERC-20: approve the cost first.
    function buy(uint256 offerId, uint256 maxPrice, uint256 quantity) external payable returns (uint256 licenseId);

    /// @notice ERC-5643 renewal by `duration` seconds (whole periods) at the offer's price, while
    /// the offer is active, its asset allowed and the model sells; never past the offer's
    /// validUntil nor further ahead than the retirement notice. The holder may renew any time
    /// (a lapsed subscription restarts now), paying themselves. Anyone else (a keeper, or an
    /// account approved on the token) may renew exactly one period, only if the holder turned
    /// autoRenew on, and only in the last min(RENEWAL_LEAD, period) before expiry: ERC-20
    /// renewals are then paid from the holder's allowance, ETH renewals by the caller.
    function renewSubscription(uint256 tokenId, uint64 duration) external payable;

    /// @notice ERC-5643 cancellation by the holder (or an approved account): autoRenew off; it
    /// works until it expires. No ETH accepted.
    function cancelSubscription(uint256 tokenId) external payable;

    /// @notice The holder lets keepers renew the subscription from their funds (see
    /// `renewSubscription`), or stops them. Cleared when the licence is transferred.
    function setAutoRenew(uint256 tokenId, bool autoRenew) external;

    // ------------------------------------------------------------------ the router's hooks

    /// @notice The router only: check that `user` holds licence `licenseId`, that it permits
    /// `actions` on `modelId` now and has a use left, and consume one use. Reverts while paused.
    function consumeUse(uint256 licenseId, address user, uint256 modelId, uint16 actions)
        external
        returns (UseGrant memory grant);

    /// @notice The payment channels (`paymentChannels()`) only: as `consumeUse` for text to
    /// speech, `count` uses at once (a redeemed voucher's new uses).
    function consumeUses(uint256 licenseId, address user, uint256 modelId, uint256 count)
        external
        returns (UseGrant memory grant);

    /// @notice The router, or a router it replaced: give back a use consumed under `useTag` (a
    /// refunded request). A subscription's use is given back only within the same quota period.
    function restoreUse(uint256 licenseId, uint40 useTag) external;

    // ------------------------------------------------------------------ administration

    /// @notice Admin: allow or disallow an ERC-20 as payment asset for new offers and sales.
    function setAssetAllowed(address asset, bool allowed) external;

    /// @notice Fee-manager role: the platform fee in basis points, at most MAX_PLATFORM_FEE_BPS
    /// (20%). It applies to payments from now on (pay-per-use requests keep the fee of their
    /// request time).
    function setPlatformFee(uint16 platformFeeBps) external;

    /// @notice Admin: the synthesis router (a contract). The first is set at once; a replacement
    /// is proposed by one call and made by a second call with the same address at least
    /// ROUTER_DELAY later. A replaced router can still give uses back (refund its requests).
    function setRouter(address router) external;

    function pause() external;

    function unpause() external;

    // ------------------------------------------------------------------ views

    /// @notice Is `account` licensed by `licenseId` to perform `actions` on `modelId` now, and how
    /// many uses remain (type(uint256).max = unlimited)? False for an unknown licence.
    function isLicensed(uint256 licenseId, address account, uint256 modelId, uint16 actions)
        external
        view
        returns (bool licensed, uint256 usesLeft);

    function offer(uint256 offerId) external view returns (Offer memory);

    function license(uint256 licenseId) external view returns (License memory);

    /// @notice The offer a licence was sold from.
    function offerOf(uint256 licenseId) external view returns (uint256 offerId);

    function isAssetAllowed(address asset) external view returns (bool);

    function platformFeeBps() external view returns (uint16);

    /// @notice The cap on the platform fee: 2,000 basis points (20%).
    function MAX_PLATFORM_FEE_BPS() external view returns (uint16);

    function nextOfferId() external view returns (uint256);

    function nextLicenseId() external view returns (uint256);

    function registry() external view returns (address);

    /// @notice The speech API's payment channels, deployed by this contract; the only other
    /// account that consumes uses.
    function paymentChannels() external view returns (address);

    function router() external view returns (address);

    /// @notice The OfferBook through which offers are published (deployed by this contract).
    function offerBook() external view returns (address);

    /// @notice A proposed router replacement and when it can be made (zeros if none).
    function pendingRouter() external view returns (address router, uint40 at);

    /// @notice How long a router replacement is announced ahead (2 days).
    function ROUTER_DELAY() external view returns (uint256);

    /// @notice Keepers may renew a subscription from min(this, period) seconds before it expires (1 day).
    function RENEWAL_LEAD() external view returns (uint256);
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ILicenseManager} from "./ILicenseManager.sol";

/// @title The front door of the licence catalogue: publishing and withdrawing offers
/// @notice A model's owner publishes offers here; the licence manager that created this book
/// stores each offer's terms (it reads them on every sale, renewal and use) and sells licences
/// from them. The book checks the terms (docs/licence-terms.md), records the territories and
/// the full terms in `OfferPublished`, and owns the offer ids' events. Offers are immutable once
/// published: an offer can only be deactivated; a new price is a new offer.
interface IOfferBook {
    // ------------------------------------------------------------------ errors

    /// @notice Subscription needs period > 0; the other tiers need period == 0.
    error Licensing_BadPeriod(ILicenseManager.Tier tier, uint32 period);
    /// @notice Only PayPerUse offers may sell credit packs.
    error Licensing_BadPackSize(ILicenseManager.Tier tier, uint32 packSize);
    /// @notice Actions or purposes outside the defined bits.
    error Licensing_UnknownBits(uint16 actions, uint32 purposes);
    error Licensing_PermissionOverlap(uint16 overlap);
    error Licensing_ValidUntilPassed(uint64 validUntil);
    error Licensing_EmptyPolicyHash();
    /// @notice Territories must be ISO-3166-1 alpha-2 codes, 2 upper-case letters each.
    error Licensing_BadTerritories(uint256 index);
    /// @notice A subscription's period plus its renewal lead must fit in the retirement notice.
    error Licensing_PeriodAboveNotice(uint32 period, uint40 notice);

    // ------------------------------------------------------------------ events

    /// @notice An offer was published. `territories`: ISO-3166-1 alpha-2 codes, 2 bytes each
    /// (empty = worldwide); recorded here only, checked off-chain.
    event OfferPublished(
        uint256 indexed offerId,
        uint256 indexed modelId,
        address indexed publisher,
        ILicenseManager.OfferTerms terms,
        bytes territories
    );

    event OfferDeactivated(uint256 indexed offerId, uint256 indexed modelId);

    // ------------------------------------------------------------------ functions

    /// @notice The model's owner publishes an offer. Reverts if the model is frozen or retired,
    /// if the terms are malformed, or if a subscription's period (plus its renewal lead) does
    /// not fit in the registry's retirement notice.
    /// @return offerId Sequential from 1.
    function publishOffer(ILicenseManager.OfferTerms calldata terms, bytes calldata territories)
        external
        returns (uint256 offerId);

    /// @notice The model's owner (or the licence manager's admin) stops an offer from selling and
    /// renewing. Licences sold keep working until they expire.
    function deactivateOffer(uint256 offerId) external;

    /// @notice The licence manager whose offers this book publishes.
    function licenseManager() external view returns (address);
}

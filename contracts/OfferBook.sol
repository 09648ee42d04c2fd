// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IOfferBook} from "./interfaces/IOfferBook.sol";
import {ILicenseManager} from "./interfaces/ILicenseManager.sol";
import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {Protocol} from "./libraries/Protocol.sol";
import {OfferRecords} from "./libraries/OfferRecords.sol";

/// @title OfferBook
/// @notice Checks and announces offers; the licence manager that deployed it stores them.
/// @dev Split from the licence manager to keep that contract under the 24,576-byte code limit
/// with room to grow: publishing (the terms' checks, the struct's decoding and the event) is
/// about a seventh of its code and is never on a buyer's path. The manager trusts this book alone
/// to record and close offers (`recordOffer`, `closeOffer`).
contract OfferBook is IOfferBook {
    ILicenseManager private immutable _licenses;
    IVoiceModelRegistry private immutable _models;

    /// @param models The voice-model registry (the licence manager's).
    constructor(IVoiceModelRegistry models) {
        _licenses = ILicenseManager(msg.sender);
        _models = models;
    }

    /// @inheritdoc IOfferBook
    function publishOffer(ILicenseManager.OfferTerms calldata t, bytes calldata territories)
        external
        returns (uint256 offerId)
    {
        // The model's state (exists, frozen, retired) is checked by the manager's recordOffer.
        if (_models.ownerOf(t.modelId) != msg.sender) {
            revert ILicenseManager.Licensing_NotModelOwner(t.modelId, msg.sender);
        }
        _checkTerms(t);
        _checkTerritories(territories);
        offerId = _licenses.recordOffer(OfferRecords.pack(t));
        emit OfferPublished(offerId, t.modelId, msg.sender, t, territories);
    }

    /// @inheritdoc IOfferBook
    function deactivateOffer(uint256 offerId) external {
        uint256 modelId = _licenses.closeOffer(offerId, msg.sender);
        emit OfferDeactivated(offerId, modelId);
    }

    /// @inheritdoc IOfferBook
    function licenseManager() external view returns (address) {
        return address(_licenses);
    }

    function _checkTerms(ILicenseManager.OfferTerms calldata t) private view {
        bool subscription = t.tier == ILicenseManager.Tier.Subscription;
        if (subscription ? t.period == 0 : t.period != 0) revert Licensing_BadPeriod(t.tier, t.period);
        if (t.tier != ILicenseManager.Tier.PayPerUse && t.packSize != 0) {
            revert Licensing_BadPackSize(t.tier, t.packSize);
        }
        if ((t.permissions | t.prohibitions) & ~Protocol.ALL_ACTIONS != 0 || t.purposes & ~Protocol.ALL_PURPOSES != 0) {
            revert Licensing_UnknownBits(t.permissions | t.prohibitions, t.purposes);
        }
        uint16 overlap = t.permissions & t.prohibitions;
        if (overlap != 0) revert Licensing_PermissionOverlap(overlap);
        if (t.validUntil != 0 && t.validUntil <= block.timestamp) revert Licensing_ValidUntilPassed(t.validUntil);
        if (subscription) {
            // Keepers renew from min(RENEWAL_LEAD, period) before expiry, and time is sold at most
            // the retirement notice ahead: a period that does not fit could never be auto-renewed.
            uint256 lead = Protocol.renewalLead(t.period);
            uint40 notice = _models.retirementNotice();
            if (t.period + lead > notice) revert Licensing_PeriodAboveNotice(t.period, notice);
        }
        if (t.policyHash == 0) revert Licensing_EmptyPolicyHash();
        if (!_licenses.isAssetAllowed(t.asset)) revert ILicenseManager.Licensing_AssetNotAllowed(t.asset);
    }

    function _checkTerritories(bytes calldata territories) private pure {
        if (territories.length % 2 != 0) revert Licensing_BadTerritories(territories.length);
        for (uint256 i; i < territories.length; ++i) {
            bytes1 c = territories[i];
            if (c < "A" || c > "Z") revert Licensing_BadTerritories(i);
        }
    }
}

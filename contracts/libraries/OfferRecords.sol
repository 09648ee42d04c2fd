// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {ILicenseManager} from "../interfaces/ILicenseManager.sol";

/// @title How the licence manager stores an offer: five slots, and their packing
/// @notice The OfferBook packs checked terms with `pack`; the LicenseManager stores the five
/// words as they come and reads them through `Record`. `pack` lays the fields out exactly as
/// Solidity lays out `Record` in storage (the first field in the lowest bits of its slot).
library OfferRecords {
    uint8 internal constant ATTRIBUTION = 1 << 0;
    uint8 internal constant TRANSFERABLE = 1 << 1;
    uint8 internal constant ACTIVE = 1 << 2;

    /// @dev Ordered by how often the slots are read: slot 0 on every transfer, sale, use and
    /// renewal; slots 1 and 2 on every sale, use and renewal; slot 3 on sales.
    struct Record {
        // slot 0
        address asset;
        ILicenseManager.Tier tier;
        uint8 flags; // ATTRIBUTION | TRANSFERABLE | ACTIVE
        uint16 permissions;
        uint16 prohibitions;
        uint32 period;
        // slot 1
        uint128 price;
        uint64 validUntil;
        uint32 maxUses;
        uint32 packSize;
        // slot 2
        uint256 modelId;
        // slot 3
        uint32 maxLicenses;
        uint32 sold;
        uint32 purposes;
        // slot 4
        bytes32 policyHash;
    }

    /// @notice The five storage words of a new, active offer with nothing sold.
    function pack(ILicenseManager.OfferTerms calldata t) internal pure returns (uint256[5] memory w) {
        uint256 flags = ACTIVE;
        if (t.attribution) flags |= ATTRIBUTION;
        if (t.transferable) flags |= TRANSFERABLE;
        w[0] = uint256(uint160(t.asset)) | uint256(t.tier) << 160 | flags << 168 | uint256(t.permissions) << 176
            | uint256(t.prohibitions) << 192 | uint256(t.period) << 208;
        w[1] = uint256(t.price) | uint256(t.validUntil) << 128 | uint256(t.maxUses) << 192 | uint256(t.packSize) << 224;
        w[2] = t.modelId;
        w[3] = uint256(t.maxLicenses) | uint256(t.purposes) << 64; // sold (bits 32..63) starts at 0
        w[4] = uint256(t.policyHash);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title Constants every voicemarket contract agrees on
library Protocol {
    /// @notice 100% in basis points.
    uint256 internal constant BPS = 10_000;

    /// @notice Action bits (docs/licence-terms.md). The router requires TEXT_TO_SPEECH.
    uint16 internal constant ACTION_TEXT_TO_SPEECH = 1 << 0;
    uint16 internal constant ALL_ACTIONS = 0xFF;
    /// @notice Purpose bits 0..9 (docs/licence-terms.md).
    uint32 internal constant ALL_PURPOSES = 0x3FF;
    /// @notice Language bits 0..4: zh, en, ja, ko, yue.
    uint8 internal constant ALL_LANGUAGES = 0x1F;

    /// @notice Longest dispute window a model may set. The router's unbonding delay is at least
    /// this plus the longest request lifetime, so a leaving operator's stake stays slashable for
    /// every delivery it made.
    uint24 internal constant MAX_DISPUTE_WINDOW = 7 days;

    /// @notice Shortest retirement notice. It also delays an operator's removal from a model, so
    /// it is at least the longest request lifetime (the router's MAX_TTL): every request made
    /// before a removal can still be delivered.
    uint40 internal constant MIN_RETIREMENT_NOTICE = 1 days;

    /// @notice Keepers may renew a subscription from this long before it expires (or from one
    /// period before, when the period is shorter), so that a keeper renews at most once per period.
    uint256 internal constant RENEWAL_LEAD = 1 days;

    /// @notice min(RENEWAL_LEAD, period).
    function renewalLead(uint256 period) internal pure returns (uint256) {
        return period < RENEWAL_LEAD ? period : RENEWAL_LEAD;
    }

    /// @notice `amount * bps / BPS`, rounded down.
    function share(uint256 amount, uint256 bps) internal pure returns (uint256) {
        return amount * bps / BPS;
    }
}

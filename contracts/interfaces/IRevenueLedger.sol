// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title The revenue ledger that the licence manager and the synthesis router each keep
/// @notice Money is pulled, never pushed. A payment for a model accrues to that model's revenue
/// pot (its platform fee counted apart, at the fee in force when it was paid); anyone may
/// `distribute` a pot, which credits the model's split (creator, voice owner, co-creators) and
/// the platform; every account then `withdraw`s its own credit. Refunds and operator fees are
/// credited the same way.
///
/// Accounting identity (checked by the property tests, per contract and per asset):
/// `balance of the contract == sum of credits + sum of pots + platform balance (+ escrow and
/// stakes, in the router)`. Asset `address(0)` is ETH; any other asset is an ERC-20 token.
interface IRevenueLedger {
    // ------------------------------------------------------------------ errors

    /// @notice `account` has no credit in `asset`.
    error Ledger_NothingToWithdraw(address account, address asset);

    /// @notice The pot of `modelId` in `asset` is empty.
    error Ledger_NothingToDistribute(uint256 modelId, address asset);

    /// @notice Sending `amount` wei to `to` failed (a contract that refuses ETH).
    error Ledger_EthTransferFailed(address to, uint256 amount);

    /// @notice A platform-fee withdrawal to the zero address.
    error Ledger_ZeroRecipient();

    // ------------------------------------------------------------------ events

    /// @notice `amount` of `asset` was paid for `modelId`; `platformFee` of it is the platform's.
    event RevenueAccrued(uint256 indexed modelId, address indexed asset, uint256 amount, uint256 platformFee);

    /// @notice The pot of `modelId` in `asset` was split: `amount` to the model's parties and
    /// `platformFee` to the platform.
    event RevenueDistributed(uint256 indexed modelId, address indexed asset, uint256 amount, uint256 platformFee);

    /// @notice `account` was credited `amount` of `asset` (a revenue share, a fee or a refund).
    event Credited(address indexed account, address indexed asset, uint256 amount);

    /// @notice `account` withdrew `amount` of `asset`.
    event Withdrawn(address indexed account, address indexed asset, uint256 amount);

    /// @notice The treasurer withdrew `amount` of platform fees in `asset` to `to`.
    event PlatformFeesWithdrawn(address indexed asset, address indexed to, uint256 amount);

    // ------------------------------------------------------------------ functions

    /// @notice Pays the caller all of its credit in `asset`. Works while paused.
    /// @return amount What was paid.
    function withdraw(address asset) external returns (uint256 amount);

    /// @notice Splits the pot of `modelId` in `asset` among the model's parties and the platform,
    /// as credits. Anyone may call it; it works while paused and while the model is frozen.
    /// Rounding dust of the split goes to the creator; the split is the model's, read from the
    /// model registry.
    function distribute(uint256 modelId, address asset) external;

    /// @notice Pays the platform's balance in `asset` to `to`. Treasurer role only.
    function withdrawPlatformFees(address asset, address to) external returns (uint256 amount);

    /// @notice The credit of `account` in `asset`, withdrawable now.
    function creditOf(address account, address asset) external view returns (uint256);

    /// @notice The undistributed pot of `modelId` in `asset`: the model's share and the platform's.
    function potOf(uint256 modelId, address asset) external view returns (uint256 modelShare, uint256 platformShare);

    /// @notice The platform's distributed, not yet withdrawn, fees in `asset`.
    function platformBalance(address asset) external view returns (uint256);
}

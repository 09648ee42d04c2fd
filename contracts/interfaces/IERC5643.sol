// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

/// @title ERC-5643: subscription NFTs
/// @notice The standard interface for ERC-721 tokens that expire and can be renewed.
/// Interface id: 0x8c65f84d.
interface IERC5643 {
    /// @notice Emitted when a subscription's expiration changes.
    event SubscriptionUpdate(uint256 indexed tokenId, uint64 expiration);

    /// @notice Renews the subscription of `tokenId` by `duration` seconds.
    function renewSubscription(uint256 tokenId, uint64 duration) external payable;

    /// @notice Cancels the subscription of `tokenId`.
    function cancelSubscription(uint256 tokenId) external payable;

    /// @notice The unix time at which the subscription of `tokenId` expires.
    function expiresAt(uint256 tokenId) external view returns (uint64);

    /// @notice Whether the subscription of `tokenId` can be renewed by one more period now (by its
    /// holder: an active offer in an allowed asset, a model that sells, within validUntil and the
    /// retirement notice). Keepers also need autoRenew and the renewal to be due.
    function isRenewable(uint256 tokenId) external view returns (bool);
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IRevenueLedger} from "./IRevenueLedger.sol";

/// @title Payment channels for the operators' speech API: deposits, vouchers, batch redemption
/// @notice A channel is (buyer, operator, asset): the buyer deposits ETH or an allow-listed ERC-20
/// and pays the operator's API per use with EIP-712 vouchers, off-chain; the operator redeems the
/// latest voucher of many channels in one transaction. A voucher is cumulative per *lane*
/// (channel, licence): "on this channel, for this licence, I have now paid `amount` in all for
/// `uses` uses in all". Redeeming it takes the difference from what that lane redeemed before:
/// the use price of the licence's offer times the new uses goes to the licence's model exactly as
/// a router use (the model's pot, split by `distribute`, the platform's fee at the rate in force),
/// the rest to the operator as its fee, and the licence manager consumes the new uses (the same
/// checks as an on-chain request: holder, model, permission, quota, expiry, freeze, service end).
///
/// Voucher: `Voucher(bytes32 channel,uint256 licenseId,uint128 amount,uint64 uses)` under the
/// domain ("voicemarket PaymentChannels", "1", chain id, this contract), signed by the buyer
/// (an EOA; EIP-2098 compact signature). `channel = keccak256(abi.encode(buyer, operator, asset))`.
///
/// A voucher cannot be redeemed twice (the lane's totals only grow), for more than it says, on
/// another channel, chain or contract (the typed data names them), by another operator (the
/// channel id is derived from the caller), or once the licence no longer permits the use (the
/// licence manager refuses and the voucher is skipped). The buyer takes back what is unspent
/// `WITHDRAWAL_DELAY` after asking; the operator redeems before then.
///
/// Money held, per asset: credits + pots + platform balance (the ledger) + every channel's
/// balance. No admin: the allowed assets and the treasurer are the licence manager's.
interface IPaymentChannels is IRevenueLedger {
    /// @notice One voucher, as the operator hands it in: the channel's buyer and asset (the
    /// operator is the caller), the licence and its model, the buyer's cumulative totals for the
    /// lane, and the buyer's EIP-2098 signature (r, vs).
    struct Voucher {
        address buyer;
        address asset;
        uint256 licenseId;
        uint256 modelId;
        uint128 amount;
        uint64 uses;
        bytes32 r;
        bytes32 vs;
    }

    /// @notice Why a voucher of a batch was skipped (nothing changed for it).
    enum Skip {
        Stale, //        not above what the lane redeemed (replayed, or an older voucher)
        BadSignature, // not signed by the channel's buyer for these values
        Underfunded, //  the channel holds less than the voucher adds
        NotAllowed, //   the model's owner does not allow this operator (router's list)
        LicenseRefused // the licence manager refused the uses (its revert data is in the event)
    }

    // ------------------------------------------------------------------ errors

    error Channels_ZeroAmount();
    error Channels_ZeroOperator();
    error Channels_AssetNotAllowed(address asset);
    error Channels_WrongPayment(uint256 expected, uint256 sent);
    error Channels_NothingDeposited(bytes32 channel);
    error Channels_NotWithdrawing(bytes32 channel);
    error Channels_WithdrawalLocked(bytes32 channel, uint40 withdrawableAt);
    error Channels_EmptyBatch();
    /// @notice The licence's use price for the new uses is more than the voucher adds, so the
    /// operator would be paid less than nothing: a bad voucher the operator should have refused.
    error Channels_PriceAboveAmount(bytes32 channel, uint256 licenseId, uint256 price, uint256 added);
    /// @notice The licence is sold in another asset than the channel's, and has a use price.
    error Channels_AssetMismatch(bytes32 channel, uint256 licenseId, address licenseAsset);
    error Channels_NotTreasurer(address caller);

    // ------------------------------------------------------------------ events

    event Deposited(
        bytes32 indexed channel,
        address indexed buyer,
        address indexed operator,
        address asset,
        uint256 amount
    );
    event WithdrawalStarted(bytes32 indexed channel, uint40 withdrawableAt);
    event ChannelWithdrawn(bytes32 indexed channel, address indexed buyer, uint256 amount);
    /// @notice A lane's totals after a redemption (cumulative; the difference is what was paid).
    event VoucherRedeemed(bytes32 indexed channel, uint256 indexed licenseId, uint128 amount, uint64 uses);
    event VoucherSkipped(bytes32 indexed channel, uint256 indexed licenseId, Skip reason, bytes data);

    // ------------------------------------------------------------------ buyers

    /// @notice Opens or tops up the caller's channel with `operator` in `asset` (ETH: `amount`
    /// as msg.value; an ERC-20: pulled with transferFrom). A deposit cancels a withdrawal asked for.
    function deposit(address operator, address asset, uint256 amount) external payable;

    /// @notice The buyer asks for the unspent rest: withdrawable `WITHDRAWAL_DELAY` from now
    /// (the operator redeems its last vouchers meanwhile). Asking again keeps the first time.
    function startWithdrawal(address operator, address asset) external;

    /// @notice The buyer takes the channel's whole balance, once the delay has passed.
    function withdrawChannel(address operator, address asset) external returns (uint256 amount);

    // ------------------------------------------------------------------ operators

    /// @notice The caller (the channels' operator) redeems vouchers; those that cannot be redeemed
    /// are skipped (`VoucherSkipped`). Returns how many were redeemed.
    function redeem(Voucher[] calldata vouchers) external returns (uint256 count);

    // ------------------------------------------------------------------ views

    /// @notice How long a buyer waits between asking for the rest and taking it.
    function WITHDRAWAL_DELAY() external view returns (uint256);

    function channelId(address buyer, address operator, address asset) external pure returns (bytes32);

    /// @notice A channel's balance and when it can be withdrawn (0: not asked).
    function channel(bytes32 id) external view returns (uint128 balance, uint40 withdrawableAt);

    /// @notice What a lane (channel, licence) has redeemed in all.
    function redeemed(bytes32 id, uint256 licenseId) external view returns (uint128 amount, uint64 uses);

    /// @notice The EIP-712 digest a buyer signs for a voucher.
    function voucherDigest(bytes32 id, uint256 licenseId, uint128 amount, uint64 uses) external view returns (bytes32);

    function licenseManager() external view returns (address);
}

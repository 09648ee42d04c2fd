// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {IPaymentChannels} from "./interfaces/IPaymentChannels.sol";
import {ILicenseManager} from "./interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "./interfaces/ISynthesisRouter.sol";
import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {RevenueLedger} from "./RevenueLedger.sol";

/// @title PaymentChannels
/// @notice Prepaid channels between a buyer and an operator's speech API, settled by vouchers
/// in batches (see IPaymentChannels). Deployed by the licence manager in its constructor (like
/// the offer book): the licence manager lets exactly this contract consume uses in numbers
/// (`consumeUses`), and nobody can point it elsewhere.
/// @dev One slot per channel (balance, withdrawal time) and one per lane (redeemed totals). The
/// channel's buyer and asset travel in the calldata and are bound by the channel id, which is
/// derived from them and the caller, so a redemption reads two slots of this contract.
contract PaymentChannels is IPaymentChannels, RevenueLedger, EIP712 {
    using SafeERC20 for IERC20;

    /// @inheritdoc IPaymentChannels
    uint256 public constant WITHDRAWAL_DELAY = 2 days;

    bytes32 private constant _VOUCHER_TYPEHASH =
        keccak256("Voucher(bytes32 channel,uint256 licenseId,uint128 amount,uint64 uses)");
    bytes32 private constant _TREASURER_ROLE = keccak256("TREASURER_ROLE");

    struct Channel {
        uint128 balance;
        uint40 withdrawableAt;
    }

    struct Lane {
        uint128 amount;
        uint64 uses;
    }

    ILicenseManager private immutable _licenses;

    mapping(bytes32 channel => Channel) private _channels;
    mapping(bytes32 channel => mapping(uint256 licenseId => Lane)) private _lanes;

    /// @dev Deployed by the licence manager, which is the caller.
    constructor(IVoiceModelRegistry models) RevenueLedger(models) EIP712("voicemarket PaymentChannels", "1") {
        _licenses = ILicenseManager(msg.sender);
    }

    // ------------------------------------------------------------------ buyers

    /// @inheritdoc IPaymentChannels
    function deposit(address operator, address asset, uint256 amount) external payable nonReentrant {
        if (amount == 0) revert Channels_ZeroAmount();
        if (operator == address(0)) revert Channels_ZeroOperator();
        if (asset != address(0) && !_licenses.isAssetAllowed(asset)) revert Channels_AssetNotAllowed(asset);
        bytes32 id = channelId(msg.sender, operator, asset);
        Channel storage c = _channels[id];
        // Effects (the sum is checked: more than 2^128 - 1 in a channel reverts):
        c.balance = SafeCast.toUint128(c.balance + amount);
        c.withdrawableAt = 0;
        emit Deposited(id, msg.sender, operator, asset, amount);
        // Interaction:
        if (asset == address(0)) {
            if (msg.value != amount) revert Channels_WrongPayment(amount, msg.value);
        } else {
            if (msg.value != 0) revert Channels_WrongPayment(0, msg.value);
            IERC20(asset).safeTransferFrom(msg.sender, address(this), amount);
        }
    }

    /// @inheritdoc IPaymentChannels
    function startWithdrawal(address operator, address asset) external {
        bytes32 id = channelId(msg.sender, operator, asset);
        Channel storage c = _channels[id];
        if (c.balance == 0) revert Channels_NothingDeposited(id);
        if (c.withdrawableAt != 0) return;
        uint40 at = uint40(block.timestamp + WITHDRAWAL_DELAY);
        c.withdrawableAt = at;
        emit WithdrawalStarted(id, at);
    }

    /// @inheritdoc IPaymentChannels
    function withdrawChannel(address operator, address asset) external nonReentrant returns (uint256 amount) {
        bytes32 id = channelId(msg.sender, operator, asset);
        Channel memory c = _channels[id];
        if (c.withdrawableAt == 0) revert Channels_NotWithdrawing(id);
        if (block.timestamp < c.withdrawableAt) revert Channels_WithdrawalLocked(id, c.withdrawableAt);
        amount = c.balance;
        // Effects:
        delete _channels[id];
        emit ChannelWithdrawn(id, msg.sender, amount);
        // Interaction:
        if (amount != 0) _pay(msg.sender, asset, amount);
    }

    // ------------------------------------------------------------------ operators

    /// @inheritdoc IPaymentChannels
    function redeem(Voucher[] calldata vouchers) external nonReentrant returns (uint256 redeemed_) {
        if (vouchers.length == 0) revert Channels_EmptyBatch();
        ISynthesisRouter router = ISynthesisRouter(_licenses.router());
        // The operator's fees are credited once per run of vouchers in the same asset.
        address feeAsset = address(0);
        uint256 fees = 0;
        for (uint256 i; i < vouchers.length; ++i) {
            Voucher calldata v = vouchers[i];
            bytes32 id = channelId(v.buyer, msg.sender, v.asset);
            Lane memory lane = _lanes[id][v.licenseId];
            if (v.amount < lane.amount || v.uses < lane.uses || (v.amount == lane.amount && v.uses == lane.uses)) {
                emit VoucherSkipped(id, v.licenseId, Skip.Stale, "");
                continue;
            }
            bytes32 digest = voucherDigest(id, v.licenseId, v.amount, v.uses);
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, v.r, v.vs);
            if (err != ECDSA.RecoverError.NoError || signer != v.buyer) {
                emit VoucherSkipped(id, v.licenseId, Skip.BadSignature, "");
                continue;
            }
            uint256 added = v.amount - lane.amount;
            Channel storage c = _channels[id];
            if (c.balance < added) {
                emit VoucherSkipped(id, v.licenseId, Skip.Underfunded, "");
                continue;
            }
            uint64 newUses = v.uses - lane.uses;
            uint256 price = 0; // set again for every voucher: nothing carries over from the last one
            uint16 feeBps = 0;
            if (newUses != 0) {
                if (router.operatorAllowedUntil(v.modelId, msg.sender) <= block.timestamp) {
                    emit VoucherSkipped(id, v.licenseId, Skip.NotAllowed, "");
                    continue;
                }
                // The licence manager checks the licence as for an on-chain request, and counts the uses.
                try _licenses.consumeUses(v.licenseId, v.buyer, v.modelId, newUses) returns (
                    ILicenseManager.UseGrant memory g
                ) {
                    if (g.usePrice != 0) {
                        if (g.asset != v.asset) revert Channels_AssetMismatch(id, v.licenseId, g.asset);
                        price = uint256(g.usePrice) * newUses;
                        if (price > added) revert Channels_PriceAboveAmount(id, v.licenseId, price, added);
                    }
                    feeBps = g.platformFeeBps;
                } catch (bytes memory reason) {
                    emit VoucherSkipped(id, v.licenseId, Skip.LicenseRefused, reason);
                    continue;
                }
            }
            // Effects:
            _lanes[id][v.licenseId] = Lane(v.amount, v.uses);
            c.balance -= uint128(added);
            emit VoucherRedeemed(id, v.licenseId, v.amount, v.uses);
            if (price != 0) _accrue(v.modelId, v.asset, price, feeBps);
            if (v.asset != feeAsset) {
                _credit(msg.sender, feeAsset, fees);
                (feeAsset, fees) = (v.asset, 0);
            }
            fees += added - price;
            ++redeemed_;
        }
        _credit(msg.sender, feeAsset, fees);
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc IPaymentChannels
    function channelId(address buyer, address operator, address asset) public pure returns (bytes32) {
        return keccak256(abi.encode(buyer, operator, asset));
    }

    /// @inheritdoc IPaymentChannels
    function channel(bytes32 id) external view returns (uint128 balance, uint40 withdrawableAt) {
        Channel memory c = _channels[id];
        return (c.balance, c.withdrawableAt);
    }

    /// @inheritdoc IPaymentChannels
    function redeemed(bytes32 id, uint256 licenseId) external view returns (uint128 amount, uint64 uses) {
        Lane memory lane = _lanes[id][licenseId];
        return (lane.amount, lane.uses);
    }

    /// @inheritdoc IPaymentChannels
    function voucherDigest(bytes32 id, uint256 licenseId, uint128 amount, uint64 uses) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(_VOUCHER_TYPEHASH, id, licenseId, amount, uses)));
    }

    /// @inheritdoc IPaymentChannels
    function licenseManager() external view returns (address) {
        return address(_licenses);
    }

    // ------------------------------------------------------------------ internal

    /// @dev The licence manager's treasurers withdraw the platform's fees collected here.
    function _authorizeTreasurer() internal view override {
        if (!IAccessControl(address(_licenses)).hasRole(_TREASURER_ROLE, msg.sender)) {
            revert Channels_NotTreasurer(msg.sender);
        }
    }
}

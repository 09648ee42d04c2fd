// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IRevenueLedger} from "./interfaces/IRevenueLedger.sol";
import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {Protocol} from "./libraries/Protocol.sol";

/// @title The pull-payment ledger shared (as code, not as state) by the licence manager and the router
/// @notice Each contract that inherits this keeps its own books over the money it holds:
/// credits per (account, asset), revenue pots per (model, asset) and the platform's balance
/// per asset. A payment for a model costs one storage write (its pot); the split among the
/// model's parties happens in `distribute`, which anyone may call.
abstract contract RevenueLedger is IRevenueLedger, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    /// @dev A model's undistributed revenue in one asset: its parties' share and the platform's,
    /// the latter computed at the fee in force when each payment was made.
    struct Pot {
        uint128 modelShare;
        uint128 platformShare;
    }

    /// @notice Where model splits and the platform fee are read.
    IVoiceModelRegistry internal immutable _models;

    mapping(address account => mapping(address asset => uint256 amount)) private _credits;
    mapping(uint256 modelId => mapping(address asset => Pot)) private _pots;
    mapping(address asset => uint256 amount) private _platformBalances;

    constructor(IVoiceModelRegistry models) {
        _models = models;
    }

    // ------------------------------------------------------------------ external

    /// @inheritdoc IRevenueLedger
    function withdraw(address asset) external nonReentrant returns (uint256 amount) {
        amount = _credits[msg.sender][asset];
        if (amount == 0) revert Ledger_NothingToWithdraw(msg.sender, asset);
        // Effect:
        delete _credits[msg.sender][asset];
        emit Withdrawn(msg.sender, asset, amount);
        // Interaction:
        _pay(msg.sender, asset, amount);
    }

    /// @inheritdoc IRevenueLedger
    function distribute(uint256 modelId, address asset) external nonReentrant {
        Pot memory pot = _pots[modelId][asset];
        if (pot.modelShare == 0 && pot.platformShare == 0) revert Ledger_NothingToDistribute(modelId, asset);
        (address creator, IVoiceModelRegistry.Payee[] memory payees) = _models.revenueSplit(modelId);
        // Effects only: credits, no transfer.
        delete _pots[modelId][asset];
        _platformBalances[asset] += pot.platformShare;
        uint256 rest = pot.modelShare;
        for (uint256 i; i < payees.length; ++i) {
            uint256 cut = Protocol.share(pot.modelShare, payees[i].bps);
            rest -= cut;
            _credit(payees[i].account, asset, cut);
        }
        _credit(creator, asset, rest); // the creator's share and every rounding dust
        emit RevenueDistributed(modelId, asset, pot.modelShare, pot.platformShare);
    }

    /// @inheritdoc IRevenueLedger
    function withdrawPlatformFees(address asset, address to) external nonReentrant returns (uint256 amount) {
        _authorizeTreasurer();
        if (to == address(0)) revert Ledger_ZeroRecipient();
        amount = _platformBalances[asset];
        if (amount == 0) revert Ledger_NothingToWithdraw(address(this), asset);
        // Effect:
        delete _platformBalances[asset];
        emit PlatformFeesWithdrawn(asset, to, amount);
        // Interaction:
        _pay(to, asset, amount);
    }

    /// @inheritdoc IRevenueLedger
    function creditOf(address account, address asset) external view returns (uint256) {
        return _credits[account][asset];
    }

    /// @inheritdoc IRevenueLedger
    function potOf(uint256 modelId, address asset) external view returns (uint256 modelShare, uint256 platformShare) {
        Pot memory pot = _pots[modelId][asset];
        return (pot.modelShare, pot.platformShare);
    }

    /// @inheritdoc IRevenueLedger
    function platformBalance(address asset) external view returns (uint256) {
        return _platformBalances[asset];
    }

    // ------------------------------------------------------------------ internal

    /// @dev Reverts unless the caller may withdraw platform fees (the inheriting contract's role).
    function _authorizeTreasurer() internal view virtual;

    /// @dev Records a payment of `amount` for `modelId`: the platform's `feeBps` of it (rounded
    /// down) and the rest (the dust with it) into the model's pot.
    function _accrue(uint256 modelId, address asset, uint256 amount, uint16 feeBps) internal {
        uint256 fee = Protocol.share(amount, feeBps);
        Pot storage pot = _pots[modelId][asset];
        pot.modelShare += SafeCast.toUint128(amount - fee);
        pot.platformShare += SafeCast.toUint128(fee);
        emit RevenueAccrued(modelId, asset, amount, fee);
    }

    function _credit(address account, address asset, uint256 amount) internal {
        if (amount == 0) return;
        _credits[account][asset] += amount;
        emit Credited(account, asset, amount);
    }

    /// @dev Pays out: ETH by a call forwarding all gas (the callers are nonReentrant and have
    /// already cleared the balance), an ERC-20 by SafeERC20.
    function _pay(address to, address asset, uint256 amount) internal {
        if (asset == address(0)) {
            (bool ok,) = to.call{value: amount}("");
            if (!ok) revert Ledger_EthTransferFailed(to, amount);
        } else {
            IERC20(asset).safeTransfer(to, amount);
        }
    }
}

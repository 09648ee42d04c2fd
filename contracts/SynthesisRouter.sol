// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

import {ISynthesisRouter} from "./interfaces/ISynthesisRouter.sol";
import {ILicenseManager} from "./interfaces/ILicenseManager.sol";
import {IVoiceModelRegistry} from "./interfaces/IVoiceModelRegistry.sol";
import {RevenueLedger} from "./RevenueLedger.sol";
import {Protocol} from "./libraries/Protocol.sol";

/// @title SynthesisRouter
/// @notice Escrowed synthesis requests served by staked operators, with exactly-once outcomes.
/// @dev One storage slot per request: the upper 208 bits of keccak256(abi.encode(request)), the
/// settlement time (uint40) and the status (uint8). Finding two requests that share those 208
/// bits takes about 2^104 hashes. Money in this contract is, per asset: credits + pots +
/// platform balance (the ledger) + escrow of requests in Pending, Fulfilled or Disputed
/// (usePrice + fee each) + operators' stakes (ETH).
contract SynthesisRouter is ISynthesisRouter, AccessControl, RevenueLedger, Pausable {
    using SafeERC20 for IERC20;
    using SafeCast for uint256;

    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    bytes32 public constant ARBITER_ROLE = keccak256("ARBITER_ROLE");
    bytes32 public constant TREASURER_ROLE = keccak256("TREASURER_ROLE");

    /// @inheritdoc ISynthesisRouter
    uint256 public constant MAX_INPUT_BYTES = 512;
    /// @inheritdoc ISynthesisRouter
    uint256 public constant MAX_TTL = 1 days;
    /// @inheritdoc ISynthesisRouter
    uint40 public constant ARBITRATION_PERIOD = 7 days;
    /// @inheritdoc ISynthesisRouter
    uint256 public constant MAX_DISPUTE_BOND = 1 ether;
    /// @inheritdoc ISynthesisRouter
    uint256 public constant MAX_MIN_STAKE = 1_000 ether;

    uint256 private constant _HASH_MASK = ~uint256(0) << 48;
    uint256 private constant _MIN_WINDOW_SHIFT = 88;
    uint256 private constant _RESERVED_PARAMS_SHIFT = 112;
    uint40 private constant _ALWAYS = type(uint40).max;

    struct Operator {
        uint128 stake;
        uint40 unbondingEndsAt;
        uint32 openDisputes;
        bool registered;
    }

    // These share one slot with Pausable's flag (Pausable is the last base): a request reads the
    // flag, the counter and the minimum stake in one cold read.
    uint64 private _nextRequestId = 1;
    uint128 private _minStake;

    ILicenseManager private immutable _licenses;
    /// @inheritdoc ISynthesisRouter
    uint256 public immutable unbondingDelay;

    mapping(uint256 requestId => uint256 packed) private _requests;
    mapping(address operator => Operator) private _operators;
    mapping(address operator => bytes32[2] xy) private _publicKeys;
    mapping(address operator => mapping(address asset => uint128 fee)) private _fees;
    /// @dev Until when an operator may be named for a model: _ALWAYS while allowed, the end of
    /// its notice once disallowed, 0 if never allowed.
    mapping(uint256 modelId => mapping(address operator => uint40 until)) private _allowedUntil;
    mapping(uint256 requestId => uint256 bond) private _disputeBonds;

    uint256 private _slashAmount;
    uint256 private _disputeBond;

    /// @param admin Gets the admin role (grants the others).
    /// @param models The voice-model registry.
    /// @param licenses The licence manager (which must grant this contract its router role).
    /// @param unbondingDelay_ At least MAX_TTL + the longest dispute window, so that a leaving
    /// operator's stake stays slashable for every delivery it made.
    constructor(
        address admin,
        IVoiceModelRegistry models,
        ILicenseManager licenses,
        uint256 minStake_,
        uint256 slashAmount_,
        uint256 unbondingDelay_
    ) RevenueLedger(models) {
        uint256 shortest = MAX_TTL + Protocol.MAX_DISPUTE_WINDOW;
        if (unbondingDelay_ < shortest) revert Router_UnbondingDelayTooShort(unbondingDelay_, shortest);
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _licenses = licenses;
        unbondingDelay = unbondingDelay_;
        _setMinStake(minStake_);
        _setSlashAmount(slashAmount_);
    }

    // ------------------------------------------------------------------ requests

    /// @inheritdoc ISynthesisRouter
    function requestSynthesis(RequestParams calldata p)
        external
        payable
        nonReentrant
        whenNotPaused
        returns (uint256 requestId)
    {
        uint256 latest = block.timestamp + MAX_TTL;
        if (p.deadline <= block.timestamp || p.deadline > latest) revert Router_DeadlineOutOfRange(p.deadline, latest);
        uint256 inputLength = p.input.length;
        if (inputLength == 0) revert Router_EmptyInput();
        if (inputLength > MAX_INPUT_BYTES) revert Router_InputTooLong(inputLength, MAX_INPUT_BYTES);
        if (p.params >> _RESERVED_PARAMS_SHIFT != 0) revert Router_NonZeroReservedParams(p.params);
        _requireCanServe(p.modelId, p.operator, p.deadline);

        // The licence manager is trusted: it checks the licence and counts the use.
        ILicenseManager.UseGrant memory g =
            _licenses.consumeUse(p.licenseId, msg.sender, p.modelId, Protocol.ACTION_TEXT_TO_SPEECH);
        uint8 language = uint8(p.params);
        if (language >= 8 || g.languages & (1 << language) == 0) {
            revert Router_LanguageNotSupported(p.modelId, language);
        }
        // The buyer's floor on the dispute window: the owner cannot cut it under a pending request.
        uint24 minWindow = uint24(p.params >> _MIN_WINDOW_SHIFT);
        if (g.disputeWindow < minWindow) revert Router_DisputeWindowTooShort(g.disputeWindow, minWindow);
        uint128 fee = _fees[p.operator][g.asset];
        if (fee > p.maxFee) revert Router_FeeAboveMax(fee, p.maxFee);

        // Effects:
        requestId = _nextRequestId++;
        SynthesisRequest memory r = SynthesisRequest({
            id: requestId,
            modelId: p.modelId,
            licenseId: p.licenseId,
            requester: msg.sender,
            operator: p.operator,
            asset: g.asset,
            usePrice: g.usePrice,
            fee: fee,
            params: p.params,
            inputHash: p.inputHash,
            deadline: p.deadline,
            disputeWindow: g.disputeWindow,
            useTag: g.useTag,
            platformFeeBps: g.platformFeeBps
        });
        _requests[requestId] = _pack(keccak256(abi.encode(r)), 0, RequestStatus.Pending);
        emit SynthesisRequested(requestId, p.modelId, msg.sender, r, p.input);

        // Interaction: escrow usePrice + fee.
        uint256 escrow = uint256(g.usePrice) + fee;
        if (g.asset == address(0)) {
            if (msg.value < escrow) revert Router_WrongPayment(escrow, msg.value);
            _credit(msg.sender, address(0), msg.value - escrow);
        } else {
            if (msg.value != 0) revert Router_WrongPayment(0, msg.value);
            if (escrow != 0) IERC20(g.asset).safeTransferFrom(msg.sender, address(this), escrow);
        }
    }

    /// @inheritdoc ISynthesisRouter
    function fulfil(SynthesisRequest calldata r, bytes32 outputDigest, bytes calldata outputCid) external nonReentrant {
        _requireStaked(msg.sender);
        RequestStatus status = _load(r);
        if (status != RequestStatus.Pending) revert Router_WrongStatus(r.id, status);
        if (block.timestamp > r.deadline) revert Router_RequestExpired(r.id, r.deadline);
        _requireDeliverable(r);
        _deliver(r, outputDigest, outputCid);
    }

    /// @inheritdoc ISynthesisRouter
    function fulfilBatch(Fulfilment[] calldata items) external nonReentrant returns (uint256 fulfilled) {
        if (items.length == 0) revert Router_EmptyBatch();
        _requireStaked(msg.sender);
        uint256 checkedModel;
        for (uint256 i; i < items.length; ++i) {
            SynthesisRequest calldata r = items[i].request;
            RequestStatus status = _load(r);
            if (status != RequestStatus.Pending || block.timestamp > r.deadline) {
                emit FulfilmentSkipped(r.id, status);
                continue;
            }
            // Runs of requests for one model are checked once.
            if (r.modelId != checkedModel || r.operator != msg.sender) {
                _requireDeliverable(r);
                checkedModel = r.modelId;
            }
            _deliver(r, items[i].outputDigest, items[i].outputCid);
            ++fulfilled;
        }
    }

    /// @inheritdoc ISynthesisRouter
    function fail(SynthesisRequest calldata r, FailReason reason) external nonReentrant {
        if (msg.sender != r.operator) revert Router_NotAssignedOperator(r.id, msg.sender);
        RequestStatus status = _load(r);
        if (status != RequestStatus.Pending) revert Router_WrongStatus(r.id, status);
        if (block.timestamp > r.deadline) revert Router_RequestExpired(r.id, r.deadline);
        // Effects, then the licence manager gives the use back:
        _setStatus(r, 0, RequestStatus.Failed);
        emit SynthesisFailed(r.id, msg.sender, reason);
        _refund(r);
    }

    /// @inheritdoc ISynthesisRouter
    function cancelExpired(SynthesisRequest calldata r) external nonReentrant {
        RequestStatus status = _load(r);
        if (status != RequestStatus.Pending) revert Router_WrongStatus(r.id, status);
        if (block.timestamp <= r.deadline) revert Router_NotExpired(r.id, r.deadline);
        _setStatus(r, 0, RequestStatus.Expired);
        emit SynthesisExpired(r.id, msg.sender);
        _refund(r);
    }

    /// @inheritdoc ISynthesisRouter
    function dispute(SynthesisRequest calldata r) external payable nonReentrant {
        if (msg.sender != r.requester) revert Router_NotRequester(r.id, msg.sender);
        RequestStatus status = _load(r);
        if (status != RequestStatus.Fulfilled) revert Router_WrongStatus(r.id, status);
        uint40 settleAfter = uint40(_requests[r.id] >> 8);
        if (block.timestamp >= settleAfter) revert Router_DisputeWindowClosed(r.id, settleAfter);
        uint256 bond = _disputeBond;
        if (msg.value != bond) revert Router_WrongPayment(bond, msg.value);
        // Effects: the arbiter has until `decideBy`; after it the dispute lapses (see settle).
        uint40 decideBy = uint40(block.timestamp) + ARBITRATION_PERIOD;
        _setStatus(r, decideBy, RequestStatus.Disputed);
        if (bond != 0) _disputeBonds[r.id] = bond;
        ++_operators[r.operator].openDisputes;
        emit SynthesisDisputed(r.id, msg.sender, bond, decideBy);
    }

    /// @inheritdoc ISynthesisRouter
    function resolveDispute(SynthesisRequest calldata r, bool upheld) external nonReentrant onlyRole(ARBITER_ROLE) {
        RequestStatus status = _load(r);
        if (status != RequestStatus.Disputed) revert Router_WrongStatus(r.id, status);
        Operator storage op = _operators[r.operator];
        --op.openDisputes;
        uint256 bond = _takeBond(r.id);
        uint256 slashed;
        if (upheld) {
            _setStatus(r, 0, RequestStatus.Reversed);
            slashed = _slashAmount < op.stake ? _slashAmount : op.stake;
            op.stake -= uint128(slashed);
            _credit(r.requester, address(0), slashed + bond);
            if (slashed != 0) emit OperatorSlashed(r.operator, r.id, slashed);
            emit DisputeResolved(r.id, msg.sender, true, slashed);
            _refund(r);
        } else {
            // A rejected dispute's bond goes to the operator whose payout it held up.
            _setStatus(r, 0, RequestStatus.Settled);
            _credit(r.operator, address(0), bond);
            emit DisputeResolved(r.id, msg.sender, false, 0);
            _payOut(r);
        }
    }

    /// @inheritdoc ISynthesisRouter
    function settle(SynthesisRequest[] calldata requests) external nonReentrant returns (uint256 settled) {
        if (requests.length == 0) revert Router_EmptyBatch();
        for (uint256 i; i < requests.length; ++i) {
            SynthesisRequest calldata r = requests[i];
            RequestStatus status = _load(r);
            uint40 settleAfter = uint40(_requests[r.id] >> 8);
            // Anything not ready (settled meanwhile, still in its window) is skipped, so that nobody
            // can make a keeper's whole batch revert by settling one of its items first.
            if (
                (status != RequestStatus.Fulfilled && status != RequestStatus.Disputed) || block.timestamp < settleAfter
            ) {
                emit SettlementSkipped(r.id, status);
                continue;
            }
            if (status == RequestStatus.Disputed) {
                // The arbiter did not decide in ARBITRATION_PERIOD: the dispute lapses, the delivery
                // stands, and the bond goes back to the buyer.
                --_operators[r.operator].openDisputes;
                _credit(r.requester, address(0), _takeBond(r.id));
                emit DisputeLapsed(r.id);
            }
            _setStatus(r, 0, RequestStatus.Settled);
            _payOut(r);
            ++settled;
        }
    }

    // ------------------------------------------------------------------ operators

    /// @inheritdoc ISynthesisRouter
    function registerOperator(bytes calldata publicKey) external payable nonReentrant {
        if (_operators[msg.sender].registered) revert Router_OperatorAlreadyRegistered(msg.sender);
        if (publicKey.length != 64) revert Router_BadPublicKeyLength(publicKey.length);
        address derived = address(uint160(uint256(keccak256(publicKey))));
        if (derived != msg.sender) revert Router_PublicKeyMismatch(derived, msg.sender);
        if (msg.value < _minStake) revert Router_StakeTooLow(msg.value, _minStake);
        _operators[msg.sender] =
            Operator({stake: uint128(msg.value), unbondingEndsAt: 0, openDisputes: 0, registered: true});
        _publicKeys[msg.sender] = [bytes32(publicKey[:32]), bytes32(publicKey[32:])];
        emit OperatorRegistered(msg.sender, msg.value, publicKey);
    }

    /// @inheritdoc ISynthesisRouter
    function addStake() external payable nonReentrant {
        Operator storage op = _registered(msg.sender);
        if (msg.value == 0) revert Router_ZeroAmount();
        op.stake += uint128(msg.value);
        emit StakeAdded(msg.sender, msg.value, op.stake);
    }

    /// @inheritdoc ISynthesisRouter
    function startUnbonding() external {
        Operator storage op = _registered(msg.sender);
        if (op.unbondingEndsAt != 0) revert Router_OperatorUnbonding(msg.sender, op.unbondingEndsAt);
        uint40 endsAt = uint40(block.timestamp + unbondingDelay);
        op.unbondingEndsAt = endsAt;
        emit UnbondingStarted(msg.sender, endsAt);
    }

    /// @inheritdoc ISynthesisRouter
    function withdrawStake() external nonReentrant returns (uint256 amount) {
        Operator storage op = _registered(msg.sender);
        uint40 endsAt = op.unbondingEndsAt;
        if (endsAt == 0) revert Router_OperatorNotUnbonding(msg.sender);
        if (block.timestamp < endsAt) revert Router_StakeLocked(msg.sender, endsAt);
        if (op.openDisputes != 0) revert Router_OpenDisputes(msg.sender, op.openDisputes);
        amount = op.stake;
        // Effects:
        delete _operators[msg.sender];
        delete _publicKeys[msg.sender];
        emit StakeWithdrawn(msg.sender, amount);
        // Interaction:
        _pay(msg.sender, address(0), amount);
    }

    /// @inheritdoc ISynthesisRouter
    function setFee(address asset, uint128 fee) external {
        _registered(msg.sender);
        _fees[msg.sender][asset] = fee;
        emit OperatorFeeSet(msg.sender, asset, fee);
    }

    /// @inheritdoc ISynthesisRouter
    function setOperatorAllowed(uint256 modelId, address operator, bool allowed) external {
        if (_models.ownerOf(modelId) != msg.sender) revert Router_NotModelOwner(modelId, msg.sender);
        uint40 until = _ALWAYS;
        if (!allowed) {
            // A removal takes the retirement notice to take effect: paid-up licences keep the
            // service they were sold with, and requests already made can still be delivered.
            uint40 current = _allowedUntil[modelId][operator];
            until = uint40(block.timestamp) + _models.retirementNotice();
            if (current < until) until = current;
        }
        _allowedUntil[modelId][operator] = until;
        emit ModelOperatorSet(modelId, operator, allowed, until);
    }

    // ------------------------------------------------------------------ administration

    /// @inheritdoc ISynthesisRouter
    function setMinStake(uint256 minStake_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setMinStake(minStake_);
        if (_slashAmount > minStake_) _setSlashAmount(minStake_);
    }

    /// @inheritdoc ISynthesisRouter
    function setSlashAmount(uint256 slashAmount_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setSlashAmount(slashAmount_);
    }

    /// @inheritdoc ISynthesisRouter
    function setDisputeBond(uint256 bond) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (bond > MAX_DISPUTE_BOND) revert Router_DisputeBondTooHigh(bond, MAX_DISPUTE_BOND);
        _disputeBond = bond;
        emit DisputeBondSet(bond);
    }

    /// @inheritdoc ISynthesisRouter
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc ISynthesisRouter
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ------------------------------------------------------------------ views

    /// @inheritdoc ISynthesisRouter
    function requestState(uint256 requestId)
        external
        view
        returns (RequestStatus status, uint40 settleAfter, bytes32 commitment)
    {
        uint256 packed = _requests[requestId];
        return (RequestStatus(uint8(packed)), uint40(packed >> 8), bytes32(packed & _HASH_MASK));
    }

    /// @inheritdoc ISynthesisRouter
    function requestStatus(uint256 requestId) external view returns (RequestStatus) {
        return RequestStatus(uint8(_requests[requestId]));
    }

    /// @inheritdoc ISynthesisRouter
    function hashRequest(SynthesisRequest calldata r) external pure returns (bytes32) {
        return keccak256(abi.encode(r));
    }

    /// @inheritdoc ISynthesisRouter
    function nextRequestId() external view returns (uint256) {
        return _nextRequestId;
    }

    /// @inheritdoc ISynthesisRouter
    function operatorInfo(address operator) external view returns (OperatorInfo memory) {
        Operator memory op = _operators[operator];
        return OperatorInfo(op.stake, op.unbondingEndsAt, op.openDisputes, op.registered);
    }

    /// @inheritdoc ISynthesisRouter
    function operatorPublicKey(address operator) external view returns (bytes memory) {
        if (!_operators[operator].registered) return "";
        bytes32[2] storage xy = _publicKeys[operator];
        return abi.encodePacked(xy[0], xy[1]);
    }

    /// @inheritdoc ISynthesisRouter
    function operatorFee(address operator, address asset) external view returns (uint128) {
        return _fees[operator][asset];
    }

    /// @inheritdoc ISynthesisRouter
    function isOperatorAllowed(uint256 modelId, address operator) external view returns (bool) {
        return _allowedUntil[modelId][operator] == _ALWAYS;
    }

    /// @inheritdoc ISynthesisRouter
    function operatorAllowedUntil(uint256 modelId, address operator) external view returns (uint40) {
        return _allowedUntil[modelId][operator];
    }

    /// @inheritdoc ISynthesisRouter
    function canServe(uint256 modelId, address operator) external view returns (bool) {
        Operator memory op = _operators[operator];
        return op.registered && op.unbondingEndsAt == 0 && op.stake >= _minStake
            && _allowedUntil[modelId][operator] > block.timestamp + MAX_TTL;
    }

    /// @inheritdoc ISynthesisRouter
    function disputeBond() external view returns (uint256) {
        return _disputeBond;
    }

    /// @inheritdoc ISynthesisRouter
    function disputeBondOf(uint256 requestId) external view returns (uint256) {
        return _disputeBonds[requestId];
    }

    /// @inheritdoc ISynthesisRouter
    function minStake() external view returns (uint256) {
        return _minStake;
    }

    /// @inheritdoc ISynthesisRouter
    function slashAmount() external view returns (uint256) {
        return _slashAmount;
    }

    /// @inheritdoc ISynthesisRouter
    function registry() external view returns (address) {
        return address(_models);
    }

    /// @inheritdoc ISynthesisRouter
    function licenseManager() external view returns (address) {
        return address(_licenses);
    }

    // ------------------------------------------------------------------ internal

    function _authorizeTreasurer() internal view override {
        _checkRole(TREASURER_ROLE);
    }

    /// @dev New requests may name only an active operator with enough stake, allowed for the model
    /// until at least the request's deadline.
    function _requireCanServe(uint256 modelId, address operator, uint40 deadline) private view {
        Operator memory op = _operators[operator];
        if (!op.registered) revert Router_OperatorNotRegistered(operator);
        if (op.unbondingEndsAt != 0) revert Router_OperatorUnbonding(operator, op.unbondingEndsAt);
        if (op.stake < _minStake) revert Router_StakeBelowMinimum(operator, op.stake, _minStake);
        if (_allowedUntil[modelId][operator] < deadline) revert Router_OperatorNotAllowed(modelId, operator);
    }

    /// @dev Deliveries need a registered operator with at least the minimum stake (unbonding or not).
    function _requireStaked(address operator) private view {
        Operator memory op = _operators[operator];
        if (!op.registered) revert Router_OperatorNotRegistered(operator);
        if (op.stake < _minStake) revert Router_StakeBelowMinimum(operator, op.stake, _minStake);
    }

    /// @dev The caller is the request's operator and the model is not frozen and still in service.
    /// (The operator was allowed until at least the deadline when the request was made, and a
    /// removal never takes effect sooner: no allowance check is needed here.)
    function _requireDeliverable(SynthesisRequest calldata r) private view {
        if (msg.sender != r.operator) revert Router_NotAssignedOperator(r.id, msg.sender);
        IVoiceModelRegistry.ModelTerms memory t = _models.modelTerms(r.modelId);
        if (t.frozen) revert Router_ModelFrozen(r.modelId);
        if (t.serviceEndsAt != 0 && block.timestamp >= t.serviceEndsAt) {
            revert Router_ServiceEnded(r.modelId, t.serviceEndsAt);
        }
    }

    function _deliver(SynthesisRequest calldata r, bytes32 outputDigest, bytes calldata outputCid) private {
        if (outputCid.length == 0 || outputDigest == 0) revert Router_EmptyOutput();
        uint40 settleAfter = uint40(block.timestamp) + r.disputeWindow;
        if (r.disputeWindow == 0) {
            _setStatus(r, settleAfter, RequestStatus.Settled);
            emit SynthesisFulfilled(r.id, msg.sender, outputDigest, outputCid, settleAfter);
            _payOut(r);
        } else {
            _setStatus(r, settleAfter, RequestStatus.Fulfilled);
            emit SynthesisFulfilled(r.id, msg.sender, outputDigest, outputCid, settleAfter);
        }
    }

    /// @dev Credits a delivered request's escrow: the fee to its operator, the use price to the model.
    function _payOut(SynthesisRequest calldata r) private {
        _credit(r.operator, r.asset, r.fee);
        if (r.usePrice != 0) _accrue(r.modelId, r.asset, r.usePrice, r.platformFeeBps);
        emit SynthesisSettled(r.id, r.operator, r.fee, r.usePrice);
    }

    /// @dev Credits the whole escrow back to the requester and gives the use back.
    function _refund(SynthesisRequest calldata r) private {
        _credit(r.requester, r.asset, uint256(r.usePrice) + r.fee);
        _licenses.restoreUse(r.licenseId, r.useTag);
    }

    /// @dev The status of the request whose id `r` names, after checking `r` against its commitment.
    function _load(SynthesisRequest calldata r) private view returns (RequestStatus) {
        uint256 packed = _requests[r.id];
        if (packed == 0) revert Router_UnknownRequest(r.id);
        if ((packed ^ uint256(keccak256(abi.encode(r)))) & _HASH_MASK != 0) revert Router_CommitmentMismatch(r.id);
        return RequestStatus(uint8(packed));
    }

    function _setStatus(SynthesisRequest calldata r, uint40 settleAfter, RequestStatus status) private {
        _requests[r.id] = (_requests[r.id] & _HASH_MASK) | (uint256(settleAfter) << 8) | uint256(status);
    }

    function _pack(bytes32 commitment, uint40 settleAfter, RequestStatus status) private pure returns (uint256) {
        return (uint256(commitment) & _HASH_MASK) | (uint256(settleAfter) << 8) | uint256(status);
    }

    /// @dev Clears and returns the bond posted with a dispute.
    function _takeBond(uint256 requestId) private returns (uint256 bond) {
        bond = _disputeBonds[requestId];
        if (bond != 0) delete _disputeBonds[requestId];
    }

    function _setMinStake(uint256 minStake_) private {
        if (minStake_ > MAX_MIN_STAKE) revert Router_MinStakeTooHigh(minStake_, MAX_MIN_STAKE);
        _minStake = uint128(minStake_);
        emit MinStakeSet(minStake_);
    }

    /// @dev A slash takes at most the minimum stake: what every operator put up to serve.
    function _setSlashAmount(uint256 slashAmount_) private {
        if (slashAmount_ > _minStake) revert Router_SlashTooHigh(slashAmount_, _minStake);
        _slashAmount = slashAmount_;
        emit SlashAmountSet(slashAmount_);
    }

    function _registered(address operator) private view returns (Operator storage op) {
        op = _operators[operator];
        if (!op.registered) revert Router_OperatorNotRegistered(operator);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IRevenueLedger} from "./IRevenueLedger.sol";

/// @title The synthesis oracle bridge: licensed requests, escrow, staked operators, outcomes
/// @notice A licensed buyer asks a named operator for speech from a voice model. The fee (and,
/// for pay-per-use licences without credit packs, the use price) waits in escrow here. The
/// operator delivers the output's CID and SHA-256 exactly once (`fulfil`), or reports why it
/// cannot (`fail`, full refund); after the deadline anyone can `cancelExpired` (full refund).
/// Delivered requests pay out (operator fee, model revenue, platform fee) at once when the
/// model's dispute window is zero, otherwise after it (`settle`), unless the buyer disputes
/// (posting the dispute bond) and the arbiter upholds the dispute (refund, the bond back, and the
/// operator's stake slashed to the buyer). A rejected dispute's bond goes to the operator; a
/// dispute the arbiter leaves undecided for ARBITRATION_PERIOD lapses (`settle`): the delivery
/// stands and the bond goes back to the buyer.
///
/// Only a commitment to each request is stored (one slot: a 208-bit hash of the
/// `SynthesisRequest`, the status and the settlement time). Everything an operator needs is in
/// `SynthesisRequested`; every later call passes the request back and is checked against the
/// commitment.
///
/// Input: `input` is either 0x00 followed by UTF-8 text (inline, at most MAX_INPUT_BYTES - 1
/// bytes), or a binary CID (CIDv0 `0x12 0x20 <digest>`, CIDv1 `0x01 <codec> 0x12 0x20 <digest>`)
/// of a UTF-8 text file. `inputHash` is the SHA-256 of the UTF-8 text; the operator fails the
/// request with `BadInput` when they disagree.
///
/// Synthesis parameters (`params`, uint128, little fields first; 0 means the engine's default):
///   bits   0..7   language (0 zh, 1 en, 2 ja, 3 ko, 4 yue): must be one of the model's languages
///   bits   8..23  speed x 100 (25..400)
///   bits  24..31  top-k
///   bits  32..39  top-p x 100 (1..100)
///   bits  40..47  temperature x 100
///   bits  48..55  repetition penalty x 100
///   bits  56..87  seed
///   bits  88..111 the shortest dispute window (seconds) the buyer accepts: the request reverts
///                 if the model's window is shorter (its owner cannot cut it under a pending request)
///   bits 112..127 reserved, zero
interface ISynthesisRouter is IRevenueLedger {
    // ------------------------------------------------------------------ types

    /// @notice Where a request stands. Terminal: Settled, Reversed, Failed, Expired.
    enum RequestStatus {
        None, //      0 no such request
        Pending, //   1 escrowed, waiting for its operator (until the deadline)
        Fulfilled, // 2 delivered; the payout waits for the dispute window to close
        Disputed, //  3 delivered and disputed by the buyer; waits for the arbiter
        Settled, //   4 delivered and paid out
        Reversed, //  5 delivered, dispute upheld: buyer refunded, operator slashed
        Failed, //    6 the operator reported a failure: buyer refunded
        Expired //    7 not delivered by the deadline: buyer refunded
    }

    /// @notice Why an operator could not serve a request (`fail`).
    enum FailReason {
        ModelUnavailable, //    0 the operator does not (or can no longer) serve this model
        BundleUnavailable, //   1 the bundle is missing from every store the operator reads
        BundleCorrupt, //       2 the bundle does not match its CID or its SHA-256 (the model id)
        BundleUndecryptable, // 3 the bundle's data key is not wrapped to this operator's key
        InputUnavailable, //    4 the input CID cannot be fetched
        BadInput, //            5 the input is malformed or does not match inputHash / params
        UnsupportedLanguage, // 6 the engine cannot speak the requested language
        TextTooLong, //         7 the text exceeds the operator's limit
        SynthesisError, //      8 the engine failed
        OutputStorageError //   9 the output could not be stored
    }

    /// @notice What the buyer asks for (the argument of `requestSynthesis`).
    struct RequestParams {
        uint256 modelId;
        uint256 licenseId; //  the buyer's licence token (licence manager) for this model
        address operator; //   who is asked to serve it: registered, staked, allowed for the model
        uint128 maxFee; //     the most the buyer pays the operator, in the licence's asset
        uint40 deadline; //    unix time; at most MAX_TTL from now
        uint128 params; //     packed synthesis parameters (see above)
        bytes32 inputHash; //  SHA-256 of the UTF-8 input text
        bytes input; //        inline text (0x00 prefix) or a binary CID; at most MAX_INPUT_BYTES
    }

    /// @notice A request as committed on-chain: emitted in `SynthesisRequested`, passed back to
    /// every later call, and hashed (`hashRequest`) into the stored commitment.
    struct SynthesisRequest {
        uint256 id;
        uint256 modelId;
        uint256 licenseId;
        address requester;
        address operator;
        address asset; //          payment asset of the licence: address(0) is ETH
        uint128 usePrice; //       model revenue escrowed for this use (pay-per-use without packs), else 0
        uint128 fee; //            the operator's fee, fixed at request time
        uint128 params;
        bytes32 inputHash;
        uint40 deadline;
        uint32 disputeWindow; //   seconds after fulfilment during which the buyer may dispute
        uint40 useTag; //          the licence manager's tag of the consumed use (given back on refund)
        uint16 platformFeeBps; //  platform fee on usePrice, fixed at request time
    }

    /// @notice One delivery in `fulfilBatch`.
    struct Fulfilment {
        SynthesisRequest request;
        bytes32 outputDigest; // SHA-256 of the output audio file
        bytes outputCid; //     binary CID of the output audio file
    }

    /// @notice An operator's on-chain record.
    struct OperatorInfo {
        uint128 stake; //           wei, slashable until withdrawn
        uint40 unbondingEndsAt; //  0 while active; else when the stake becomes withdrawable
        uint32 openDisputes; //     disputes on its deliveries awaiting the arbiter
        bool registered;
    }

    // ------------------------------------------------------------------ errors

    error Router_UnknownRequest(uint256 requestId);
    /// @notice The request passed does not hash to the stored commitment of `requestId`.
    error Router_CommitmentMismatch(uint256 requestId);
    /// @notice The request is in `status`, not in the status this call needs.
    error Router_WrongStatus(uint256 requestId, RequestStatus status);
    /// @notice The deadline passed (fulfil, fail): only `cancelExpired` remains.
    error Router_RequestExpired(uint256 requestId, uint40 deadline);
    /// @notice The deadline has not passed yet (cancelExpired).
    error Router_NotExpired(uint256 requestId, uint40 deadline);
    error Router_DeadlineOutOfRange(uint40 deadline, uint256 latest);
    error Router_InputTooLong(uint256 length, uint256 max);
    error Router_EmptyInput();
    error Router_NonZeroReservedParams(uint128 params);
    error Router_LanguageNotSupported(uint256 modelId, uint8 language);
    error Router_FeeAboveMax(uint128 fee, uint128 maxFee);
    /// @notice ETH sent does not cover the escrow (ETH) or ETH sent with an ERC-20 request.
    error Router_WrongPayment(uint256 expected, uint256 sent);
    error Router_NotRequester(uint256 requestId, address caller);
    /// @notice The caller is not the operator the request named.
    error Router_NotAssignedOperator(uint256 requestId, address caller);
    error Router_OperatorNotRegistered(address operator);
    error Router_OperatorAlreadyRegistered(address operator);
    error Router_OperatorUnbonding(address operator, uint40 unbondingEndsAt);
    error Router_OperatorNotUnbonding(address operator);
    /// @notice The operator's stake is below the minimum (after a slash): it must add stake.
    error Router_StakeBelowMinimum(address operator, uint256 stake, uint256 minStake);
    error Router_StakeTooLow(uint256 sent, uint256 minStake);
    error Router_StakeLocked(address operator, uint40 unbondingEndsAt);
    error Router_OpenDisputes(address operator, uint32 openDisputes);
    error Router_OperatorNotAllowed(uint256 modelId, address operator);
    /// @notice The public key is not 64 bytes (uncompressed secp256k1, without the 0x04 prefix).
    error Router_BadPublicKeyLength(uint256 length);
    /// @notice The public key's Ethereum address is not the caller's.
    error Router_PublicKeyMismatch(address derived, address caller);
    error Router_ModelFrozen(uint256 modelId);
    error Router_NotModelOwner(uint256 modelId, address caller);
    error Router_DisputeWindowClosed(uint256 requestId, uint40 settleAfter);
    error Router_DisputeWindowOpen(uint256 requestId, uint40 settleAfter);
    error Router_EmptyOutput();
    error Router_EmptyBatch();
    error Router_ZeroAmount();
    /// @notice The unbonding delay must cover the longest request lifetime plus the longest dispute window.
    error Router_UnbondingDelayTooShort(uint256 delay, uint256 shortest);
    /// @notice The model's dispute window is shorter than the buyer's floor (params bits 88..111).
    error Router_DisputeWindowTooShort(uint24 window, uint24 minWindow);
    /// @notice The model was retired and its notice has run out: the operator can only `fail`.
    error Router_ServiceEnded(uint256 modelId, uint40 serviceEndsAt);
    error Router_DisputeBondTooHigh(uint256 bond, uint256 max);
    error Router_MinStakeTooHigh(uint256 minStake, uint256 max);
    /// @notice A slash may take at most the minimum stake.
    error Router_SlashTooHigh(uint256 slashAmount, uint256 minStake);

    // ------------------------------------------------------------------ events

    /// @notice A buyer asked for speech. Everything an operator needs: the committed request
    /// (pass it back unchanged to fulfil / fail) and where to read the input.
    event SynthesisRequested(
        uint256 indexed requestId,
        uint256 indexed modelId,
        address indexed requester,
        SynthesisRequest request,
        bytes input
    );

    /// @notice The operator delivered. `settleAfter` is when the payout can be settled (the
    /// fulfilment time itself when the model's dispute window is zero: already paid out).
    event SynthesisFulfilled(
        uint256 indexed requestId,
        address indexed operator,
        bytes32 outputDigest,
        bytes outputCid,
        uint40 settleAfter
    );

    /// @notice A request in a batch was not pending any more (or past its deadline) and was skipped.
    event FulfilmentSkipped(uint256 indexed requestId, RequestStatus status);

    /// @notice The operator reported a failure; the buyer was refunded and the use given back.
    event SynthesisFailed(uint256 indexed requestId, address indexed operator, FailReason reason);

    /// @notice The deadline passed undelivered; the buyer was refunded and the use given back.
    event SynthesisExpired(uint256 indexed requestId, address indexed caller);

    /// @notice A delivered request was paid out: operator fee and model revenue credited.
    event SynthesisSettled(uint256 indexed requestId, address indexed operator, uint256 fee, uint256 usePrice);

    /// @notice The buyer disputed a delivery, posting `bond` wei; the arbiter has until `decideBy`.
    event SynthesisDisputed(uint256 indexed requestId, address indexed requester, uint256 bond, uint40 decideBy);

    /// @notice The arbiter left a dispute undecided past its `decideBy`: it lapsed, the delivery
    /// was settled and the bond credited back to the buyer.
    event DisputeLapsed(uint256 indexed requestId);

    /// @notice A request in a `settle` batch was not ready (not delivered, already settled, or
    /// still in its window) and was skipped.
    event SettlementSkipped(uint256 indexed requestId, RequestStatus status);

    /// @notice The arbiter resolved a dispute. Upheld: the buyer was refunded and `slashed` wei of
    /// the operator's stake credited to the buyer. Rejected: the request was settled.
    event DisputeResolved(uint256 indexed requestId, address indexed arbiter, bool upheld, uint256 slashed);

    /// @notice An operator registered. `publicKey` is its 64-byte uncompressed secp256k1 key, to
    /// which creators wrap bundle data keys.
    event OperatorRegistered(address indexed operator, uint256 stake, bytes publicKey);

    event StakeAdded(address indexed operator, uint256 amount, uint256 stake);
    event UnbondingStarted(address indexed operator, uint40 unbondingEndsAt);
    event StakeWithdrawn(address indexed operator, uint256 amount);
    event OperatorSlashed(address indexed operator, uint256 indexed requestId, uint256 amount);
    event OperatorFeeSet(address indexed operator, address indexed asset, uint128 fee);

    /// @notice The model's owner allowed or disallowed an operator to serve the model. A
    /// disallowed operator may still be named in requests whose deadline is by `allowedUntil`.
    event ModelOperatorSet(uint256 indexed modelId, address indexed operator, bool allowed, uint40 allowedUntil);

    event MinStakeSet(uint256 minStake);
    event SlashAmountSet(uint256 slashAmount);
    event DisputeBondSet(uint256 bond);

    // ------------------------------------------------------------------ requests

    /// @notice Asks `p.operator` to synthesise `p.input` with model `p.modelId` under licence
    /// `p.licenseId`. Consumes one use of the licence (a credit, a subscription's quota or a
    /// buyout use) and escrows `usePrice + fee` in the licence's asset: ETH as msg.value (any
    /// excess is credited back to the caller), an ERC-20 by transferFrom (approve first).
    /// Reverts while paused.
    /// @return requestId The new request's id (sequential from 1).
    function requestSynthesis(RequestParams calldata p) external payable returns (uint256 requestId);

    /// @notice The assigned operator delivers `outputCid` / `outputDigest`, at most once, by the
    /// deadline, while the model is neither frozen nor past the end of its service. Pays out at
    /// once when the dispute window is zero. Works while paused.
    function fulfil(SynthesisRequest calldata request, bytes32 outputDigest, bytes calldata outputCid) external;

    /// @notice Several deliveries by the calling operator in one transaction. Requests that are
    /// no longer pending or are past their deadline are skipped (`FulfilmentSkipped`); anything
    /// else invalid reverts the whole batch, with the same errors as `fulfil`.
    /// @return fulfilled How many were delivered.
    function fulfilBatch(Fulfilment[] calldata items) external returns (uint256 fulfilled);

    /// @notice The assigned operator reports that it cannot serve the request, before the
    /// deadline: full refund to the buyer (credited), the use given back.
    function fail(SynthesisRequest calldata request, FailReason reason) external;

    /// @notice After the deadline, anyone cancels an undelivered request: full refund to the
    /// buyer (credited), the use given back. Works while paused.
    function cancelExpired(SynthesisRequest calldata request) external;

    /// @notice The buyer disputes a delivery while its dispute window is open, sending exactly
    /// `disputeBond()` wei as the bond. The arbiter then has ARBITRATION_PERIOD to decide.
    function dispute(SynthesisRequest calldata request) external payable;

    /// @notice The arbiter resolves a dispute. Upheld: refund, use given back, the bond and
    /// min(slashAmount, stake) of the operator's stake credited to the buyer. Rejected: settled,
    /// the bond credited to the operator.
    function resolveDispute(SynthesisRequest calldata request, bool upheld) external;

    /// @notice Anyone settles delivered requests whose dispute window has closed, and disputes the
    /// arbiter left undecided past ARBITRATION_PERIOD (they lapse: settled, bond back to the
    /// buyer). Items not ready are skipped (`SettlementSkipped`), never reverting the batch.
    /// @return settled How many were settled.
    function settle(SynthesisRequest[] calldata requests) external returns (uint256 settled);

    // ------------------------------------------------------------------ operators

    /// @notice Registers the caller as an operator with `msg.value` (at least minStake) as stake.
    /// @param publicKey 64-byte uncompressed secp256k1 public key (x || y) of the caller's account.
    function registerOperator(bytes calldata publicKey) external payable;

    /// @notice Adds `msg.value` to the caller's stake (e.g. after a slash).
    function addStake() external payable;

    /// @notice Starts the caller's unbonding: no new requests may name it; it still delivers or
    /// fails what it was assigned; its stake is withdrawable after `unbondingDelay`.
    function startUnbonding() external;

    /// @notice Pays the caller's whole stake back after unbonding, with no dispute open, and
    /// removes its registration.
    function withdrawStake() external returns (uint256 amount);

    /// @notice The caller's fee per request in `asset` (default 0). Requests record the fee.
    function setFee(address asset, uint128 fee) external;

    /// @notice The model's owner allows `operator` to serve `modelId`, or stops allowing it: a
    /// removal takes effect after the registry's retirement notice (requests may name the
    /// operator while their deadline falls before that), so that the owner cannot cut off the
    /// service that paid-up licences were sold with.
    function setOperatorAllowed(uint256 modelId, address operator, bool allowed) external;

    // ------------------------------------------------------------------ administration

    /// @notice Admin: the minimum stake, at most MAX_MIN_STAKE (the slash amount follows it down).
    function setMinStake(uint256 minStake) external;

    /// @notice Admin: what an upheld dispute takes from the operator's stake, at most minStake.
    function setSlashAmount(uint256 slashAmount) external;

    /// @notice Admin: the bond a buyer posts with a dispute (ETH), at most MAX_DISPUTE_BOND. A
    /// dispute keeps the bond it was opened with.
    function setDisputeBond(uint256 bond) external;

    function pause() external;

    function unpause() external;

    // ------------------------------------------------------------------ views

    /// @notice The status, settlement time (fulfilled requests) and stored commitment of a request.
    function requestState(uint256 requestId)
        external
        view
        returns (RequestStatus status, uint40 settleAfter, bytes32 commitment);

    /// @notice The status of a request (None if unknown).
    function requestStatus(uint256 requestId) external view returns (RequestStatus);

    /// @notice The commitment of a request: keccak256(abi.encode(request)), of which the upper
    /// 208 bits are stored.
    function hashRequest(SynthesisRequest calldata request) external pure returns (bytes32);

    /// @notice The id the next request will get.
    function nextRequestId() external view returns (uint256);

    function operatorInfo(address operator) external view returns (OperatorInfo memory);

    /// @notice The 64-byte public key an operator registered with (empty if none).
    function operatorPublicKey(address operator) external view returns (bytes memory);

    function operatorFee(address operator, address asset) external view returns (uint128);

    /// @notice Whether the model's owner allows `operator` (false from the moment of a removal,
    /// although requests may still name it until `operatorAllowedUntil`).
    function isOperatorAllowed(uint256 modelId, address operator) external view returns (bool);

    /// @notice The latest deadline a request naming `operator` for `modelId` may have
    /// (type(uint40).max while allowed; 0 if never allowed).
    function operatorAllowedUntil(uint256 modelId, address operator) external view returns (uint40);

    /// @notice Whether `operator` can be named in a new request for `modelId` now (with a deadline
    /// up to MAX_TTL away): registered, not unbonding, stake at least minStake, allowed.
    function canServe(uint256 modelId, address operator) external view returns (bool);

    /// @notice The bond a new dispute must post (wei).
    function disputeBond() external view returns (uint256);

    /// @notice The bond held for a disputed request (0 once resolved, or if none).
    function disputeBondOf(uint256 requestId) external view returns (uint256);

    /// @notice How long the arbiter has to decide a dispute before it lapses (7 days).
    function ARBITRATION_PERIOD() external view returns (uint40);

    /// @notice The highest dispute bond the admin may set (1 ether).
    function MAX_DISPUTE_BOND() external view returns (uint256);

    /// @notice The highest minimum stake the admin may set (1,000 ether).
    function MAX_MIN_STAKE() external view returns (uint256);

    /// @notice Longest inline input or CID accepted, in bytes (512).
    function MAX_INPUT_BYTES() external view returns (uint256);

    /// @notice Latest deadline a request may set, in seconds from now (1 day).
    function MAX_TTL() external view returns (uint256);

    function minStake() external view returns (uint256);

    function slashAmount() external view returns (uint256);

    function unbondingDelay() external view returns (uint256);

    function registry() external view returns (address);

    function licenseManager() external view returns (address);
}

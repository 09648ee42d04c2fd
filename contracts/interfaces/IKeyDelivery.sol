// SPDX-License-Identifier: MIT
pragma solidity ^0.8.27;

import {IRevenueLedger} from "./IRevenueLedger.sol";

/// @title Local-use licences: the model's data key delivered to a licence holder, paid through escrow
/// @notice A model's owner adds a local-use option, with its own price, to a buyout or subscription
/// offer that is not transferable. A holder of a licence from that offer buys local use for it
/// once, naming the secp256k1 public key (64 bytes, x || y) that the bundle's data key is to be
/// wrapped to; the payment waits here in escrow. The model's key holder (its current owner, or
/// the account that owner named) wraps the data key to that public key, stores the wrapped key
/// under a content id and records the delivery (licence, wrapped key; the contract computes its
/// CID) exactly once, before the deadline (`DELIVERY_WINDOW` after the purchase). Without a
/// delivery by the deadline anyone may refund the buyer (also while the licence manager is
/// paused). A delivered key cannot be taken back.
///
/// Disputes: the payment stays in escrow for `DISPUTE_WINDOW` after the delivery. The wrapped key
/// is `0x01 || E || c` (66 bytes): E the compressed ephemeral public key, c the data key XOR
/// keccak256(abi.encode(address(b·E), licenseId, chainid, this)), where b is the licence key (the
/// private key of the public key given at purchase: one per licence). The option commits to the
/// data key's id (`bytes16(sha256("voicemarket/sealing/key-id/v1" || key))`, the id in the sealed
/// bundle's header). Within the window the buyer may reveal b (`disputeDelivery`): the contract
/// unwraps the key itself (two ecrecovers) and, if its id is not the committed one, the delivery
/// is disproved and the buyer refunded; a key that opens is never disproved. After the window
/// anyone settles: the payment accrues to the model's revenue pot, split as every other payment.
///
/// The licence holder's devices may sign EIP-712 usage reports (licence, period, sentences,
/// seconds of audio) that anyone submits in batches: they are self-reported, kept as events only,
/// and each licence's periods must follow one another.
///
/// This contract keeps its own revenue ledger (`IRevenueLedger`): the parties withdraw local-use
/// revenue and refunds here. Platform fees are withdrawn by the licence manager's treasurer role.
interface IKeyDelivery is IRevenueLedger {
    // ------------------------------------------------------------------ types

    enum Status {
        None,
        Pending, //    paid, waiting for the key
        Delivered, //  the key was recorded; the payment went to the model's pot
        Refunded, //   no key by the deadline; the payment was credited back to the buyer
        Settled, //    the dispute window passed; the payment went to the model's pot
        Disproved //   the buyer proved the wrapped key does not open; the payment was credited back
    }

    /// @notice The local-use option of an offer (set once by the model's owner; only `active` changes).
    struct LocalUseOption {
        uint256 modelId;
        address asset; //    the offer's asset
        bool active;
        uint128 price; //    in `asset`, paid once per licence
        bytes16 keyId; //    the data key's id (the sealed bundle's header): what a delivery must open
    }

    /// @notice A licence's local-use purchase.
    struct LocalUse {
        address buyer; //            the licence holder who paid (licences with local use never move)
        uint40 deadline; //          Pending: deliver before, refund from it; Delivered: dispute before, settle from it
        uint16 platformFeeBps; //    the platform fee in force when it was bought
        Status status;
        uint128 amount; //           what the buyer paid
        uint64 offerId;
        uint40 reportedUntil; //     end of the last usage period reported
        bytes32 keyDigest; //        SHA2-256 of the wrapped key (its CID: CIDv1, raw)
        address keyAddress; //       the address of the purchase's public key (checks a revealed licence key)
    }

    /// @notice One device's signed account of a licence's use over [periodStart, periodEnd).
    struct UsageReport {
        uint256 licenseId;
        uint40 periodStart;
        uint40 periodEnd;
        uint32 sentences;
        uint32 audioSeconds;
    }

    // ------------------------------------------------------------------ errors

    error KeyDelivery_NotModelOwner(uint256 modelId, address caller);
    /// @notice Local use is offered only on buyout and subscription offers that are not transferable.
    error KeyDelivery_OfferNotEligible(uint256 offerId);
    error KeyDelivery_OfferInactive(uint256 offerId);
    /// @notice An offer's local-use option is set once (a new price is a new offer).
    error KeyDelivery_OptionExists(uint256 offerId);
    error KeyDelivery_NoOption(uint256 offerId);
    error KeyDelivery_OptionClosed(uint256 offerId);
    error KeyDelivery_ModelFrozen(uint256 modelId);
    error KeyDelivery_ModelRetired(uint256 modelId, uint40 serviceEndsAt);
    /// @notice The retired model's notice is over: no key goes out any more.
    error KeyDelivery_ServiceEnded(uint256 modelId, uint40 serviceEndsAt);
    error KeyDelivery_Paused();
    error KeyDelivery_AssetNotAllowed(address asset);
    /// @notice The caller does not hold a licence that works now.
    error KeyDelivery_NotLicensed(uint256 licenseId, address account);
    error KeyDelivery_AlreadyBought(uint256 licenseId);
    error KeyDelivery_BadPublicKey(uint256 length);
    error KeyDelivery_PriceAboveMax(uint256 price, uint256 maxPrice);
    /// @notice ETH sent must equal the price exactly (and be 0 for an ERC-20 option).
    error KeyDelivery_WrongPayment(uint256 expected, uint256 sent);
    error KeyDelivery_NotKeyHolder(uint256 modelId, address caller);
    error KeyDelivery_NotPending(uint256 licenseId, Status status);
    /// @notice The delivery deadline has passed: the buyer is owed a refund.
    error KeyDelivery_DeadlinePassed(uint256 licenseId, uint40 deadline);
    error KeyDelivery_DeadlineNotReached(uint256 licenseId, uint40 deadline);
    /// @notice A wrapped key is 66 bytes: 0x01, a compressed point (0x02/0x03 || x), the masked key.
    error KeyDelivery_BadWrappedKey(uint256 length);
    error KeyDelivery_NotDelivered(uint256 licenseId);
    /// @notice Disputes end, and settling starts, `DISPUTE_WINDOW` after the delivery.
    error KeyDelivery_DisputeWindowOver(uint256 licenseId, uint40 disputeEnd);
    error KeyDelivery_DisputeWindowOpen(uint256 licenseId, uint40 disputeEnd);
    /// @notice The bytes given are not the wrapped key recorded for the licence.
    error KeyDelivery_NotTheDeliveredKey(uint256 licenseId);
    /// @notice The revealed licence key is not the private key of the public key given at purchase.
    error KeyDelivery_WrongLicenseKey(uint256 licenseId);
    /// @notice The delivered key unwraps to the committed key id: the delivery stands.
    error KeyDelivery_KeyOpens(uint256 licenseId);
    /// @notice A usage report's period is empty, in the future, or starts before the last one ended.
    error KeyDelivery_BadPeriod(uint256 licenseId, uint40 periodStart, uint40 periodEnd, uint40 reportedUntil);
    error KeyDelivery_BadSignature(uint256 index);
    error KeyDelivery_LengthMismatch(uint256 reports, uint256 signatures);

    // ------------------------------------------------------------------ events

    event LocalUseOffered(
        uint256 indexed offerId,
        uint256 indexed modelId,
        address asset,
        uint256 price,
        bytes16 keyId
    );
    event LocalUseClosed(uint256 indexed offerId);
    /// @notice The model's owner named `holder` to deliver keys (address(0): the owner alone).
    event KeyHolderSet(uint256 indexed modelId, address indexed holder, address indexed namedBy);
    /// @notice Local use was bought for `licenseId`: wrap the model's data key to `publicKey`.
    event LocalUsePurchased(
        uint256 indexed licenseId,
        uint256 indexed modelId,
        address indexed buyer,
        uint256 offerId,
        bytes publicKey,
        uint256 amount,
        uint40 deadline
    );
    /// @notice The wrapped key of `licenseId` (`wrappedKey`, also stored under `keyCid`: binary CIDv1, raw).
    event KeyDelivered(
        uint256 indexed licenseId,
        uint256 indexed modelId,
        address indexed keyHolder,
        bytes keyCid,
        bytes wrappedKey
    );
    event LocalUseRefunded(uint256 indexed licenseId, address indexed buyer, uint256 amount);
    /// @notice The dispute window passed: `amount` accrued to the model's pot.
    event LocalUseSettled(uint256 indexed licenseId, uint256 indexed modelId, uint256 amount);
    /// @notice The buyer proved that the delivered key does not open the model: `amount` credited back.
    event DeliveryDisproved(uint256 indexed licenseId, address indexed buyer, uint256 amount);
    /// @notice A usage report signed by the licence's buyer (self-reported).
    event UsageReported(
        uint256 indexed licenseId,
        uint40 periodStart,
        uint40 periodEnd,
        uint32 sentences,
        uint32 audioSeconds
    );

    // ------------------------------------------------------------------ functions

    /// @notice The model's owner adds a local-use option at `price` (in the offer's asset) to an
    /// active, non-transferable buyout or subscription offer of a model that sells now. Once.
    /// `keyId` is the id of the data key deliveries must open (the sealed bundle's header holds it).
    function offerLocalUse(uint256 offerId, uint128 price, bytes16 keyId) external;

    /// @notice The model's owner, or the licence manager's admin: the option sells no more.
    /// Purchases already made are delivered or refunded as before.
    function closeLocalUse(uint256 offerId) external;

    /// @notice The model's owner names the account that may deliver keys besides itself (a
    /// recipient of the model's keyring, e.g. an operator); address(0) clears it. The naming
    /// lapses when the model token changes hands.
    function setKeyHolder(uint256 modelId, address holder) external;

    /// @notice The holder of licence `licenseId` (working now) buys its local use, paying the
    /// option's price (at most `maxPrice`) into escrow: ETH with the call, or an ERC-20 approved to
    /// this contract. `publicKey` is the 64-byte key the data key is wrapped to. Not while the
    /// licence manager is paused, nor for a frozen or retired model. Returns the deadline.
    function buyLocalUse(uint256 licenseId, bytes calldata publicKey, uint256 maxPrice)
        external
        payable
        returns (uint40 deadline);

    /// @notice The model's key holder records the wrapped key of `licenseId` (66 bytes, see above;
    /// its CID is raw SHA2-256). Once, before the deadline, not while the model is frozen nor after
    /// its service ended. Works while paused. The payment stays in escrow for `DISPUTE_WINDOW`.
    function recordDelivery(uint256 licenseId, bytes calldata wrappedKey) external;

    /// @notice Within `DISPUTE_WINDOW` of the delivery, anyone holding the licence key (the private
    /// key of the purchase's public key: reveal it only for a key that does not open) proves that
    /// `wrappedKey`, the recorded one, unwraps to a key whose id is not the option's: the payment
    /// is credited back to the buyer. Reverts with `KeyDelivery_KeyOpens` for a good key.
    function disputeDelivery(uint256 licenseId, bytes calldata wrappedKey, uint256 licenseKey) external;

    /// @notice Anyone, from the end of the dispute window: the payment accrues to the model's pot.
    /// Works while paused or frozen.
    function settle(uint256 licenseId) external;

    /// @notice Anyone, from the deadline on, while no delivery was recorded: the payment is
    /// credited back to the buyer (withdraw it here). Works while paused.
    function refund(uint256 licenseId) external;

    /// @notice Anyone submits usage reports, each signed (EIP-712, or ERC-1271 for a contract
    /// wallet) by the buyer of a delivered (or settled) licence; a licence's periods must follow one another
    /// and end no later than now. The whole batch reverts on one bad report.
    function reportUsage(UsageReport[] calldata reports, bytes[] calldata signatures) external;

    // ------------------------------------------------------------------ views

    function localUseOption(uint256 offerId) external view returns (LocalUseOption memory);

    function localUse(uint256 licenseId) external view returns (LocalUse memory);

    /// @notice The binary CIDv1 of the delivered wrapped key (empty if none was delivered).
    function keyCid(uint256 licenseId) external view returns (bytes memory);

    /// @notice May `account` record deliveries for `modelId` (its owner, or the holder it named)?
    function isKeyHolder(uint256 modelId, address account) external view returns (bool);

    /// @notice The account the model's current owner named (address(0) if none, or if named by a former owner).
    function keyHolderOf(uint256 modelId) external view returns (address);

    /// @notice The EIP-712 digest a buyer's device signs for `report`.
    function usageReportDigest(UsageReport calldata report) external view returns (bytes32);

    /// @notice How long after a purchase a delivery may be recorded: 1 day (no longer than the
    /// shortest retirement notice, so a retirement never stops a delivery already paid for).
    function DELIVERY_WINDOW() external view returns (uint256);

    /// @notice How long after a delivery the buyer may dispute it, and the payment waits: 2 days.
    function DISPUTE_WINDOW() external view returns (uint256);

    function licenses() external view returns (address);

    function registry() external view returns (address);
}

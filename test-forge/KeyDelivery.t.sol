// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest, Vm, console} from "./utils/Vm.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";
import {KeyDelivery} from "../contracts/KeyDelivery.sol";
import {IKeyDelivery} from "../contracts/interfaces/IKeyDelivery.sol";
import {ILicenseManager} from "../contracts/interfaces/ILicenseManager.sol";

/// @notice A model (voice owner 25%, co-creator 10%) with a non-transferable ETH buyout offering
/// local use, and its KeyDelivery.
abstract contract LocalUseFixture is MarketFixture {
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    /// @dev The licence key every buyer of these suites buys with (`buyBoth`), and the model's data key.
    uint256 internal constant LICENSE_KEY = 0xB0B5EC2E7;
    bytes32 internal constant DATA_KEY = keccak256("the model's data key");

    KeyDelivery internal kd;
    uint256 internal modelId;
    uint256 internal offerId;

    function deployLocalUse(uint128 licencePrice, uint128 localPrice, uint16 feeBps) internal {
        deployMarket(feeBps);
        kd = new KeyDelivery(licenses);
        modelId = registerModel(keccak256(abi.encode("local use", localPrice, feeBps)), 2_500, 1_000, 0);
        ILicenseManager.OfferTerms memory t = terms(modelId, ILicenseManager.Tier.Buyout, address(0), licencePrice, 0);
        t.transferable = false;
        vm.startPrank(creator);
        offerId = offers.publishOffer(t, "");
        kd.offerLocalUse(offerId, localPrice, keyIdOf(DATA_KEY));
        vm.stopPrank();
    }

    function buyBoth(address buyer, uint128 licencePrice, uint128 localPrice) internal returns (uint256 licenseId) {
        vm.deal(buyer, uint256(licencePrice) + localPrice);
        vm.startPrank(buyer);
        licenseId = licenses.buy{value: licencePrice}(offerId, licencePrice, 1);
        Vm.Wallet memory key = vm.createWallet(LICENSE_KEY);
        kd.buyLocalUse{value: localPrice}(licenseId, abi.encodePacked(key.publicKeyX, key.publicKeyY), localPrice);
        vm.stopPrank();
    }

    function keyIdOf(bytes32 dataKey) internal pure returns (bytes16) {
        return bytes16(sha256(abi.encodePacked("voicemarket/sealing/key-id/v1", dataKey)));
    }

    /// @dev `dataKey` wrapped as the key service does, to the public key of `licenseKey`, with the
    /// ephemeral key `ephemeral`: 0x01 | E compressed | dataKey ^ keccak(address(e·B), licence, chain, kd).
    function wrap(uint256 licenseId, bytes32 dataKey, uint256 licenseKey, uint256 ephemeral)
        internal
        returns (bytes memory)
    {
        Vm.Wallet memory e = vm.createWallet(ephemeral);
        Vm.Wallet memory b = vm.createWallet(licenseKey);
        // address(e·B) by ecrecover (the contract's own trick), the same point as b·E.
        address shared = ecrecover(
            bytes32(0),
            uint8(27 + (b.publicKeyY & 1)),
            bytes32(b.publicKeyX),
            bytes32(mulmod(b.publicKeyX, ephemeral, N))
        );
        bytes32 mask = keccak256(abi.encode(shared, licenseId, block.chainid, address(kd)));
        return abi.encodePacked(uint8(1), uint8(2 + (e.publicKeyY & 1)), bytes32(e.publicKeyX), dataKey ^ mask);
    }
}

contract KeyDeliveryFuzzTest is LocalUseFixture {
    /// Any price and platform fee: a delivery, once settled, splits exactly what was escrowed; a
    /// refund returns it exactly; either way the contract ends holding nothing once every credit is withdrawn.
    function testFuzz_deliveryOrRefundMovesExactlyThePrice(uint96 price, uint16 feeBps, bool delivered) public {
        feeBps = uint16(bound(feeBps, 0, 2_000));
        deployLocalUse(1e15, price, feeBps);
        address buyer = address(0xB0B);
        uint256 licenseId = buyBoth(buyer, 1e15, price);
        assertEq(address(kd).balance, price, "escrowed");
        if (delivered) {
            bytes memory wrapped = wrap(licenseId, DATA_KEY, LICENSE_KEY, 7); // before the prank: wrap calls vm
            vm.prank(creator);
            kd.recordDelivery(licenseId, wrapped);
            vm.warp(block.timestamp + kd.DISPUTE_WINDOW());
            kd.settle(licenseId);
            if (price != 0) kd.distribute(modelId, address(0));
            uint256 fee = uint256(price) * feeBps / 10_000;
            uint256 share = price - fee;
            uint256 toVoice = share * 2_500 / 10_000;
            uint256 toCo = share * 1_000 / 10_000;
            assertEq(kd.platformBalance(address(0)), fee, "platform");
            assertEq(kd.creditOf(voice, address(0)), toVoice, "voice owner");
            assertEq(kd.creditOf(coCreator, address(0)), toCo, "co-creator");
            assertEq(kd.creditOf(creator, address(0)), share - toVoice - toCo, "creator: the rest");
        } else {
            vm.warp(block.timestamp + kd.DELIVERY_WINDOW());
            kd.refund(licenseId);
            assertEq(kd.creditOf(buyer, address(0)), price, "the buyer, exactly");
        }
        assertEq(address(kd).balance, price, "still held until withdrawn");
    }
}

contract KeyDeliveryDisputeTest is LocalUseFixture {
    /// Whatever the keys: a delivery of the committed key, wrapped to the purchase's public key, is
    /// never disproved (KeyOpens); a delivery of any other key, or of the right key wrapped to another
    /// public key, always is, and only with the licence key the purchase named.
    function testFuzz_aDisputeDisprovesExactlyTheKeysThatDoNotOpen(uint256 ephemeral, bytes32 other, uint256 stranger)
        public
    {
        ephemeral = bound(ephemeral, 1, N - 1);
        stranger = bound(stranger, 1, N - 1);
        vm.assume(other != DATA_KEY && stranger != LICENSE_KEY);
        deployLocalUse(1e15, 3e15, 1_000);
        address buyer = address(0xB0B);
        uint256 good = buyBoth(buyer, 1e15, 3e15);
        uint256 wrong = buyBoth(buyer, 1e15, 3e15);
        uint256 misaddressed = buyBoth(buyer, 1e15, 3e15);
        bytes memory goodKey = wrap(good, DATA_KEY, LICENSE_KEY, ephemeral);
        bytes memory wrongKey = wrap(wrong, other, LICENSE_KEY, ephemeral);
        bytes memory misaddressedKey = wrap(misaddressed, DATA_KEY, stranger, ephemeral);
        vm.startPrank(creator);
        kd.recordDelivery(good, goodKey);
        kd.recordDelivery(wrong, wrongKey);
        kd.recordDelivery(misaddressed, misaddressedKey);
        vm.stopPrank();

        vm.expectRevert(abi.encodeWithSelector(IKeyDelivery.KeyDelivery_KeyOpens.selector, good));
        kd.disputeDelivery(good, goodKey, LICENSE_KEY);
        vm.expectRevert(abi.encodeWithSelector(IKeyDelivery.KeyDelivery_WrongLicenseKey.selector, wrong));
        kd.disputeDelivery(wrong, wrongKey, stranger);
        kd.disputeDelivery(wrong, wrongKey, LICENSE_KEY);
        kd.disputeDelivery(misaddressed, misaddressedKey, LICENSE_KEY);
        assertEq(kd.creditOf(buyer, address(0)), 6e15, "both bad deliveries refunded");
        assertTrue(kd.localUse(good).status == IKeyDelivery.Status.Delivered, "the good one stands");
    }
}

/// @notice Random local-use purchases, deliveries (sometimes late: skipped), refunds and settlements
/// (the clock first moved to when they are due), time, distributions and withdrawals by three buyers. Every call must succeed
/// (fail_on_revert); the handler mirrors escrow and money in and out.
contract LocalUseHandler is LocalUseFixture {
    uint128 internal constant LICENCE = 1e15;
    uint128 internal constant LOCAL = 3e15;
    uint256 public constant ACTIONS = 7;
    uint256[] internal pending;
    uint256[] internal delivered;
    uint256 public ghostEscrow;
    uint256 public ghostIn;
    uint256 public ghostOut;
    uint256[ACTIONS] public calls;
    address[5] internal payees;
    /// @dev The handler's clock: every action starts at it (block time is not kept between calls).
    uint256 internal clock;

    constructor() {
        deployLocalUse(LICENCE, LOCAL, 2_000);
        payees = [address(0xB1), address(0xB2), creator, voice, coCreator];
        clock = block.timestamp;
    }

    modifier atClock() {
        vm.warp(clock);
        _;
    }

    function buy(uint256 who) external atClock {
        pending.push(buyBoth(payees[who % 2], LICENCE, LOCAL));
        ghostEscrow += LOCAL;
        ghostIn += LOCAL;
        ++calls[0];
    }

    function deliver(uint256 index) external atClock {
        if (pending.length == 0) return;
        uint256 licenseId = _take(index, false);
        if (licenseId == 0) return;
        vm.prank(creator);
        kd.recordDelivery(licenseId, abi.encodePacked(uint16(0x0102), keccak256(abi.encode(licenseId)), bytes32(0)));
        delivered.push(licenseId);
        ++calls[1];
    }

    /// @dev Settles a delivered licence, first moving the clock to the end of its dispute window.
    function settle(uint256 index) external {
        if (delivered.length == 0) return;
        kd.settle(_takeWhenDue(delivered, index));
        ghostEscrow -= LOCAL;
        ++calls[6];
    }

    /// @dev Refunds a pending licence, first moving the clock to its delivery deadline if need be.
    function refund(uint256 index) external {
        if (pending.length == 0) return;
        kd.refund(_takeWhenDue(pending, index));
        ghostEscrow -= LOCAL;
        ++calls[2];
    }

    /// @dev Removes a licence from `list` and moves the clock to its deadline (delivery or dispute) if later.
    function _takeWhenDue(uint256[] storage list, uint256 index) internal returns (uint256 licenseId) {
        uint256 i = index % list.length;
        licenseId = list[i];
        list[i] = list[list.length - 1];
        list.pop();
        uint256 due = kd.localUse(licenseId).deadline;
        if (clock < due) clock = due;
        vm.warp(clock);
    }

    function warp(uint32 seconds_) external {
        clock += bound(seconds_, 1 hours, 2 days);
        ++calls[3];
    }

    function distribute() external {
        (uint256 share, uint256 fee) = kd.potOf(modelId, address(0));
        if (share + fee == 0) return;
        kd.distribute(modelId, address(0));
        ++calls[4];
    }

    function withdraw(uint256 who) external {
        address payee = payees[who % payees.length];
        uint256 credit = kd.creditOf(payee, address(0));
        if (credit == 0) return;
        vm.prank(payee);
        kd.withdraw(address(0));
        ghostOut += credit;
        ++calls[5];
    }

    /// @dev A pending licence whose deadline has (`due`) or has not passed; 0 if none.
    function _take(uint256 index, bool due) internal returns (uint256) {
        for (uint256 k; k < pending.length; ++k) {
            uint256 i = (index % pending.length + k) % pending.length;
            uint256 licenseId = pending[i];
            if ((block.timestamp >= kd.localUse(licenseId).deadline) == due) {
                pending[i] = pending[pending.length - 1];
                pending.pop();
                return licenseId;
            }
        }
        return 0;
    }

    function owed() external view returns (uint256 total) {
        (uint256 share, uint256 fee) = kd.potOf(modelId, address(0));
        total = share + fee + kd.platformBalance(address(0));
        for (uint256 i; i < payees.length; ++i) {
            total += kd.creditOf(payees[i], address(0));
        }
    }

    function keyDelivery() external view returns (KeyDelivery) {
        return kd;
    }

    function actionName(uint256 a) external pure returns (string memory) {
        return ["buy", "deliver", "refund", "warp", "distribute", "withdraw", "settle"][a];
    }
}

/// @notice Conservation after every call: KeyDelivery holds what came in less what went out, which
/// is exactly the escrow (pending and delivered, unsettled) plus credits, the pot and the platform's balance.
contract KeyDeliveryInvariantTest is ForgeTest {
    LocalUseHandler internal handler;

    function setUp() public {
        handler = new LocalUseHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// forge-config: default.invariant.runs = 8
    /// forge-config: default.invariant.depth = 100
    /// forge-config: audit.invariant.runs = 256
    /// forge-config: audit.invariant.depth = 500
    function invariant_keyDeliveryConservesEth() public view {
        uint256 held = address(handler.keyDelivery()).balance;
        assertEq(held, handler.ghostIn() - handler.ghostOut(), "in - out");
        assertEq(held, handler.ghostEscrow() + handler.owed(), "escrow + credits + pot + platform");
    }

    function afterInvariant() public view {
        for (uint256 a; a < handler.ACTIONS(); ++a) {
            console.log(handler.actionName(a), handler.calls(a));
            if (handler.calls(a) == 0) revert AssertionFailed("a local-use action never succeeded", a, 0);
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest, console} from "./utils/Vm.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";
import {KeyDelivery} from "../contracts/KeyDelivery.sol";
import {IKeyDelivery} from "../contracts/interfaces/IKeyDelivery.sol";
import {ILicenseManager} from "../contracts/interfaces/ILicenseManager.sol";

/// @notice A model (voice owner 25%, co-creator 10%) with a non-transferable ETH buyout offering
/// local use, and its KeyDelivery.
abstract contract LocalUseFixture is MarketFixture {
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
        kd.offerLocalUse(offerId, localPrice);
        vm.stopPrank();
    }

    function buyBoth(address buyer, uint128 licencePrice, uint128 localPrice) internal returns (uint256 licenseId) {
        vm.deal(buyer, uint256(licencePrice) + localPrice);
        vm.startPrank(buyer);
        licenseId = licenses.buy{value: licencePrice}(offerId, licencePrice, 1);
        kd.buyLocalUse{value: localPrice}(licenseId, abi.encodePacked(keccak256("x"), keccak256("y")), localPrice);
        vm.stopPrank();
    }
}

contract KeyDeliveryFuzzTest is LocalUseFixture {
    /// Any price and platform fee: a delivery splits exactly what was escrowed; a refund returns it
    /// exactly; either way the contract ends holding nothing once every credit is withdrawn.
    function testFuzz_deliveryOrRefundMovesExactlyThePrice(uint96 price, uint16 feeBps, bool delivered) public {
        feeBps = uint16(bound(feeBps, 0, 2_000));
        deployLocalUse(1e15, price, feeBps);
        address buyer = address(0xB0B);
        uint256 licenseId = buyBoth(buyer, 1e15, price);
        assertEq(address(kd).balance, price, "escrowed");
        if (delivered) {
            vm.prank(creator);
            kd.recordDelivery(licenseId, 0x55, keccak256("key"));
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

/// @notice Random local-use purchases, deliveries (sometimes late: skipped), refunds (only when
/// due), time, distributions and withdrawals by three buyers. Every call must succeed
/// (fail_on_revert); the handler mirrors escrow and money in and out.
contract LocalUseHandler is LocalUseFixture {
    uint128 internal constant LICENCE = 1e15;
    uint128 internal constant LOCAL = 3e15;
    uint256 public constant ACTIONS = 6;
    uint256[] internal pending;
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
        kd.recordDelivery(licenseId, 0x55, keccak256(abi.encode(licenseId)));
        ghostEscrow -= LOCAL;
        ++calls[1];
    }

    function refund(uint256 index) external atClock {
        if (pending.length == 0) return;
        uint256 licenseId = _take(index, true);
        if (licenseId == 0) return;
        kd.refund(licenseId);
        ghostEscrow -= LOCAL;
        ++calls[2];
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
        return ["buy", "deliver", "refund", "warp", "distribute", "withdraw"][a];
    }
}

/// @notice Conservation after every call: KeyDelivery holds what came in less what went out, which
/// is exactly the pending escrow plus credits, the pot and the platform's balance.
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

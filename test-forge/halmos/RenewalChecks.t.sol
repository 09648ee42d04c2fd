// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {HalmosMarket} from "./HalmosMarket.sol";
import {ILicenseManager} from "../../contracts/interfaces/ILicenseManager.sol";

/// @notice Halmos: a holder's allowance is spent only on a renewal that holder agreed to (H-1).
/// The holder bought an hourly subscription in USD and keeps a standing, unlimited allowance on
/// the licence manager. For any caller other than the holder, any duration, at any later time:
/// without the holder's autoRenew not one token moves; an agreement does not pass to the next
/// holder; with it, a renewal takes exactly one period's price for exactly one period, only
/// while due and not lapsed, and a second one at the same moment is refused.
contract RenewalChecks is HalmosMarket {
    address internal constant HOLDER = address(0xB0B);
    uint128 internal constant PRICE = 5_000_000;
    uint32 internal constant PERIOD = 1 hours;

    uint256 internal licence;

    function setUp() public {
        deployMarket();
        uint256 modelId = registerOwnModel(keccak256("voice"), 0);
        uint256 offerId = publish(modelId, ILicenseManager.Tier.Subscription, address(usd), PRICE, PERIOD);
        usd.mint(HOLDER, 1_000 * uint256(PRICE));
        vm.prank(HOLDER);
        usd.approve(address(licenses), type(uint256).max);
        vm.prank(HOLDER);
        licence = licenses.buy(offerId, PRICE, 1);
    }

    function _renewAs(address caller, uint64 duration) internal returns (bool ok) {
        vm.prank(caller);
        (ok,) = address(licenses).call(abi.encodeCall(ILicenseManager.renewSubscription, (licence, duration)));
    }

    /// Without autoRenew (as bought), nobody but the holder moves the holder's tokens.
    function check_noRenewalWithoutTheHoldersAgreement(address caller, uint64 duration, uint32 later) public {
        vm.assume(caller != HOLDER);
        vm.warp(block.timestamp + later);
        uint256 before = usd.balanceOf(HOLDER);
        bool ok = _renewAs(caller, duration);
        assert(!ok);
        assert(usd.balanceOf(HOLDER) == before);
    }

    /// The agreement is the holder's: once the licence moves to someone with a standing
    /// allowance, no caller but that new holder moves their tokens.
    function check_agreementDoesNotFollowTheLicence(address victim, address caller, uint64 duration, uint32 later)
        public
    {
        vm.assume(victim != address(0) && victim != HOLDER && caller != victim);
        vm.prank(HOLDER);
        licenses.setAutoRenew(licence, true);
        vm.prank(HOLDER);
        licenses.transferFrom(HOLDER, victim, licence);
        usd.mint(victim, 1_000 * uint256(PRICE));
        vm.prank(victim);
        usd.approve(address(licenses), type(uint256).max);
        vm.warp(block.timestamp + later);
        uint256 before = usd.balanceOf(victim);
        bool ok = _renewAs(caller, duration);
        assert(!ok);
        assert(usd.balanceOf(victim) == before);
    }

    /// With the holder's agreement: one due period, its price, once.
    function check_agreedRenewalIsOneDuePeriodOnce(
        address caller,
        address again,
        uint64 duration,
        uint64 d2,
        uint32 later
    ) public {
        vm.assume(caller != HOLDER && again != HOLDER);
        vm.prank(HOLDER);
        licenses.setAutoRenew(licence, true);
        uint256 expires = licenses.license(licence).expiresAt;
        vm.warp(block.timestamp + later);
        uint256 before = usd.balanceOf(HOLDER);

        bool ok = _renewAs(caller, duration);
        if (!ok) {
            assert(usd.balanceOf(HOLDER) == before);
            return;
        }
        assert(duration == PERIOD);
        assert(block.timestamp < expires && block.timestamp + PERIOD >= expires); // due, not lapsed
        assert(usd.balanceOf(HOLDER) == before - PRICE);
        assert(licenses.license(licence).expiresAt == expires + PERIOD);

        ok = _renewAs(again, d2);
        assert(!ok);
        assert(usd.balanceOf(HOLDER) == before - PRICE);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MarketFixture} from "./utils/MarketFixture.sol";
import {ILicenseManager} from "../contracts/interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../contracts/interfaces/ISynthesisRouter.sol";

/// @notice The attacks of issue 13 that are cheap to replay at the forge level, each as it was
/// run against the old contracts (the pytest suite in tests/contracts has the full set):
/// H-1 (a keeper drains a holder's allowance through renewals of a licence pushed onto them),
/// L-3 (anyone griefs a keeper's settle batch by settling one item first) and M-5 (a free
/// dispute locks the operator's fee and stake for ever).
contract AttacksTest is MarketFixture {
    address internal constant ATTACKER = address(0xBAD);
    address internal constant VICTIM = address(0x71C7);
    address internal constant BUYER = address(0xB0B);
    uint128 internal constant HOURLY = 5_000_000; // 5 mUSD an hour
    uint256 internal constant BOND = 0.05 ether;

    function setUp() public {
        deployMarket(2_000);
    }

    // ---------------------------------------------------------------- H-1

    /// The attacker's own model, an hourly transferable subscription in USD, one period bought
    /// and pushed onto a victim who keeps a standing allowance on the licence manager.
    function _pushedSubscription() internal returns (uint256 id) {
        uint256 own = registerOwnModel(ATTACKER, keccak256("attacker's voice"), 0);
        uint256 offerId = publish(own, ILicenseManager.Tier.Subscription, address(usd), HOURLY, 1 hours);
        usd.mint(ATTACKER, HOURLY);
        vm.prank(ATTACKER);
        usd.approve(address(licenses), HOURLY);
        vm.prank(ATTACKER);
        id = licenses.buy(offerId, HOURLY, 1);
        vm.prank(ATTACKER);
        licenses.setAutoRenew(id, true); // the attacker's own agreement must not follow the licence
        vm.prank(ATTACKER);
        licenses.transferFrom(ATTACKER, VICTIM, id);
        usd.mint(VICTIM, 1_000 * uint256(HOURLY));
        vm.prank(VICTIM);
        usd.approve(address(licenses), type(uint256).max);
    }

    /// Old code: 24 keeper renewals in one block moved 24 periods' price from the victim to the
    /// attacker. Now the transfer cleared autoRenew and nobody but the holder may renew.
    function test_H1_keeperCannotRenewALicencePushedOntoAHolder() public {
        uint256 id = _pushedSubscription();
        assertTrue(!licenses.license(id).autoRenew, "the transfer cleared autoRenew");
        uint256 before = usd.balanceOf(VICTIM);
        for (uint256 i; i < 24; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ILicenseManager.Licensing_AutoRenewOff.selector, id));
            vm.prank(ATTACKER);
            licenses.renewSubscription(id, 1 hours);
        }
        // An account the victim approved on the licence token is no better off: it too renews
        // only what the holder agreed to.
        vm.prank(VICTIM);
        licenses.approve(ATTACKER, id);
        vm.expectRevert(abi.encodeWithSelector(ILicenseManager.Licensing_AutoRenewOff.selector, id));
        vm.prank(ATTACKER);
        licenses.renewSubscription(id, 24 hours);
        assertEq(usd.balanceOf(VICTIM), before, "not one token moved");
    }

    /// Even with the holder's agreement, a keeper renews one period, once it is due, once per
    /// period; never many periods, never a lapsed licence.
    function test_H1_agreedRenewalsAreOnePeriodAtATime() public {
        uint256 id = _pushedSubscription();
        vm.prank(VICTIM);
        licenses.setAutoRenew(id, true);
        uint40 expires = licenses.license(id).expiresAt;
        uint256 before = usd.balanceOf(VICTIM);

        vm.expectRevert(
            abi.encodeWithSelector(ILicenseManager.Licensing_BadDuration.selector, uint64(2 hours), uint32(1 hours))
        );
        vm.prank(ATTACKER);
        licenses.renewSubscription(id, 2 hours);

        vm.prank(ATTACKER);
        licenses.renewSubscription(id, 1 hours); // due: the lead of an hourly plan is one hour
        assertEq(usd.balanceOf(VICTIM), before - HOURLY, "one period's price");
        assertEq(licenses.license(id).expiresAt, expires + 1 hours, "one period longer");
        for (uint256 i; i < 23; ++i) {
            vm.expectRevert(abi.encodeWithSelector(ILicenseManager.Licensing_RenewalNotDue.selector, id, expires));
            vm.prank(ATTACKER);
            licenses.renewSubscription(id, 1 hours);
        }
        assertEq(usd.balanceOf(VICTIM), before - HOURLY, "still one period's price");

        // A year later the licence has lapsed: a keeper cannot revive it.
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(
            abi.encodeWithSelector(ILicenseManager.Licensing_SubscriptionLapsed.selector, id, expires + 1 hours)
        );
        vm.prank(ATTACKER);
        licenses.renewSubscription(id, 1 hours);
        assertEq(usd.balanceOf(VICTIM), before - HOURLY, "nothing more");
    }

    // ---------------------------------------------------------------- requests

    uint24 internal constant WINDOW = 1 hours;
    uint256 internal modelId;
    uint256 internal licenceId;

    /// A model with a dispute window, a pay-per-use offer in ETH, a buyer's licence.
    function _market() internal {
        registerOperator();
        modelId = registerModel(keccak256("a voice"), 1_000, 0, WINDOW);
        allowOperator(modelId);
        vm.prank(operator);
        router.setFee(address(0), 0.001 ether);
        uint256 offerId = publish(modelId, ILicenseManager.Tier.PayPerUse, address(0), 0.002 ether, 0);
        vm.prank(BUYER);
        licenceId = licenses.buy(offerId, 0, 1);
    }

    function _delivered() internal returns (ISynthesisRouter.SynthesisRequest memory r) {
        ISynthesisRouter.RequestParams memory p = requestParams(modelId, licenceId, 0.001 ether);
        vm.deal(BUYER, BUYER.balance + 0.003 ether);
        vm.prank(BUYER);
        uint256 id = router.requestSynthesis{value: 0.003 ether}(p);
        r = committed(id, p, BUYER, address(0), 0.002 ether, 0.001 ether, WINDOW, 0, 2_000);
        bytes32 digest = sha256(abi.encode(id)); // before the prank
        vm.prank(operator);
        router.fulfil(r, digest, hex"0155122000");
    }

    /// L-3. Old code: settling one item of a keeper's batch first made the whole batch revert.
    function test_L3_aSettledItemDoesNotRevertTheBatch() public {
        _market();
        ISynthesisRouter.SynthesisRequest[] memory batch = new ISynthesisRouter.SynthesisRequest[](3);
        batch[0] = _delivered();
        batch[1] = _delivered();
        batch[2] = _delivered();
        vm.warp(block.timestamp + WINDOW);
        ISynthesisRouter.SynthesisRequest[] memory one = new ISynthesisRouter.SynthesisRequest[](1);
        one[0] = batch[1];
        vm.prank(ATTACKER);
        assertEq(router.settle(one), 1, "the griefer settles one item");
        vm.prank(address(0x6EE9));
        assertEq(router.settle(batch), 2, "the keeper's batch settles the other two");
        assertEq(router.creditOf(operator, address(0)), 3 * 0.001 ether, "three fees, once each");
        (uint256 share, uint256 platform) = router.potOf(modelId, address(0));
        assertEq(share + platform, 3 * 0.002 ether, "three use prices, once each");
    }

    /// M-5. Old code: a dispute cost nothing and never ended, so the operator's fee stayed in
    /// escrow and its stake could not be withdrawn. Now it costs the bond, and lapses.
    function test_M5_anUndecidedDisputeLapses() public {
        _market();
        router.setDisputeBond(BOND);
        ISynthesisRouter.SynthesisRequest memory r = _delivered();
        vm.deal(BUYER, BUYER.balance + BOND);
        vm.expectRevert(abi.encodeWithSelector(ISynthesisRouter.Router_WrongPayment.selector, BOND, 0));
        vm.prank(BUYER);
        router.dispute(r);
        vm.prank(BUYER);
        router.dispute{value: BOND}(r);
        uint40 decideBy = uint40(block.timestamp) + router.ARBITRATION_PERIOD();
        assertEq(router.disputeBondOf(r.id), BOND, "bond held");
        (, uint40 settleAfter,) = router.requestState(r.id);
        assertEq(settleAfter, decideBy, "the arbiter has until decideBy");

        ISynthesisRouter.SynthesisRequest[] memory batch = new ISynthesisRouter.SynthesisRequest[](1);
        batch[0] = r;
        vm.warp(decideBy - 1);
        assertEq(router.settle(batch), 0, "not before decideBy");
        assertEq(router.operatorInfo(operator).openDisputes, 1, "open");

        vm.warp(decideBy);
        assertEq(router.settle(batch), 1, "lapsed: settled");
        assertEq(uint256(router.requestStatus(r.id)), uint256(ISynthesisRouter.RequestStatus.Settled), "settled");
        assertEq(router.creditOf(BUYER, address(0)), BOND, "the bond back to the buyer");
        assertEq(router.creditOf(operator, address(0)), 0.001 ether, "the operator's fee paid");
        assertEq(router.operatorInfo(operator).openDisputes, 0, "no dispute open: the stake can leave");
        assertEq(router.disputeBondOf(r.id), 0, "bond released");
        assertEq(router.settle(batch), 0, "and never again");
        assertEq(address(router).balance, MIN_STAKE + BOND + 0.003 ether, "nothing created or lost");
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest, console} from "./utils/Vm.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";
import {MockStablecoin} from "../contracts/test/MockStablecoin.sol";
import {LicenseManager} from "../contracts/LicenseManager.sol";
import {SynthesisRouter} from "../contracts/SynthesisRouter.sol";
import {ILicenseManager} from "../contracts/interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../contracts/interfaces/ISynthesisRouter.sol";
import {IRevenueLedger} from "../contracts/interfaces/IRevenueLedger.sol";

/// @notice Fuzzed single flows: every payment is split exactly, to the last wei.
contract RevenueAccountingFuzzTest is MarketFixture {
    function setUp() public {
        deployMarket(2_000);
    }

    /// A payment of any size, under any platform fee and split, credits exactly what was paid:
    /// floor shares to the platform, the voice owner and the co-creator, the rest to the creator.
    function testFuzz_paymentIsSplitExactly(uint128 price, uint16 feeBps, uint16 voiceBps, uint16 coBps) public {
        vm.assume(price > 0);
        feeBps = uint16(bound(feeBps, 0, 2_000));
        voiceBps = uint16(bound(voiceBps, 0, 10_000));
        coBps = uint16(bound(coBps, 0, 10_000 - voiceBps));
        licenses.setPlatformFee(feeBps);
        uint256 modelId = registerModel(keccak256(abi.encode(price, feeBps, voiceBps, coBps)), voiceBps, coBps, 0);
        uint256 offerId = publish(modelId, ILicenseManager.Tier.Buyout, address(0), price, 0);

        address buyer = address(0xB0B);
        vm.deal(buyer, price);
        vm.prank(buyer);
        licenses.buy{value: price}(offerId, price, 1);
        licenses.distribute(modelId, address(0));

        uint256 fee = uint256(price) * feeBps / 10_000;
        uint256 share = price - fee;
        uint256 toVoice = share * voiceBps / 10_000;
        uint256 toCo = share * coBps / 10_000;
        assertEq(licenses.platformBalance(address(0)), fee, "platform");
        assertEq(licenses.creditOf(voice, address(0)), toVoice, "voice owner");
        assertEq(licenses.creditOf(coCreator, address(0)), toCo, "co-creator");
        assertEq(licenses.creditOf(creator, address(0)), share - toVoice - toCo, "creator gets the rest");
        assertEq(address(licenses).balance, uint256(price), "nothing more, nothing less held");
    }

    /// Withdrawing pays exactly the credit, once.
    function testFuzz_withdrawPaysTheCreditOnce(uint96 price) public {
        vm.assume(price > 10);
        uint256 modelId = registerModel(keccak256(abi.encode("withdraw", price)), 1_000, 0, 0);
        uint256 offerId = publish(modelId, ILicenseManager.Tier.Buyout, address(usd), price, 0);
        address buyer = address(0xB0B);
        usd.mint(buyer, price);
        vm.prank(buyer);
        usd.approve(address(licenses), price);
        vm.prank(buyer);
        licenses.buy(offerId, price, 1);
        licenses.distribute(modelId, address(usd));

        uint256 credit = licenses.creditOf(creator, address(usd));
        vm.prank(creator);
        licenses.withdraw(address(usd));
        assertEq(usd.balanceOf(creator), credit, "paid the credit");
        vm.expectRevert(abi.encodeWithSelector(IRevenueLedger.Ledger_NothingToWithdraw.selector, creator, address(usd)));
        vm.prank(creator);
        licenses.withdraw(address(usd));
    }

    /// A failed request gives back exactly what was escrowed, whatever the use price and fee.
    function testFuzz_failedRequestRefundsTheEscrow(uint96 usePrice, uint96 fee) public {
        ISynthesisRouter.SynthesisRequest memory r = _pendingRequest(usePrice, fee, 0);
        uint256 escrow = uint256(usePrice) + fee;
        vm.prank(operator);
        router.fail(r, ISynthesisRouter.FailReason.SynthesisError);
        assertEq(router.creditOf(r.requester, address(0)), escrow, "refund");
        assertEq(address(router).balance, escrow + MIN_STAKE, "escrow turned into credit");
        assertEq(uint256(router.requestStatus(r.id)), uint256(ISynthesisRouter.RequestStatus.Failed), "failed");
    }

    /// A delivered request pays out once, whatever its price, fee and dispute window: the
    /// operator's fee and the model's revenue, and a second settlement is skipped.
    function testFuzz_deliveryPaysOutOnce(uint96 usePrice, uint96 fee, uint24 window) public {
        window = uint24(bound(window, 0, 7 days));
        ISynthesisRouter.SynthesisRequest memory r = _pendingRequest(usePrice, fee, window);
        bytes32 digest = sha256("wav"); // before the prank: a precompile call would consume it
        vm.prank(operator);
        router.fulfil(r, digest, hex"0155122000");
        vm.warp(block.timestamp + window);
        ISynthesisRouter.SynthesisRequest[] memory batch = new ISynthesisRouter.SynthesisRequest[](2);
        (batch[0], batch[1]) = (r, r);
        assertEq(router.settle(batch), window == 0 ? 0 : 1, "settled once (or already at fulfilment)");
        assertEq(router.settle(batch), 0, "never twice");
        assertEq(router.creditOf(operator, address(0)), fee, "the operator's fee, once");
        (uint256 share, uint256 platform) = router.potOf(r.modelId, address(0));
        assertEq(share + platform, usePrice, "the use price, once");
        assertEq(address(router).balance, uint256(usePrice) + fee + MIN_STAKE, "nothing created");
    }

    function _pendingRequest(uint96 usePrice, uint96 fee, uint24 window)
        private
        returns (ISynthesisRouter.SynthesisRequest memory)
    {
        registerOperator();
        uint256 modelId = registerModel(keccak256(abi.encode("payout", usePrice, fee, window)), 0, 0, window);
        allowOperator(modelId);
        vm.prank(operator);
        router.setFee(address(0), fee);
        uint256 offerId = publish(modelId, ILicenseManager.Tier.PayPerUse, address(0), usePrice, 0);
        address buyer = address(0xB0B);
        vm.prank(buyer);
        uint256 licenseId = licenses.buy(offerId, 0, 1);
        uint256 escrow = uint256(usePrice) + fee;
        vm.deal(buyer, escrow);
        ISynthesisRouter.RequestParams memory p = requestParams(modelId, licenseId, fee);
        vm.prank(buyer);
        uint256 id = router.requestSynthesis{value: escrow}(p);
        return committed(id, p, buyer, address(0), usePrice, fee, window, 0, 2_000);
    }
}

/// @notice Drives random purchases, renewals (the holder's, and keepers' on the holder's
/// autoRenew), transfers, requests and every outcome (fulfil, fail, expiry, dispute upheld or
/// rejected, settlement, a lapsed dispute), distributions and withdrawals. Every call it makes
/// is meant to succeed (the suite runs with fail_on_revert: an unexpected revert fails it); it
/// mirrors the ledgers (credits, pots, platform balances), the escrow, the bonds, the stake and
/// each request's status, and counts each action's successful calls.
contract MarketHandler is MarketFixture {
    enum Action {
        Buy,
        SetAutoRenew,
        CancelSubscription,
        RenewByHolder,
        RenewByKeeper,
        Transfer,
        Request,
        Fulfil,
        Fail,
        CancelExpired,
        Dispute,
        ResolveUpheld,
        ResolveRejected,
        AddStake,
        Settle,
        SettleLapse,
        Distribute,
        Withdraw,
        WithdrawPlatformFees,
        SetPlatformFee
    }

    uint256 public constant ACTIONS = 20; // the members of Action
    address internal constant STRANGER = address(0x5778);
    address internal constant KEEPER = address(0x6EE9);
    address internal constant TREASURY = address(0x7EA5);
    uint256 internal constant BOND = 0.01 ether;
    uint24 internal constant WINDOW = 1 hours;
    uint16 internal constant VOICE_A = 3_333;
    uint16 internal constant CO_A = 1_111;
    uint16 internal constant VOICE_B = 2_500;

    /// @notice Successful calls per action.
    uint256[ACTIONS] public calls;

    address[4] internal holders = [address(0xB1), address(0xB2), address(0xB3), STRANGER];
    /// @dev Model 0 settles at delivery (window 0); model 1 has a dispute window.
    uint256[2] internal models;
    uint256[] internal offerIds;
    /// @dev Per model, six offers (index 6m + k): k = 0 buyout ETH, 1 hourly subscription USD,
    /// 2 daily subscription ETH, 3 pay-per-use ETH, 4 pay-per-use USD, 5 packs of 3 uses USD.
    ILicenseManager.OfferTerms[] internal offerTerms;
    mapping(uint256 licenceId => uint256 offerIndex) internal offerIndexOf;
    uint256[] internal licenceIds;

    ISynthesisRouter.SynthesisRequest[] internal reqs;
    ISynthesisRouter.RequestStatus[] internal statusOf;
    uint40[] internal settleAfterOf;

    // The mirror of both ledgers: index 0 the licence manager, 1 the router.
    mapping(uint256 ledger => mapping(address account => mapping(address asset => uint256))) public ghostCredit;
    mapping(uint256 ledger => mapping(uint256 modelId => mapping(address asset => uint256[2]))) internal _ghostPot;
    mapping(uint256 ledger => mapping(address asset => uint256)) public ghostPlatform;
    mapping(address asset => uint256) public ghostEscrow;
    uint256 public ghostBonds;
    uint256 public ghostStake;
    uint256 public ghostOpenDisputes;

    constructor() {
        deployMarket(2_000);
        registerOperator();
        ghostStake = MIN_STAKE;
        router.setDisputeBond(BOND);
        vm.prank(operator);
        router.setFee(address(0), 0.001 ether);
        vm.prank(operator);
        router.setFee(address(usd), 1_000);
        models[0] = registerModel(keccak256("model A"), VOICE_A, CO_A, 0);
        models[1] = registerModel(keccak256("model B"), VOICE_B, 0, WINDOW);
        for (uint256 m; m < 2; ++m) {
            allowOperator(models[m]);
            offerIds.push(publish(models[m], ILicenseManager.Tier.Buyout, address(0), uint128(0.01 ether + m), 0));
            offerIds.push(publish(models[m], ILicenseManager.Tier.Subscription, address(usd), 9_990_001, 1 hours));
            offerIds.push(
                publish(models[m], ILicenseManager.Tier.Subscription, address(0), uint128(0.002 ether + m), 1 days)
            );
            offerIds.push(publish(models[m], ILicenseManager.Tier.PayPerUse, address(0), uint128(0.0003 ether + 7), 0));
            offerIds.push(publish(models[m], ILicenseManager.Tier.PayPerUse, address(usd), 333_333, 0));
            ILicenseManager.OfferTerms memory pack =
                terms(models[m], ILicenseManager.Tier.PayPerUse, address(usd), 111_111, 0);
            pack.packSize = 3;
            vm.prank(creator);
            offerIds.push(offers.publishOffer(pack, "DEFR"));
        }
        for (uint256 k; k < offerIds.length; ++k) {
            offerTerms.push(licenses.offer(offerIds[k]).terms);
        }
        for (uint256 i; i < holders.length; ++i) {
            vm.prank(holders[i]);
            usd.approve(address(licenses), type(uint256).max); // a standing allowance (H-1's victim)
            vm.prank(holders[i]);
            usd.approve(address(router), type(uint256).max);
        }
    }

    // ---------------------------------------------------------------- actions (forge calls these)

    function buy(uint256 holderSeed, uint256 offerSeed, uint8 quantity) external {
        _buy(holders[holderSeed % 3], offerSeed % offerIds.length, quantity);
    }

    /// The holder turns keeper renewals on, or off: itself or through an account it approved
    /// (cancelSubscription), taking turns.
    function setAutoRenew(uint256 licenceSeed) external {
        uint256 id = _subscription(licenceSeed);
        bool on = !licenses.license(id).autoRenew;
        if (!on && calls[uint256(Action.CancelSubscription)] <= calls[uint256(Action.SetAutoRenew)] / 2) {
            address holder = licenses.ownerOf(id);
            vm.prank(holder);
            licenses.approve(KEEPER, id);
            vm.prank(KEEPER);
            licenses.cancelSubscription(id);
            ++calls[uint256(Action.CancelSubscription)];
        } else {
            _setAutoRenew(id, on);
        }
        assertTrue(licenses.license(id).autoRenew == on, "autoRenew as set");
    }

    function renewByHolder(uint256 licenceSeed, uint8 periods) external {
        _renewByHolder(_subscription(licenceSeed), bound(periods, 1, 3));
    }

    /// A keeper renews one due period of a subscription whose holder turned autoRenew on: never
    /// without it, never twice in a period.
    function renewByKeeper(uint256 licenceSeed) external {
        uint256 id = _subscription(licenceSeed);
        address holder = licenses.ownerOf(id);
        ILicenseManager.License memory l = licenses.license(id);
        ILicenseManager.OfferTerms memory t = _terms(id);
        if (block.timestamp >= l.expiresAt) {
            // Lapsed: a keeper may not revive it (nor renew without autoRenew); its holder renews it.
            vm.expectRevert(
                l.autoRenew
                    ? abi.encodeWithSelector(ILicenseManager.Licensing_SubscriptionLapsed.selector, id, l.expiresAt)
                    : abi.encodeWithSelector(ILicenseManager.Licensing_AutoRenewOff.selector, id)
            );
            _keeperRenew(id, t);
            _renewByHolder(id, 1);
            l = licenses.license(id);
        }
        uint256 lead = t.period < 1 days ? t.period : 1 days;
        if (block.timestamp + lead < l.expiresAt) vm.warp(l.expiresAt - lead);
        if (!l.autoRenew) {
            vm.expectRevert(abi.encodeWithSelector(ILicenseManager.Licensing_AutoRenewOff.selector, id));
            _keeperRenew(id, t);
            _setAutoRenew(id, true);
        }
        uint256 before = t.asset == address(0) ? 0 : usd.balanceOf(holder);
        _fund(holder, t.asset, t.price);
        _accrue(0, t.modelId, t.asset, t.price, licenses.platformFeeBps());
        _keeperRenew(id, t);
        ++calls[uint256(Action.RenewByKeeper)];
        assertEq(licenses.license(id).expiresAt, l.expiresAt + t.period, "one period");
        if (t.asset != address(0)) assertEq(usd.balanceOf(holder), before, "exactly one period's price pulled");
        // Not due again until one period later: a second renewal now is refused.
        vm.expectRevert(
            abi.encodeWithSelector(ILicenseManager.Licensing_RenewalNotDue.selector, id, l.expiresAt + t.period - lead)
        );
        _keeperRenew(id, t);
    }

    /// The holder moves the licence to another account; its autoRenew does not follow it.
    function transfer(uint256 licenceSeed, uint256 toSeed) external {
        if (licenceIds.length == 0) _buy(holders[0], 1, 1);
        uint256 id = licenceIds[licenceSeed % licenceIds.length];
        address from = licenses.ownerOf(id);
        address to = holders[toSeed % holders.length];
        if (to == from) to = holders[(toSeed % holders.length + 1) % holders.length];
        vm.prank(from);
        licenses.transferFrom(from, to, id);
        ++calls[uint256(Action.Transfer)];
        assertTrue(!licenses.license(id).autoRenew, "a transfer clears autoRenew");
    }

    function request(uint256 licenceSeed, bool extraEth) external {
        _request(licenceSeed, licenceSeed % 2, extraEth);
    }

    function fulfil(uint256 requestSeed) external {
        _fulfil(_live(requestSeed, requestSeed % 2));
    }

    function fail(uint256 requestSeed, uint8 reason) external {
        uint256 i = _live(requestSeed, requestSeed % 2);
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        vm.prank(operator);
        router.fail(r, ISynthesisRouter.FailReason(reason % 10));
        _refund(i, ISynthesisRouter.RequestStatus.Failed);
        ++calls[uint256(Action.Fail)];
    }

    function cancelExpired(uint256 requestSeed) external {
        uint256 i = _find(requestSeed, ISynthesisRouter.RequestStatus.Pending);
        if (i == type(uint256).max) i = _live(requestSeed, requestSeed % 2);
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        if (block.timestamp <= r.deadline) vm.warp(uint256(r.deadline) + 1);
        vm.prank(KEEPER);
        router.cancelExpired(r);
        _refund(i, ISynthesisRouter.RequestStatus.Expired);
        ++calls[uint256(Action.CancelExpired)];
    }

    function dispute(uint256 requestSeed) external {
        _dispute(requestSeed);
    }

    /// The arbiter decides a dispute: upheld and rejected take turns.
    function resolve(uint256 requestSeed) external {
        uint256 i = _find(requestSeed, ISynthesisRouter.RequestStatus.Disputed);
        if (i == type(uint256).max) i = _dispute(requestSeed);
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        bool upheld = calls[uint256(Action.ResolveUpheld)] <= calls[uint256(Action.ResolveRejected)];
        router.resolveDispute(r, upheld);
        --ghostOpenDisputes;
        ghostBonds -= BOND;
        if (upheld) {
            uint256 slashed = SLASH < ghostStake ? SLASH : ghostStake;
            ghostStake -= slashed;
            ghostCredit[1][r.requester][address(0)] += slashed + BOND;
            _refund(i, ISynthesisRouter.RequestStatus.Reversed);
            ++calls[uint256(Action.ResolveUpheld)];
            // The operator tops its stake back up, or it could serve no more.
            vm.deal(operator, operator.balance + slashed);
            vm.prank(operator);
            router.addStake{value: slashed}();
            ghostStake += slashed;
            ++calls[uint256(Action.AddStake)];
        } else {
            ghostCredit[1][operator][address(0)] += BOND;
            _payOut(i);
            ++calls[uint256(Action.ResolveRejected)];
        }
    }

    /// Settles a delivered request once its window has closed, in a batch that names it twice:
    /// the second is skipped, not paid and not reverted.
    function settle(uint256 requestSeed) external {
        uint256 i = _find(requestSeed, ISynthesisRouter.RequestStatus.Fulfilled);
        if (i == type(uint256).max) i = _fulfil(_live(requestSeed, 1));
        if (block.timestamp < settleAfterOf[i]) vm.warp(settleAfterOf[i]);
        ISynthesisRouter.SynthesisRequest[] memory batch = new ISynthesisRouter.SynthesisRequest[](2);
        (batch[0], batch[1]) = (reqs[i], reqs[i]);
        vm.prank(KEEPER);
        assertEq(router.settle(batch), 1, "settled once, skipped once");
        _payOut(i);
        ++calls[uint256(Action.Settle)];
    }

    /// A dispute the arbiter leaves undecided lapses once decideBy has passed: settled, bond back.
    function settleLapsed(uint256 requestSeed) external {
        uint256 i = _find(requestSeed, ISynthesisRouter.RequestStatus.Disputed);
        if (i == type(uint256).max) i = _dispute(requestSeed);
        if (block.timestamp < settleAfterOf[i]) vm.warp(settleAfterOf[i]);
        ISynthesisRouter.SynthesisRequest[] memory batch = new ISynthesisRouter.SynthesisRequest[](1);
        batch[0] = reqs[i];
        vm.prank(KEEPER);
        assertEq(router.settle(batch), 1, "the lapsed dispute settled");
        --ghostOpenDisputes;
        ghostBonds -= BOND;
        ghostCredit[1][reqs[i].requester][address(0)] += BOND;
        _payOut(i);
        ++calls[uint256(Action.SettleLapse)];
    }

    function distribute(uint256 seed) external {
        _distribute(seed);
    }

    /// Someone with a credit withdraws it (after a distribution if nobody has one).
    function withdraw(uint256 seed) external {
        (uint256 ledger, address account, address asset) = _anyCredit(seed);
        if (ledger == 2) {
            _distribute(seed);
            (ledger, account, asset) = _anyCredit(seed);
        }
        IRevenueLedger book = ledger == 0 ? IRevenueLedger(licenses) : IRevenueLedger(router);
        uint256 credit = ghostCredit[ledger][account][asset];
        assertEq(book.creditOf(account, asset), credit, "credit as mirrored");
        uint256 before = _balance(account, asset);
        vm.prank(account);
        book.withdraw(asset);
        assertEq(_balance(account, asset) - before, credit, "paid exactly the credit");
        assertEq(book.creditOf(account, asset), 0, "credit cleared");
        ghostCredit[ledger][account][asset] = 0;
        ++calls[uint256(Action.Withdraw)];
    }

    /// The treasurer takes a platform balance (after a distribution, and a sale under a non-zero
    /// fee, if there is none).
    function withdrawPlatformFees(uint256 seed) external {
        (uint256 ledger, address asset) = (2, address(0));
        for (uint256 k; k < 4; ++k) {
            (uint256 l, address t) = (_at(seed, k) % 2, (_at(seed, k) / 2) % 2 == 0 ? address(0) : address(usd));
            if (ghostPlatform[l][t] != 0) {
                (ledger, asset) = (l, t);
                break;
            }
        }
        if (ledger == 2) (ledger, asset) = _distribute(seed);
        if (ghostPlatform[ledger][asset] == 0) {
            // Every payment in that pot fell under a 0% fee: sell a buyout under a real one.
            if (licenses.platformFeeBps() == 0) _setPlatformFee(2_000);
            uint256 m = seed % 2;
            _buy(holders[seed % 3], 6 * m, 1);
            _distributePot(0, models[m], address(0));
            (ledger, asset) = (0, address(0));
        }
        IRevenueLedger book = ledger == 0 ? IRevenueLedger(licenses) : IRevenueLedger(router);
        uint256 amount = ghostPlatform[ledger][asset];
        uint256 before = _balance(TREASURY, asset);
        book.withdrawPlatformFees(asset, TREASURY);
        assertEq(_balance(TREASURY, asset) - before, amount, "paid exactly the platform balance");
        ghostPlatform[ledger][asset] = 0;
        ++calls[uint256(Action.WithdrawPlatformFees)];
    }

    function setPlatformFee(uint16 bps) external {
        _setPlatformFee(uint16(bound(bps, 0, 2_000)));
    }

    function warp(uint32 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 2 days));
    }

    // ---------------------------------------------------------------- what the invariants read

    function contracts() external view returns (LicenseManager, SynthesisRouter, MockStablecoin) {
        return (licenses, router, usd);
    }

    function accounts() external view returns (address[10] memory) {
        return [creator, voice, coCreator, operator, holders[0], holders[1], holders[2], STRANGER, KEEPER, admin];
    }

    function modelIds() external view returns (uint256[2] memory) {
        return models;
    }

    function ghostPot(uint256 ledger, uint256 modelId, address asset) external view returns (uint256, uint256) {
        uint256[2] storage p = _ghostPot[ledger][modelId][asset];
        return (p[0], p[1]);
    }

    /// Sum of the mirrored credits, pots and platform balance of one ledger in one asset.
    function ghostOwed(uint256 ledger, address asset) external view returns (uint256 owed) {
        address[10] memory a = this.accounts();
        for (uint256 i; i < a.length; ++i) {
            owed += ghostCredit[ledger][a[i]][asset];
        }
        for (uint256 m; m < 2; ++m) {
            owed += _ghostPot[ledger][models[m]][asset][0] + _ghostPot[ledger][models[m]][asset][1];
        }
        owed += ghostPlatform[ledger][asset];
    }

    function requestCount() external view returns (uint256) {
        return reqs.length;
    }

    function actionName(uint256 a) external pure returns (string memory) {
        return [
            string("buy"),
            "setAutoRenew",
            "cancelSubscription",
            "renewSubscription by the holder",
            "renewSubscription by a keeper (autoRenew)",
            "transfer",
            "requestSynthesis",
            "fulfil",
            "fail",
            "cancelExpired",
            "dispute",
            "resolveDispute upheld",
            "resolveDispute rejected",
            "addStake",
            "settle",
            "settle of a lapsed dispute",
            "distribute",
            "withdraw",
            "withdrawPlatformFees",
            "setPlatformFee"
        ][a];
    }

    // ---------------------------------------------------------------- internal

    function _buy(address buyer, uint256 offerIndex, uint256 quantity) private returns (uint256 id) {
        uint256 offerId = offerIds[offerIndex];
        ILicenseManager.OfferTerms memory t = offerTerms[offerIndex];
        if (t.tier == ILicenseManager.Tier.Subscription) quantity = bound(quantity, 1, 3);
        else if (t.packSize != 0) quantity = bound(quantity, 1, 3);
        else quantity = 1;
        uint256 cost = t.tier == ILicenseManager.Tier.PayPerUse
            ? uint256(t.price) * t.packSize * quantity
            : t.tier == ILicenseManager.Tier.Subscription ? uint256(t.price) * quantity : t.price;
        _fund(buyer, t.asset, cost);
        if (cost != 0) _accrue(0, t.modelId, t.asset, cost, licenses.platformFeeBps());
        vm.prank(buyer);
        id = licenses.buy{value: t.asset == address(0) ? cost : 0}(offerId, cost, quantity);
        licenceIds.push(id);
        offerIndexOf[id] = offerIndex;
        ++calls[uint256(Action.Buy)];
        assertTrue(!licenses.license(id).autoRenew, "bought with autoRenew off");
    }

    /// A subscription licence (bought if there is none).
    function _subscription(uint256 seed) private returns (uint256) {
        for (uint256 k; k < licenceIds.length; ++k) {
            uint256 id = licenceIds[_at(seed, k) % licenceIds.length];
            uint256 kind = offerIndexOf[id] % 6;
            if (kind == 1 || kind == 2) return id;
        }
        return _buy(holders[seed % 3], 6 * (seed % 2) + 1 + (seed / 2) % 2, 1);
    }

    function _setAutoRenew(uint256 id, bool on) private {
        vm.prank(licenses.ownerOf(id));
        licenses.setAutoRenew(id, on);
        ++calls[uint256(Action.SetAutoRenew)];
    }

    function _renewByHolder(uint256 id, uint256 periods) private {
        ILicenseManager.License memory l = licenses.license(id);
        ILicenseManager.OfferTerms memory t = _terms(id);
        uint256 start = block.timestamp >= l.expiresAt ? block.timestamp : l.expiresAt;
        // Time is sold at most the retirement notice ahead: renew what fits (at least one period).
        while (periods > 1 && start + periods * t.period > block.timestamp + NOTICE) --periods;
        if (start + t.period > block.timestamp + NOTICE) vm.warp(start + t.period - NOTICE);
        if (block.timestamp >= l.expiresAt) start = block.timestamp;
        address holder = licenses.ownerOf(id);
        uint256 cost = uint256(t.price) * periods;
        _fund(holder, t.asset, cost);
        _accrue(0, t.modelId, t.asset, cost, licenses.platformFeeBps());
        vm.prank(holder);
        licenses.renewSubscription{value: t.asset == address(0) ? cost : 0}(id, uint64(periods * t.period));
        assertEq(licenses.license(id).expiresAt, start + periods * t.period, "renewed by whole periods");
        ++calls[uint256(Action.RenewByHolder)];
    }

    function _keeperRenew(uint256 id, ILicenseManager.OfferTerms memory t) private {
        uint256 value = t.asset == address(0) ? t.price : 0;
        vm.deal(KEEPER, KEEPER.balance + value);
        vm.prank(KEEPER);
        licenses.renewSubscription{value: value}(id, t.period);
    }

    /// A request on a licence of `models[m]` that works now (a new pay-per-use licence if none).
    function _request(uint256 seed, uint256 m, bool extraEth) private returns (uint256 i) {
        uint256 id = _usableLicence(seed, m);
        ILicenseManager.OfferTerms memory t = _terms(id);
        ISynthesisRouter.SynthesisRequest memory r;
        r.requester = licenses.ownerOf(id);
        r.asset = t.asset;
        r.fee = router.operatorFee(operator, t.asset);
        r.usePrice = t.tier == ILicenseManager.Tier.PayPerUse && t.packSize == 0 ? t.price : 0;
        r.disputeWindow = m == 0 ? 0 : WINDOW;
        r.platformFeeBps = licenses.platformFeeBps();
        ISynthesisRouter.RequestParams memory p = requestParams(t.modelId, id, r.fee);
        uint256 amount = uint256(r.usePrice) + r.fee;
        uint256 extra = extraEth && t.asset == address(0) ? 7 : 0; // excess ETH is credited back
        _fund(r.requester, t.asset, amount + extra);
        vm.prank(r.requester);
        r.id = router.requestSynthesis{value: t.asset == address(0) ? amount + extra : 0}(p);
        (r.modelId, r.licenseId, r.operator, r.params) = (p.modelId, id, p.operator, p.params);
        (r.inputHash, r.deadline) = (p.inputHash, p.deadline);
        if (t.tier == ILicenseManager.Tier.Subscription) r.useTag = licenses.license(id).periodStart;
        reqs.push(r);
        statusOf.push(ISynthesisRouter.RequestStatus.Pending);
        settleAfterOf.push(0);
        ghostEscrow[t.asset] += amount;
        ghostCredit[1][r.requester][address(0)] += extra;
        ++calls[uint256(Action.Request)];
        i = reqs.length - 1;
        _checkStatus(i);
    }

    function _usableLicence(uint256 seed, uint256 m) private returns (uint256) {
        for (uint256 k; k < licenceIds.length; ++k) {
            uint256 id = licenceIds[_at(seed, k) % licenceIds.length];
            uint256 index = offerIndexOf[id];
            if (index / 6 != m) continue;
            uint256 kind = index % 6;
            if (kind == 0 || kind == 3 || kind == 4) return id; // no expiry, no use limit
            (bool ok,) = licenses.isLicensed(id, licenses.ownerOf(id), models[m], 1);
            if (ok) return id;
        }
        return _buy(holders[seed % 3], 6 * m + 3 + seed % 2, 1);
    }

    /// A pending request of `models[m]` that can still be delivered (a new one if none).
    function _live(uint256 seed, uint256 m) private returns (uint256) {
        uint256 n = reqs.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = _at(seed, k) % n;
            if (
                statusOf[i] == ISynthesisRouter.RequestStatus.Pending && block.timestamp <= reqs[i].deadline
                    && reqs[i].modelId == models[m]
            ) return i;
        }
        return _request(seed, m, false);
    }

    function _find(uint256 seed, ISynthesisRouter.RequestStatus status) private view returns (uint256) {
        uint256 n = reqs.length;
        for (uint256 k; k < n; ++k) {
            uint256 i = _at(seed, k) % n;
            if (statusOf[i] == status) return i;
        }
        return type(uint256).max;
    }

    function _fulfil(uint256 i) private returns (uint256) {
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        // The arguments first: any call between the prank and fulfil (sha256 is a precompile
        // call) would take the prank, and fulfil would revert (the bug this suite once had).
        bytes32 digest = sha256(abi.encode("wav", r.id));
        bytes memory cid = abi.encodePacked(hex"01551220", digest);
        vm.prank(operator);
        router.fulfil(r, digest, cid);
        ++calls[uint256(Action.Fulfil)];
        if (r.disputeWindow == 0) {
            _payOut(i);
        } else {
            statusOf[i] = ISynthesisRouter.RequestStatus.Fulfilled;
            settleAfterOf[i] = uint40(block.timestamp) + uint40(r.disputeWindow);
            _checkStatus(i);
        }
        return i;
    }

    /// The buyer disputes a delivery in its window (one delivered now if none is open).
    function _dispute(uint256 seed) private returns (uint256 i) {
        uint256 n = reqs.length;
        i = type(uint256).max;
        for (uint256 k; k < n; ++k) {
            uint256 j = _at(seed, k) % n;
            if (statusOf[j] == ISynthesisRouter.RequestStatus.Fulfilled && block.timestamp < settleAfterOf[j]) {
                i = j;
                break;
            }
        }
        if (i == type(uint256).max) i = _fulfil(_live(seed, 1));
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        vm.deal(r.requester, r.requester.balance + BOND);
        vm.prank(r.requester);
        router.dispute{value: BOND}(r);
        statusOf[i] = ISynthesisRouter.RequestStatus.Disputed;
        settleAfterOf[i] = uint40(block.timestamp) + router.ARBITRATION_PERIOD();
        ghostBonds += BOND;
        ++ghostOpenDisputes;
        ++calls[uint256(Action.Dispute)];
        assertEq(router.disputeBondOf(r.id), BOND, "bond held");
        _checkStatus(i);
    }

    /// Distributes a non-empty pot (revenue from a new buyout if every pot is empty); returns
    /// the ledger and asset distributed.
    function _distribute(uint256 seed) private returns (uint256 ledger, address asset) {
        uint256 modelId;
        bool found;
        for (uint256 k; k < 8 && !found; ++k) {
            uint256 s = _at(seed, k);
            (ledger, modelId, asset) = (s % 2, models[(s / 2) % 2], (s / 4) % 2 == 0 ? address(0) : address(usd));
            uint256[2] storage p = _ghostPot[ledger][modelId][asset];
            found = p[0] + p[1] != 0;
        }
        if (!found) {
            (ledger, modelId, asset) = (0, models[seed % 2], address(0));
            _buy(holders[seed % 3], 6 * (seed % 2), 1);
        }
        _distributePot(ledger, modelId, asset);
    }

    function _distributePot(uint256 ledger, uint256 modelId, address asset) private {
        IRevenueLedger book = ledger == 0 ? IRevenueLedger(licenses) : IRevenueLedger(router);
        book.distribute(modelId, asset);
        uint256[2] storage pot = _ghostPot[ledger][modelId][asset];
        (uint256 share, uint256 platformShare) = (pot[0], pot[1]);
        (pot[0], pot[1]) = (0, 0);
        ghostPlatform[ledger][asset] += platformShare;
        (uint16 voiceBps, uint16 coBps) = modelId == models[0] ? (VOICE_A, CO_A) : (VOICE_B, 0);
        uint256 toVoice = share * voiceBps / 10_000;
        uint256 toCo = share * coBps / 10_000;
        ghostCredit[ledger][voice][asset] += toVoice;
        ghostCredit[ledger][coCreator][asset] += toCo;
        ghostCredit[ledger][creator][asset] += share - toVoice - toCo;
        ++calls[uint256(Action.Distribute)];
    }

    /// A (ledger, account, asset) with a credit, from `seed` on; ledger 2 if there is none.
    function _anyCredit(uint256 seed) private view returns (uint256 ledger, address account, address asset) {
        address[8] memory a = [creator, voice, coCreator, operator, holders[0], holders[1], holders[2], STRANGER];
        for (uint256 k; k < 32; ++k) {
            uint256 s = _at(seed, k);
            (ledger, account, asset) = (s % 2, a[(s / 2) % 8], (s / 16) % 2 == 0 ? address(0) : address(usd));
            if (ghostCredit[ledger][account][asset] != 0) return (ledger, account, asset);
        }
        return (2, address(0), address(0));
    }

    function _setPlatformFee(uint16 bps) private {
        licenses.setPlatformFee(bps);
        ++calls[uint256(Action.SetPlatformFee)];
    }

    function _accrue(uint256 ledger, uint256 modelId, address asset, uint256 amount, uint16 feeBps) private {
        uint256 fee = amount * feeBps / 10_000;
        uint256[2] storage pot = _ghostPot[ledger][modelId][asset];
        pot[0] += amount - fee;
        pot[1] += fee;
    }

    function _payOut(uint256 i) private {
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        ghostEscrow[r.asset] -= uint256(r.usePrice) + r.fee;
        ghostCredit[1][r.operator][r.asset] += r.fee;
        _accrue(1, r.modelId, r.asset, r.usePrice, r.platformFeeBps);
        statusOf[i] = ISynthesisRouter.RequestStatus.Settled;
        _checkStatus(i);
    }

    function _refund(uint256 i, ISynthesisRouter.RequestStatus status) private {
        ISynthesisRouter.SynthesisRequest memory r = reqs[i];
        ghostEscrow[r.asset] -= uint256(r.usePrice) + r.fee;
        ghostCredit[1][r.requester][r.asset] += uint256(r.usePrice) + r.fee;
        statusOf[i] = status;
        _checkStatus(i);
    }

    function _terms(uint256 licenceId) private view returns (ILicenseManager.OfferTerms memory) {
        return offerTerms[offerIndexOf[licenceId]];
    }

    /// `seed + k`, wrapping (seeds are any uint256; a window of consecutive values still covers
    /// every residue).
    function _at(uint256 seed, uint256 k) private pure returns (uint256) {
        unchecked {
            return seed + k;
        }
    }

    function _checkStatus(uint256 i) private view {
        assertEq(uint256(router.requestStatus(reqs[i].id)), uint256(statusOf[i]), "request status as mirrored");
    }

    function _fund(address who, address asset, uint256 amount) private {
        if (asset == address(0)) vm.deal(who, who.balance + amount);
        else usd.mint(who, amount);
    }

    function _balance(address who, address asset) private view returns (uint256) {
        return asset == address(0) ? who.balance : usd.balanceOf(who);
    }
}

/// @notice Invariants of the money over random sequences of market actions (fail_on_revert:
/// every handler call must succeed). Each ledger matches its mirror account by account, and
/// holds exactly what it owes; every action happened in every run.
contract RevenueAccountingInvariantTest is ForgeTest {
    MarketHandler internal handler;

    function setUp() public {
        handler = new MarketHandler();
    }

    /// @notice Forge calls only the handler's actions (not the market contracts it deployed).
    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// One campaign checks all of them after every call (each invariant_ function would run a
    /// campaign of its own: four times the time for the same sequences).
    function invariant_money() public view {
        _licenceManagerHoldsExactlyWhatItOwes();
        _routerHoldsExactlyWhatItOwes();
        _ledgersMatchTheMirror();
        _stakeAndOpenDisputes();
    }

    /// The licence manager holds exactly its credits, pots and platform balance, in each asset.
    function _licenceManagerHoldsExactlyWhatItOwes() internal view {
        (LicenseManager licenses,, MockStablecoin usd) = handler.contracts();
        assertEq(address(licenses).balance, handler.ghostOwed(0, address(0)), "ETH");
        assertEq(usd.balanceOf(address(licenses)), handler.ghostOwed(0, address(usd)), "USD");
    }

    /// The router holds exactly its credits, pots, platform balance, the escrow of open requests,
    /// the dispute bonds it holds and (ETH) the operator's stake.
    function _routerHoldsExactlyWhatItOwes() internal view {
        (, SynthesisRouter router, MockStablecoin usd) = handler.contracts();
        assertEq(
            address(router).balance,
            handler.ghostOwed(1, address(0)) + handler.ghostEscrow(address(0)) + handler.ghostBonds()
                + handler.ghostStake(),
            "ETH"
        );
        assertEq(
            usd.balanceOf(address(router)),
            handler.ghostOwed(1, address(usd)) + handler.ghostEscrow(address(usd)),
            "USD"
        );
    }

    /// Every credit, pot and platform balance of both ledgers is what the mirror computed: each
    /// payout, refund, slash and bond went to the right account, once.
    function _ledgersMatchTheMirror() internal view {
        (LicenseManager licenses, SynthesisRouter router, MockStablecoin usd) = handler.contracts();
        address[10] memory accounts = handler.accounts();
        uint256[2] memory models = handler.modelIds();
        for (uint256 l; l < 2; ++l) {
            IRevenueLedger book = l == 0 ? IRevenueLedger(licenses) : IRevenueLedger(router);
            for (uint256 a; a < 2; ++a) {
                address asset = a == 0 ? address(0) : address(usd);
                for (uint256 i; i < accounts.length; ++i) {
                    assertEq(book.creditOf(accounts[i], asset), handler.ghostCredit(l, accounts[i], asset), "credit");
                }
                for (uint256 m; m < 2; ++m) {
                    (uint256 share, uint256 platform) = book.potOf(models[m], asset);
                    (uint256 ghostShare, uint256 ghostPlatform) = handler.ghostPot(l, models[m], asset);
                    assertEq(share, ghostShare, "pot: the model's share");
                    assertEq(platform, ghostPlatform, "pot: the platform's share");
                }
                assertEq(book.platformBalance(asset), handler.ghostPlatform(l, asset), "platform balance");
            }
        }
    }

    /// The operator's stake and open disputes are what slashes, top-ups, disputes and their
    /// outcomes left.
    function _stakeAndOpenDisputes() internal view {
        (, SynthesisRouter router,) = handler.contracts();
        address operator = handler.accounts()[3];
        assertEq(router.operatorInfo(operator).stake, handler.ghostStake(), "stake");
        assertEq(router.operatorInfo(operator).openDisputes, handler.ghostOpenDisputes(), "open disputes");
    }

    /// After each run: every action succeeded at least once, so the invariants above covered
    /// every path of the money (the suite once ran for months without a single fulfilment).
    function afterInvariant() public view {
        for (uint256 a; a < handler.ACTIONS(); ++a) {
            console.log(handler.actionName(a), handler.calls(a)); // shown with -vv: the last run's counts
            if (handler.calls(a) == 0) {
                revert AssertionFailed(string.concat("never succeeded: ", handler.actionName(a)), a, 0);
            }
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest, Vm} from "./utils/Vm.sol";
import {MockStablecoin} from "../contracts/test/MockStablecoin.sol";
import {VoiceModelRegistry} from "../contracts/VoiceModelRegistry.sol";
import {LicenseManager} from "../contracts/LicenseManager.sol";
import {SynthesisRouter} from "../contracts/SynthesisRouter.sol";
import {IVoiceModelRegistry} from "../contracts/interfaces/IVoiceModelRegistry.sol";
import {ILicenseManager} from "../contracts/interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../contracts/interfaces/ISynthesisRouter.sol";
import {IRevenueLedger} from "../contracts/interfaces/IRevenueLedger.sol";

/// @notice Deploys and wires the market, and registers models with signed consent.
abstract contract MarketFixture is ForgeTest {
    uint256 internal constant VOICE_KEY = 0xA11CE;
    uint256 internal constant OPERATOR_KEY = 0x0BE7A7;
    uint256 internal constant MIN_STAKE = 1 ether;

    address internal admin = address(this);
    address internal creator = address(0xC4EA);
    address internal voice;
    address internal coCreator = address(0xC0C0);
    address internal operator;

    VoiceModelRegistry internal registry;
    LicenseManager internal licenses;
    SynthesisRouter internal router;
    MockStablecoin internal usd;

    function deployMarket(uint16 feeBps) internal {
        voice = vm.addr(VOICE_KEY);
        registry = new VoiceModelRegistry(admin, 30 days);
        licenses = new LicenseManager(admin, registry, feeBps);
        router = new SynthesisRouter(admin, registry, licenses, MIN_STAKE, 0.1 ether, 8 days);
        licenses.setRouter(address(router));
        licenses.grantRole(licenses.FEE_MANAGER_ROLE(), admin);
        licenses.grantRole(licenses.TREASURER_ROLE(), admin);
        router.grantRole(router.TREASURER_ROLE(), admin);
        usd = new MockStablecoin();
        licenses.setAssetAllowed(address(usd), true);
    }

    function registerModel(bytes32 digest, uint16 voiceBps, uint16 coBps, uint24 window) internal returns (uint256) {
        IVoiceModelRegistry.Payee[] memory coCreators = new IVoiceModelRegistry.Payee[](coBps == 0 ? 0 : 1);
        if (coBps != 0) coCreators[0] = IVoiceModelRegistry.Payee(coCreator, coBps);
        bytes32 policy = keccak256(abi.encode("policy", digest));
        uint256 deadline = block.timestamp + 1 hours;
        IVoiceModelRegistry.ModelRegistration memory reg = IVoiceModelRegistry.ModelRegistration({
            bundleDigest: digest,
            bundleCid: keccak256(abi.encode("cid", digest)),
            bundleCodec: 0x55,
            metadataCid: keccak256(abi.encode("meta", digest)),
            metadataCodec: 0x70,
            languages: 0x3,
            royaltyBps: 500,
            disputeWindow: window,
            parentId: 0,
            voiceOwner: voice,
            voiceOwnerBps: voiceBps,
            coCreators: coCreators,
            policyHash: policy,
            consentDeadline: deadline,
            consentSignature: ""
        });
        reg.consentSignature = signConsent(digest, policy, voiceBps, deadline);
        vm.prank(creator);
        return registry.registerModel(reg);
    }

    function signConsent(bytes32 digest, bytes32 policy, uint16 voiceBps, uint256 deadline)
        internal
        view
        returns (bytes memory)
    {
        (uint8 v, bytes32 r, bytes32 s) =
            vm.sign(VOICE_KEY, registry.consentDigest(digest, creator, policy, voiceBps, deadline));
        return abi.encodePacked(r, s, v);
    }

    function publish(uint256 modelId, ILicenseManager.Tier tier, address asset, uint128 price, uint32 period)
        internal
        returns (uint256)
    {
        ILicenseManager.OfferTerms memory t;
        t.modelId = modelId;
        t.tier = tier;
        t.asset = asset;
        t.price = price;
        t.period = period;
        t.permissions = 1;
        t.transferable = true;
        t.policyHash = keccak256(abi.encode(modelId, tier, asset, price, period));
        vm.prank(creator);
        return licenses.publishOffer(t, "");
    }

    /// @dev A request to the operator for one inline sentence in English, due in an hour.
    function requestParams(uint256 modelId, uint256 licenseId, uint128 maxFee)
        internal
        view
        returns (ISynthesisRouter.RequestParams memory)
    {
        return ISynthesisRouter.RequestParams({
            modelId: modelId,
            licenseId: licenseId,
            operator: operator,
            maxFee: maxFee,
            deadline: uint40(block.timestamp + 1 hours),
            params: 1,
            inputHash: sha256("hello"),
            input: abi.encodePacked(bytes1(0), "hello")
        });
    }

    function registerOperator() internal {
        Vm.Wallet memory w = vm.createWallet(OPERATOR_KEY);
        operator = w.addr;
        vm.deal(operator, MIN_STAKE);
        vm.prank(operator);
        router.registerOperator{value: MIN_STAKE}(abi.encodePacked(w.publicKeyX, w.publicKeyY));
    }
}

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
        registerOperator();
        uint256 modelId = registerModel(keccak256(abi.encode("refund", usePrice, fee)), 0, 0, 0);
        vm.prank(creator);
        router.setOperatorAllowed(modelId, operator, true);
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
        ISynthesisRouter.SynthesisRequest memory r = ISynthesisRouter.SynthesisRequest({
            id: id,
            modelId: modelId,
            licenseId: licenseId,
            requester: buyer,
            operator: operator,
            asset: address(0),
            usePrice: usePrice,
            fee: fee,
            params: 1,
            inputHash: p.inputHash,
            deadline: p.deadline,
            disputeWindow: 0,
            useTag: 0,
            platformFeeBps: 2_000
        });
        vm.prank(operator);
        router.fail(r, ISynthesisRouter.FailReason.SynthesisError);
        assertEq(router.creditOf(buyer, address(0)), escrow, "refund");
        assertEq(address(router).balance, escrow + MIN_STAKE, "escrow turned into credit");
    }
}

/// @notice Drives random purchases, renewals, requests and their outcomes, distributions and
/// withdrawals for the invariant suite, and keeps the ghost totals the invariants need.
contract MarketHandler is MarketFixture {
    address[3] internal buyers = [address(0xB1), address(0xB2), address(0xB3)];
    uint256[2] internal models;
    uint256[] internal offerIds;
    uint256[] internal licenceIds;
    ISynthesisRouter.SynthesisRequest[] internal open;

    mapping(address asset => uint256) public escrow;
    /// @notice Set if a withdrawal ever paid other than the credit (handler reverts are ignored).
    bool public overpaid;

    constructor() {
        deployMarket(2_000);
        registerOperator();
        vm.prank(operator);
        router.setFee(address(0), 0.001 ether);
        vm.prank(operator);
        router.setFee(address(usd), 1_000);
        models[0] = registerModel(keccak256("model A"), 3_333, 1_111, 0);
        models[1] = registerModel(keccak256("model B"), 2_500, 0, 0);
        for (uint256 m; m < 2; ++m) {
            vm.prank(creator);
            router.setOperatorAllowed(models[m], operator, true);
            offerIds.push(publish(models[m], ILicenseManager.Tier.Buyout, address(0), uint128(0.01 ether + m), 0));
            offerIds.push(publish(models[m], ILicenseManager.Tier.Subscription, address(usd), 9_990_001, 30 days));
            offerIds.push(publish(models[m], ILicenseManager.Tier.PayPerUse, address(0), uint128(0.0003 ether + 7), 0));
            offerIds.push(publish(models[m], ILicenseManager.Tier.PayPerUse, address(usd), 333_333, 0));
        }
        for (uint256 i; i < buyers.length; ++i) {
            vm.prank(buyers[i]);
            usd.approve(address(licenses), type(uint256).max);
            vm.prank(buyers[i]);
            usd.approve(address(router), type(uint256).max);
        }
    }

    // ---------------------------------------------------------------- actions

    function buy(uint256 buyerSeed, uint256 offerSeed) external {
        address buyer = buyers[buyerSeed % buyers.length];
        uint256 offerId = offerIds[offerSeed % offerIds.length];
        ILicenseManager.OfferTerms memory t = licenses.offer(offerId).terms;
        uint256 cost = t.tier == ILicenseManager.Tier.PayPerUse ? 0 : t.price;
        _fund(buyer, t.asset, cost);
        vm.prank(buyer);
        licenceIds.push(licenses.buy{value: t.asset == address(0) ? cost : 0}(offerId, cost, 1));
    }

    function renew(uint256 licenceSeed) external {
        if (licenceIds.length == 0) return;
        uint256 id = licenceIds[licenceSeed % licenceIds.length];
        ILicenseManager.OfferTerms memory t = licenses.offer(licenses.offerOf(id)).terms;
        if (t.tier != ILicenseManager.Tier.Subscription) return;
        address holder = licenses.ownerOf(id);
        _fund(holder, t.asset, t.price);
        vm.prank(holder);
        licenses.renewSubscription(id, t.period);
    }

    function setPlatformFee(uint16 bps) external {
        licenses.setPlatformFee(uint16(bound(bps, 0, 2_000)));
    }

    function request(uint256 licenceSeed) external {
        if (licenceIds.length == 0) return;
        uint256 id = licenceIds[licenceSeed % licenceIds.length];
        ILicenseManager.OfferTerms memory t = licenses.offer(licenses.offerOf(id)).terms;
        address holder = licenses.ownerOf(id);
        if (t.tier == ILicenseManager.Tier.Subscription && licenses.expiresAt(id) <= block.timestamp) return;
        uint128 fee = router.operatorFee(operator, t.asset);
        uint256 amount = (t.tier == ILicenseManager.Tier.PayPerUse ? t.price : 0) + fee;
        _fund(holder, t.asset, amount);
        ISynthesisRouter.RequestParams memory p = requestParams(t.modelId, id, fee);
        uint40 tag = licenses.license(id).periodStart;
        uint16 feeBps = licenses.platformFeeBps();
        vm.prank(holder);
        uint256 requestId = router.requestSynthesis{value: t.asset == address(0) ? amount : 0}(p);
        if (t.tier == ILicenseManager.Tier.Subscription) tag = licenses.license(id).periodStart;
        open.push(
            ISynthesisRouter.SynthesisRequest({
                id: requestId,
                modelId: t.modelId,
                licenseId: id,
                requester: holder,
                operator: operator,
                asset: t.asset,
                usePrice: t.tier == ILicenseManager.Tier.PayPerUse ? t.price : 0,
                fee: fee,
                params: 1,
                inputHash: p.inputHash,
                deadline: p.deadline,
                disputeWindow: 0,
                useTag: tag,
                platformFeeBps: feeBps
            })
        );
        escrow[t.asset] += amount;
    }

    /// Settles one open request: 0 fulfils, 1 fails, 2 lets it expire and cancels it.
    function settle(uint256 requestSeed, uint8 how) external {
        if (open.length == 0) return;
        uint256 i = requestSeed % open.length;
        ISynthesisRouter.SynthesisRequest memory r = open[i];
        open[i] = open[open.length - 1];
        open.pop();
        escrow[r.asset] -= r.usePrice + r.fee;
        how %= 3;
        if (how == 0) {
            vm.prank(operator);
            router.fulfil(r, sha256("wav"), hex"0155122000");
        } else if (how == 1) {
            vm.prank(operator);
            router.fail(r, ISynthesisRouter.FailReason.BadInput);
        } else {
            vm.warp(r.deadline + 1);
            router.cancelExpired(r);
        }
    }

    function distribute(uint256 modelSeed, bool inUsd, bool onRouter) external {
        IRevenueLedger ledger = onRouter ? IRevenueLedger(router) : IRevenueLedger(licenses);
        address asset = inUsd ? address(usd) : address(0);
        uint256 modelId = models[modelSeed % 2];
        (uint256 share, uint256 platform) = ledger.potOf(modelId, asset);
        if (share + platform == 0) return;
        ledger.distribute(modelId, asset);
    }

    function withdraw(uint256 accountSeed, bool inUsd, bool onRouter) external {
        IRevenueLedger ledger = onRouter ? IRevenueLedger(router) : IRevenueLedger(licenses);
        address asset = inUsd ? address(usd) : address(0);
        address[7] memory accounts = [creator, voice, coCreator, operator, buyers[0], buyers[1], buyers[2]];
        address account = accounts[accountSeed % accounts.length];
        uint256 credit = ledger.creditOf(account, asset);
        if (credit == 0) return;
        uint256 before = asset == address(0) ? account.balance : usd.balanceOf(account);
        vm.prank(account);
        ledger.withdraw(asset);
        uint256 received = (asset == address(0) ? account.balance : usd.balanceOf(account)) - before;
        if (received != credit || ledger.creditOf(account, asset) != 0) overpaid = true;
    }

    function withdrawPlatformFees(bool inUsd, bool onRouter) external {
        IRevenueLedger ledger = onRouter ? IRevenueLedger(router) : IRevenueLedger(licenses);
        address asset = inUsd ? address(usd) : address(0);
        if (ledger.platformBalance(asset) == 0) return;
        ledger.withdrawPlatformFees(asset, address(0x7EA5));
    }

    // ---------------------------------------------------------------- what the invariants read

    function owedBy(IRevenueLedger ledger, address asset) external view returns (uint256 owed) {
        address[8] memory accounts = [creator, voice, coCreator, operator, buyers[0], buyers[1], buyers[2], admin];
        for (uint256 i; i < accounts.length; ++i) owed += ledger.creditOf(accounts[i], asset);
        for (uint256 m; m < 2; ++m) {
            (uint256 share, uint256 platform) = ledger.potOf(models[m], asset);
            owed += share + platform;
        }
        owed += ledger.platformBalance(asset);
    }

    function contracts() external view returns (LicenseManager, SynthesisRouter, MockStablecoin) {
        return (licenses, router, usd);
    }

    function stake() external view returns (uint256) {
        return router.operatorInfo(operator).stake;
    }

    function _fund(address who, address asset, uint256 amount) private {
        if (asset == address(0)) vm.deal(who, who.balance + amount);
        else usd.mint(who, amount);
    }
}

/// @notice Invariants of the revenue accounting over random sequences of market actions.
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

    /// The licence manager holds exactly its credits, pots and platform balance, in each asset.
    function invariant_licenceManagerHoldsExactlyWhatItOwes() public view {
        (LicenseManager licenses,, MockStablecoin usd) = handler.contracts();
        assertEq(address(licenses).balance, handler.owedBy(licenses, address(0)), "ETH");
        assertEq(usd.balanceOf(address(licenses)), handler.owedBy(licenses, address(usd)), "USD");
    }

    /// The router holds exactly its credits, pots, platform balance, the escrow of open requests
    /// and (ETH) the operator's stake.
    function invariant_routerHoldsExactlyWhatItOwes() public view {
        (, SynthesisRouter router, MockStablecoin usd) = handler.contracts();
        assertEq(
            address(router).balance,
            handler.owedBy(router, address(0)) + handler.escrow(address(0)) + handler.stake(),
            "ETH"
        );
        assertEq(usd.balanceOf(address(router)), handler.owedBy(router, address(usd)) + handler.escrow(address(usd)), "USD");
    }

    /// Every withdrawal paid exactly the credit and cleared it.
    function invariant_withdrawalsPayExactlyTheCredit() public view {
        assertTrue(!handler.overpaid(), "a withdrawal paid other than the credit");
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest, Vm} from "./Vm.sol";
import {MockStablecoin} from "../../contracts/test/MockStablecoin.sol";
import {VoiceModelRegistry} from "../../contracts/VoiceModelRegistry.sol";
import {LicenseManager} from "../../contracts/LicenseManager.sol";
import {OfferBook} from "../../contracts/OfferBook.sol";
import {SynthesisRouter} from "../../contracts/SynthesisRouter.sol";
import {IVoiceModelRegistry} from "../../contracts/interfaces/IVoiceModelRegistry.sol";
import {ILicenseManager} from "../../contracts/interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../../contracts/interfaces/ISynthesisRouter.sol";

/// @notice Deploys and wires the market, registers models (with the voice owner's signed
/// consent, or as their own voice owner), publishes offers through the OfferBook, and builds
/// synthesis requests exactly as the router commits them.
abstract contract MarketFixture is ForgeTest {
    uint256 internal constant VOICE_KEY = 0xA11CE;
    uint256 internal constant OPERATOR_KEY = 0x0BE7A7;
    uint256 internal constant MIN_STAKE = 1 ether;
    uint256 internal constant SLASH = 0.1 ether;
    /// @dev The deployment default (voicemarket.chain.deploy): a 30-day plan and its 1-day lead fit.
    uint40 internal constant NOTICE = 45 days;
    uint128 internal constant LANGUAGE_EN = 1;

    address internal admin = address(this);
    address internal creator = address(0xC4EA);
    address internal voice;
    address internal coCreator = address(0xC0C0);
    address internal operator;

    VoiceModelRegistry internal registry;
    LicenseManager internal licenses;
    OfferBook internal offers;
    SynthesisRouter internal router;
    MockStablecoin internal usd;

    function deployMarket(uint16 feeBps) internal {
        voice = vm.addr(VOICE_KEY);
        registry = new VoiceModelRegistry(admin, NOTICE);
        licenses = new LicenseManager(admin, registry, feeBps);
        offers = OfferBook(licenses.offerBook());
        router = new SynthesisRouter(admin, registry, licenses, MIN_STAKE, SLASH, 8 days);
        licenses.setRouter(address(router));
        licenses.grantRole(licenses.FEE_MANAGER_ROLE(), admin);
        licenses.grantRole(licenses.TREASURER_ROLE(), admin);
        router.grantRole(router.TREASURER_ROLE(), admin);
        router.grantRole(router.ARBITER_ROLE(), admin);
        usd = new MockStablecoin();
        licenses.setAssetAllowed(address(usd), true);
    }

    /// @dev A registration of `digest` by `creator` for `voice` (signed by VOICE_KEY under the
    /// voice owner's current consent nonce), with an optional co-creator.
    function registerModel(bytes32 digest, uint16 voiceBps, uint16 coBps, uint24 window) internal returns (uint256) {
        IVoiceModelRegistry.ModelRegistration memory reg = registration(digest, voice, voiceBps, window);
        if (coBps != 0) {
            reg.coCreators = new IVoiceModelRegistry.Payee[](1);
            reg.coCreators[0] = IVoiceModelRegistry.Payee(coCreator, coBps);
        }
        reg.consentSignature = signConsent(creator, reg);
        vm.prank(creator);
        uint256 id = registry.registerModel(reg);
        assertEq(id, registry.modelIdOf(creator, digest), "model id = modelIdOf(creator, digest)");
        return id;
    }

    /// @dev `who` registers `digest` as their own voice (no consent needed, no voice share).
    function registerOwnModel(address who, bytes32 digest, uint24 window) internal returns (uint256) {
        IVoiceModelRegistry.ModelRegistration memory reg = registration(digest, who, 0, window);
        vm.prank(who);
        return registry.registerModel(reg);
    }

    function registration(bytes32 digest, address voiceOwner, uint16 voiceBps, uint24 window)
        internal
        view
        returns (IVoiceModelRegistry.ModelRegistration memory)
    {
        return IVoiceModelRegistry.ModelRegistration({
            bundleDigest: digest,
            bundleCid: keccak256(abi.encode("cid", digest)),
            bundleCodec: 0x55,
            metadataCid: keccak256(abi.encode("meta", digest)),
            metadataCodec: 0x70,
            languages: 0x3,
            royaltyBps: 500,
            disputeWindow: window,
            parentId: 0,
            voiceOwner: voiceOwner,
            voiceOwnerBps: voiceBps,
            coCreators: new IVoiceModelRegistry.Payee[](0),
            policyHash: keccak256(abi.encode("policy", digest)),
            consentDeadline: block.timestamp + 1 hours,
            consentSignature: ""
        });
    }

    /// @dev VOICE_KEY's EIP-712 consent to `reg` by `by`, under the voice owner's current nonce.
    function signConsent(address by, IVoiceModelRegistry.ModelRegistration memory reg)
        internal
        view
        returns (bytes memory)
    {
        bytes32 digest = registry.consentDigest(
            reg.voiceOwner,
            reg.bundleDigest,
            by,
            reg.policyHash,
            reg.voiceOwnerBps,
            registry.consentNonce(reg.voiceOwner),
            reg.consentDeadline
        );
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(VOICE_KEY, digest);
        return abi.encodePacked(r, s, v);
    }

    function terms(uint256 modelId, ILicenseManager.Tier tier, address asset, uint128 price, uint32 period)
        internal
        pure
        returns (ILicenseManager.OfferTerms memory t)
    {
        t.modelId = modelId;
        t.tier = tier;
        t.asset = asset;
        t.price = price;
        t.period = period;
        t.permissions = 1;
        t.transferable = true;
        t.policyHash = keccak256(abi.encode(modelId, tier, asset, price, period));
    }

    /// @dev The model's owner publishes a transferable text-to-speech offer through the OfferBook.
    function publish(uint256 modelId, ILicenseManager.Tier tier, address asset, uint128 price, uint32 period)
        internal
        returns (uint256)
    {
        ILicenseManager.OfferTerms memory t = terms(modelId, tier, asset, price, period);
        vm.prank(registry.ownerOf(modelId));
        return offers.publishOffer(t, "");
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
            params: LANGUAGE_EN,
            inputHash: sha256("hello"),
            input: abi.encodePacked(bytes1(0), "hello")
        });
    }

    /// @dev The request as the router commits it (what SynthesisRequested carries). Read the
    /// licence's tag and the platform fee before requesting, as the router does.
    function committed(
        uint256 id,
        ISynthesisRouter.RequestParams memory p,
        address requester,
        address asset,
        uint128 usePrice,
        uint128 fee,
        uint24 window,
        uint40 useTag,
        uint16 feeBps
    ) internal pure returns (ISynthesisRouter.SynthesisRequest memory) {
        return ISynthesisRouter.SynthesisRequest({
            id: id,
            modelId: p.modelId,
            licenseId: p.licenseId,
            requester: requester,
            operator: p.operator,
            asset: asset,
            usePrice: usePrice,
            fee: fee,
            params: p.params,
            inputHash: p.inputHash,
            deadline: p.deadline,
            disputeWindow: window,
            useTag: useTag,
            platformFeeBps: feeBps
        });
    }

    function registerOperator() internal {
        Vm.Wallet memory w = vm.createWallet(OPERATOR_KEY);
        operator = w.addr;
        vm.deal(operator, MIN_STAKE);
        vm.prank(operator);
        router.registerOperator{value: MIN_STAKE}(abi.encodePacked(w.publicKeyX, w.publicKeyY));
    }

    function allowOperator(uint256 modelId) internal {
        vm.prank(registry.ownerOf(modelId));
        router.setOperatorAllowed(modelId, operator, true);
    }
}

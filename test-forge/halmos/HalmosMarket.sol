// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "../utils/Vm.sol";
import {MockStablecoin} from "../../contracts/test/MockStablecoin.sol";
import {VoiceModelRegistry} from "../../contracts/VoiceModelRegistry.sol";
import {LicenseManager} from "../../contracts/LicenseManager.sol";
import {OfferBook} from "../../contracts/OfferBook.sol";
import {SynthesisRouter} from "../../contracts/SynthesisRouter.sol";
import {IVoiceModelRegistry} from "../../contracts/interfaces/IVoiceModelRegistry.sol";
import {ILicenseManager} from "../../contracts/interfaces/ILicenseManager.sol";

/// @notice The market for the Halmos checks, built with the cheatcodes Halmos has (no keys, no
/// signatures: this contract registers its own voice, so no consent is needed). Halmos counts
/// only `assert` failures as counterexamples: the checks assert, they do not revert.
abstract contract HalmosMarket {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    VoiceModelRegistry internal registry;
    LicenseManager internal licenses;
    OfferBook internal offers;
    SynthesisRouter internal router;
    MockStablecoin internal usd;

    function deployMarket() internal {
        registry = new VoiceModelRegistry(address(this), 45 days);
        licenses = new LicenseManager(address(this), registry, 2_000);
        offers = OfferBook(licenses.offerBook());
        router = new SynthesisRouter(address(this), registry, licenses, 1 ether, 0.1 ether, 8 days);
        licenses.setRouter(address(router));
        router.grantRole(router.ARBITER_ROLE(), address(this));
        usd = new MockStablecoin();
        licenses.setAssetAllowed(address(usd), true);
    }

    function registerOwnModel(bytes32 digest, uint24 window) internal returns (uint256) {
        return registry.registerModel(
            IVoiceModelRegistry.ModelRegistration({
                bundleDigest: digest,
                bundleCid: keccak256(abi.encode("cid", digest)),
                bundleCodec: 0x55,
                metadataCid: keccak256(abi.encode("meta", digest)),
                metadataCodec: 0x70,
                languages: 0x3,
                royaltyBps: 0,
                disputeWindow: window,
                parentId: 0,
                voiceOwner: address(this),
                voiceOwnerBps: 0,
                coCreators: new IVoiceModelRegistry.Payee[](0),
                policyHash: keccak256(abi.encode("policy", digest)),
                consentDeadline: 0,
                consentSignature: ""
            })
        );
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
        return offers.publishOffer(t, "");
    }
}

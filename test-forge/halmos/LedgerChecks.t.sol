// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Vm} from "../utils/Vm.sol";
import {MockStablecoin} from "../../contracts/test/MockStablecoin.sol";
import {VoiceModelRegistry} from "../../contracts/VoiceModelRegistry.sol";
import {RevenueLedger} from "../../contracts/RevenueLedger.sol";
import {IRevenueLedger} from "../../contracts/interfaces/IRevenueLedger.sol";
import {IVoiceModelRegistry} from "../../contracts/interfaces/IVoiceModelRegistry.sol";

/// @notice The revenue ledger's own code (shared by the licence manager and the router), with
/// its two entries from the outside world opened: a payment for a model (`accrue`, what a sale
/// or a payout does) and a credit (what a refund does). The checks back each with tokens.
contract LedgerHarness is RevenueLedger {
    address private immutable _treasurer;

    constructor(IVoiceModelRegistry models, address treasurer) RevenueLedger(models) {
        _treasurer = treasurer;
    }

    function accrue(uint256 modelId, address asset, uint256 amount, uint16 feeBps) external {
        _accrue(modelId, asset, amount, feeBps);
    }

    function credit(address account, address asset, uint256 amount) external {
        _credit(account, asset, amount);
    }

    function _authorizeTreasurer() internal view override {
        require(msg.sender == _treasurer, "treasurer");
    }
}

/// @notice Halmos: the revenue ledger creates no asset and loses none. For every amount, platform
/// fee and split: a distribution turns a pot into credits and a platform balance that add up to
/// it exactly, moving no token; a withdrawal pays exactly the caller's credit, once, and touches
/// no other credit. Halmos treats only `assert` failures as counterexamples (a revert ends a path),
/// so the calls whose success is part of the property go through `call` and `assert(ok)`.
contract LedgerChecks {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    address internal constant CO_1 = address(0xC001);
    address internal constant CO_2 = address(0xC002);

    VoiceModelRegistry internal registry;
    MockStablecoin internal usd;
    LedgerHarness internal ledger;

    function setUp() public {
        registry = new VoiceModelRegistry(address(this), 45 days);
        usd = new MockStablecoin();
        ledger = new LedgerHarness(registry, address(this));
    }

    /// A model of this contract's own voice with two co-creators of any valid shares.
    function _model(uint16 bps1, uint16 bps2) internal returns (uint256) {
        IVoiceModelRegistry.Payee[] memory co = new IVoiceModelRegistry.Payee[](2);
        co[0] = IVoiceModelRegistry.Payee(CO_1, bps1);
        co[1] = IVoiceModelRegistry.Payee(CO_2, bps2);
        return registry.registerModel(
            IVoiceModelRegistry.ModelRegistration({
                bundleDigest: keccak256("bundle"),
                bundleCid: keccak256("cid"),
                bundleCodec: 0x55,
                metadataCid: keccak256("meta"),
                metadataCodec: 0x70,
                languages: 1,
                royaltyBps: 0,
                disputeWindow: 0,
                parentId: 0,
                voiceOwner: address(this),
                voiceOwnerBps: 0,
                coCreators: co,
                policyHash: keccak256("policy"),
                consentDeadline: 0,
                consentSignature: ""
            })
        );
    }

    function _owed(uint256 modelId) internal view returns (uint256 owed) {
        address asset = address(usd);
        (uint256 share, uint256 platform) = ledger.potOf(modelId, asset);
        owed = share + platform + ledger.platformBalance(asset);
        owed += ledger.creditOf(address(this), asset) + ledger.creditOf(CO_1, asset) + ledger.creditOf(CO_2, asset);
    }

    /// Two payments under any fees (at most the 20% cap), any split: whatever a distribution
    /// does, credits + pot + platform balance equal what was paid, to the wei, and no token
    /// moves; when it succeeds the pot is empty. (That it succeeds for every valid split is a
    /// nonlinear fact, floor(s*a/N) + floor(s*b/N) <= s for a + b <= N, beyond the solver in
    /// bounded time: the forge fuzz test testFuzz_paymentIsSplitExactly and the invariant run,
    /// where every call must succeed, cover it.)
    function check_distributeCreatesAndLosesNothing(
        uint96 paid1,
        uint16 fee1,
        uint96 paid2,
        uint16 fee2,
        uint16 bps1,
        uint16 bps2
    ) public {
        vm.assume(fee1 <= 2_000 && fee2 <= 2_000);
        vm.assume(bps1 != 0 && bps2 != 0 && uint256(bps1) + bps2 <= 10_000);
        uint256 modelId = _model(bps1, bps2);
        uint256 paid = uint256(paid1) + paid2;
        ledger.accrue(modelId, address(usd), paid1, fee1);
        ledger.accrue(modelId, address(usd), paid2, fee2);
        usd.mint(address(ledger), paid);
        assert(_owed(modelId) == paid);

        (bool ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.distribute, (modelId, address(usd))));
        assert(_owed(modelId) == paid);
        assert(usd.balanceOf(address(ledger)) == paid);
        (uint256 share, uint256 platform) = ledger.potOf(modelId, address(usd));
        assert(!ok || (share == 0 && platform == 0));
        assert(ok || paid == 0 || share + platform == paid); // a failed distribution changed nothing
    }

    /// Withdrawing pays the caller exactly its credit and clears it; a second withdrawal fails
    /// and pays nothing; nobody else's credit moves.
    function check_withdrawPaysExactlyTheCreditOnce(address account, address other, uint128 c1, uint128 c2, uint128 c3)
        public
    {
        vm.assume(account != address(0) && account != address(ledger) && other != account);
        ledger.credit(account, address(usd), c1);
        ledger.credit(account, address(usd), c2);
        ledger.credit(other, address(usd), c3);
        uint256 held = uint256(c1) + c2 + c3;
        usd.mint(address(ledger), held);
        uint256 before = usd.balanceOf(account);

        vm.prank(account);
        (bool ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.withdraw, (address(usd))));
        assert(ok == (uint256(c1) + c2 != 0));
        assert(usd.balanceOf(account) == before + c1 + c2);
        assert(ledger.creditOf(account, address(usd)) == 0);
        assert(ledger.creditOf(other, address(usd)) == c3);
        assert(usd.balanceOf(address(ledger)) == c3);

        vm.prank(account);
        (ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.withdraw, (address(usd))));
        assert(!ok);
        assert(usd.balanceOf(account) == before + c1 + c2);
    }

    /// The same for ETH credits (a call to the account, all gas forwarded: it cannot take more).
    function check_withdrawEthPaysExactlyTheCreditOnce(uint128 c1, uint128 c2) public {
        address account = address(0xACC0);
        ledger.credit(account, address(0), c1);
        ledger.credit(address(0xB0B), address(0), c2);
        vm.deal(address(ledger), uint256(c1) + c2);
        vm.prank(account);
        (bool ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.withdraw, (address(0))));
        assert(ok == (c1 != 0));
        assert(account.balance == c1);
        assert(address(ledger).balance == c2);
        assert(ledger.creditOf(address(0xB0B), address(0)) == c2);
    }

    /// The platform balance is paid whole, to the recipient the treasurer names, once.
    function check_platformFeesPaidOnce(uint96 paid, uint16 fee, address to) public {
        vm.assume(fee <= 2_000 && to != address(0) && to != address(ledger));
        uint256 modelId = _model(1, 1);
        ledger.accrue(modelId, address(usd), paid, fee);
        usd.mint(address(ledger), paid);
        (bool ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.distribute, (modelId, address(usd))));
        assert(ok == (paid != 0));
        uint256 platform = ledger.platformBalance(address(usd));
        assert(platform == uint256(paid) * fee / 10_000);
        uint256 before = usd.balanceOf(to);
        (ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.withdrawPlatformFees, (address(usd), to)));
        assert(ok == (platform != 0));
        assert(usd.balanceOf(to) == before + platform);
        assert(ledger.platformBalance(address(usd)) == 0);
        (ok,) = address(ledger).call(abi.encodeCall(IRevenueLedger.withdrawPlatformFees, (address(usd), to)));
        assert(!ok);
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest, console} from "./utils/Vm.sol";
import {MarketFixture} from "./utils/MarketFixture.sol";
import {PaymentChannels} from "../contracts/PaymentChannels.sol";
import {ILicenseManager} from "../contracts/interfaces/ILicenseManager.sol";
import {IPaymentChannels} from "../contracts/interfaces/IPaymentChannels.sol";

/// @notice Shared by the fuzz test and the handler: a priced pay-per-use model, the operator
/// allowed for it, buyers with licences, and signed vouchers.
abstract contract ChannelsFixture is MarketFixture {
    uint256 internal constant BUYER_KEY = 0xB0B0;
    PaymentChannels internal channels;
    uint256 internal modelId;

    function deployChannels(uint128 usePrice, uint128 fee, uint16 voiceBps, uint16 coBps) internal {
        deployMarket(2_000);
        channels = PaymentChannels(licenses.paymentChannels());
        registerOperator();
        modelId = registerModel(keccak256(abi.encode("channels", usePrice, fee, voiceBps, coBps)), voiceBps, coBps, 0);
        allowOperator(modelId);
        vm.prank(operator);
        router.setFee(address(0), fee);
    }

    function buyLicence(address buyer, uint128 usePrice) internal returns (uint256 licenseId) {
        uint256 offerId = publish(modelId, ILicenseManager.Tier.PayPerUse, address(0), usePrice, 0);
        vm.prank(buyer);
        licenseId = licenses.buy(offerId, 0, 1);
    }

    function voucher(uint256 key, uint256 licenseId, uint128 amount, uint64 uses)
        internal
        view
        returns (IPaymentChannels.Voucher memory v)
    {
        address buyer = vm.addr(key);
        bytes32 id = channels.channelId(buyer, operator, address(0));
        (uint8 sv, bytes32 r, bytes32 s) = vm.sign(key, channels.voucherDigest(id, licenseId, amount, uses));
        bytes32 vs = bytes32(uint256(s) | (uint256(sv - 27) << 255));
        v = IPaymentChannels.Voucher(buyer, address(0), licenseId, modelId, amount, uses, r, vs);
    }

    function redeemOne(IPaymentChannels.Voucher memory v) internal returns (uint256) {
        IPaymentChannels.Voucher[] memory batch = new IPaymentChannels.Voucher[](1);
        batch[0] = v;
        vm.prank(operator);
        return channels.redeem(batch);
    }
}

contract PaymentChannelsFuzzTest is ChannelsFixture {
    /// Any use price, fee, use count, platform fee and split: the redemption moves exactly what the
    /// voucher adds, the model's pot splits it exactly as a router use, and a replay moves nothing.
    function testFuzz_redemptionPaysExactlyOnce(
        uint96 usePrice,
        uint96 fee,
        uint8 uses,
        uint96 tip,
        uint16 feeBps,
        uint16 voiceBps,
        uint16 coBps
    ) public {
        uses = uint8(bound(uses, 1, 50));
        voiceBps = uint16(bound(voiceBps, 0, 10_000));
        coBps = uint16(bound(coBps, 0, 10_000 - voiceBps));
        deployChannels(usePrice, fee, voiceBps, coBps);
        licenses.setPlatformFee(uint16(bound(feeBps, 0, 2_000)));
        address buyer = vm.addr(BUYER_KEY);
        uint256 licenseId = buyLicence(buyer, usePrice);
        uint256 amount = (uint256(usePrice) + fee) * uses + tip;
        vm.deal(buyer, amount);
        vm.prank(buyer);
        channels.deposit{value: amount}(operator, address(0), amount);

        IPaymentChannels.Voucher memory v = voucher(BUYER_KEY, licenseId, uint128(amount), uses);
        assertEq(redeemOne(v), 1, "redeemed");
        assertEq(redeemOne(v), 0, "never twice");
        uint256 price = uint256(usePrice) * uses;
        assertEq(channels.creditOf(operator, address(0)), amount - price, "the operator: fees and tip");
        (uint256 share, uint256 platform) = channels.potOf(modelId, address(0));
        assertEq(share + platform, price, "the model: the use price x uses");
        assertEq(platform, price * licenses.platformFeeBps() / 10_000, "the platform fee");
        assertEq(licenses.license(licenseId).used, uses, "the uses consumed");
        (uint128 balance,) = channels.channel(channels.channelId(buyer, operator, address(0)));
        assertEq(balance, 0, "the channel paid it all");
        if (price != 0) {
            channels.distribute(modelId, address(0));
            uint256 toVoice = share * voiceBps / 10_000;
            uint256 toCo = share * coBps / 10_000;
            assertEq(channels.creditOf(voice, address(0)), toVoice, "voice owner");
            assertEq(channels.creditOf(coCreator, address(0)), toCo, "co-creator");
            assertEq(channels.creditOf(creator, address(0)), share - toVoice - toCo, "creator: the rest");
        }
        assertEq(address(channels).balance, amount, "held: exactly what came in");
    }
}

/// @notice Random deposits, top-ups, withdrawal requests and withdrawals, vouchers redeemed (some
/// replayed, some for more than the channel holds), distributions and withdrawals of credits, by
/// three buyers. Every call must succeed (fail_on_revert); the handler mirrors every channel.
contract ChannelsHandler is ChannelsFixture {
    uint128 internal constant USE_PRICE = 3e15;
    uint128 internal constant FEE = 1e14;
    uint256 public constant ACTIONS = 6;
    uint256[3] internal keys = [uint256(0xB1), 0xB2, 0xB3];
    uint256[3] public licenseIds;
    uint128[3] public ghostBalance;
    uint128[3] internal signedAmount;
    uint64[3] internal signedUses;
    uint256 public ghostIn;
    uint256 public ghostOut;
    uint256[ACTIONS] public calls;

    constructor() {
        deployChannels(USE_PRICE, FEE, 2_500, 1_000);
        for (uint256 i; i < 3; ++i) {
            licenseIds[i] = buyLicence(vm.addr(keys[i]), USE_PRICE);
        }
    }

    function deposit(uint256 who, uint96 amount) external {
        who %= 3;
        amount = uint96(bound(amount, 1, 1 ether));
        address buyer = vm.addr(keys[who]);
        vm.deal(buyer, amount);
        vm.prank(buyer);
        channels.deposit{value: amount}(operator, address(0), amount);
        ghostBalance[who] += amount;
        ghostIn += amount;
        ++calls[0];
    }

    function startWithdrawal(uint256 who) external {
        who %= 3;
        if (ghostBalance[who] == 0) return;
        vm.prank(vm.addr(keys[who]));
        channels.startWithdrawal(operator, address(0));
        ++calls[1];
    }

    function withdrawChannel(uint256 who) external {
        who %= 3;
        address buyer = vm.addr(keys[who]);
        (, uint40 at) = channels.channel(channels.channelId(buyer, operator, address(0)));
        if (at == 0) return;
        if (block.timestamp < at) vm.warp(at);
        vm.prank(buyer);
        uint256 paid = channels.withdrawChannel(operator, address(0));
        assertEq(paid, ghostBalance[who], "the buyer takes exactly the rest");
        ghostOut += paid;
        ghostBalance[who] = 0;
        ++calls[2];
    }

    /// A voucher for 1..5 more uses, sometimes with a tip, sometimes for more than the channel
    /// holds (then skipped), sometimes the same again (skipped).
    function redeem(uint256 who, uint8 uses, uint64 tip, bool replay) external {
        who %= 3;
        uses = uint8(bound(uses, 1, 5));
        uint128 amount = signedAmount[who] + uint128(uses) * (USE_PRICE + FEE) + tip;
        uint64 total = signedUses[who] + uses;
        IPaymentChannels.Voucher memory v = voucher(keys[who], licenseIds[who], amount, total);
        uint256 added = amount - signedAmount[who];
        uint256 redeemed = redeemOne(v);
        if (added <= ghostBalance[who]) {
            assertEq(redeemed, 1, "a funded voucher is redeemed");
            ghostBalance[who] -= uint128(added);
            (signedAmount[who], signedUses[who]) = (amount, total);
            ++calls[3];
        } else {
            assertEq(redeemed, 0, "an unfunded voucher is skipped");
        }
        if (replay) assertEq(redeemOne(v), 0, "a replay is skipped");
    }

    function distribute() external {
        (uint256 share, uint256 platform) = channels.potOf(modelId, address(0));
        if (share + platform == 0) return;
        channels.distribute(modelId, address(0));
        ++calls[4];
    }

    function withdrawCredit(uint256 who) external {
        address[3] memory payees = [operator, creator, voice];
        address payee = payees[who % 3];
        uint256 credit = channels.creditOf(payee, address(0));
        if (credit == 0) return;
        vm.prank(payee);
        channels.withdraw(address(0));
        ghostOut += credit;
        ++calls[5];
    }

    function actionName(uint256 a) external pure returns (string memory) {
        string[ACTIONS] memory names =
            ["deposit", "startWithdrawal", "withdrawChannel", "redeem", "distribute", "withdrawCredit"];
        return names[a];
    }

    function owed() external view returns (uint256 total) {
        address[4] memory payees = [operator, creator, voice, coCreator];
        for (uint256 i; i < payees.length; ++i) {
            total += channels.creditOf(payees[i], address(0));
        }
        (uint256 share, uint256 platform) = channels.potOf(modelId, address(0));
        total += share + platform + channels.platformBalance(address(0));
    }

    function channelsContract() external view returns (PaymentChannels) {
        return channels;
    }

    function buyerOf(uint256 i) external view returns (address) {
        return vm.addr(keys[i]);
    }

    function operatorAddress() external view returns (address) {
        return operator;
    }
}

/// @notice Conservation of the channels' ETH after every call: what came in less what went out is
/// what the contract holds, which is every channel's balance plus credits, pots and the platform's.
contract PaymentChannelsInvariantTest is ForgeTest {
    ChannelsHandler internal handler;

    function setUp() public {
        handler = new ChannelsHandler();
    }

    function targetContracts() public view returns (address[] memory targets) {
        targets = new address[](1);
        targets[0] = address(handler);
    }

    /// forge-config: default.invariant.runs = 8
    /// forge-config: default.invariant.depth = 150
    /// forge-config: audit.invariant.runs = 256
    /// forge-config: audit.invariant.depth = 500
    function invariant_channelsConserveEth() public view {
        PaymentChannels channels = handler.channelsContract();
        uint256 held = address(channels).balance;
        assertEq(held, handler.ghostIn() - handler.ghostOut(), "in - out");
        uint256 balances;
        for (uint256 i; i < 3; ++i) {
            (uint128 balance,) =
                channels.channel(channels.channelId(handler.buyerOf(i), handler.operatorAddress(), address(0)));
            assertEq(balance, handler.ghostBalance(i), "each channel as mirrored");
            balances += balance;
        }
        assertEq(held, balances + handler.owed(), "channels + credits + pots + platform");
    }

    function afterInvariant() public view {
        for (uint256 a; a < handler.ACTIONS(); ++a) {
            console.log(handler.actionName(a), handler.calls(a));
            if (handler.calls(a) == 0) revert AssertionFailed("a channel action never succeeded", a, 0);
        }
    }
}

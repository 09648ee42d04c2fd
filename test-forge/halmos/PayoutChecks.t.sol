// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {HalmosMarket} from "./HalmosMarket.sol";
import {ILicenseManager} from "../../contracts/interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../../contracts/interfaces/ISynthesisRouter.sol";

/// @notice Halmos: a request is paid out at most once. A pay-per-use request (use price USE, fee
/// FEE, in ETH) was delivered under a one-hour dispute window. Then any two of the outcome
/// calls (settle, a batch naming it twice, dispute with its bond, the arbiter's decision either
/// way, fulfil again, fail, cancelExpired), by any caller, at any later times: the operator's fee
/// and the model's revenue are credited at most once, never together with the buyer's refund,
/// and the router always holds exactly the stake, the credits, the pot and whatever escrow and
/// bond are still open.
contract PayoutChecks is HalmosMarket {
    address internal constant BUYER = address(0xB0B);
    uint128 internal constant USE = 0.002 ether;
    uint128 internal constant FEE = 0.001 ether;
    uint256 internal constant BOND = 0.05 ether;
    uint256 internal constant STAKE = 1 ether;
    uint24 internal constant WINDOW = 1 hours;

    address internal operator;
    uint256 internal modelId;
    ISynthesisRouter.SynthesisRequest internal req;

    function setUp() public {
        deployMarket();
        router.setDisputeBond(BOND);
        bytes memory publicKey = abi.encodePacked(keccak256("x"), keccak256("y"));
        operator = address(uint160(uint256(keccak256(publicKey))));
        vm.deal(operator, STAKE);
        vm.prank(operator);
        router.registerOperator{value: STAKE}(publicKey);
        vm.prank(operator);
        router.setFee(address(0), FEE);

        modelId = registerOwnModel(keccak256("voice"), WINDOW);
        router.setOperatorAllowed(modelId, operator, true);
        uint256 offerId = publish(modelId, ILicenseManager.Tier.PayPerUse, address(0), USE, 0);
        vm.prank(BUYER);
        uint256 licenceId = licenses.buy(offerId, 0, 1);

        ISynthesisRouter.RequestParams memory p = ISynthesisRouter.RequestParams({
            modelId: modelId,
            licenseId: licenceId,
            operator: operator,
            maxFee: FEE,
            deadline: uint40(block.timestamp + 1 hours),
            params: 1,
            inputHash: keccak256("hello"), // (any digest: the router does not check it; Halmos 0.3.3 mis-sorts sha256 of constants)
            input: abi.encodePacked(bytes1(0), "hello")
        });
        vm.deal(BUYER, USE + FEE);
        vm.prank(BUYER);
        uint256 id = router.requestSynthesis{value: USE + FEE}(p);
        req = ISynthesisRouter.SynthesisRequest({
            id: id,
            modelId: modelId,
            licenseId: licenceId,
            requester: BUYER,
            operator: operator,
            asset: address(0),
            usePrice: USE,
            fee: FEE,
            params: 1,
            inputHash: p.inputHash,
            deadline: p.deadline,
            disputeWindow: WINDOW,
            useTag: 0,
            platformFeeBps: 2_000
        });
        vm.prank(operator);
        router.fulfil(req, keccak256("wav"), hex"0155122000");
    }

    /// One outcome call, chosen by `what`, by `caller` where anyone may call; its result is not
    /// required (most orders are refused), only the money after it is.
    function _act(uint8 what, address caller, bool upheld) internal {
        ISynthesisRouter.SynthesisRequest memory r = req;
        bytes memory data;
        what %= 7;
        if (what == 0 || what == 1) {
            ISynthesisRouter.SynthesisRequest[] memory batch = new ISynthesisRouter.SynthesisRequest[](what + 1);
            for (uint256 i; i <= what; ++i) {
                batch[i] = r;
            }
            data = abi.encodeCall(ISynthesisRouter.settle, (batch));
        } else if (what == 2) {
            (caller, data) = (BUYER, abi.encodeCall(ISynthesisRouter.dispute, (r)));
            vm.deal(BUYER, BUYER.balance + BOND);
            vm.prank(caller);
            (bool ok,) = address(router).call{value: BOND}(data);
            ok;
            return;
        } else if (what == 3) {
            (caller, data) = (address(this), abi.encodeCall(ISynthesisRouter.resolveDispute, (r, upheld)));
        } else if (what == 4) {
            (caller, data) = (operator, abi.encodeCall(ISynthesisRouter.fulfil, (r, keccak256("again"), hex"01")));
        } else if (what == 5) {
            (caller, data) =
            (operator, abi.encodeCall(ISynthesisRouter.fail, (r, ISynthesisRouter.FailReason.BadInput)));
        } else {
            data = abi.encodeCall(ISynthesisRouter.cancelExpired, (r));
        }
        vm.prank(caller);
        (bool done,) = address(router).call(data);
        done;
    }

    function check_paidOutAtMostOnce(
        uint8 first,
        uint8 second,
        address caller1,
        address caller2,
        bool upheld1,
        bool upheld2,
        uint32 wait1,
        uint32 wait2
    ) public {
        vm.assume(caller1 != BUYER && caller2 != BUYER && caller1 != operator && caller2 != operator);
        vm.warp(block.timestamp + wait1);
        _act(first, caller1, upheld1);
        vm.warp(block.timestamp + wait2);
        _act(second, caller2, upheld2);

        uint256 toOperator = router.creditOf(operator, address(0));
        uint256 toBuyer = router.creditOf(BUYER, address(0));
        (uint256 share, uint256 platform) = router.potOf(modelId, address(0));
        uint256 stake = router.operatorInfo(operator).stake;
        ISynthesisRouter.RequestStatus status = router.requestStatus(req.id);
        bool paid = share + platform != 0;

        // The fee and the use price once at most, and never with a refund (a paid-out buyer gets
        // at most its bond back, from a lapsed dispute).
        assert(share + platform == 0 || share + platform == USE);
        assert(paid == (toOperator == FEE || toOperator == FEE + BOND));
        assert(!paid || toBuyer == 0 || toBuyer == BOND);
        assert(paid == (status == ISynthesisRouter.RequestStatus.Settled));
        // The router holds exactly what it owes.
        uint256 open = status == ISynthesisRouter.RequestStatus.Fulfilled
            || status == ISynthesisRouter.RequestStatus.Disputed
            ? USE + FEE
            : 0;
        assert(
            address(router).balance
                == stake + toOperator + toBuyer + share + platform + open + router.disputeBondOf(req.id)
        );
        assert(stake + toBuyer + toOperator <= STAKE + USE + FEE + BOND);
    }
}

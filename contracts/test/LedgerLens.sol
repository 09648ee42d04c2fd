// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IRevenueLedger} from "../interfaces/IRevenueLedger.sol";
import {ILicenseManager} from "../interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../interfaces/ISynthesisRouter.sol";

/// @notice Test only. Reads every number the property tests compare, one eth_call per kind.
contract LedgerLens {
    /// @notice For each ledger: for each asset, the ledger's holdings, then its platform balance,
    /// then each account's credit, then each model's pot (model share, platform share).
    function snapshot(
        IRevenueLedger[] calldata ledgers,
        address[] calldata assets,
        address[] calldata accounts,
        uint256[] calldata models
    ) external view returns (uint256[] memory out) {
        uint256 perAsset = 2 + accounts.length + 2 * models.length;
        out = new uint256[](ledgers.length * assets.length * perAsset);
        uint256 k;
        for (uint256 l; l < ledgers.length; ++l) {
            IRevenueLedger ledger = ledgers[l];
            for (uint256 a; a < assets.length; ++a) {
                address asset = assets[a];
                out[k++] = asset == address(0) ? address(ledger).balance : IERC20(asset).balanceOf(address(ledger));
                out[k++] = ledger.platformBalance(asset);
                for (uint256 i; i < accounts.length; ++i) {
                    out[k++] = ledger.creditOf(accounts[i], asset);
                }
                for (uint256 m; m < models.length; ++m) {
                    (out[k], out[k + 1]) = ledger.potOf(models[m], asset);
                    k += 2;
                }
            }
        }
    }

    /// @notice For each licence: its holder, whether it licenses text-to-speech on its model now
    /// and the uses left, and its stored record.
    function licences(ILicenseManager manager, uint256[] calldata ids, uint256[] calldata models)
        external
        view
        returns (address[] memory holders, bool[] memory licensed, uint256[] memory usesLeft,
            ILicenseManager.License[] memory records)
    {
        holders = new address[](ids.length);
        licensed = new bool[](ids.length);
        usesLeft = new uint256[](ids.length);
        records = new ILicenseManager.License[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            holders[i] = manager.ownerOf(ids[i]);
            (licensed[i], usesLeft[i]) = manager.isLicensed(ids[i], holders[i], models[i], 1);
            records[i] = manager.license(ids[i]);
        }
    }

    /// @notice The status, settlement time and stored commitment of each request, and each
    /// operator's record.
    function requests(ISynthesisRouter router, uint256[] calldata ids, address[] calldata operators)
        external
        view
        returns (
            uint8[] memory statuses,
            uint40[] memory settleAfter,
            bytes32[] memory commitments,
            ISynthesisRouter.OperatorInfo[] memory infos
        )
    {
        statuses = new uint8[](ids.length);
        settleAfter = new uint40[](ids.length);
        commitments = new bytes32[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            ISynthesisRouter.RequestStatus status;
            (status, settleAfter[i], commitments[i]) = router.requestState(ids[i]);
            statuses[i] = uint8(status);
        }
        infos = new ISynthesisRouter.OperatorInfo[](operators.length);
        for (uint256 i; i < operators.length; ++i) {
            infos[i] = router.operatorInfo(operators[i]);
        }
    }
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IRevenueLedger} from "../interfaces/IRevenueLedger.sol";

/// @notice Test only. Reads every number the property tests compare in one eth_call.
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
}

// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IRevenueLedger} from "../interfaces/IRevenueLedger.sol";
import {ILicenseManager} from "../interfaces/ILicenseManager.sol";
import {ISynthesisRouter} from "../interfaces/ISynthesisRouter.sol";
import {IVoiceModelRegistry} from "../interfaces/IVoiceModelRegistry.sol";

interface IPausable {
    function paused() external view returns (bool);
}

/// @notice Test only. Reads every number the property tests compare, one eth_call per kind.
contract LedgerLens {
    /// @notice For each ledger: for each asset, the ledger's holdings, then its platform balance,
    /// then each account's credit, then each model's pot (model share, platform share). Then for
    /// each account: its balance of each asset, then its allowance of the ERC-20 `assets[1]` to
    /// each ledger.
    function snapshot(
        IRevenueLedger[] calldata ledgers,
        address[] calldata assets,
        address[] calldata accounts,
        uint256[] calldata models
    ) external view returns (uint256[] memory out) {
        uint256 perAsset = 2 + accounts.length + 2 * models.length;
        out = new uint256[](
            ledgers.length * assets.length * perAsset + accounts.length * (assets.length + ledgers.length)
        );
        uint256 k;
        for (uint256 l; l < ledgers.length; ++l) {
            IRevenueLedger ledger = ledgers[l];
            for (uint256 a; a < assets.length; ++a) {
                address asset = assets[a];
                out[k++] = _balance(asset, address(ledger));
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
        for (uint256 i; i < accounts.length; ++i) {
            for (uint256 a; a < assets.length; ++a) {
                out[k++] = _balance(assets[a], accounts[i]);
            }
            for (uint256 l; l < ledgers.length; ++l) {
                out[k++] = IERC20(assets[1]).allowance(accounts[i], address(ledgers[l]));
            }
        }
    }

    /// @notice The market's settings and each model's state: the registry's retirement notice in
    /// force; the licence manager's router, pending router and when it may be made, whether it is
    /// paused and whether `asset` is allowed; per model its frozen flag, end of service and dispute
    /// window; per router whether it is paused, its dispute bond, minimum stake and slash amount,
    /// then per model and operator until when the operator may be named and whether it can serve.
    function settings(
        IVoiceModelRegistry registry,
        ILicenseManager manager,
        address asset,
        ISynthesisRouter[] calldata routers,
        uint256[] calldata models,
        address[] calldata operators
    ) external view returns (uint256[] memory out) {
        out = new uint256[](6 + 3 * models.length + routers.length * (4 + 2 * models.length * operators.length));
        out[0] = registry.retirementNotice();
        out[1] = uint160(manager.router());
        (address pending, uint40 at) = manager.pendingRouter();
        out[2] = uint160(pending);
        out[3] = at;
        out[4] = IPausable(address(manager)).paused() ? 1 : 0;
        out[5] = manager.isAssetAllowed(asset) ? 1 : 0;
        uint256 k = 6;
        for (uint256 m; m < models.length; ++m) {
            IVoiceModelRegistry.ModelTerms memory t = registry.modelTerms(models[m]);
            out[k++] = t.frozen ? 1 : 0;
            out[k++] = t.serviceEndsAt;
            out[k++] = t.disputeWindow;
        }
        for (uint256 r; r < routers.length; ++r) {
            ISynthesisRouter router = routers[r];
            out[k++] = IPausable(address(router)).paused() ? 1 : 0;
            out[k++] = router.disputeBond();
            out[k++] = router.minStake();
            out[k++] = router.slashAmount();
            for (uint256 m; m < models.length; ++m) {
                for (uint256 o; o < operators.length; ++o) {
                    out[k++] = router.operatorAllowedUntil(models[m], operators[o]);
                    out[k++] = router.canServe(models[m], operators[o]) ? 1 : 0;
                }
            }
        }
    }

    /// @notice For each licence: its holder, whether it licenses text-to-speech on its model now
    /// and the uses left, its stored record, the account approved on it, and whether its holder
    /// could renew it by one period now (`isRenewable`).
    function licenses(ILicenseManager manager, uint256[] calldata ids, uint256[] calldata models)
        external
        view
        returns (
            address[] memory holders,
            bool[] memory licensed,
            uint256[] memory usesLeft,
            ILicenseManager.License[] memory records,
            address[] memory approved,
            bool[] memory renewable
        )
    {
        holders = new address[](ids.length);
        licensed = new bool[](ids.length);
        usesLeft = new uint256[](ids.length);
        records = new ILicenseManager.License[](ids.length);
        approved = new address[](ids.length);
        renewable = new bool[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            holders[i] = manager.ownerOf(ids[i]);
            (licensed[i], usesLeft[i]) = manager.isLicensed(ids[i], holders[i], models[i], 1);
            records[i] = manager.license(ids[i]);
            approved[i] = manager.getApproved(ids[i]);
            renewable[i] = manager.isRenewable(ids[i]);
        }
    }

    /// @notice The status, settlement time, stored commitment and dispute bond of each request
    /// (request `i` lives in `routers[routerOf[i]]`), and each operator's record in each router
    /// (router by router).
    function requests(
        ISynthesisRouter[] calldata routers,
        uint256[] calldata ids,
        uint256[] calldata routerOf,
        address[] calldata operators
    )
        external
        view
        returns (
            uint8[] memory statuses,
            uint40[] memory settleAfter,
            bytes32[] memory commitments,
            uint256[] memory bonds,
            ISynthesisRouter.OperatorInfo[] memory infos
        )
    {
        statuses = new uint8[](ids.length);
        settleAfter = new uint40[](ids.length);
        commitments = new bytes32[](ids.length);
        bonds = new uint256[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            ISynthesisRouter router = routers[routerOf[i]];
            ISynthesisRouter.RequestStatus status;
            (status, settleAfter[i], commitments[i]) = router.requestState(ids[i]);
            statuses[i] = uint8(status);
            bonds[i] = router.disputeBondOf(ids[i]);
        }
        infos = new ISynthesisRouter.OperatorInfo[](routers.length * operators.length);
        for (uint256 r; r < routers.length; ++r) {
            for (uint256 i; i < operators.length; ++i) {
                infos[r * operators.length + i] = routers[r].operatorInfo(operators[i]);
            }
        }
    }

    function _balance(address asset, address account) private view returns (uint256) {
        return asset == address(0) ? account.balance : IERC20(asset).balanceOf(account);
    }
}

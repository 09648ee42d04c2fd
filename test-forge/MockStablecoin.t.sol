// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ForgeTest} from "./utils/Vm.sol";
import {MockStablecoin} from "../contracts/test/MockStablecoin.sol";

/// @notice Toolchain check: forge compiles OpenZeppelin through the project's solc and fuzzes it.
contract MockStablecoinTest is ForgeTest {
    MockStablecoin internal token;

    function setUp() public {
        token = new MockStablecoin();
    }

    /// Transfers conserve supply: whatever is minted and moved, balances sum to the total supply.
    function testFuzz_transferConservesSupply(address from, address to, uint128 minted, uint128 moved) public {
        vm.assume(from != address(0) && to != address(0) && from != to);
        token.mint(from, minted);
        uint256 amount = bound(moved, 0, minted);
        vm.prank(from);
        token.transfer(to, amount);
        assertEq(token.balanceOf(from) + token.balanceOf(to), token.totalSupply(), "supply");
        assertEq(token.balanceOf(to), amount, "received");
    }
}

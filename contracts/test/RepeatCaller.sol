// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Test only. Makes one call several times in a single transaction (so in one block), as a
/// keeper bot batching its calls would, and records how many succeeded and the revert data of the
/// first that failed. Anyone may use it; it holds nothing.
contract RepeatCaller {
    uint256 public attempts;
    uint256 public succeeded;
    bytes public firstFailure;

    function repeat(address target, bytes calldata data, uint256 times) external {
        attempts = times;
        succeeded = 0;
        delete firstFailure;
        bool failed;
        for (uint256 i; i < times; ++i) {
            (bool ok, bytes memory result) = target.call(data);
            if (ok) {
                ++succeeded;
            } else if (!failed) {
                failed = true;
                firstFailure = result;
            }
        }
    }
}

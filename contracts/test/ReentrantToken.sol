// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice Test only. A hostile 6-decimal ERC-20: while armed, every transfer calls back into
/// `target` with `data` (once per transfer, not recursively) and records how that call ended,
/// without failing the transfer itself. Anyone may mint.
contract ReentrantToken is ERC20 {
    address public target;
    bytes public data;
    bool public armed;
    bool private _inHook;
    uint256 public attempts;
    bool public lastAttemptSucceeded;
    bytes public lastAttemptResult;

    constructor() ERC20("Reentrant USD", "rUSD") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Arms the hook: the next transfers call `target_` with `data_`.
    function arm(address target_, bytes calldata data_) external {
        target = target_;
        data = data_;
        armed = true;
    }

    function disarm() external {
        armed = false;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (armed && !_inHook) {
            _inHook = true;
            ++attempts;
            (lastAttemptSucceeded, lastAttemptResult) = target.call(data);
            _inHook = false;
        }
    }
}

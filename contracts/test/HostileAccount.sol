// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Test only. A contract account that acts through `execute` and, when paid ETH, calls
/// straight back into the payer: `withdraw(address(0))` and then `withdrawStake()` (the calls
/// that pay out ETH), recording how each attempt ended. It keeps no configuration in storage,
/// so its code can also be placed at a registered operator's address (anvil_setCode). In
/// `refuse` mode it rejects every payment instead.
contract HostileAccount {
    bool public refuse;
    uint256 public received;
    uint256 public reentryAttempts;
    uint256 public reentrySuccesses;
    /// @notice How each re-entry attempt ended (revert data, or the return data), in order.
    bytes[] public reentryResults;

    error HostileAccount_Refused();

    function setRefuse(bool refuse_) external {
        refuse = refuse_;
    }

    /// @notice Makes any call as this account (no access control: test only).
    function execute(address target, uint256 value, bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory result) = target.call{value: value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
        return result;
    }

    receive() external payable {
        if (refuse) revert HostileAccount_Refused();
        received += msg.value;
        _reenter(abi.encodeWithSignature("withdraw(address)", address(0)));
        _reenter(abi.encodeWithSignature("withdrawStake()"));
    }

    function _reenter(bytes memory call) private {
        ++reentryAttempts;
        (bool ok, bytes memory result) = msg.sender.call(call);
        if (ok) ++reentrySuccesses;
        reentryResults.push(result);
    }
}

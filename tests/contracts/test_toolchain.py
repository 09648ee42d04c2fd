"""The contract toolchain end to end: OpenZeppelin compiled by the project's solc, run on anvil."""

import ape


def test_openzeppelin_token_deploys_and_moves_balances(project, accounts):
    deployer, alice = accounts[0], accounts[1]
    token = deployer.deploy(project.MockStablecoin)

    token.mint(alice, 1_000_000, sender=deployer)
    token.transfer(deployer, 250_000, sender=alice)

    assert token.decimals() == 6
    assert token.balanceOf(alice) == 750_000
    assert token.balanceOf(deployer) == 250_000


def test_openzeppelin_custom_error_surfaces(project, accounts):
    deployer, alice = accounts[0], accounts[1]
    token = deployer.deploy(project.MockStablecoin)

    with ape.reverts(token.ERC20InsufficientBalance, sender=alice.address, balance=0, needed=1):
        token.transfer(deployer, 1, sender=alice)


def test_chain_is_anvil(chain):
    assert chain.provider.name == "foundry"

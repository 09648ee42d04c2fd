"""`ape run deploy`: deploys, wires and saves; refuses to shadow a working deployment."""

from __future__ import annotations

import json

from conftest import fails
from voicemarket.errors import DeploymentError
from voicemarket.units import parse_amount


def test_deploy_saves_the_wired_contracts(deploy_output, market, vm_home, chain):
    record = json.loads((vm_home / "deployments" / "ethereum_local.json").read_text())
    assert record["chainId"] == chain.chain_id
    assert record["contracts"]["registry"] == market.registry.address in deploy_output
    assert market.licenses.router() == market.router.address
    assert market.licenses.isAssetAllowed(market.stablecoin)
    assert market.licenses.platformFeeBps() == 2000 and market.router.minStake() == 10**17
    assert "platform fee 20%" in deploy_output and "unbonding delay 8 days" in deploy_output
    # Offers are published through the licence manager's own offer book, saved beside it.
    assert record["contracts"]["offers"] == market.offers.address == market.licenses.offerBook() in deploy_output
    assert market.offers.licenseManager() == market.licenses.address
    assert "dispute bond 0 ETH" in deploy_output and market.router.disputeBond() == 0


def test_a_second_deploy_needs_replace(run, market):
    out = fails(run("deploy", account=0))
    assert "already saved for ethereum:local" in out and "--replace" in out


def test_bad_parameters_file_says_which_key(run, market, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("platform_fee_bps: 2000\nmin_stak: 1 ether\n")
    out = fails(run("deploy", "--replace", "--parameters", str(bad), account=0))
    assert "unknown parameter(s) min_stak" in out


def test_commands_without_a_deployment_say_to_deploy(run, market, tmp_path, monkeypatch):
    monkeypatch.setenv("VOICEMARKET_HOME", str(tmp_path / "empty"))
    out = fails(run("offers", "0x01"))
    assert "no voicemarket deployment on ethereum:local" in out
    assert "ape run deploy --network ethereum:local" in out


def test_a_deployment_from_a_restarted_chain_is_refused(market, tmp_path, monkeypatch):
    """A saved file whose contracts are not on the connected chain (a local chain restarted) says to deploy."""
    import json

    import pytest

    from voicemarket.market import deployments

    monkeypatch.setenv("VOICEMARKET_HOME", str(tmp_path))
    deployments.save("ethereum:local", market, start_block=0)
    path = deployments.path_for("ethereum:local")
    record = json.loads(path.read_text())
    record["contracts"]["registry"] = "0x" + "12" * 20
    path.write_text(json.dumps(record))
    with pytest.raises(DeploymentError, match="no contract at the saved registry address"):
        deployments.load()


def test_a_saved_offer_book_that_is_not_the_license_managers_is_refused(market, tmp_path, monkeypatch):
    import pytest

    from voicemarket.market import deployments

    monkeypatch.setenv("VOICEMARKET_HOME", str(tmp_path))
    deployments.save("ethereum:local", market, start_block=0)
    assert deployments.load().offers.address == market.offers.address
    path = deployments.path_for("ethereum:local")
    record = json.loads(path.read_text())
    record["contracts"]["offers"] = market.router.address
    path.write_text(json.dumps(record))
    with pytest.raises(DeploymentError, match=r"names the offer book .* but the saved licence manager's"):
        deployments.load()


def test_parameters_read_units_and_refuse_public_networks_without_a_file():
    import pytest

    from voicemarket.market import deployments

    params = deployments.load_parameters("ethereum:local")
    assert params["min_stake"] == 10**17 and params["unbonding_delay"] == 8 * 86400 and params["stablecoin"] == "mock"
    with pytest.raises(DeploymentError, match=r"write .*deploy/sepolia\.yaml"):
        deployments.load_parameters("ethereum:sepolia")
    assert parse_amount("1.5 gwei") == 1_500_000_000
    with pytest.raises(ValueError, match="finer than the asset's smallest unit"):
        parse_amount("0.0000001 mUSD", decimals=6, symbol="mUSD")

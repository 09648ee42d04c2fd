"""`ape run deploy`: deploys, wires and saves; refuses to shadow a working deployment."""

from __future__ import annotations

import json

from conftest import fails, ok


def test_deploy_saves_the_wired_contracts(deploy_output, market, vm_home, chain):
    record = json.loads((vm_home / "deployments" / "ethereum_local.json").read_text())
    assert record["chainId"] == chain.chain_id
    assert record["contracts"]["registry"] == market.registry.address in deploy_output
    assert market.licenses.router() == market.router.address
    assert market.licenses.isAssetAllowed(market.stablecoin)
    assert market.licenses.platformFeeBps() == 2000 and market.router.minStake() == 10**17
    assert "platform fee 20%" in deploy_output and "unbonding delay 8 days" in deploy_output


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

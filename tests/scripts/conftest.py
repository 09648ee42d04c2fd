"""Fixtures for the `ape run` command tests: each command is invoked in-process with click's
CliRunner against the session's anvil (the same provider: Ape reuses the connected one), with
its own voicemarket home folder (deployments, store) under a temporary directory.

Accounts (Ape's test accounts): 0 deploys, 1 creates, 2 operates, 3 is a voice owner,
4 co-creates, 5..7 buy, 8 is a second operator.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parents[2]
OFFERS_YAML = """\
asset: ETH
offers:
  - tier: subscription
    price: 0.01 ether
    period: 30 days
    max_uses: 100
    permit: [textToSpeech, commercialize]
    prohibit: [sublicense]
  - tier: pay-per-use
    asset: stablecoin
    price: 0.05 mUSD
    pack_size: 10
    territories: [DE, FR]
    purposes: [audiobooks]
  - tier: buyout
    price: 0.1 ether
    transferable: true
"""


def load_command(name: str):  # noqa: ANN201 - a click command
    spec = importlib.util.spec_from_file_location(f"vm_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cli


def plain(text: str) -> str:
    """Output with the table rules and runs of spaces squeezed (wrapped cells stay readable)."""
    return re.sub(r"\s+", " ", re.sub(r"[│┃┏┓┗┛┡┩└┘┌┐├┤┬┴┼━─╇╈┳┻]", " ", text))


@pytest.fixture(scope="session")
def run(chain):
    """``run("buy", "1", "--max-price", "0.01 ether", account=5)`` -> click Result (network added).

    ``APE_FOUNDRY_HOST`` makes ape-foundry connect to the session's anvil, and Ape then reuses
    the session's provider (without it, ``host: auto`` would start a chain of its own)."""
    commands: dict[str, object] = {}
    host = chain.provider.uri

    def invoke(name: str, *args: str, account: int | None = None, network: bool = True) -> Result:
        script, *subcommand = name.split()
        if script not in commands:
            commands[script] = load_command(script)
        argv = subcommand + list(args)
        if network:
            argv += ["--network", "ethereum:local:foundry"]
        if account is not None:
            argv += ["--account", f"TEST::{account}"]
        env = {"COLUMNS": "200", "APE_FOUNDRY_HOST": host}
        return CliRunner().invoke(commands[script], argv, env=env, catch_exceptions=True)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return plain(result.output)


def fails(result: Result) -> str:
    """A user error: exit status 1 or 2, an `Error:` line, no traceback."""
    assert result.exit_code in (1, 2), f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    assert "Error" in result.output and "Traceback" not in result.output, result.output
    return plain(result.output)


@pytest.fixture(scope="session")
def vm_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("voicemarket-home")
    previous = {k: os.environ.get(k) for k in ("VOICEMARKET_HOME", "VOICEMARKET_STORE")}
    os.environ["VOICEMARKET_HOME"] = str(home)
    os.environ.pop("VOICEMARKET_STORE", None)
    yield home
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def deploy_output(run, vm_home) -> str:
    return ok(run("deploy", account=0))


@pytest.fixture(scope="session")
def market(deploy_output, vm_home):
    from voicemarket.market import deployments

    return deployments.load()


@pytest.fixture(scope="session")
def operator(market, accounts):
    from voicemarket.market import operators

    operators.register(market, accounts[2])
    return accounts[2]


@pytest.fixture(scope="session")
def tiny_voice(tmp_path_factory):
    from voicemarket.dev.sandbox import tiny_voice_files

    return tiny_voice_files(tmp_path_factory.mktemp("model") / "voice")


@pytest.fixture(scope="session")
def model_folder(tiny_voice) -> Path:
    """Ada: the tiny voice, with no preview named (the model speaks its own when minted)."""
    from voicemarket.dev.sandbox import REFERENCE_TEXT
    from voicemarket.market.minting import write_model_folder

    voice = tiny_voice
    return write_model_folder(
        voice.reference.parent.parent / "ada",
        name="Ada",
        languages=["en", "zh"],
        gpt=voice.gpt,
        sovits=voice.sovits,
        reference_audio=voice.reference,
        reference_text=REFERENCE_TEXT,
        reference_language="en",
        description="A tiny random voice for tests.",
    )


@pytest.fixture(scope="session")
def offers_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("offers") / "offers.yaml"
    path.write_text(OFFERS_YAML)
    return path


@pytest.fixture(scope="session")
def minted(run, market, operator, model_folder, offers_file, accounts, tiny_voice) -> dict:
    """The tiny voice minted by the creator (1) with voice owner 3 (10%) and co-creator 4 (5%); the model
    speaks its preview (the default text) with the tiny voice's HuBERT folder."""
    import json

    output = ok(
        run(
            "mint",
            str(model_folder),
            "--offers",
            str(offers_file),
            "--operator",
            operator.address,
            "--voice-owner",
            "TEST::3",
            "--voice-owner-share",
            "10%",
            "--co-creator",
            f"{accounts[4].address}:500",
            "--hubert",
            str(tiny_voice.hubert_dir),
            account=1,
        )
    )
    model_hex = re.search(r"model id (0x[0-9a-f]{64})", output)[1]
    from voicemarket.market import deployments

    record = json.loads((deployments.home() / "models" / "ethereum_local" / f"{model_hex}.json").read_text())
    return {
        "output": output,
        "model_id": int(model_hex, 16),
        "record": record,
        "offers": {o["tier"]: o["offerId"] for o in record["offers"]},
    }

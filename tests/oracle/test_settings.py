"""Settings and keys: typed, validated at start with messages that say what to fix; the key never in the file."""

from __future__ import annotations

import json

import pytest
from eth_account import Account

from oracle.errors import ConfigError, OperatorKeyError
from oracle.keys import ape_test_key, load_operator_key, operator_address
from oracle.settings import load_settings

ROUTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
KEYRING = "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in [k for k in os.environ if k.startswith(("ORACLE_", "APE_ACCOUNTS_"))]:
        monkeypatch.delenv(name)


def test_file_environment_and_defaults_combine_with_the_environment_winning(tmp_path, monkeypatch):
    config = tmp_path / "oracle.toml"
    config.write_text(
        f'[oracle]\nrouter = "{ROUTER.lower()}"\naccount = "op"\nconfirmations = 3\n'
        f'[oracle.models."0x{"ab" * 32}"]\nkeyring = "{KEYRING}"\n'
    )
    monkeypatch.setenv("ORACLE_CONFIRMATIONS", "5")
    settings = load_settings(config)
    assert settings.router == ROUTER  # checksummed
    assert settings.confirmations == 5
    assert settings.models[int("ab" * 32, 16)].keyring == KEYRING
    assert settings.redis_url == "redis://127.0.0.1:6379/0"


def test_every_invalid_setting_is_named_with_what_to_do():
    with pytest.raises(ConfigError) as error:
        load_settings(
            router="0x12",
            account="op",
            confirmations=-1,
            rpc_url="localhost:8545",
            colour="blue",
            models={"zero": {"keyring": "not a cid"}},
        )
    message = str(error.value)
    for expected in (
        "router: router '0x12' is not an Ethereum address",
        "confirmations:",
        "rpc_url:",
        "unknown setting `colour`",
        "models",
    ):
        assert expected in message


def test_a_missing_router_and_a_missing_account_are_reported():
    with pytest.raises(ConfigError, match="router: required") as error:
        load_settings()
    with pytest.raises(ConfigError, match="no operator account"):
        load_settings(router=ROUTER)
    assert "ORACLE_ROUTER" in str(error.value)


def test_a_key_in_the_config_file_is_refused(tmp_path):
    config = tmp_path / "oracle.toml"
    config.write_text(f'router = "{ROUTER}"\nprivate_key = "0x{"11" * 32}"\n')
    with pytest.raises(ConfigError, match="the operator key never goes in the config file"):
        load_settings(config)


def test_the_key_comes_from_an_ape_keystore_unlocked_by_apes_passphrase_variable(tmp_path, monkeypatch):
    key = bytes.fromhex("11" * 32)
    keystore = Account.encrypt(key, "s3cret", kdf="pbkdf2", iterations=1000)  # the format `ape accounts` writes
    (tmp_path / "operator.json").write_text(json.dumps(keystore))
    settings = load_settings(router=ROUTER, account="operator", keystore_dir=tmp_path)
    assert operator_address(settings) == Account.from_key(key).address  # read without unlocking
    with pytest.raises(OperatorKeyError, match="APE_ACCOUNTS_operator_PASSPHRASE"):
        load_operator_key(settings)
    monkeypatch.setenv("APE_ACCOUNTS_operator_PASSPHRASE", "wrong")
    with pytest.raises(OperatorKeyError, match="check the passphrase"):
        load_operator_key(settings)
    monkeypatch.setenv("APE_ACCOUNTS_operator_PASSPHRASE", "s3cret")
    loaded = load_operator_key(settings)
    assert loaded.private_key == key and loaded.address == Account.from_key(key).address
    assert len(loaded.public_key) == 64
    assert "11" * 32 not in repr(loaded)


def test_an_unknown_alias_says_how_to_import_it(tmp_path):
    settings = load_settings(router=ROUTER, account="nobody", keystore_dir=tmp_path)
    with pytest.raises(OperatorKeyError, match="ape accounts import nobody"):
        load_operator_key(settings)


def test_test_accounts_are_refused_off_local_chains():
    settings = load_settings(router=ROUTER, test_account=2)
    assert load_operator_key(settings, chain_id=31337).address == ape_test_key(2).address
    with pytest.raises(OperatorKeyError, match="local chains only"):
        load_operator_key(settings, chain_id=1)
    with pytest.raises(ConfigError, match="local chains only"):
        load_settings(router=ROUTER, test_account=2, chain_id=1)


def test_processes_refuse_to_start_with_invalid_settings(tmp_path):
    """A worker and the CLI stop at once with the message and what to do, before touching Redis or the
    chain, and without a traceback: invalid settings, and an operator key that cannot be loaded."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORACLE_", "APE_ACCOUNTS_"))}
    invalid = {**env, "ORACLE_ROUTER": "0x12", "ORACLE_TEST_ACCOUNT": "1"}
    no_key = {**env, "ORACLE_ROUTER": ROUTER, "ORACLE_ACCOUNT": "nobody", "ORACLE_KEYSTORE_DIR": str(tmp_path)}
    runs = [
        (["worker", "--pool", "solo"], invalid, "router '0x12' is not an Ethereum address"),
        (["status"], invalid, "router '0x12' is not an Ethereum address"),
        (["run", "--workers", "0"], no_key, "ape accounts import nobody"),
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "oracle", *argv],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, environment, _ in runs
    ]
    for process, (argv, _, message) in zip(processes, runs, strict=True):
        _, stderr = process.communicate(timeout=60)
        assert process.returncode != 0 and message in stderr, (argv, stderr)
        assert "Traceback" not in stderr, (argv, stderr)


def test_importing_the_app_reads_no_settings_and_builds_nothing():
    """`import oracle.app` with no settings at all (no ORACLE_* variables, no config file) succeeds and
    creates no Celery app: the app is built by create_app(settings), when a process has its settings."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import celery, celery._state, oracle.app; "
        "built = [n for n, v in vars(oracle.app).items() if isinstance(v, celery.Celery)]; "
        "print(built, len(celery._state._apps))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PATH": os.defpath},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[]", "0"], result.stdout


def test_run_reads_the_settings_from_its_config_option(tmp_path):
    """`python -m oracle run --config FILE` with no ORACLE_* variables uses the file (it once read the
    environment first, on importing the Celery app, and stopped with 'router: required')."""
    import os
    import subprocess
    import sys

    from voicemarket.dev.services import free_port

    config = tmp_path / "oracle.toml"
    closed = free_port()  # nothing listens there: run waits for the node and Redis, which is what we look for
    config.write_text(
        f'[oracle]\nrouter = "{ROUTER}"\ntest_account = 1\nrpc_url = "http://127.0.0.1:{closed}"\n'
        f'redis_url = "redis://127.0.0.1:{closed}/0"\nmetrics_port = 0\nlog_format = "text"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORACLE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "oracle", "run", "--config", str(config), "--workers", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=8)
    except subprocess.TimeoutExpired:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "router: required" not in output
    assert "waiting for Redis and the node" in output

"""The keeper's settings: the oracle's file with a [keeper] table, its own key (or the operator's, and
then the operator's nonce sequence), and errors that say what to set."""

from __future__ import annotations

import os

import pytest

from oracle.errors import ConfigError
from oracle.keeper import keeper_namespace, lease_key
from oracle.keeper_settings import load_keeper_settings
from oracle.keys import ape_test_key
from oracle.runtime import namespace
from oracle.settings import load_settings
from test_settings import clean_environment  # noqa: F401 - the same autouse fixture: no ORACLE_* from outside

ROUTER = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_the_keeper_table_of_the_oracle_s_file_sets_the_keeper_fields(tmp_path, monkeypatch):
    config = tmp_path / "oracle.toml"
    config.write_text(
        f'[oracle]\nrouter = "{ROUTER}"\naccount = "op"\nmax_fee_cap_gwei = 80\n'
        '[keeper]\naccount = "keeper"\ninterval_s = 30\nbatch_size = 20\nexpiries = false\n'
        'passphrase_file = "~/keeper.pass"\n'
    )
    monkeypatch.setenv("ORACLE_KEEPER_BATCH_SIZE", "10")
    settings = load_keeper_settings(config)
    assert (settings.keeper_account, settings.keeper_interval_s, settings.keeper_batch_size) == ("keeper", 30, 10)
    assert not settings.keeper_expiries and settings.keeper_renewals and settings.max_fee_cap_gwei == 80
    own = settings.key_settings()
    assert own.account == "keeper" and own.passphrase_file == settings.keeper_passphrase_file
    assert str(own.passphrase_file) == os.path.expanduser("~/keeper.pass")
    assert settings.sender_settings().gas_limit_cap == settings.keeper_gas_limit_cap == 3_000_000
    assert load_settings(config).account == "op"  # the oracle itself reads the same file, [keeper] aside


def test_a_keeper_needs_a_key_and_never_one_in_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no keeper account: set `account` under \[keeper\]"):
        load_keeper_settings(router=ROUTER)
    with pytest.raises(ConfigError, match="either `keeper_account`"):
        load_keeper_settings(router=ROUTER, keeper_account="k", keeper_test_account=8)
    with pytest.raises(ConfigError, match="test accounts are for local chains only"):
        load_keeper_settings(router=ROUTER, keeper_test_account=8, chain_id=1)
    with pytest.raises(ConfigError, match="keeper_interval_s: Input should be greater than 0"):
        load_keeper_settings(router=ROUTER, keeper_test_account=8, keeper_interval_s=0)
    config = tmp_path / "oracle.toml"
    config.write_text(f'[oracle]\nrouter = "{ROUTER}"\n[keeper]\nprivate_key = "0xabc"\n')
    with pytest.raises(ConfigError, match=r"holds private_key under \[keeper\]: keys never go in the config file"):
        load_keeper_settings(config)


def test_the_operator_s_account_keeps_with_the_oracle_s_nonces_and_another_with_its_own():
    operator, keeper = ape_test_key(2).address, ape_test_key(8).address
    shared = load_keeper_settings(router=ROUTER, test_account=2)
    assert not shared.has_own_key and shared.key_settings() is shared
    assert keeper_namespace(shared, operator) == namespace(shared)  # one nonce sequence per account
    own = load_keeper_settings(router=ROUTER, test_account=2, keeper_test_account=8)
    assert keeper_namespace(own, keeper) == f"oracle:{ROUTER.lower()}:{keeper.lower()}" != namespace(own)
    alone = load_keeper_settings(router=ROUTER, keeper_test_account=8)  # no operator at all
    assert keeper_namespace(alone, keeper) == keeper_namespace(own, keeper)
    assert lease_key(alone) == lease_key(own) == f"oracle:{ROUTER.lower()}:keeper:lease"  # one keeper acts

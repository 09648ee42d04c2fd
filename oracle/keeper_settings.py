"""The keeper's settings: the oracle's settings object plus the keeper's own fields.

The keeper reads the same ``oracle.toml`` as the rest of the oracle (chain, router, Redis, fees,
logs) and its own ``[keeper]`` table, whose keys are the ``keeper_*`` fields without the prefix::

    [oracle]
    rpc_url = "https://rpc.example.org"
    router = "0x..."
    redis_url = "redis://10.0.0.5:6379/0"

    [keeper]
    account = "keeper"            # an Ape account alias; default: the operator's `account`
    interval_s = 15
    batch_size = 50

In the environment they are ``ORACLE_KEEPER_<NAME>`` (``ORACLE_KEEPER_ACCOUNT=keeper``), which
wins over the file, as for every other setting. A keeper needs no operator account: set
``[keeper] account`` alone (the operator's ``account`` is then optional).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from oracle.errors import ConfigError
from oracle.settings import (
    LOCAL_CHAIN_IDS,
    OracleSettings,
    _check_address,
    _TomlFile,
    load_settings,
)


class _KeeperTomlFile(_TomlFile):
    """The ``[oracle]`` table, plus the ``[keeper]`` table as ``keeper_*`` keys."""

    def __call__(self) -> dict[str, Any]:
        section = dict(super().__call__())
        if self.path is None:
            return section
        keeper = tomllib.loads(self.path.read_text()).get("keeper", {})
        section.pop("keeper", None)  # a file without an [oracle] table: its top level was returned
        if not isinstance(keeper, dict):
            raise ConfigError(f"config file {self.path}: `keeper` must be a table ([keeper])")
        self.refuse_secrets(
            keeper,
            " under [keeper]",
            "keys never go in the config file. Import the keeper's key into Ape (`ape accounts import <alias>`) "
            'and set `account = "<alias>"` under [keeper]',
        )
        section.update(
            {name if name.startswith("keeper_") else f"keeper_{name}": value for name, value in keeper.items()}
        )
        return section


class KeeperSettings(OracleSettings):
    """What ``python -m oracle keeper`` needs: the oracle's settings and the ``keeper_*`` fields."""

    keeper_account: str | None = Field(
        None, description="Ape account alias that sends the keeper's transactions (default: the operator's `account`)"
    )
    keeper_test_account: int | None = Field(
        None, ge=0, lt=1000, description="index of an Ape test account (local chains only; for tests)"
    )
    keeper_passphrase_file: Path | None = Field(
        None, description="file holding the keeper account's passphrase (else APE_ACCOUNTS_<alias>_PASSPHRASE)"
    )
    keeper_licenses: str | None = Field(None, description="LicenseManager address (default: router.licenseManager())")
    keeper_start_block: int | None = Field(
        None,
        ge=0,
        description="where the keeper's scan of the market's events "
        "starts (default: start_block); the deployment's "
        "first block",
    )
    keeper_interval_s: float = Field(15.0, gt=0, le=3_600, description="pause between two rounds of the keeper")
    keeper_batch_size: int = Field(50, ge=1, le=500, description="most requests in one settle transaction")
    keeper_max_pending_txs: int = Field(4, ge=1, le=64, description="most unmined keeper transactions at once")
    keeper_gas_limit_cap: int = Field(
        3_000_000, ge=21_000, description="a keeper transaction estimated above this is split (settle) or left out"
    )
    keeper_renewals: bool = Field(True, description="renew due subscriptions whose holders turned auto-renewal on")
    keeper_settlements: bool = Field(
        True, description="settle deliveries past their dispute window and lapse undecided disputes"
    )
    keeper_expiries: bool = Field(True, description="cancel requests past their deadline (the buyer is refunded)")
    keeper_key_delivery: str | None = Field(
        None,
        description="KeyDelivery address: also refund local-use purchases undelivered at their deadline and "
        "settle key deliveries past their dispute window (`keyDelivery` in the deployment file)",
    )

    config_file: ClassVar[type[_TomlFile]] = _KeeperTomlFile

    @field_validator("keeper_licenses")
    @classmethod
    def _licenses(cls, value: str | None) -> str | None:
        return _check_address(value, "keeper_licenses")

    @field_validator("keeper_key_delivery")
    @classmethod
    def _key_delivery(cls, value: str | None) -> str | None:
        return _check_address(value, "keeper_key_delivery")

    @field_validator("keeper_passphrase_file")
    @classmethod
    def _expand_keeper_path(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.expanduser(str(value)))

    # Replaces OracleSettings._one_key_source: the keeper's key may be its own, and then the
    # operator's is not needed.
    @model_validator(mode="after")
    def _one_key_source(self) -> KeeperSettings:
        if self.keeper_account is not None and self.keeper_test_account is not None:
            raise ValueError("set either `keeper_account` (an Ape alias) or `keeper_test_account`, not both")
        if self.account is not None and self.test_account is not None:
            raise ValueError("set either `account` (an Ape alias) or `test_account`, not both")
        if not self.has_own_key and self.account is None and self.test_account is None:
            raise ValueError(
                "no keeper account: set `account` under [keeper] to an Ape account alias "
                "(ORACLE_KEEPER_ACCOUNT), or the operator's `account`"
            )
        test = self.keeper_test_account if self.has_own_key else self.test_account
        if test is not None and self.chain_id is not None and self.chain_id not in LOCAL_CHAIN_IDS:
            raise ValueError(f"test accounts are for local chains only (chain id {self.chain_id} is not one)")
        return self

    @property
    def has_own_key(self) -> bool:
        """The keeper sends from its own account, not the operator's."""
        return self.keeper_account is not None or self.keeper_test_account is not None

    @property
    def has_operator_key(self) -> bool:
        return self.account is not None or self.test_account is not None

    def key_settings(self) -> OracleSettings:
        """These settings with the keeper's account in the operator's place (what oracle.keys reads)."""
        if not self.has_own_key:
            return self
        return self.model_copy(
            update={
                "account": self.keeper_account,
                "test_account": self.keeper_test_account,
                "passphrase_file": self.keeper_passphrase_file,
            }
        )

    def sender_settings(self) -> OracleSettings:
        """These settings with the keeper's limits where the transaction sender reads its own."""
        return self.model_copy(
            update={"gas_limit_cap": self.keeper_gas_limit_cap, "max_pending_txs": self.keeper_max_pending_txs}
        )

    @property
    def first_block(self) -> int:
        return self.start_block if self.keeper_start_block is None else self.keeper_start_block


def load_keeper_settings(config: str | os.PathLike[str] | None = None, **overrides: Any) -> KeeperSettings:
    """Read and validate the keeper's settings (``config``: a TOML file instead of ``$ORACLE_CONFIG``);
    raise :class:`ConfigError` naming every problem."""
    return load_settings(config, kind=KeeperSettings, **overrides)

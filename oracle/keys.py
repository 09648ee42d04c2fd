"""The operator's key: from an Ape account alias (a keystore), never from the config file.

Ape keeps an account imported with ``ape accounts import <alias>`` as a standard
Web3 v3 keystore at ``$APE_DATA_FOLDER/accounts/<alias>.json`` (``~/.ape/accounts`` by
default). The oracle reads that file itself (importing Ape in every worker would cost
seconds) and unlocks it with the passphrase from, in order: ``passphrase_file``, the
environment variable Ape itself reads (``APE_ACCOUNTS_<alias>_PASSPHRASE``), or a prompt
when the process has a terminal.

Tests and local demos may instead name an Ape *test* account by index (derived from the
test mnemonic in ape-config.yaml); the oracle refuses that on any chain but a local one.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from oracle.errors import OperatorKeyError
from oracle.settings import LOCAL_CHAIN_IDS, OracleSettings

TEST_MNEMONIC = "test test test test test test test test test test test junk"
TEST_HD_PATH = "m/44'/60'/0'/0/{}"  # Ape's default for test accounts


@dataclass(frozen=True)
class OperatorKey:
    """An unlocked operator account: its address, private key and 64-byte public key."""

    address: str
    private_key: bytes = field(repr=False)
    source: str

    @property
    def public_key(self) -> bytes:
        """Uncompressed secp256k1 public key without the 0x04 prefix (x || y), as the router stores it."""
        from coincurve import PrivateKey

        return PrivateKey(self.private_key).public_key.format(compressed=False)[1:]


def keystore_dir(settings: OracleSettings) -> Path:
    if settings.keystore_dir is not None:
        return settings.keystore_dir
    data = os.environ.get("APE_DATA_FOLDER")
    return (Path(data) if data else Path.home() / ".ape") / "accounts"


def passphrase_variable(alias: str) -> str:
    return f"APE_ACCOUNTS_{alias}_PASSPHRASE"


def _passphrase(settings: OracleSettings, alias: str) -> str:
    if settings.passphrase_file is not None:
        try:
            return settings.passphrase_file.read_text().rstrip("\r\n")
        except OSError as exc:
            raise OperatorKeyError(f"cannot read passphrase_file {settings.passphrase_file}: {exc.strerror}") from None
    variable = passphrase_variable(alias)
    if variable in os.environ:
        return os.environ[variable]
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"Passphrase of Ape account '{alias}': ")
    raise OperatorKeyError(
        f"no passphrase for Ape account '{alias}': set {variable} in the environment (as Ape itself reads it) "
        "or `passphrase_file` in the settings; worker processes cannot prompt"
    )


def load_keystore(settings: OracleSettings, alias: str) -> OperatorKey:
    from eth_account import Account

    path = keystore_dir(settings) / f"{alias}.json"
    try:
        keyfile = json.loads(path.read_text())
    except FileNotFoundError:
        raise OperatorKeyError(
            f"no Ape account '{alias}' (looked for {path}). Import the operator key with "
            f"`ape accounts import {alias}`, or set keystore_dir / APE_DATA_FOLDER to where it lives"
        ) from None
    except (OSError, ValueError) as exc:
        raise OperatorKeyError(f"{path} is not a readable keystore: {exc}") from None
    try:
        private_key = bytes(Account.decrypt(keyfile, _passphrase(settings, alias)))
    except ValueError as exc:
        raise OperatorKeyError(f"cannot unlock Ape account '{alias}' ({path}): {exc}; check the passphrase") from None
    address = Account.from_key(private_key).address
    return OperatorKey(address, private_key, f"ape account {alias}")


def ape_test_key(index: int) -> OperatorKey:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(TEST_MNEMONIC, account_path=TEST_HD_PATH.format(index))
    return OperatorKey(account.address, bytes(account.key), f"ape test account {index}")


def operator_address(settings: OracleSettings) -> str:
    """The operator's address without unlocking the key (Ape's keystores carry it in clear)."""
    from eth_utils import to_checksum_address

    if settings.test_account is not None:
        return ape_test_key(settings.test_account).address
    assert settings.account is not None
    path = keystore_dir(settings) / f"{settings.account}.json"
    try:
        return to_checksum_address(json.loads(path.read_text())["address"])
    except (OSError, ValueError, KeyError):
        return load_keystore(settings, settings.account).address


def load_operator_key(settings: OracleSettings, chain_id: int | None = None) -> OperatorKey:
    """The operator key named by the settings. ``chain_id``: the node's, to refuse test keys off local chains."""
    if settings.test_account is not None:
        if chain_id is not None and chain_id not in LOCAL_CHAIN_IDS:
            raise OperatorKeyError(
                f"test_account is for local chains only; this node is chain {chain_id}. "
                "Use `account` (an Ape alias) instead"
            )
        return ape_test_key(settings.test_account)
    assert settings.account is not None  # the settings refuse having neither
    return load_keystore(settings, settings.account)

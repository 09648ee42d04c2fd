"""The oracle's configuration: one typed settings object, from the environment and a TOML file.

Precedence (highest first): keyword arguments, environment variables ``ORACLE_<FIELD>``
(nested fields as JSON, e.g. ``ORACLE_MODELS='{"0x12..": {"keyring": "bafk.."}}'``), the
TOML file named by ``ORACLE_CONFIG`` (or ``--config``), then the defaults, which work on a
laptop against a local anvil and Redis.

The operator's private key is never part of the settings: ``account`` names an Ape account
alias whose keystore (``~/.ape/accounts/<alias>.json``) is unlocked with a passphrase from the
environment (see :mod:`oracle.keys`). A config file that holds a key is refused.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from oracle.errors import ConfigError

CONFIG_ENV = "ORACLE_CONFIG"
LOCAL_CHAIN_IDS = frozenset({1337, 31337})
_SECRET_NAMES = ("private_key", "privatekey", "secret_key", "mnemonic", "passphrase", "password", "key")


def parse_model_id(value: object) -> int:
    """A model id (uint256: ``modelIdOf(creator, bundle SHA-256)``) from an int, a decimal string or 0x-hex."""
    if isinstance(value, int) and not isinstance(value, bool):
        model_id = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            model_id = int(text, 16) if text.lower().startswith("0x") else int(text)
        except ValueError:
            raise ValueError(f"model id {value!r} is neither a decimal number nor 0x-hex") from None
    else:
        raise ValueError(f"model id {value!r} must be a number or a string")
    if not 0 < model_id < 2**256:
        raise ValueError(f"model id {value!r} is not a uint256 above zero")
    return model_id


def _check_address(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    from eth_utils import is_address, to_checksum_address

    if not is_address(value):
        raise ValueError(f"{field} {value!r} is not an Ethereum address (0x followed by 40 hex digits)")
    return to_checksum_address(value)


class ServedModel(BaseModel):
    """A voice model this operator serves: where its keyring (the wrapped data keys) is stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keyring: str = Field(description="CID of the model's keyring, as the creator published it")

    @field_validator("keyring")
    @classmethod
    def _cid(cls, value: str) -> str:
        from voicemarket.content.multiformats import CID
        from voicemarket.errors import InvalidCID

        try:
            return str(CID.parse(value))
        except InvalidCID as exc:
            raise ValueError(f"keyring {value!r} is not a CID: {exc}") from None


class _TomlFile(PydanticBaseSettingsSource):
    """The TOML file named by ``ORACLE_CONFIG`` (or passed explicitly); nothing if none."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field, field_name):  # noqa: ANN001, ANN201 - required by the base class
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = tomllib.loads(self.path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"config file {self.path} does not exist (set {CONFIG_ENV} or --config to a TOML file)"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {self.path} is not valid TOML: {exc}") from None
        section = data.get("oracle", data)
        self.refuse_secrets(
            section,
            "",
            "the operator key never goes in the config file. Import it into Ape (`ape accounts import <alias>`), set "
            '`account = "<alias>"`, and give the passphrase in the environment as APE_ACCOUNTS_<alias>_PASSPHRASE.',
        )
        return section

    def refuse_secrets(self, table: dict[str, Any], where: str, advice: str) -> None:
        """Raise :class:`ConfigError` (``advice``: what to do instead) if ``table`` holds a key or a secret."""
        secrets = sorted(k for k in table if k.lower().replace("-", "_") in _SECRET_NAMES)
        if secrets:
            raise ConfigError(f"config file {self.path} holds {', '.join(secrets)}{where}: {advice}")


class OracleSettings(BaseSettings):
    """Everything an oracle process needs to know; validated when it starts."""

    model_config = SettingsConfigDict(
        env_prefix="ORACLE_", extra="forbid", validate_default=True, frozen=True, populate_by_name=True
    )

    # ---------------------------------------------------------------- chain
    rpc_url: str = Field("http://127.0.0.1:8545", description="JSON-RPC endpoint (HTTP) of the chain")
    chain_id: int | None = Field(None, description="refuse to start if the node reports another chain id")
    router: str = Field(description="address of the SynthesisRouter contract")
    registry: str | None = Field(None, description="VoiceModelRegistry address (default: router.registry())")
    confirmations: int = Field(2, ge=0, le=1000, description="blocks on top of a request before it is served")
    overlap_blocks: int = Field(5, ge=0, le=10_000, description="blocks re-read behind the checkpoint after a restart")
    start_block: int = Field(0, ge=0, description="where the listener starts when Redis holds no checkpoint")
    max_block_range: int = Field(2_000, ge=1, description="most blocks per eth_getLogs call")
    poll_interval_s: float = Field(1.0, gt=0, le=60, description="how often the listener asks for new blocks")
    rpc_timeout_s: float = Field(10.0, gt=0, description="timeout of one JSON-RPC call")

    # ---------------------------------------------------------------- operator account
    account: str | None = Field(None, description="Ape account alias holding the operator key (keystore)")
    keystore_dir: Path | None = Field(None, description="where Ape keeps keystores (default $APE_DATA_FOLDER/accounts)")
    passphrase_file: Path | None = Field(
        None, description="file holding the keystore passphrase (else the APE_ACCOUNTS_<alias>_PASSPHRASE variable)"
    )
    test_account: int | None = Field(
        None, ge=0, lt=1000, description="index of an Ape test account (local chains only; for tests)"
    )

    # ---------------------------------------------------------------- Redis and Celery
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis shared by every process and machine")
    namespace: str | None = Field(None, description="Redis key prefix (default oracle:<router>:<operator>)")
    visibility_timeout_s: int = Field(3_600, ge=5, description="Celery redelivers a task unacknowledged this long")
    work_lease_s: float = Field(30.0, ge=1, description="a worker's claim on a request lapses this long after it dies")
    leader_lease_s: float = Field(
        10.0, ge=1, description="a standby listener/submitter takes over this long after the active one dies"
    )
    requeue_after_s: float = Field(120.0, ge=1, description="a queued request nobody works on is queued again")
    sweep_interval_s: float = Field(10.0, gt=0, description="how often the listener looks for forgotten requests")
    retry_backoff_max_s: int = Field(60, ge=1, description="longest pause between retries of a transient fault")

    # ---------------------------------------------------------------- models and storage
    models: dict[int, ServedModel] = Field(default_factory=dict, description="model id -> keyring CID")
    store: str = Field("local:~/.voicemarket/store", description="`local:PATH` or `kubo:http://host:5001`")
    output_store: str | None = Field(None, description="where audio goes (default: `store`)")
    models_dir: Path = Field(Path("~/.voicemarket/oracle/models"), description="decrypted voices (keep private)")
    state_dir: Path | None = Field(
        None,
        description="the coordinator's durable mark (Redis losses are detected and rebuilt from it; default: "
        "`state` beside models_dir)",
    )
    hubert_dir: Path | None = Field(None, description="chinese-hubert-base folder (needed to synthesise)")
    bert_dir: Path | None = Field(None, description="chinese-roberta-wwm-ext-large folder (Chinese text)")
    device: str = Field("cpu", description="torch device: cpu, cuda, cuda:1 ...")
    precision: Literal["fp32", "bf16", "int8"] = Field(
        "fp32", description="GPT precision (synth: fp32 is the original's numerics; bf16/int8 faster)"
    )
    torch_threads: int | None = Field(None, ge=1, description="torch threads per worker process (default: torch's)")
    voice_cache_size: int = Field(2, ge=1, description="voices kept loaded per worker process")
    max_text_chars: int = Field(1_000, ge=1, description="longest text served (longer: fail TextTooLong)")
    max_input_bytes: int = Field(64 * 1024, ge=1, description="largest input file fetched by CID")
    store_retry_margin_s: float = Field(
        120.0,
        ge=0,
        description="a store refusing the audio is retried until the request's deadline is this close (then a refund)",
    )
    max_semantic_tokens: int = Field(1_500, ge=1, description="per sentence (25 tokens = 1 s of audio)")

    # ---------------------------------------------------------------- transactions
    max_batch: int = Field(50, ge=1, le=500, description="most fulfilments in one fulfilBatch transaction")
    batch_linger_s: float = Field(0.2, ge=0, description="wait this long for more results before sending a batch")
    batch_max_wait_s: float = Field(
        1.0,
        ge=0,
        description="while workers still hold requests, wait up to this long for a batch to fill (bursts)",
    )
    max_pending_txs: int = Field(8, ge=1, description="most unmined transactions at once")
    gas_limit_cap: int = Field(10_000_000, ge=21_000, description="refuse (split) a transaction estimated above this")
    gas_margin: float = Field(1.25, ge=1.0, le=3.0, description="gas limit = estimate x margin")
    max_fee_cap_gwei: float = Field(500.0, gt=0, description="never offer more than this max fee per gas")
    priority_fee_gwei: float = Field(1.0, ge=0, description="tip per gas")
    stuck_after_s: float = Field(60.0, gt=0, description="replace a transaction unmined this long")
    fee_bump: float = Field(1.125, ge=1.1, le=3.0, description="fee multiplier of a replacement (nodes need >= 1.1)")

    # ---------------------------------------------------------------- operations
    metrics_host: str = Field("127.0.0.1", description="address the Prometheus endpoint binds to")
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus endpoint of `oracle run` (0: off)")
    log_format: Literal["json", "text"] = Field("json", description="one JSON object per line, or plain text")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="of the oracle and Celery")

    # ---------------------------------------------------------------- validation
    @field_validator("router")
    @classmethod
    def _router(cls, value: str) -> str:
        return _check_address(value, "router")

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        return _check_address(value, "registry")

    @field_validator("models", mode="before")
    @classmethod
    def _model_ids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {parse_model_id(k): v for k, v in value.items()}
        return value

    @field_validator("rpc_url")
    @classmethod
    def _rpc(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"rpc_url {value!r} must be an http:// or https:// JSON-RPC endpoint")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url {value!r} must start with redis://, rediss:// or unix://")
        return value

    @field_validator("store", "output_store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("local:", "kubo:")):
            raise ValueError(f"store {value!r} must be `local:PATH` or `kubo:http://host:5001`")
        return value

    @field_validator("models_dir", "state_dir", "hubert_dir", "bert_dir", "keystore_dir", "passphrase_file")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else Path(os.path.expanduser(str(value)))

    @model_validator(mode="after")
    def _one_key_source(self) -> OracleSettings:
        if self.account is None and self.test_account is None:
            raise ValueError("no operator account: set `account` to an Ape account alias (ORACLE_ACCOUNT)")
        if self.account is not None and self.test_account is not None:
            raise ValueError("set either `account` (an Ape alias) or `test_account`, not both")
        if self.test_account is not None and self.chain_id is not None and self.chain_id not in LOCAL_CHAIN_IDS:
            raise ValueError(f"test_account is for local chains only (chain id {self.chain_id} is not one)")
        return self

    # ---------------------------------------------------------------- sources
    config_file: ClassVar[type[_TomlFile]] = _TomlFile  # how this kind of settings reads the TOML file

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls,
        init_settings,
        env_settings,
        dotenv_settings,  # noqa: ANN001, ANN206
        file_secret_settings,
    ):
        path = os.environ.get(CONFIG_ENV)
        return init_settings, env_settings, cls.config_file(settings_cls, Path(path).expanduser() if path else None)

    # ---------------------------------------------------------------- derived
    def served(self, model_id: int) -> ServedModel | None:
        return self.models.get(model_id)

    @property
    def state_path(self) -> Path:
        """Where the coordinator keeps its durable mark (:mod:`oracle.recovery`)."""
        return self.state_dir if self.state_dir is not None else self.models_dir.parent / "state"


def load_settings(
    config: str | os.PathLike[str] | None = None, *, kind: type[OracleSettings] = OracleSettings, **overrides: Any
) -> OracleSettings:
    """Read and validate the settings; raise :class:`ConfigError` that names every problem.

    ``config`` (a TOML file; keys at the top level or under ``[oracle]``) is used instead of
    ``$ORACLE_CONFIG`` when given. ``kind``: a subclass with more fields (the keeper's).
    """
    previous = os.environ.get(CONFIG_ENV)
    if config is not None:
        os.environ[CONFIG_ENV] = str(config)
    try:
        return kind(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    finally:
        if config is not None:
            if previous is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = previous


def describe_validation_error(exc: ValidationError) -> str:
    lines = ["the oracle settings are invalid:"]
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "settings"
        env = "ORACLE_" + str(error["loc"][0]).upper() if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"required: set `{field}` in the config file or {env} in the environment"
        elif error["type"] == "extra_forbidden":
            message = f"unknown setting `{field}` (a typo? `python -m oracle config` lists the settings)"
        lines.append(f"  - {field}: {message}")
    return "\n".join(lines)

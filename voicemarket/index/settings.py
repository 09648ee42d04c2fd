"""The index's settings: one typed object for the indexer and the API server.

Read, highest precedence first, from keyword arguments (the command line's options), the
environment (``VOICEMARKET_INDEX_<FIELD>``), a TOML file (``--config``, keys at the top level or
under ``[index]``), then the defaults, which work on a laptop against ``make chain``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from voicemarket.index.db import DEFAULT_DB, engine_url
from voicemarket.web.settings import WebSettings


class IndexSettings(WebSettings):
    """Everything ``python -m voicemarket.index run`` and ``serve`` read."""

    model_config = SettingsConfigDict(extra="forbid", env_prefix="VOICEMARKET_INDEX_")
    toml_table: ClassVar[str] = "index"

    db: str = Field(DEFAULT_DB, description="sqlite:///PATH or postgresql://USER@HOST:PORT/NAME")
    rpc_url: str = Field("http://127.0.0.1:8545", description="the node's JSON-RPC URL (the indexer only)")
    deployment: Path | None = Field(
        None,
        description="the deployment file `ape run deploy` saved (.voicemarket/deployments/<network>.json); "
        "needed by the indexer",
    )
    abi_manifest: Path | None = Field(None, description="compiled contracts (default: the project's .build/)")
    store: str | None = Field(None, description="where metadata is fetched: local:PATH or kubo:http://HOST:5001")
    confirmations: int = Field(12, ge=0, description="blocks behind the head that the indexer stays")
    batch_blocks: int = Field(2_000, ge=1, le=100_000, description="the most blocks read in one batch")
    poll_interval_s: float = Field(2.0, gt=0, description="pause between polls once caught up")
    reorg_depth: int = Field(
        128, ge=1, description="how deep a reorg the index can rewind: changes this recent are journaled"
    )
    metadata_max_bytes: int = Field(262_144, ge=1_024, description="the largest metadata document read")
    metadata_retry_s: int = Field(60, ge=1, description="first pause before a failed metadata fetch is retried")
    metadata_max_retry_s: int = Field(86_400, ge=1, description="the longest pause between metadata retries")
    metadata_batch: int = Field(50, ge=1, description="metadata documents fetched per round")
    pause_before_commit_s: float = Field(
        0.0, ge=0, description="fault injection for tests: hold each batch's transaction open this long"
    )
    sse_poll_s: float = Field(0.5, gt=0, description="how often the live stream looks for new activity")
    # the DApp (served by `serve` beside the API; docs/app.md)
    app_dir: Path | None = Field(None, description="the built DApp to serve at / (default: app/dist when built)")
    chain_rpc_url: str | None = Field(
        None, description="the node URL a wallet is asked to add for this chain (default: rpc_url)"
    )
    chain_name: str = Field("voicemarket local chain", description="the chain's name shown to wallets")
    gateway_max_bytes: int = Field(64 * 1024 * 1024, ge=1_024, description="the largest content /ipfs/{cid} serves")

    @field_validator("db")
    @classmethod
    def _db(cls, value: str) -> str:
        engine_url(value)  # refuses what is neither SQLite nor PostgreSQL, saying how to write it
        return value

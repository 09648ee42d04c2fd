"""The speech API's own settings (``ORACLE_API_<NAME>`` or ``[api]`` in its TOML file); the chain,
key, Redis, store and voices are the oracle's (:class:`oracle.settings.OracleSettings`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemarket.web.settings import WebSettings


class ApiSettings(WebSettings):
    model_config = SettingsConfigDict(extra="forbid", env_prefix="ORACLE_API_")
    toml_table: ClassVar[str] = "api"

    port: int = 8700
    domain: str = Field("localhost", description="the domain sign-in messages must name (the API's public host)")
    public_uri: str = Field("http://localhost:8700", description="the URI sign-in messages must name")
    token_ttl_s: int = Field(900, ge=30, le=86_400, description="how long a sign-in token lasts")
    siwe_max_age_s: int = Field(300, ge=10, description="a sign-in message issued longer ago is refused")
    rate_per_minute: float = Field(60.0, gt=0, description="speech requests per token per minute (burst: a tenth)")
    max_text_chars: int = Field(500, ge=1, description="longest text of one request")
    max_streams_per_token: int = Field(2, ge=1, description="streams one token may have open at once")
    synth_slots: int = Field(8, ge=1, le=64, description="streams synthesised at once in this process")
    batch_rows: int = Field(
        8,
        ge=1,
        le=16,
        description="sentences of different streams decoded together in one GPT step (continuous batching)",
    )
    vocoder_slots: int = Field(1, ge=1, le=16, description="SoVITS pieces computed at once (fewest pieces out first)")
    max_waiting: int = Field(16, ge=0, description="requests waiting for a synthesis slot before 503")
    body_timeout_s: float = Field(10.0, gt=0, description="a request body must arrive within this")
    send_timeout_s: float = Field(15.0, gt=0, description="a client that takes no audio for this long is cut off")
    stream_timeout_s: float = Field(300.0, gt=0, description="longest stream")
    preload_voices: bool = Field(True, description="load every served voice at start, not at its first request")
    chunk_tokens: int = Field(25, ge=1, description="semantic tokens per streamed piece (25 = 1 s of audio)")
    first_chunk_tokens: int = Field(
        8, ge=1, description="semantic tokens of a sentence's first piece (smaller: earlier first audio)"
    )
    licence_cache_s: float = Field(30.0, ge=0, description="licence and channel answers are reused this long")
    events_poll_s: float = Field(1.0, gt=0, description="how often new licence/registry/channel logs are looked for")
    fee: int | None = Field(None, ge=0, description="fee per use in the channel's asset (default: the router's fee)")
    max_unredeemed_uses: int = Field(1_000, ge=1, description="uses accepted on a lane before its redemption")
    redeem_interval_s: float = Field(60.0, gt=0, description="how often accepted vouchers are redeemed on-chain")
    redeem_batch: int = Field(100, ge=1, le=500, description="most vouchers in one redeem transaction")

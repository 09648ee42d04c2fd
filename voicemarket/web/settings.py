"""One typed settings object per voicemarket HTTP service (see :mod:`voicemarket.web.api`).

Kept apart from the web framework, so that a service's other processes (the indexer, say)
read their settings without importing FastAPI.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from voicemarket.errors import ServiceSettingsError


class _TomlSource(PydanticBaseSettingsSource):
    """The TOML file given to :meth:`WebSettings.load`: keys at the top level or under ``[<toml_table>]``."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None, table: str) -> None:
        super().__init__(settings_cls)
        self.values: dict[str, Any] = {}
        if path is not None:
            try:
                document = tomllib.loads(Path(path).read_text())
            except FileNotFoundError:
                raise ServiceSettingsError(f"no settings file at {path}") from None
            except tomllib.TOMLDecodeError as exc:
                raise ServiceSettingsError(f"{path} is not valid TOML: {exc}") from None
            self.values = document.get(table, document) if isinstance(document.get(table), dict) else document

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.values)


class WebSettings(BaseSettings):
    """Settings every HTTP service has; a service subclasses it with its own fields,
    ``model_config = SettingsConfigDict(env_prefix=...)`` and ``toml_table``."""

    model_config = SettingsConfigDict(extra="forbid", env_prefix="VOICEMARKET_WEB_")
    toml_table: ClassVar[str] = "web"
    _config_file: ClassVar[Path | None] = None

    host: str = "127.0.0.1"
    port: int = 8600
    cors_origins: list[str] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _TomlSource(settings_cls, cls._config_file, cls.toml_table)

    @classmethod
    def load(cls, config: str | os.PathLike[str] | None = None, **overrides: Any) -> Self:
        """Read and check the settings (``overrides`` that are None are left out); raise
        :class:`ServiceSettingsError` naming every problem and where to set it."""
        overrides = {k: v for k, v in overrides.items() if v is not None}
        cls._config_file = Path(config) if config is not None else None
        try:
            return cls(**overrides)
        except ValidationError as exc:
            prefix = cls.model_config.get("env_prefix", "")
            lines = ["the settings are invalid:"]
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "settings"
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    message = "unknown setting (a typo?)"
                lines.append(f"  - {field}: {message} (option --{field.replace('_', '-')}, or {prefix}{field.upper()})")
            raise ServiceSettingsError("\n".join(lines)) from None
        finally:
            cls._config_file = None

"""All settings in one place, read from the environment and `.env`."""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

# What Telegram accepts as a webhook secret token, at a length nobody guesses (and the log
# filter can redact without blanking ordinary words).
WEBHOOK_SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,256}")
# Whisper's language codes: "ru", "en", "haw", "yue".
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")

# Automatic WHISPER_WORKERS: one per core up to this many; further cores become threads of each
# worker. On two cores, 2 workers x 1 thread beat 1 x 2 in burst throughput and, at beam 5, in
# single-note latency (README, Performance); a writer's bot rarely has more chats busy at once.
MAX_AUTO_WORKERS = 2


class ConfigError(Exception):
    """A setting is missing or invalid; the message names it and is safe to print."""


class Settings(BaseSettings):
    """Every setting of the bot; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr = SecretStr("")
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    # A self-hosted Bot API server downloads files of any size; Telegram's own stops at 20 MB.
    telegram_local_bot_api: bool = False
    # Empty means nobody: the bot fails closed.
    allowed_user_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # Empty: long polling. Set: Telegram pushes updates to this public URL (webhook mode).
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = Field(default=8443, ge=1, le=65535)

    data_dir: Path = Path("./data")
    database_url: str = ""

    whisper_model: str = "small"
    whisper_device: Literal["cpu", "cuda", "auto"] = "cpu"
    whisper_compute_type: Literal[
        "default",
        "auto",
        "int8",
        "int8_float32",
        "int8_float16",
        "int8_bfloat16",
        "int16",
        "float16",
        "bfloat16",
        "float32",
    ] = "int8"
    whisper_beam_size: int = Field(default=5, ge=1, le=20)
    whisper_language: str = ""
    # The writer's likely languages: with the language left to detection, only these are
    # considered (mixed Russian and English is otherwise taken for Latin or Lithuanian).
    whisper_languages: Annotated[tuple[str, ...], NoDecode] = ()
    # 0 = chosen from the machine's cores (see whisper_parallelism).
    whisper_cpu_threads: int = Field(default=0, ge=0)
    whisper_workers: int = Field(default=0, ge=0, le=64)

    # local: faster-whisper on this machine; openai: an OpenAI-compatible transcription endpoint.
    transcribe_backend: Literal["local", "openai"] = "local"
    transcribe_base_url: str = ""
    transcribe_api_key: SecretStr = SecretStr("")
    transcribe_model: str = "whisper-1"
    transcribe_timeout_seconds: float = Field(default=300.0, gt=0)

    openai_api_key: SecretStr = SecretStr("")
    openai_base_url: str = ""
    openai_model: str = "gpt-4o-mini"
    # The whole answer of one request, however long it streams; a model on a CPU needs more.
    openai_timeout_seconds: float = Field(default=120.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    # The model's context window (prompt and answer); longer notes are drafted in stages.
    llm_context_tokens: int = Field(default=12000, ge=1000)
    # Cap on every request's max_tokens (each task asks for what its answer needs, up to this).
    llm_max_output_tokens: int = Field(default=4096, ge=512, le=200_000)
    # Requests sent at once to the endpoint (0 = no limit); 1 for a server that runs one at a
    # time, so a waiting request does not spend its timeout queued on the server.
    llm_parallel_requests: int = Field(default=0, ge=0, le=64)
    draft_language: str = "English"
    # After drafting a section, ask the LLM which points were lost and which citations fail.
    draft_check: bool = True
    # Ask the LLM where a voice note that names no section belongs, and offer new headings.
    llm_routing: bool = False

    # Transcription in `python -m bot worker` processes (this machine or others) instead of
    # the bot process; they share the database (PostgreSQL for workers on other machines).
    separate_workers: bool = False
    # A worker renews its claim on a note this often (and notices /cancel); a claim it stops
    # renewing (the worker died) runs out after worker_lease_seconds.
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    worker_lease_seconds: float = Field(default=60.0, ge=5)

    # /publish to git: a local repository (its top folder); empty = off.
    publish_git_dir: str = ""
    # Folder inside the repository for the articles; empty = its top folder.
    publish_git_subdir: str = ""
    publish_git_author: str = "Voice Draft Bot <voice-draft-bot@localhost>"
    # Push each commit to the branch's remote (when the repository has one).
    publish_git_push: bool = False
    # /publish to Telegraph pages (public to whoever has the link).
    telegraph_enabled: bool = True
    telegraph_api_url: str = "https://api.telegra.ph"

    # Sources beyond voice (links, photos, documents, forwarded posts; see bot/sources/).
    # A link's page is fetched within this time, up to this size; a host on a loopback,
    # private or link-local address is refused unless allowed (a self-hosted wiki, tests).
    link_fetch_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    link_fetch_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    link_fetch_allow_private: bool = False
    # The model that describes photos (empty: OPENAI_MODEL); it must accept image input.
    vision_model: str = ""
    # The largest image sent to it (a photo: the largest of Telegram's sizes under this).
    vision_max_image_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("allowed_user_ids", mode="before")
    @classmethod
    def _parse_user_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(p) for p in parts if p)
            except ValueError:
                raise ValueError("must be comma-separated numeric Telegram user ids") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator(
        "telegram_api_base_url",
        "telegram_file_base_url",
        "openai_base_url",
        "transcribe_base_url",
        "webhook_url",
        "telegraph_api_url",
    )
    @classmethod
    def _check_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator(
        "log_level", "whisper_device", "whisper_compute_type", "transcribe_backend", mode="before"
    )
    @classmethod
    def _case_insensitive(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        return value.strip().upper() if info.field_name == "log_level" else value.strip().lower()

    @field_validator("whisper_language")
    @classmethod
    def _normalise_language(cls, value: str) -> str:
        value = value.strip().lower()
        if value == "auto":
            return ""
        if value and not _LANGUAGE_CODE.fullmatch(value):
            raise ValueError("must be a language code such as ru or en (empty = detect)")
        return value

    @field_validator("whisper_languages", mode="before")
    @classmethod
    def _parse_languages(cls, value: object) -> object:
        if isinstance(value, str):
            codes = [c.strip().lower() for c in value.replace(";", ",").split(",")]
            codes = [c for c in codes if c]
            if any(not _LANGUAGE_CODE.fullmatch(c) for c in codes):
                raise ValueError("must be comma-separated language codes, e.g. ru,en")
            return tuple(dict.fromkeys(codes))
        return value

    @field_validator("publish_git_subdir")
    @classmethod
    def _check_subdir(cls, value: str) -> str:
        value = value.strip().strip("/")
        parts = PurePosixPath(value).parts if value else ()
        if value.startswith("~") or ".." in parts or ".git" in parts or "\\" in value:
            raise ValueError("must be a folder inside the repository, like articles or blog/posts")
        return value

    @field_validator("publish_git_author")
    @classmethod
    def _check_author(cls, value: str) -> str:
        from bot.publish.git import parse_author

        name, email = parse_author(value)  # ValueError says what is expected
        return f"{name} <{email}>"

    @field_validator("publish_git_dir")
    @classmethod
    def _expand_git_dir(cls, value: str) -> str:
        return str(Path(value.strip()).expanduser()) if value.strip() else ""

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                make_url(value)
            except Exception:
                raise ValueError(
                    "is not a database URL (e.g. postgresql+asyncpg://user:pw@host/db)"
                ) from None
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if secret and not WEBHOOK_SECRET_PATTERN.fullmatch(secret):
            # Never echo the value: it is a secret.
            raise ValueError(
                "must be 16-256 characters of A-Z, a-z, 0-9, _ and - "
                "(e.g. the output of `openssl rand -hex 32`)"
            )
        return SecretStr(secret)

    @model_validator(mode="after")
    def _default_database_url(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{(self.data_dir / 'bot.db').resolve()}"
        return self

    @model_validator(mode="after")
    def _lease_outlasts_beats(self) -> Settings:
        if self.worker_lease_seconds < 3 * self.worker_poll_seconds:
            raise ValueError(
                "WORKER_LEASE_SECONDS must be at least three times WORKER_POLL_SECONDS, or a "
                "busy worker could lose its note to another one"
            )
        return self

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        official = urlsplit(self.telegram_api_base_url).hostname == "api.telegram.org"
        if official and self.webhook_url and not self.webhook_url.startswith("https://"):
            # Telegram delivers webhooks only over HTTPS (a self-hosted Bot API server may not).
            raise ValueError("WEBHOOK_URL must start with https:// (Telegram requires HTTPS)")
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError(
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set "
                "(16-256 characters of A-Z, a-z, 0-9, _ and -)"
            )
        return self

    @model_validator(mode="after")
    def _hosted_transcription_needs_endpoint(self) -> Settings:
        configured = self.transcribe_api_key.get_secret_value() or self.transcribe_base_url
        if self.transcribe_backend == "openai" and not configured:
            raise ValueError(
                "TRANSCRIBE_BACKEND=openai needs TRANSCRIBE_API_KEY (and TRANSCRIBE_BASE_URL "
                "for a server other than OpenAI)"
            )
        return self

    @property
    def webhook_path(self) -> str:
        """The path the webhook server listens on: the same as WEBHOOK_URL's path."""
        return urlsplit(self.webhook_url).path.strip("/")

    @property
    def database_url_safe(self) -> str:
        """The database URL with its password masked, for printing."""
        return make_url(self.database_url).render_as_string(hide_password=True)

    @property
    def secrets(self) -> list[str]:
        """Values that must never appear in a log line or a message."""
        values = [
            self.telegram_bot_token.get_secret_value(),
            self.openai_api_key.get_secret_value(),
            self.transcribe_api_key.get_secret_value(),
            self.webhook_secret.get_secret_value(),
        ]
        password = make_url(self.database_url).password
        if password:
            # As written in the URL (percent-encoded) and as decoded: logs may show either.
            values += [str(password), quote(str(password), safe="")]
        return [v for v in values if v]

    @property
    def whisper_parallelism(self) -> tuple[int, int]:
        """(workers, cpu threads per worker) for whisper, automatic values resolved."""
        return whisper_parallelism(self.whisper_workers, self.whisper_cpu_threads, usable_cores())

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / "audio"

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key.get_secret_value() or self.openai_base_url)


def usable_cores() -> int:
    """Cores this process may run on (a container's CPU affinity, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def whisper_parallelism(workers: int, cpu_threads: int, cores: int) -> tuple[int, int]:
    """Resolve WHISPER_WORKERS and WHISPER_CPU_THREADS (0 = automatic) for `cores` cores.

    Automatic: one worker per core up to MAX_AUTO_WORKERS, each using its share of the cores,
    so workers x threads = cores: every core busy during a burst, none oversubscribed.
    """
    if workers == 0:
        workers = max(1, min(cores, MAX_AUTO_WORKERS))
    if cpu_threads == 0:
        cpu_threads = max(1, cores // workers)
    return workers, cpu_threads


def load_settings(*, require_token: bool = False, **overrides: object) -> Settings:
    """Build Settings, turning validation errors into one readable ConfigError."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            lines.append(f"  {name}: {error['msg'].removeprefix('Value error, ')}")
        raise ConfigError("Invalid configuration:\n" + "\n".join(lines)) from None
    if require_token and not settings.telegram_bot_token.get_secret_value().strip():
        raise ConfigError(
            "Invalid configuration:\n  TELEGRAM_BOT_TOKEN: required to run the bot "
            "(get one from @BotFather)"
        )
    return settings

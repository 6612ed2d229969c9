"""Start-up checks: each misconfiguration a new user can make, found before the bot starts
and told in one line that names the setting and the fix.

`python -m bot` runs them before `run`, `worker` and the offline commands that need them
(`checks_for`); a failed check raises `PreflightError`, which the CLI prints and exits with
status 2 on, never with a traceback. Each check waits at most CHECK_TIMEOUT_S for a server.
A message never holds the bot token, a database password or the user:password part of a URL.

The whisper checks accept exactly what faster-whisper loads: a folder is a model when it holds
model.bin; anything else is a name from `faster_whisper.available_models()` or a Hugging Face
repository id ("Systran/faster-whisper-small"), found in the download cache or on the hub.
"""

from __future__ import annotations

import asyncio
import difflib
import errno
import logging
import os
import socket
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.engine import URL, make_url

from bot.config import Settings

log = logging.getLogger(__name__)

# How long a check waits for a server (database, Bot API, Hugging Face hub).
CHECK_TIMEOUT_S = 5.0
# The databases the migrations are written and tested for, with their async drivers.
SUPPORTED_DATABASES = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
DATABASE_EXAMPLE = (
    "use postgresql+asyncpg://user:password@host:5432/database, or leave DATABASE_URL empty "
    "for SQLite in DATA_DIR"
)
# PostgreSQL error codes (SQLSTATE) a new user meets at the first connection.
_PG_AUTHENTICATION = {"28P01", "28000"}  # wrong password; no such role, or pg_hba refuses it
_PG_NO_DATABASE = "3D000"


WORKER_NEEDS_SEPARATE_WORKERS = (
    "SEPARATE_WORKERS=true is needed for workers: set it in the .env shared by the bot and "
    "its workers, and restart the bot."
)


class PreflightError(Exception):
    """A start-up check failed; `message` is one line, names the setting and the fix, and is
    safe to print."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Checks:
    """What a command needs checked before it runs."""

    data_dir: bool = False
    database: bool = False
    telegram: bool = False
    whisper: bool = False
    separate_workers: bool = False


def checks_for(command: str, settings: Settings) -> Checks:
    """The checks `python -m bot COMMAND` runs (check-config and eval need none)."""
    local_whisper = settings.transcribe_backend != "openai"
    if command == "run":
        # With separate workers the bot loads no model: they do.
        whisper = local_whisper and not settings.separate_workers
        return Checks(data_dir=True, database=True, telegram=True, whisper=whisper)
    if command == "worker":
        return Checks(
            separate_workers=True,
            data_dir=True,
            database=True,
            telegram=True,
            whisper=local_whisper,
        )
    if command in ("migrate", "import", "draft", "export", "publish"):
        # They store nothing in DATA_DIR but the default SQLite database.
        return Checks(data_dir=default_database(settings), database=True)
    if command == "transcribe" and local_whisper:
        # A model name is downloaded into DATA_DIR/models; a model folder needs nothing there.
        return Checks(data_dir=not Path(settings.whisper_model).is_dir(), whisper=True)
    return Checks()


def run_checks(command: str, settings: Settings) -> None:
    """Run the command's checks in order; the first failure raises PreflightError, a
    passing hiccup (Telegram busy) is logged as a warning."""
    checks = checks_for(command, settings)
    if checks.separate_workers and not settings.separate_workers:
        raise PreflightError(WORKER_NEEDS_SEPARATE_WORKERS)
    if checks.data_dir:
        check_data_dir(settings.data_dir)
    if checks.database:
        check_database_url(settings)
    if checks.database or checks.telegram:
        asyncio.run(_check_servers(settings, checks))
    if checks.whisper:
        check_whisper_model(settings)


async def _check_servers(settings: Settings, checks: Checks) -> None:
    if checks.database:
        await check_database(settings)
    if checks.telegram:
        warning = await check_telegram(settings)
        if warning:
            log.warning("%s", warning)


# DATA_DIR ----------------------------------------------------------------------------------
def check_data_dir(data_dir: Path) -> None:
    """DATA_DIR is a folder this user can create files in (it is created when missing)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise PreflightError(
            f"DATA_DIR={data_dir} is a file, not a folder: set DATA_DIR to a folder "
            "(it is created when missing), or move the file away."
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=data_dir, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise PreflightError(
            f"DATA_DIR={data_dir} {_why_not_writable(data_dir, exc)}: set DATA_DIR to a folder "
            f"this user (uid {_uid()}) can write, or give it that folder (e.g. chown)."
        ) from None


def _why_not_writable(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"cannot be created: {blocker} is a file"
    if exc.errno == errno.EROFS:
        return "is on a read-only file system"
    return f"is not writable ({(exc.strerror or type(exc).__name__).lower()})"


def _uid() -> int | str:
    getuid: Callable[[], int] | None = getattr(os, "getuid", None)
    return getuid() if getuid is not None else "?"


# DATABASE_URL ------------------------------------------------------------------------------
def check_database_url(settings: Settings) -> None:
    """The URL names a database the bot supports, through an async driver that is installed."""
    url = make_url(settings.database_url)
    scheme = url.drivername
    backend = scheme.partition("+")[0]
    if backend == "postgres":
        raise PreflightError(
            f"DATABASE_URL starts with {scheme}://, which SQLAlchemy does not know: write "
            "postgresql+asyncpg:// instead (the rest stays as it is)."
        )
    supported = SUPPORTED_DATABASES.get(backend)
    if supported is None:
        raise PreflightError(
            f"DATABASE_URL: {backend} databases are not supported (the bot runs on PostgreSQL "
            f"and SQLite): {DATABASE_EXAMPLE}."
        )
    rewrite = f"write {supported}:// instead (the rest stays as it is)"
    try:
        dialect = url.get_dialect()
    except Exception:  # a driver name SQLAlchemy has no plugin for
        raise PreflightError(
            f"DATABASE_URL starts with {scheme}://, a driver SQLAlchemy does not know: {rewrite}."
        ) from None
    if not getattr(dialect, "is_async", False):
        raise PreflightError(
            f"DATABASE_URL starts with {scheme}://, a driver the bot cannot use (it needs an "
            f"async one): {rewrite}."
        )
    try:
        dialect.import_dbapi()
    except ImportError:
        raise PreflightError(
            f"DATABASE_URL starts with {scheme}://, but that driver is not installed: {rewrite}."
        ) from None


async def check_database(settings: Settings, wait_s: float = CHECK_TIMEOUT_S) -> None:
    """Connect once: the server answers, takes the user and has the database; a file is an
    SQLite database (or empty, or not there yet)."""
    from sqlalchemy import text

    from bot.db.session import create_engine

    url = make_url(settings.database_url)
    sqlite = url.get_backend_name() == "sqlite"
    where = _database_location(url)
    try:
        engine = create_engine(settings.database_url)
    except OSError as exc:  # the SQLite file's folder cannot be created
        raise PreflightError(_database_problem(settings, url, exc)) from None
    try:
        async with asyncio.timeout(wait_s), engine.connect() as connection:
            query = "SELECT count(*) FROM sqlite_master" if sqlite else "SELECT 1"
            await connection.execute(text(query))
    except TimeoutError:
        raise PreflightError(
            f"DATABASE_URL: no answer from {where} within {wait_s:.0f} s: check the host and "
            "port, and that the database server is running and reachable from here."
        ) from None
    except Exception as exc:
        log.debug("The database check failed", exc_info=True)
        raise PreflightError(_database_problem(settings, url, exc)) from None
    finally:
        await engine.dispose()


def _database_problem(settings: Settings, url: URL, exc: BaseException) -> str:
    where = _database_location(url)
    setting = _database_setting(settings)
    for cause in _causes(exc):
        state = getattr(cause, "sqlstate", None)
        if state in _PG_AUTHENTICATION:
            return (
                f"DATABASE_URL: the server at {where} refused the user name or password: "
                "check them, and that the user exists on that server."
            )
        if state == _PG_NO_DATABASE:
            return (
                f"DATABASE_URL: the server at {where} has no database {url.database!r}: create "
                f"it (createdb {url.database}) or fix the name in DATABASE_URL."
            )
        if isinstance(cause, socket.gaierror):
            return f"DATABASE_URL: the host {url.host!r} is not known: check the host name."
        if isinstance(cause, ConnectionRefusedError):
            return (
                f"DATABASE_URL: {where} refused the connection: check the host and port, and "
                "that the database server is running."
            )
        if isinstance(cause, sqlite3.DatabaseError) and "not a database" in str(cause):
            return (
                f"{setting}: {where} is not an SQLite database: move that file away, or point "
                "DATABASE_URL at another file."
            )
        if isinstance(cause, sqlite3.OperationalError | OSError) and sqlite_file(url):
            return (
                f"{setting}: cannot open or create the SQLite database {where}: check that its "
                "folder exists and this user can write it."
            )
        if isinstance(cause, OSError) and not sqlite_file(url):
            reason = (cause.strerror or type(cause).__name__).lower()
            return f"DATABASE_URL: cannot connect to {where} ({reason}): check the host and port."
    return (
        f"{setting}: cannot use the database {where} ({type(exc).__name__}): check DATABASE_URL "
        "(run with LOG_LEVEL=DEBUG for details)."
    )


def sqlite_file(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")


def default_database(settings: Settings) -> bool:
    """Whether the database is the SQLite file in DATA_DIR (DATABASE_URL left empty)."""
    return (
        settings.database_url == f"sqlite+aiosqlite:///{(settings.data_dir / 'bot.db').resolve()}"
    )


def _database_setting(settings: Settings) -> str:
    """DATA_DIR when the database is the default file in it, else DATABASE_URL."""
    return "DATA_DIR" if default_database(settings) else "DATABASE_URL"


def _database_location(url: URL) -> str:
    """Where the database is, without the user name and password."""
    if url.get_backend_name() == "sqlite":
        return str(url.database or ":memory:")
    port = f":{url.port}" if url.port else ""
    return f"{url.host or 'localhost'}{port}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped (`orig`) and what it was raised from."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


# TELEGRAM_API_BASE_URL, TELEGRAM_BOT_TOKEN --------------------------------------------------
_GATEWAY_ERRORS = {502, 503, 504}


async def check_telegram(settings: Settings, wait_s: float = CHECK_TIMEOUT_S) -> str | None:
    """getMe: the Bot API answers and takes the token. Returns a warning when Telegram is busy
    or failing (5xx, 429): that passes, so the bot starts anyway."""
    base = settings.telegram_api_base_url
    shown = safe_url(base)
    token = settings.telegram_bot_token.get_secret_value().strip()
    try:
        async with httpx.AsyncClient(timeout=wait_s, follow_redirects=False) as client:
            response = await client.get(f"{base}{token}/getMe")
    except httpx.TimeoutException:
        raise PreflightError(
            f"TELEGRAM_API_BASE_URL={shown}: no answer within {wait_s:.0f} s: check the URL "
            "(leave it empty for Telegram's own) and that this machine reaches it."
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        log.debug("getMe failed: %s", type(exc).__name__)
        raise PreflightError(
            f"TELEGRAM_API_BASE_URL={shown} does not answer ({_connect_failure(exc)}): check "
            "the URL (leave it empty for Telegram's own) and that this machine reaches it."
        ) from None
    status = response.status_code
    answer = _bot_api_answer(response)
    # Telegram's own errors are Bot API answers; a proxy in front of it answers 502-504 itself.
    busy = status == 429 or status >= 500
    if busy and (answer is not None or status in _GATEWAY_ERRORS):
        return (
            f"Telegram answered getMe with {status} {response.reason_phrase} (busy or failing): "
            "starting anyway; the bot retries."
        )
    if answer is None:
        raise PreflightError(
            f"TELEGRAM_API_BASE_URL={shown} answers, but not as the Bot API (HTTP {status} to "
            "getMe): check the URL (Telegram's own is https://api.telegram.org/bot)."
        )
    if status in (401, 404) or not answer.get("ok"):
        hint = (
            ""
            if base.rstrip("/").endswith("/bot")
            else " (and that TELEGRAM_API_BASE_URL ends in /bot)"
        )
        raise PreflightError(
            f"TELEGRAM_BOT_TOKEN: Telegram refused the token ({status} {response.reason_phrase}):"
            f" copy it again from @BotFather{hint}."
        )
    return None


def _bot_api_answer(response: httpx.Response) -> dict[str, object] | None:
    """The JSON body when it is shaped like a Bot API answer ({"ok": ...}), else None."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("ok"), bool):
        return body
    return None


def _connect_failure(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, socket.gaierror):
            return "host name not known"
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
    return type(exc).__name__


def safe_url(url: str) -> str:
    """A URL without its user:password part (and without query and fragment)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# WHISPER_MODEL -----------------------------------------------------------------------------
def check_whisper_model(settings: Settings, timeout: float = CHECK_TIMEOUT_S) -> None:
    """WHISPER_MODEL is a folder with model.bin, or a model faster-whisper can fetch: in the
    download cache (DATA_DIR/models) already, or on the Hugging Face hub."""
    from faster_whisper import available_models

    value = settings.whisper_model.strip()
    shown = f"WHISPER_MODEL={value}"
    path = Path(value)
    if path.is_dir():  # what faster-whisper loads as a local model
        if not (path / "model.bin").is_file():
            raise PreflightError(
                f"{shown}: that folder has no model.bin, so it is not a CTranslate2 whisper "
                f"model: {FIX_FOLDER}, or {FIX_NAME}."
            )
        return
    if path.exists():
        raise PreflightError(f"{shown} is a file: {FIX_FOLDER}, or {FIX_NAME}.")
    names = available_models()
    if "/" not in value:
        if value not in names:
            close = difflib.get_close_matches(value, names, n=1)
            guess = f" (did you mean {close[0]}?)" if close else ""
            raise PreflightError(
                f"{shown} is not a whisper model name{guess}: use one of {', '.join(names)}; "
                f"or {FIX_FOLDER}."
            )
    elif not _valid_repo_id(value):  # faster-whisper would take it for a hub repository id
        raise PreflightError(f"{shown}: no such folder: {FIX_FOLDER}, or {FIX_NAME}.")
    _check_downloadable(settings, value, shown, timeout)


FIX_FOLDER = "point it at a folder that holds a CTranslate2 whisper model (model.bin)"
FIX_NAME = "use a model name such as small"


def _valid_repo_id(value: str) -> bool:
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils._validators import validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def _check_downloadable(settings: Settings, value: str, shown: str, timeout: float) -> None:
    """The model is in faster-whisper's download cache, or the hub has it."""
    from faster_whisper.utils import _MODELS, download_model
    from huggingface_hub import constants, model_info
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    try:
        # The lookup WhisperModel does first; found: nothing to download.
        download_model(value, local_files_only=True, cache_dir=str(settings.data_dir / "models"))
        return
    except Exception as exc:  # LocalEntryNotFoundError: not downloaded yet
        log.debug("%s is not in the download cache: %s", value, type(exc).__name__)
    repo_id = str(_MODELS.get(value, value))
    # "models/whisper" may be a folder that is not there, or a repository on the hub.
    folder = "no such folder; " if "/" in value and repo_id not in _MODELS.values() else ""
    if constants.is_offline_mode():
        raise PreflightError(
            f"{shown}: {folder}{repo_id} is not downloaded yet and HF_HUB_OFFLINE is set: "
            f"unset it for the first start, or {FIX_FOLDER}."
        )
    hub = safe_url(constants.ENDPOINT)
    try:
        model_info(repo_id, timeout=timeout)
    except RepositoryNotFoundError:
        raise PreflightError(
            f"{shown}: {folder}the Hugging Face hub has no model {repo_id} (a private one "
            f"needs HF_TOKEN): {FIX_FOLDER}, or {FIX_NAME}."
        ) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        raise PreflightError(
            f"{shown}: {folder}{repo_id} is not downloaded yet and the Hugging Face hub "
            f"({hub}) answered {status}: try again later, or {FIX_FOLDER}."
        ) from None
    except Exception as exc:  # no network: the name does not resolve, refused, timed out
        log.debug("The hub check failed: %s", type(exc).__name__)
        raise PreflightError(
            f"{shown}: {folder}{repo_id} is not downloaded yet and the Hugging Face hub "
            f"({hub}) cannot be reached: start once with internet access (it is saved in "
            f"DATA_DIR/models), or {FIX_FOLDER}."
        ) from None


def model_load_failed(settings: Settings, exc: BaseException) -> PreflightError:
    """The model was found but faster-whisper could not load it (a broken or foreign
    model.bin, a compute type the machine lacks, a download cut off)."""
    log.debug("Loading the whisper model failed", exc_info=exc)
    return PreflightError(
        f"WHISPER_MODEL={settings.whisper_model}: the model could not be loaded "
        f"({type(exc).__name__}, with WHISPER_DEVICE={settings.whisper_device} and "
        f"WHISPER_COMPUTE_TYPE={settings.whisper_compute_type}): {FIX_FOLDER}, or "
        f"{FIX_NAME}; LOG_LEVEL=DEBUG shows why."
    )

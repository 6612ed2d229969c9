"""A new user's first start: each misconfiguration ends the real `python -m bot` process with
one line naming the setting and the fix, exit status 2, no traceback and no secret.

The servers are real: the fake Bot API, a closed port (nothing listens), a silent port (it
accepts connections and never answers), the machine's PostgreSQL, and a small fake Hugging
Face hub behind HF_ENDPOINT.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ADMIN_URL
from tests.fakes.telegram_server import FakeTelegram
from tests.processes import BotLauncher, BotProcess

EXIT_S = 60  # a failed check ends the process well within this (each waits at most ~5 s)
PASSWORD = "pw-Secret-7734"  # in database URLs: must never be printed
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ ")
AUDIO = Path(__file__).parent / "fixtures" / "audio" / "book_club.ogg"


# -- helpers ---------------------------------------------------------------------------------
def fails(bots: BotLauncher, *args: str, env: dict[str, str] | None = None) -> str:
    """Run `python -m bot ARGS`; it must exit 2 with exactly one line and nothing secret.
    Returns that line."""
    bot = bots.start(*args, env=env)
    output = finished(bot, 2)
    lines = output.strip().splitlines()
    assert len(lines) == 1, f"expected one line:\n{output}"
    return lines[0]


def finished(bot: BotProcess, status: int) -> str:
    code = bot.wait_exit(EXIT_S)
    output = bot.log()
    assert code == status, f"exit status {code}, not {status}:\n{output}"
    assert "Traceback" not in output
    for secret in ("TEST-TOKEN", PASSWORD, "WRONG-TOKEN"):
        assert secret not in output, f"{secret!r} printed:\n{output}"
    return output


def closed_port() -> int:
    """A port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


class FakeHub:
    """The Hugging Face hub's model API: every model is missing, or the hub is failing."""

    def __init__(self, status: int = 404) -> None:
        self.status = status
        self.paths: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hub.paths.append(self.path)
                body = json.dumps({"error": "Repository not found"}).encode()
                self.send_response(hub.status)
                if hub.status == 404:
                    self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class NotTheBotApi(BaseHTTPRequestHandler):
    """Some other web server: a page for every path."""

    def do_GET(self) -> None:
        body = b"<html><body>It works!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def postgres_url(**parts: str) -> str:
    """The test PostgreSQL server's URL with the asyncpg driver and `parts` changed."""
    url = make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+asyncpg", **parts)  # type: ignore[arg-type]
    return url.render_as_string(hide_password=False)


@pytest.fixture
def postgres_server() -> None:
    admin = make_url(POSTGRES_ADMIN_URL)
    try:
        socket.create_connection((admin.host or "127.0.0.1", admin.port or 5432), 3).close()
    except OSError as exc:
        reason = f"no PostgreSQL server at {admin.host}:{admin.port} ({exc})"
        if os.environ.get("TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"TEST_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)


# -- DATA_DIR --------------------------------------------------------------------------------
def test_data_dir_that_is_a_file(bots: BotLauncher, tmp_path: Path) -> None:
    data = tmp_path / "data.txt"
    data.write_text("not a folder")
    line = fails(bots, env={"DATA_DIR": str(data)})
    assert line == (
        f"DATA_DIR={data} is a file, not a folder: set DATA_DIR to a folder (it is created "
        "when missing), or move the file away."
    )


def test_data_dir_that_cannot_be_created(bots: BotLauncher, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = fails(bots, env={"DATA_DIR": str(blocker / "data")})
    assert line.startswith(f"DATA_DIR={blocker / 'data'} cannot be created: {blocker} is a file:")
    assert "set DATA_DIR to a folder this user (uid " in line


@pytest.mark.parametrize("data_dir", ["/sys", "/sys/voice-draft-data"])
def test_data_dir_that_is_not_writable(bots: BotLauncher, data_dir: str) -> None:
    # sysfs refuses new files to every user, root included: the check writes a file, so it
    # cannot be fooled by permission bits that root ignores (no skip when tests run as root).
    line = fails(bots, env={"DATA_DIR": data_dir})
    assert line.startswith(f"DATA_DIR={data_dir} is not writable (")
    assert line.endswith(
        f"): set DATA_DIR to a folder this user (uid {os.getuid()}) can write, or give it "
        "that folder (e.g. chown)."
    )


# -- DATABASE_URL ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        (
            "postgres",
            "DATABASE_URL starts with postgres://, which SQLAlchemy does not know: write "
            "postgresql+asyncpg:// instead (the rest stays as it is).",
        ),
        (
            "postgresql",
            "DATABASE_URL starts with postgresql://, a driver the bot cannot use (it needs an "
            "async one): write postgresql+asyncpg:// instead (the rest stays as it is).",
        ),
        (
            "postgresql+psycopg_async",
            "DATABASE_URL starts with postgresql+psycopg_async://, but that driver is not "
            "installed: write postgresql+asyncpg:// instead (the rest stays as it is).",
        ),
        (
            "sqlite",
            "DATABASE_URL starts with sqlite://, a driver the bot cannot use (it needs an "
            "async one): write sqlite+aiosqlite:// instead (the rest stays as it is).",
        ),
        (
            "mysql",
            "DATABASE_URL: mysql databases are not supported (the bot runs on PostgreSQL and "
            "SQLite): use postgresql+asyncpg://user:password@host:5432/database, or leave "
            "DATABASE_URL empty for SQLite in DATA_DIR.",
        ),
    ],
)
def test_database_url_with_the_wrong_driver(bots: BotLauncher, scheme: str, expected: str) -> None:
    url = f"{scheme}://writer:{PASSWORD}@db.example.com:5432/bot"
    if scheme == "sqlite":
        url = f"sqlite:///{PASSWORD}.db"
    assert fails(bots, env={"DATABASE_URL": url}) == expected


def test_database_that_refuses_connections(bots: BotLauncher) -> None:
    port = closed_port()
    url = f"postgresql+asyncpg://writer:{PASSWORD}@127.0.0.1:{port}/bot"
    assert fails(bots, env={"DATABASE_URL": url}) == (
        f"DATABASE_URL: 127.0.0.1:{port} refused the connection: check the host and port, and "
        "that the database server is running."
    )


def test_database_that_never_answers(bots: BotLauncher, silent_port: int) -> None:
    url = f"postgresql+asyncpg://writer:{PASSWORD}@127.0.0.1:{silent_port}/bot"
    assert fails(bots, env={"DATABASE_URL": url}) == (
        f"DATABASE_URL: no answer from 127.0.0.1:{silent_port} within 5 s: check the host and "
        "port, and that the database server is running and reachable from here."
    )


@pytest.mark.usefixtures("postgres_server")
def test_postgresql_refuses_the_user(bots: BotLauncher) -> None:
    url = postgres_url(username="no_such_writer", password=PASSWORD)
    admin = make_url(POSTGRES_ADMIN_URL)
    line = fails(bots, env={"DATABASE_URL": url})
    assert line == (
        f"DATABASE_URL: the server at {admin.host}:{admin.port} refused the user name or "
        "password: check them, and that the user exists on that server."
    )
    assert "no_such_writer" not in line


@pytest.mark.usefixtures("postgres_server")
def test_postgresql_database_missing(bots: BotLauncher) -> None:
    admin = make_url(POSTGRES_ADMIN_URL)
    url = postgres_url(database="no_such_bot_db")
    assert fails(bots, env={"DATABASE_URL": url}) == (
        f"DATABASE_URL: the server at {admin.host}:{admin.port} has no database "
        "'no_such_bot_db': create it (createdb no_such_bot_db) or fix the name in DATABASE_URL."
    )


def test_sqlite_file_that_is_not_a_database(bots: BotLauncher) -> None:
    bots.data_dir.mkdir()
    bots.db_path.write_bytes(b"these are my notes, not a database\n" * 100)
    assert fails(bots) == (
        f"DATA_DIR: {bots.db_path} is not an SQLite database: move that file away, or point "
        "DATABASE_URL at another file."
    )
    other = bots.data_dir / "notes.txt"
    other.write_bytes(b"plain text " * 500)
    assert fails(bots, env={"DATABASE_URL": f"sqlite+aiosqlite:///{other}"}) == (
        f"DATABASE_URL: {other} is not an SQLite database: move that file away, or point "
        "DATABASE_URL at another file."
    )
    inside_a_file = other / "bot.db"
    assert fails(bots, env={"DATABASE_URL": f"sqlite+aiosqlite:///{inside_a_file}"}) == (
        f"DATABASE_URL: cannot open or create the SQLite database {inside_a_file}: check that "
        "its folder exists and this user can write it."
    )


@pytest.mark.parametrize("command", ["worker", "migrate", "export"])
def test_offline_commands_and_the_worker_check_the_database(
    bots: BotLauncher, command: str
) -> None:
    port = closed_port()
    url = f"postgresql+asyncpg://writer:{PASSWORD}@127.0.0.1:{port}/bot"
    args = [command, "1"] if command == "export" else [command]
    line = fails(bots, *args, env={"DATABASE_URL": url, "SEPARATE_WORKERS": "true"})
    assert line.startswith(f"DATABASE_URL: 127.0.0.1:{port} refused the connection")


# -- TELEGRAM_API_BASE_URL, TELEGRAM_BOT_TOKEN -----------------------------------------------
def test_bot_api_url_that_refuses_connections(bots: BotLauncher) -> None:
    base = f"http://127.0.0.1:{closed_port()}/bot"
    assert fails(bots, env={"TELEGRAM_API_BASE_URL": base}) == (
        f"TELEGRAM_API_BASE_URL={base} does not answer (connection refused): check the URL "
        "(leave it empty for Telegram's own) and that this machine reaches it."
    )


def test_bot_api_url_that_never_answers(bots: BotLauncher, silent_port: int) -> None:
    base = f"http://127.0.0.1:{silent_port}/bot"
    assert fails(bots, env={"TELEGRAM_API_BASE_URL": base}) == (
        f"TELEGRAM_API_BASE_URL={base}: no answer within 5 s: check the URL (leave it empty "
        "for Telegram's own) and that this machine reaches it."
    )


def test_bot_api_url_that_is_another_server(bots: BotLauncher) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotTheBotApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        # user:password in the URL (a proxy's) is never printed
        base = f"http://proxyuser:{PASSWORD}@127.0.0.1:{port}/bot"
        line = fails(bots, env={"TELEGRAM_API_BASE_URL": base})
    finally:
        server.shutdown()
        server.server_close()
    assert line == (
        f"TELEGRAM_API_BASE_URL=http://127.0.0.1:{port}/bot answers, but not as the Bot API "
        "(HTTP 200 to getMe): check the URL (Telegram's own is https://api.telegram.org/bot)."
    )


def test_token_that_telegram_refuses(bots: BotLauncher) -> None:
    line = fails(bots, env={"TELEGRAM_BOT_TOKEN": "123456:WRONG-TOKEN-abcdefghijklmnopqrstuv"})
    assert line == (
        "TELEGRAM_BOT_TOKEN: Telegram refused the token (401 Unauthorized): copy it again "
        "from @BotFather."
    )


@pytest.mark.parametrize(
    ("code", "description", "retry_after"),
    [(500, "Internal Server Error", None), (429, "Too Many Requests: retry after 1", 1)],
)
def test_telegram_busy_at_start_only_warns(
    bots: BotLauncher,
    telegram: FakeTelegram,
    code: int,
    description: str,
    retry_after: int | None,
) -> None:
    # Three in a row: the check meets the first, the bot's own getMe waits out the others.
    telegram.fail_next(
        "getMe", error_code=code, description=description, retry_after=retry_after, times=3
    )
    bot = bots.start()
    bots.wait_for(bot, lambda: telegram.calls("getUpdates"), "the bot polling", timeout=90)
    assert bot.stop() == 0
    output = bot.log()
    warnings = [line for line in output.splitlines() if " WARNING bot.preflight: " in line]
    assert len(warnings) == 1, output
    assert output.count("Telegram did not answer getMe; trying again in") == 2, output
    assert len(telegram.calls("getMe")) >= 4
    assert warnings[0].endswith(
        f"Telegram answered getMe with {code} {description.split(':')[0]} (busy or failing): "
        "starting anyway; the bot retries."
    )
    assert "Traceback" not in output and "TEST-TOKEN" not in output


# -- WHISPER_MODEL ---------------------------------------------------------------------------
def test_model_name_with_a_typo(bots: BotLauncher) -> None:
    line = fails(bots, env={"WHISPER_MODEL": "smal"})
    assert line.startswith(
        "WHISPER_MODEL=smal is not a whisper model name (did you mean small?): use one of "
        "tiny.en, tiny, base.en, base, small.en, small, "
    )
    assert line.endswith(
        "; or point it at a folder that holds a CTranslate2 whisper model (model.bin)."
    )


def test_model_name_without_network(bots: BotLauncher) -> None:
    hub = f"http://127.0.0.1:{closed_port()}"
    line = fails(bots, env={"WHISPER_MODEL": "tiny", "HF_ENDPOINT": hub})
    assert line == (
        f"WHISPER_MODEL=tiny: Systran/faster-whisper-tiny is not downloaded yet and the "
        f"Hugging Face hub ({hub}) cannot be reached: start once with internet access (it is "
        "saved in DATA_DIR/models), or point it at a folder that holds a CTranslate2 whisper "
        "model (model.bin)."
    )


def test_model_name_offline_mode(bots: BotLauncher) -> None:
    line = fails(bots, env={"WHISPER_MODEL": "base", "HF_HUB_OFFLINE": "1"})
    assert line.startswith(
        "WHISPER_MODEL=base: Systran/faster-whisper-base is not downloaded yet and "
        "HF_HUB_OFFLINE is set: unset it for the first start"
    )


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "tiny",
            "WHISPER_MODEL=tiny: the Hugging Face hub has no model Systran/faster-whisper-tiny",
        ),
        (
            "someone/no-such-whisper",
            "WHISPER_MODEL=someone/no-such-whisper: no such folder; the Hugging Face hub has "
            "no model someone/no-such-whisper",
        ),
    ],
)
def test_model_the_hub_does_not_have(bots: BotLauncher, model: str, expected: str) -> None:
    with FakeHub(status=404) as hub:
        line = fails(bots, env={"WHISPER_MODEL": model, "HF_ENDPOINT": hub.url})
    assert line == (
        f"{expected} (a private one needs HF_TOKEN): point it at a folder that holds a "
        "CTranslate2 whisper model (model.bin), or use a model name such as small."
    )
    repo = model if "/" in model else "Systran/faster-whisper-tiny"
    assert any(path.startswith(f"/api/models/{repo}") for path in hub.paths), hub.paths


def test_model_while_the_hub_fails(bots: BotLauncher) -> None:
    with FakeHub(status=503) as hub:
        line = fails(bots, env={"WHISPER_MODEL": "small", "HF_ENDPOINT": hub.url})
    assert line.startswith(
        f"WHISPER_MODEL=small: Systran/faster-whisper-small is not downloaded yet and the "
        f"Hugging Face hub ({hub.url}) answered 503: try again later"
    )


def test_model_path_that_does_not_exist(bots: BotLauncher, tmp_path: Path) -> None:
    missing = tmp_path / "models" / "whisper-small"
    assert fails(bots, env={"WHISPER_MODEL": str(missing)}) == (
        f"WHISPER_MODEL={missing}: no such folder: point it at a folder that holds a "
        "CTranslate2 whisper model (model.bin), or use a model name such as small."
    )


def test_model_folder_without_model_bin(bots: BotLauncher, tmp_path: Path) -> None:
    folder = tmp_path / "whisper"
    folder.mkdir()
    (folder / "README.md").write_text("the model goes here")
    assert fails(bots, env={"WHISPER_MODEL": str(folder)}) == (
        f"WHISPER_MODEL={folder}: that folder has no model.bin, so it is not a CTranslate2 "
        "whisper model: point it at a folder that holds a CTranslate2 whisper model "
        "(model.bin), or use a model name such as small."
    )


def test_model_file_that_fails_to_load(
    bots: BotLauncher, tmp_path: Path, tiny_model_path: str
) -> None:
    folder = tmp_path / "broken-model"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(Path(tiny_model_path) / name, folder / name)
    (folder / "model.bin").write_bytes(b"\x00not a ctranslate2 model" * 1000)
    for args in ([], ["transcribe", str(AUDIO)]):
        bot = bots.start(*args, env={"WHISPER_MODEL": str(folder)})
        output = finished(bot, 2)
        # Loading is logged (INFO) before it fails; the failure is the one other line.
        messages = [line for line in output.strip().splitlines() if not LOG_LINE.match(line)]
        assert messages == [
            f"WHISPER_MODEL={folder}: the model could not be loaded (RuntimeError, with "
            "WHISPER_DEVICE=cpu and WHISPER_COMPUTE_TYPE=int8): point it at a folder that "
            "holds a CTranslate2 whisper model (model.bin), or use a model name such as "
            "small; LOG_LEVEL=DEBUG shows why."
        ], output
        assert " ERROR " not in output


def test_downloaded_model_name_starts_without_network(
    bots: BotLauncher, telegram: FakeTelegram, tiny_model_path: str
) -> None:
    """A model name already in DATA_DIR/models (as faster-whisper caches it) needs no hub:
    the check accepts what faster-whisper will load, and the bot starts."""
    snapshot = (
        bots.data_dir / "models" / "models--Systran--faster-whisper-tiny.en" / "snapshots" / "0a1b"
    )
    snapshot.mkdir(parents=True)
    for item in Path(tiny_model_path).iterdir():
        (snapshot / item.name).symlink_to(item)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0a1b")
    env = {"WHISPER_MODEL": "tiny.en", "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    bot = bots.start(env=env)
    bots.wait_for(bot, lambda: telegram.calls("getUpdates"), "the bot polling", timeout=90)
    assert bot.stop() == 0
    assert "Traceback" not in bot.log()


# -- what runs no checks, and the worker's own setting ---------------------------------------
def test_worker_needs_separate_workers(bots: BotLauncher) -> None:
    assert fails(bots, "worker", env={"SEPARATE_WORKERS": "false"}) == (
        "SEPARATE_WORKERS=true is needed for workers: set it in the .env shared by the bot and "
        "its workers, and restart the bot."
    )


def test_check_config_is_a_smoke_test_that_needs_no_server(bots: BotLauncher) -> None:
    """`docker run --rm IMAGE python -m bot check-config`: no token, no database server, no
    Telegram, no model: it prints the settings and exits 0."""
    port = closed_port()
    env = {
        "TELEGRAM_BOT_TOKEN": "",
        "TELEGRAM_API_BASE_URL": f"http://127.0.0.1:{port}/bot",
        "DATABASE_URL": f"postgresql+asyncpg://writer:{PASSWORD}@127.0.0.1:{port}/bot",
        "WHISPER_MODEL": "smal",
    }
    output = finished(bots.start("check-config", env=env), 0)
    assert "TELEGRAM_BOT_TOKEN=\n" in output
    assert f"DATABASE_URL=postgresql+asyncpg://writer:***@127.0.0.1:{port}/bot\n" in output

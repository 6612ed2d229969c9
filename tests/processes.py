"""Run the real bot (`python -m bot`) as a child process against a FakeTelegram server.

Used by the process-level resilience tests: the bot is killed, terminated and restarted the
way a supervisor (systemd, Docker) would do it, while the fake Bot API server and the SQLite
file in DATA_DIR outlive every bot process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.config import Settings
from tests.fakes.telegram_server import Call, FakeTelegram

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.05


def bot_env(server: FakeTelegram, data_dir: Path, model_path: str) -> dict[str, str]:
    """The child's environment: ours minus every bot setting, plus explicit test settings.

    Every setting that could change behaviour is set explicitly, so neither the developer's
    shell nor a `.env` file in the working directory (environment variables win over it)
    can point the child at a real bot, a real LLM or another database.
    """
    setting_names = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in setting_names}
    env.update(
        {
            "TELEGRAM_BOT_TOKEN": server.token,
            "TELEGRAM_API_BASE_URL": server.base_url,
            "TELEGRAM_FILE_BASE_URL": server.file_base_url,
            "ALLOWED_USER_IDS": "1001",
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": "",  # empty: derived from DATA_DIR (DATA_DIR/bot.db)
            "WHISPER_MODEL": model_path,
            "WHISPER_BEAM_SIZE": "5",
            "WHISPER_DEVICE": "cpu",
            "WHISPER_COMPUTE_TYPE": "int8",
            "WHISPER_LANGUAGE": "",
            "WHISPER_CPU_THREADS": "0",
            "OPENAI_API_KEY": "",
            "OPENAI_BASE_URL": "",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    return env


class BotProcess:
    """One `python -m bot` child; stdout and stderr are appended to a shared log file."""

    def __init__(
        self, proc: subprocess.Popen[bytes], log_path: Path, log_offset: int, number: int
    ) -> None:
        self.proc = proc
        self.log_path = log_path
        self.log_offset = log_offset
        self.number = number
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def log(self) -> str:
        """What this process has written so far (its part of the shared log)."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to exit and return its exit code (negative: killed by signal)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"bot #{self.number} (pid {self.pid}) still running after {timeout:.1f}s\n"
                + log_tail(self.log_path)
            ) from None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as a supervisor stops it; returns the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        """SIGKILL this process (only this pid) if it still runs, and reap it."""
        if self.alive():
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)


class BotLauncher:
    """Starts bot processes sharing one DATA_DIR and one fake server; kills leftovers."""

    def __init__(self, server: FakeTelegram, tmp_path: Path, model_path: str) -> None:
        self.server = server
        self.data_dir = tmp_path / "data"
        self.db_path = self.data_dir / "bot.db"
        self.log_path = tmp_path / "bot-process.log"
        self.env = bot_env(server, self.data_dir, model_path)
        self.processes: list[BotProcess] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> BotProcess:
        """`python -m bot [args]`; `env` overrides some of the shared settings."""
        number = len(self.processes) + 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== bot process #{number} {' '.join(args)} =====\n".encode())
            log.flush()
            offset = log.tell()
            proc = subprocess.Popen(
                [sys.executable, "-m", "bot", *args],
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        bot = BotProcess(proc, self.log_path, offset, number)
        self.processes.append(bot)
        return bot

    def wait_for(
        self,
        bot: BotProcess,
        predicate: Callable[[], T | None],
        what: str,
        timeout: float,
    ) -> T:
        """Poll predicate until truthy; fail at once (with the log) if the bot process died."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if not bot.alive():
                raise AssertionError(
                    f"bot #{bot.number} exited with code {bot.proc.returncode} while waiting "
                    f"for {what}\n{self.report()}"
                )
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}\n{self.report()}"
                )
            time.sleep(POLL_S)

    def report(self) -> str:
        texts = [f"  [{m.message_id}] {m.text[:160]!r}" for m in self.server.sent_messages()]
        return "bot messages:\n" + "\n".join(texts) + "\n" + log_tail(self.log_path)

    def cleanup(self) -> None:
        """Kill every process this launcher started that is still running."""
        for bot in self.processes:
            bot.kill()

    # -- the database, read the way an operator would (sqlite3, read-only) -------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows from the bot's SQLite file, opened read-only (no checkpoint, no recovery)."""
        if not self.db_path.exists():
            return []
        try:
            con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:
            return []
        try:
            return con.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # migrations have not run yet
                return []
            raise
        finally:
            con.close()

    def notes_for_message(self, chat_id: int, message_id: int) -> list[tuple[int, str, int | None]]:
        """(id, state, the id of the message that shows it) of every note stored for one
        Telegram message."""
        return [
            (row[0], row[1], row[2])
            for row in self.query(
                "SELECT n.id, n.state, v.message_id FROM notes n LEFT JOIN message_views v "
                "ON v.chat_id = n.chat_id AND v.position = 0 AND v.subject = 'note:' || n.id "
                "WHERE n.chat_id = ? AND n.message_id = ? ORDER BY n.id",
                (chat_id, message_id),
            )
        ]

    def state_of(self, chat_id: int, message_id: int) -> str | None:
        rows = self.notes_for_message(chat_id, message_id)
        return rows[0][1] if len(rows) == 1 else None

    def part_count(self, note_id: int) -> int:
        return int(
            self.query("SELECT count(*) FROM note_parts WHERE note_id = ?", (note_id,))[0][0]
        )


def log_tail(path: Path, chars: int = 6000) -> str:
    if not path.exists():
        return "(no bot log)"
    text = path.read_text(errors="replace")
    return "bot log (tail):\n" + text[-chars:]


def message_calls(server: FakeTelegram, chat_id: int, contains: str) -> list[Call]:
    """sendMessage / editMessageText calls to chat_id whose text contains `contains`.

    Failed calls count too: a second, identical "Filed under" edit is rejected by Telegram as
    "message is not modified", yet it still means the transcript was delivered twice.
    """
    return [
        c
        for c in server.requests
        if c.method.lower() in ("sendmessage", "editmessagetext")
        and c.params.get("chat_id") == chat_id
        and contains in str(c.params.get("text", ""))
    ]

"""Command line: `python -m bot` migrates the database and runs the bot; offline commands
(transcribe, import, draft, export) live in bot/cli.py."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bot import cli
from bot.config import ConfigError, Settings, load_settings
from bot.logging_setup import configure_logging

log = logging.getLogger("bot")

# At exit, how long a cancelled transcription gets to reach the end of its segment: exiting
# while whisper's native code runs aborts the process instead of exiting cleanly.
SHUTDOWN_GRACE_S = 5.0


def cmd_run(settings: Settings) -> int:
    """Apply migrations, load the transcriber, then take updates from Telegram until stopped:
    long polling, or a webhook when WEBHOOK_URL is set."""
    from bot.app import ALLOWED_UPDATES, build_application, load_transcriber, webhook_options
    from bot.db.migrate import upgrade_to_head
    from bot.services.threads import join_daemon_threads

    upgrade_to_head(settings.database_url)
    # With separate workers the bot transcribes nothing, so it loads no model.
    transcriber = None if settings.separate_workers else load_transcriber(settings)
    app = build_application(settings, transcriber)
    if settings.webhook_url:
        log.info(
            "Listening for webhook updates on %s:%d (Ctrl+C to stop)",
            settings.webhook_listen,
            settings.webhook_port,
        )
        app.run_webhook(**webhook_options(settings))
    else:
        log.info("Polling Telegram for updates (Ctrl+C to stop)")
        app.run_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False)
    join_daemon_threads(SHUTDOWN_GRACE_S)
    return 0


def cmd_worker(settings: Settings) -> int:
    """Transcribe notes for the bot from the shared database until stopped (SIGTERM, Ctrl+C)."""
    import asyncio
    import os
    import signal
    import socket

    from bot.app import build_worker, load_transcriber
    from bot.db.migrate import upgrade_to_head
    from bot.services.threads import join_daemon_threads

    if not settings.separate_workers:
        # Without it the bot transcribes every note itself: a worker would only duplicate work.
        print(
            "SEPARATE_WORKERS=true is needed for workers: set it in the .env shared by the bot "
            "and its workers, and restart the bot.",
            file=sys.stderr,
        )
        return 2
    upgrade_to_head(settings.database_url)
    transcriber = load_transcriber(settings)
    name = f"{socket.gethostname()}:{os.getpid()}"

    async def work() -> None:
        runtime = build_worker(settings, transcriber, name)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await runtime.bot.initialize()
            runtime.worker.start()
            log.info("Worker %s waiting for notes (Ctrl+C to stop)", name)
            await stop.wait()
            log.info("Worker %s stopping", name)
        finally:
            await runtime.close()

    asyncio.run(work())
    join_daemon_threads(SHUTDOWN_GRACE_S)
    return 0


def cmd_migrate(settings: Settings) -> int:
    """Apply database migrations and exit."""
    from bot.db.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)
    log.info("Database is up to date")
    return 0


def cmd_check_config(settings: Settings) -> int:
    """Validate the settings and print them, secrets masked."""
    for name, value in settings.model_dump().items():
        if name == "database_url":
            value = settings.database_url_safe
        print(f"{name.upper()}={value}")
    return 0


def cmd_eval(settings: Settings, directory: Path, out: Path | None) -> int:
    """Draft a folder of archived transcripts with the configured LLM and print figures."""
    import asyncio

    from bot.domain import UserError
    from bot.evaluate import format_report, read_eval_dir, run_eval

    try:
        data = read_eval_dir(directory)
        result, model = asyncio.run(run_eval(settings, data))
    except UserError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    if out is not None:
        out.write_text(result.markdown, encoding="utf-8")
    print(format_report(result, model, len(data.notes)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Telegram bot that turns voice notes into article drafts.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="migrate the database and run the bot (the default)")
    sub.add_parser(
        "worker",
        help="transcribe notes for the bot (with SEPARATE_WORKERS=true on the bot; several "
        "workers may run, on this machine or others sharing the database)",
    )
    sub.add_parser("migrate", help="apply database migrations and exit")
    sub.add_parser("check-config", help="validate the settings and print them (secrets masked)")
    evaluate = sub.add_parser(
        "eval",
        help="draft a folder of transcripts (archive format + outline.txt) with the configured "
        "LLM and print coverage and citation figures; never touches the bot's database",
    )
    evaluate.add_argument("directory", type=Path, help="folder with outline.txt and transcripts")
    evaluate.add_argument("--out", type=Path, help="also write the draft markdown here")
    cli.add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(require_token=command in ("run", "worker"))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets)
    if command == "eval":
        return cmd_eval(settings, args.directory, args.out)
    if command in cli.COMMANDS:
        return cli.run(command, settings, args)
    handlers = {
        "run": cmd_run,
        "worker": cmd_worker,
        "migrate": cmd_migrate,
        "check-config": cmd_check_config,
    }
    return handlers[command](settings)


if __name__ == "__main__":
    sys.exit(main())

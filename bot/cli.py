"""The command line of `python -m bot`: run the bot or a worker, migrate, check the
settings, and offline commands over the bot's own services (eval, transcribe, import, draft,
export, publish).

The offline commands work on the configured database (migrated first), so an article
imported here shows up in the writer's /sections and /articles, and a draft made here is the
one /export sends.
Results go to stdout, progress bars and messages to stderr; an expected failure is one short
line on stderr and a non-zero exit, never a traceback. Before a command runs, the start-up
checks it needs (bot/preflight.py) look at the folder, the database, Telegram and the whisper
model; a misconfiguration is one line naming the setting and the fix, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tqdm import tqdm

from bot.config import ConfigError, Settings, load_settings
from bot.domain import ArticleInfo, UserError
from bot.logging_setup import configure_logging
from bot.notes.archive import ArchiveImporter, ImportReport, read_archive_folder
from bot.preflight import PreflightError, model_load_failed, run_checks

if TYPE_CHECKING:
    from bot.transcription.base import Transcriber

log = logging.getLogger("bot")

# At exit, how long a cancelled transcription gets to reach the end of its segment: exiting
# while whisper's native code runs aborts the process instead of exiting cleanly.
SHUTDOWN_GRACE_S = 5.0

NO_LLM = "draft needs an LLM: set OPENAI_API_KEY and/or OPENAI_BASE_URL."
# check-config reads the remembered LLM mode; an unreachable database must not hold it up.
CHECK_DATABASE_S = 5.0


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
    transcribe = sub.add_parser(
        "transcribe", help="print the transcript of audio files (the configured whisper model)"
    )
    transcribe.add_argument("files", type=Path, nargs="+", metavar="FILE")

    user_help = "Telegram user id (default: the only id in ALLOWED_USER_IDS)"
    article_help = "the article's title (any case) or its number as /articles shows it"

    importing = sub.add_parser(
        "import",
        help="import a folder of transcripts (archive format) into an article",
        description="Import every transcript (*.txt, *.md with --- front matter) of DIR into "
        "the article TITLE, creating it if needed, split at spoken section titles. "
        "Importing the same files again adds nothing.",
    )
    importing.add_argument("directory", type=Path, metavar="DIR")
    importing.add_argument(
        "--article", metavar="TITLE", help="article title (default: `# Title` in outline.txt)"
    )
    importing.add_argument(
        "--outline",
        type=Path,
        metavar="FILE",
        help="section titles, one a line (default: DIR/outline.txt when present)",
    )
    importing.add_argument("--user", type=int, metavar="ID", help=user_help)

    draft = sub.add_parser(
        "draft", help="draft an article with the configured LLM, like /draft (stored as a version)"
    )
    draft.add_argument("article", metavar="ARTICLE", help=article_help)
    draft.add_argument("--section", type=int, metavar="N", help="draft only section N")
    draft.add_argument("-o", "--out", type=Path, metavar="FILE", help="write the markdown here")
    draft.add_argument("--user", type=int, metavar="ID", help=user_help)

    export = sub.add_parser("export", help="print or write the latest stored draft, like /export")
    export.add_argument("article", metavar="ARTICLE", help=article_help)
    export.add_argument(
        "--notes", action="store_true", help="every transcript by section instead (no LLM)"
    )
    export.add_argument(
        "--format",
        choices=["md", "html", "docx"],
        default="md",
        help="markdown (default), a standalone HTML page, or a Word document (needs -o)",
    )
    export.add_argument("-o", "--out", type=Path, metavar="FILE", help="write the file here")
    export.add_argument("--user", type=int, metavar="ID", help=user_help)

    publish = sub.add_parser(
        "publish",
        help="publish the latest stored draft, like /publish: to git (PUBLISH_GIT_DIR) and/or "
        "Telegraph (TELEGRAPH_ENABLED); every configured target unless one is named",
    )
    publish.add_argument("article", metavar="ARTICLE", help=article_help)
    publish.add_argument("--git", action="store_true", help="only to the git repository")
    publish.add_argument("--telegraph", action="store_true", help="only to Telegraph")
    publish.add_argument("--user", type=int, metavar="ID", help=user_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, load the settings and run one command; its exit status."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(require_token=command in ("run", "worker"))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print("See .env.example for every setting.", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets)
    try:
        run_checks(command, settings)
        return COMMANDS[command](settings, args)
    except PreflightError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    except UserError as exc:
        print(exc.message, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:
        # Details only on request: an exception's text may hold a URL or a path with secrets.
        log.debug("%s failed", command, exc_info=True)
        print(
            f"{command} failed unexpectedly ({type(exc).__name__}). "
            "Run with LOG_LEVEL=DEBUG for details.",
            file=sys.stderr,
        )
        return 1


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """Apply migrations, load the transcriber, then take updates from Telegram until stopped
    (SIGTERM, Ctrl+C): long polling, or a webhook when WEBHOOK_URL is set."""
    from bot.app import build_bot
    from bot.db.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)
    # With separate workers the bot transcribes nothing, so it loads no model.
    transcriber = None if settings.separate_workers else _load_transcriber(settings)
    runtime = build_bot(settings, transcriber)
    if settings.webhook_url:
        log.info(
            "Listening for webhook updates on %s:%d (Ctrl+C to stop)",
            settings.webhook_listen,
            settings.webhook_port,
        )
    else:
        log.info("Polling Telegram for updates (Ctrl+C to stop)")
    return _serve(runtime.start, runtime.stop, "Bot", runtime.poller_task_or_none)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Transcribe notes for the bot from the shared database until stopped (SIGTERM, Ctrl+C)."""
    from bot.app import build_worker, worker_name
    from bot.db.migrate import upgrade_to_head

    # Without SEPARATE_WORKERS the bot transcribes every note itself: the start-up checks
    # stop a worker that would only duplicate its work.
    upgrade_to_head(settings.database_url)
    transcriber = _load_transcriber(settings)
    runtime = build_worker(settings, transcriber, worker_name("worker"))
    log.info("Worker %s waiting for notes (Ctrl+C to stop)", runtime.worker.name)
    return _serve(runtime.start, runtime.close, "Worker", lambda: None)


def _load_transcriber(settings: Settings) -> Transcriber:
    """The configured transcriber; a model the checks found but that fails to load (a broken
    model.bin, a compute type the machine lacks) is a PreflightError too."""
    from bot.app import load_transcriber

    try:
        return load_transcriber(settings)
    except Exception as exc:
        raise model_load_failed(settings, exc) from None


def _serve(
    start: Callable[[], Coroutine[Any, Any, None]],
    stop: Callable[[], Coroutine[Any, Any, None]],
    what: str,
    fatal: Callable[[], asyncio.Task[None] | None],
) -> int:
    """Run until SIGTERM or Ctrl+C (or until `fatal()`'s task ends), then stop gracefully."""
    import signal


    async def serve() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            await start()
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stopping.wait())]
            task = fatal()
            if task is not None:
                waits.append(task)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                if finished is not waits[0]:
                    finished.result()  # the poller ended: raise what ended it
            log.info("%s stopping", what)
        finally:
            await stop()

    asyncio.run(serve())
    return after_stop(SHUTDOWN_GRACE_S)


def after_stop(grace: float) -> int:
    """Exit status 0 once the bot has stopped, waiting up to `grace` seconds for the work
    still running in threads. A window still in whisper's native code after that is left
    behind: everything is stored, its note resumes at the next start from the windows
    already stored, and the interpreter's own exit would abort the process under it
    ("terminate called without an active exception", status -6)."""
    from bot.services.threads import join_daemon_threads

    if join_daemon_threads(grace):
        return 0
    log.info("A transcription is still finishing a window; exiting without it")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply database migrations and exit."""
    from bot.db.migrate import upgrade_to_head

    upgrade_to_head(settings.database_url)
    log.info("Database is up to date")
    return 0


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    """Validate the settings and print them, secrets masked, and what the LLM accepts."""
    for name, value in settings.model_dump().items():
        if name == "database_url":
            value = settings.database_url_safe
        print(f"{name.upper()}={value}")
    if settings.llm_configured:
        print(f"# LLM structured output: {asyncio.run(remembered_llm_mode(settings))}")
    return 0


async def remembered_llm_mode(settings: Settings) -> str:
    """How the configured endpoint and model were last asked for JSON, from the database."""
    from bot.llm.modes import describe, endpoint_key
    from bot.services.llm_endpoints import DatabaseEndpointMemory

    try:
        async with asyncio.timeout(CHECK_DATABASE_S), _database(settings) as sessions:
            negotiated = await DatabaseEndpointMemory(sessions).recall(
                endpoint_key(settings.openai_base_url), settings.openai_model
            )
    except Exception as exc:  # no database yet, not migrated, unreachable, too slow
        log.debug("Could not read the remembered LLM mode: %s", type(exc).__name__)
        return "unknown (the database is not reachable or not migrated yet)"
    if negotiated is None:
        return "not negotiated yet (the first /draft finds it out and remembers it)"
    when = negotiated.negotiated_at
    since = f" since {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""
    return f"{describe(negotiated)}{since}"


def cmd_eval(settings: Settings, args: argparse.Namespace) -> int:
    """Draft a folder of archived transcripts with the configured LLM and print figures."""
    from bot.evaluate import format_report, read_eval_dir, run_eval

    data = read_eval_dir(args.directory)
    result, model = asyncio.run(run_eval(settings, data))
    if args.out is not None:
        _write_or_print(result.markdown, args.out)
    print(format_report(result, model, len(data.notes)))
    for reason in data.skipped:
        print(f"Skipped: {reason}", file=sys.stderr)
    return 0


def cmd_transcribe(settings: Settings, args: argparse.Namespace) -> int:
    """Print the transcript of audio files with the configured whisper model."""
    return transcribe(settings, args.files)


def _database_command(
    run: Callable[[Settings, int, argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[Settings, argparse.Namespace], int]:
    """A command on the writer's data: resolve the writer, migrate, run it in a loop."""

    def command(settings: Settings, args: argparse.Namespace) -> int:
        owner_id = resolve_user(settings, args.user)
        from bot.db.migrate import upgrade_to_head

        upgrade_to_head(settings.database_url)
        return asyncio.run(run(settings, owner_id, args))

    command.__doc__ = run.__doc__
    return command


def resolve_user(settings: Settings, user_id: int | None) -> int:
    """--user, or the single allowed user; several or none is ambiguous."""
    if user_id is not None:
        return user_id
    if len(settings.allowed_user_ids) == 1:
        return next(iter(settings.allowed_user_ids))
    known = ", ".join(str(i) for i in sorted(settings.allowed_user_ids)) or "none"
    raise UserError(f"Which writer? Pass --user ID (ALLOWED_USER_IDS: {known}).")


def _progress(total: int, description: str, unit: str) -> tqdm:
    # disable=None: no bar when stderr is not a terminal (pipes, logs, tests).
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, disable=None)


def _write_or_print(markdown: str, out: Path | None) -> None:
    if out is None:
        sys.stdout.write(markdown)
        return
    try:
        out.write_text(markdown, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write {out}: {exc.strerror or 'error'}.") from None
    print(f"Wrote {out}", file=sys.stderr)


# transcribe -------------------------------------------------------------------------------
def transcribe(settings: Settings, files: Sequence[Path]) -> int:
    """Print each file's transcript, under its name as a heading when there are several."""
    from bot.notes.transcribe import MIN_SPEECH_SECONDS
    from bot.transcription.base import TranscriptionError

    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"No such file: {', '.join(missing)}")
    transcriber = _load_transcriber(settings)
    # Its per-file INFO lines would break up the progress bars; they say nothing new here.
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)
    failed = 0
    for number, path in enumerate(files):
        with _progress(0, path.name, "s") as bar:
            problem = ""
            try:
                transcript = transcriber.transcribe(path, progress=_AudioProgress(bar))
                bar.update(bar.total - bar.n)  # the last segment may end before the file does
            except TranscriptionError as exc:
                # A hosted service says why (down, key refused, too large); else: not audio.
                transcript, problem = None, _transcription_problem(exc)
        if len(files) > 1:
            print(f"{'' if number == 0 else chr(10)}## {path.name}\n", flush=True)
        if transcript is None:
            print(f"{path.name}: {problem}", file=sys.stderr)
            failed += 1
        elif not transcript.text or transcript.speech_duration < MIN_SPEECH_SECONDS:
            print(f"{path.name}: no speech found.", file=sys.stderr)
            failed += 1
        else:
            print(transcript.text, flush=True)
    return 1 if failed else 0


def _transcription_problem(exc: Exception) -> str:
    from bot.transcription.base import TranscriptionUnavailable, UnavailableReason

    if isinstance(exc, TranscriptionUnavailable):
        if exc.why == UnavailableReason.REFUSED:
            return (
                "the transcription service refused the request (check TRANSCRIBE_API_KEY, "
                "TRANSCRIBE_MODEL and the account's quota)."
            )
        return "the transcription service isn't answering right now; try again later."
    if getattr(exc, "too_large", False):
        return "it is over 25 MB, more than the transcription service takes."
    return "could not read it as audio."


class _AudioProgress:
    """Whisper reports seconds decoded out of the file's length."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def __call__(self, done_seconds: float, total_seconds: float) -> None:
        self._bar.total = round(total_seconds)
        self._bar.update(round(done_seconds) - self._bar.n)


# the database commands --------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    from bot.db.session import create_engine, create_session_factory

    engine = create_engine(settings.database_url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


def _article_list(articles: Sequence[ArticleInfo]) -> str:
    return "\n".join(f"  {a.number}. {a.title}" for a in articles)


async def find_article(
    sessions: async_sessionmaker[AsyncSession], owner_id: int, reference: str
) -> ArticleInfo:
    """An article by its number as /articles shows it, or by its title ignoring case."""
    from bot.services.outline import OutlineService, normalise_title

    articles = await OutlineService(sessions).articles(owner_id)
    if not articles:
        raise UserError(f"User {owner_id} has no articles yet.")
    wanted = reference.strip()
    if wanted.lstrip("#").isdigit():
        number = int(wanted.lstrip("#"))
        matches = [a for a in articles if a.number == number]
    else:
        matches = [a for a in articles if normalise_title(a.title) == normalise_title(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        numbers = ", ".join(str(a.number) for a in matches)
        raise UserError(f"Several articles are called “{wanted}”; pass the number ({numbers}).")
    raise UserError(
        f"No article “{wanted}” for user {owner_id}. Their articles:\n{_article_list(articles)}"
    )


def format_import(report: ImportReport) -> str:
    article = report.outline.article
    verb = "Created" if report.created_article else "Updated"
    lines = [
        f"{verb} article {article.number} “{article.title}”: {report.new_notes} new "
        f"note(s) imported, {report.already_there} imported before.",
    ]
    width = max((len(s.title) for s in report.outline.sections), default=0)
    for section in report.outline.sections:
        added = report.new_by_section.get(section.number, 0)
        count = "1 note" if section.note_count == 1 else f"{section.note_count} notes"
        lines.append(
            f"{section.number:>3}. {section.title:<{width}}  {count:>9}"
            + (f" (+{added} new)" if added else "")
        )
    lines.append("It is now the active article in the chat (see /sections).")
    return "\n".join(lines)


async def import_folder(settings: Settings, owner_id: int, args: argparse.Namespace) -> int:
    """Import a folder of archived transcripts into an article (bad files skipped, named)."""
    folder = read_archive_folder(args.directory, args.outline)
    title = args.article or folder.title
    if not title:
        raise UserError("Name the article: --article TITLE (or a first line `# Title` in outline).")
    async with _database(settings) as sessions:
        with _progress(len(folder.notes), "Importing", "note") as bar:
            # The CLI writes as the writer's private chat, whose id is the user id: a file
            # imported here and sent in the chat is the same note.
            report = await ArchiveImporter(sessions).import_notes(
                owner_id, owner_id, title, folder.sections, folder.notes, lambda: bar.update(1)
            )
    print(format_import(report))
    for reason in folder.skipped:
        print(f"Skipped: {reason}", file=sys.stderr)
    return 1 if folder.skipped else 0


async def draft(settings: Settings, owner_id: int, args: argparse.Namespace) -> int:
    """Draft like /draft (incremental, stored as a version, usage recorded for the writer)."""
    from bot.app import build_writer
    from bot.drafting.service import DraftService
    from bot.telegram.texts import draft_notices

    if not settings.llm_configured:
        raise UserError(NO_LLM)
    async with _database(settings) as sessions:
        writer = build_writer(settings, sessions)
        if writer is None:
            raise UserError(NO_LLM)
        try:
            article = await find_article(sessions, owner_id, args.article)
            service = DraftService(
                sessions, writer, check=settings.draft_check, reviser=writer
            )
            with _progress(0, "Drafting", "section") as bar:

                def advance(done: int, total: int) -> None:
                    bar.total = total
                    bar.update(done - bar.n)

                result = await service.draft(
                    owner_id, args.section, article_id=article.id, progress=advance
                )
        finally:
            await writer.close()
    _write_or_print(result.markdown, args.out)
    if result.from_stored:
        summary = "Nothing new since the last draft: this is the stored one."
    else:
        summary = (
            f"Drafted “{article.title}”: {result.sections_regenerated} of "
            f"{result.sections_with_notes} section(s) with notes redrafted."
        )
    figures = result.figures
    if figures.checked:
        summary += (
            f" Kept {figures.points_kept}/{figures.points_total} verified points, restored "
            f"{figures.points_restored}; {figures.citations_removed} unsupported citation(s) "
            "removed."
        )
    if result.unfinished_notes:
        summary += f" {result.unfinished_notes} note(s) still being transcribed are not in it."
    print(summary, file=sys.stderr)
    for notice in draft_notices(result, html=False):
        print(notice, file=sys.stderr)
    return 0


async def export(settings: Settings, owner_id: int, args: argparse.Namespace) -> int:
    """The latest stored draft (or, with --notes, every transcript) as markdown."""
    from bot.drafting.service import DraftService
    from bot.publish.service import PublishService

    if args.format == "docx" and args.out is None:
        raise UserError("A Word document needs a file: pass -o FILE.docx.")
    if args.notes and args.format != "md":
        raise UserError("--notes exports markdown only.")
    async with _database(settings) as sessions:
        article = await find_article(sessions, owner_id, args.article)
        service = DraftService(sessions, None)
        if args.notes:
            _, markdown = await service.notes_export(owner_id, article.id)
        elif args.format == "md":
            _, markdown = await service.latest_draft(owner_id, article.id)
        else:
            files = PublishService(sessions)
            exported = files.export_html if args.format == "html" else files.export_docx
            _, content = await exported(owner_id, article.id)
            if args.format == "html" and args.out is None:
                sys.stdout.write(content.decode("utf-8"))
                return 0
            assert args.out is not None
            _write_bytes(content, args.out)
            return 0
    _write_or_print(markdown, args.out)
    return 0


def _write_bytes(content: bytes, out: Path) -> None:
    try:
        out.write_bytes(content)
    except OSError as exc:
        raise UserError(f"Cannot write {out}: {exc.strerror or 'error'}.") from None
    print(f"Wrote {out}", file=sys.stderr)


async def publish(settings: Settings, owner_id: int, args: argparse.Namespace) -> int:
    """Publish the latest stored draft like /publish; per target what happened."""
    from bot.publish.service import Target, build_publisher
    from bot.render import html_to_plain
    from bot.telegram import texts

    targets = [t for t, on in ((Target.GIT, args.git), (Target.TELEGRAPH, args.telegraph)) if on]
    async with _database(settings) as sessions:
        article = await find_article(sessions, owner_id, args.article)
        publisher = build_publisher(settings, sessions)
        try:
            report = await publisher.publish(owner_id, targets, article_id=article.id)
        finally:
            await publisher.close()
    print(html_to_plain(texts.publish_report(report)))
    failed = (report.git is not None and report.git.outcome is None) or (
        report.telegraph is not None and bool(report.telegraph.failure)
    )
    return 1 if failed else 0


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], int]] = {
    "run": cmd_run,
    "worker": cmd_worker,
    "migrate": cmd_migrate,
    "check-config": cmd_check_config,
    "eval": cmd_eval,
    "transcribe": cmd_transcribe,
    "import": _database_command(import_folder),
    "draft": _database_command(draft),
    "export": _database_command(export),
    "publish": _database_command(publish),
}

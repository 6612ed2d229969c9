"""Composition root: builds the engine, transcriber, services and the PTB Application, and
starts and stops them in order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from telegram import Bot, Update
from telegram.ext import Application, ApplicationBuilder

from bot.config import Settings
from bot.db.session import create_engine, create_reader_factory, create_session_factory
from bot.drafting.revisions import RevisionService
from bot.drafting.service import DraftService
from bot.llm.client import StructuredLLM
from bot.llm.router import LLMRouter
from bot.llm.vision import ImageDescriber
from bot.llm.writer import LLMDraftWriter
from bot.notes.archive import ArchiveImporter
from bot.notes.cards import NOTE, load_note_card
from bot.notes.intake import SOURCE, IntakeService
from bot.notes.manage import NotesService
from bot.notes.queue import NoteQueue
from bot.notes.transcribe import TranscriptionJob
from bot.notes.vocabulary import VocabularyService
from bot.notes.worker import TranscriptionWorker
from bot.publish.service import PublishService, build_publisher
from bot.services.inbox import Inbox
from bot.services.llm_endpoints import DatabaseEndpointMemory
from bot.services.outbox import OutboxDelivery
from bot.services.outline import OutlineService
from bot.services.usage import UsageService
from bot.sources.cards import load_source_card
from bot.sources.links import LinkFetcher
from bot.sources.service import SourcesService
from bot.sources.worker import SourceWorker
from bot.telegram.delivery import TelegramMessenger
from bot.telegram.handlers import BOT_API_DOWNLOAD_LIMIT, COMMANDS, ChatHandlers, on_error
from bot.telegram.io import TelegramAudioSource, TelegramChat
from bot.telegram.updates import ChatLanes, Poller, WebhookServer
from bot.timing import Timing
from bot.transcription.base import Transcriber

log = logging.getLogger(__name__)

# getMe at start is tried this many times while Telegram is busy or failing (5xx, 429, a
# timeout), waiting poll_backoff_s, doubling; then the error ends the start (a supervisor
# restarts the process).
START_ATTEMPTS = 6


async def initialize_with_retries(
    initialize: Callable[[], Awaitable[None]], timing: Timing
) -> None:
    """Bot/Application.initialize (getMe), waiting out a Telegram that is busy or failing."""
    from telegram.error import BadRequest, NetworkError, RetryAfter

    backoff = timing.poll_backoff_s
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            await initialize()
            return
        except BadRequest:
            raise
        except (NetworkError, RetryAfter) as exc:  # 5xx, timeouts, refused; 429
            if attempt == START_ATTEMPTS:
                raise
            if isinstance(exc, RetryAfter):
                wait = min(30.0, _seconds(exc.retry_after))
            else:
                wait, backoff = backoff, min(30.0, backoff * 2)
        log.warning("Telegram did not answer getMe; trying again in %.0f s", wait)
        await asyncio.sleep(wait)


def _seconds(value: object) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)  # type: ignore[arg-type]


# Only what the bot handles; chat-member, reaction and other updates are never fetched.
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]


def timing_from(settings: Settings) -> Timing:
    return Timing(worker_poll_s=settings.worker_poll_seconds, lease_s=settings.worker_lease_seconds)


def load_transcriber(settings: Settings) -> Transcriber:
    """The hosted endpoint (no model loaded), or the whisper model, loaded once and warmed
    up; a model name is fetched into DATA_DIR/models."""
    if settings.transcribe_backend == "openai":
        from bot.transcription.hosted import OpenAITranscriber

        log.info("Transcribing with %s at a hosted endpoint", settings.transcribe_model)
        return OpenAITranscriber(
            model=settings.transcribe_model,
            api_key=settings.transcribe_api_key.get_secret_value(),
            base_url=settings.transcribe_base_url,
            timeout=settings.transcribe_timeout_seconds,
            language=settings.whisper_language,
        )
    from bot.transcription.whisper import WhisperTranscriber

    workers, cpu_threads = settings.whisper_parallelism
    transcriber = WhisperTranscriber(
        settings.whisper_model,
        device=settings.whisper_device,
        compute_type=settings.whisper_compute_type,
        beam_size=settings.whisper_beam_size,
        language=settings.whisper_language,
        languages=settings.whisper_languages,
        cpu_threads=cpu_threads,
        workers=workers,
        download_root=settings.data_dir / "models",
    )
    transcriber.warm_up()
    return transcriber


def _llm(settings: Settings, sessions: async_sessionmaker[AsyncSession] | None) -> StructuredLLM:
    """The endpoint client; with `sessions`, what the endpoint accepts is remembered there."""
    return StructuredLLM(
        base_url=settings.openai_base_url or None,
        api_key=settings.openai_api_key.get_secret_value(),
        model=settings.openai_model,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
        max_output_tokens=settings.llm_max_output_tokens,
        memory=DatabaseEndpointMemory(sessions) if sessions is not None else None,
        parallel_requests=settings.llm_parallel_requests,
    )


def build_router(
    settings: Settings, sessions: async_sessionmaker[AsyncSession] | None = None
) -> LLMRouter | None:
    """The optional LLM routing step (LLM_ROUTING), when an endpoint is configured."""
    if not settings.llm_routing:
        return None
    if not settings.llm_configured:
        log.warning("LLM_ROUTING is on but no LLM is configured; routing by spoken titles only.")
        return None
    return LLMRouter(_llm(settings, sessions))


def build_writer(
    settings: Settings, sessions: async_sessionmaker[AsyncSession] | None = None
) -> LLMDraftWriter | None:
    """The LLM draft writer, or None when no endpoint is configured (prompts checked now)."""
    if not settings.llm_configured:
        log.warning("No LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL): /draft is off.")
        return None
    llm = _llm(settings, sessions)
    return LLMDraftWriter(
        llm, language=settings.draft_language, context_tokens=settings.llm_context_tokens
    )


def worker_name(role: str) -> str:
    """A claimant name unique per process; `role:host:` is the same for every run of it."""
    return f"{role}:{socket.gethostname()}:{os.getpid()}"


def _expected_languages(settings: Settings) -> tuple[str, ...]:
    """The languages the bot's settings expect notes in (a note's card offers these when
    one came out in another)."""
    languages = (settings.whisper_language, *settings.whisper_languages)
    return tuple(dict.fromkeys(code for code in languages if code))


def _transcription(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    queue: NoteQueue,
    transcriber: Transcriber,
    bot: Bot,
    timing: Timing,
    name: str,
) -> tuple[TranscriptionWorker, LLMRouter | None]:
    router = build_router(settings, sessions)
    slots = settings.whisper_parallelism[0]  # notes this process transcribes at once
    job = TranscriptionJob(
        queue,
        transcriber,
        TelegramAudioSource(bot),
        settings.audio_dir,
        timing,
        sessions=sessions,
        router=router,
        slots=slots,  # the windows of its notes, shared fairly
    )
    return TranscriptionWorker(queue, job, name, slots=slots, timing=timing), router


@dataclass
class BotRuntime:
    """The bot process: takes updates, stores and handles them, delivers the outbox, and
    (unless SEPARATE_WORKERS) transcribes."""

    settings: Settings
    timing: Timing
    engine: AsyncEngine
    app: Application  # type: ignore[type-arg]
    outbox: OutboxDelivery
    queue: NoteQueue
    worker: TranscriptionWorker | None
    writer: LLMDraftWriter | None
    router: LLMRouter | None
    publisher: PublishService | None
    sessions: async_sessionmaker[AsyncSession]
    inbox: Inbox | None = None
    lanes: ChatLanes | None = None
    sources: SourceWorker | None = None
    _poller: asyncio.Task[None] | None = None
    _webhook: WebhookServer | None = None
    _spoken: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start in the order that loses nothing: the outbox and the workers first, then the
        updates stored by an earlier run, then new updates."""
        settings = self.settings
        settings.audio_dir.mkdir(parents=True, exist_ok=True)
        # getMe (the token and the Bot API URL were checked by bot/preflight.py just before).
        await initialize_with_retries(self.app.initialize, self.timing)
        if not settings.allowed_user_ids:
            log.warning("ALLOWED_USER_IDS is empty: the bot will refuse everybody.")
        else:
            log.info("Bot allows %d user(s)", len(settings.allowed_user_ids))
        try:
            await self.app.bot.set_my_commands(COMMANDS)
        except Exception:
            log.warning("Could not register the command list with Telegram", exc_info=True)
        self.inbox = Inbox(self.sessions, self.app.bot.id, self.timing)
        self.lanes = ChatLanes(self.app, self.inbox)
        await self.inbox.prune()
        if self.worker is not None:
            # Claims this host's earlier run held when it died run out now, not in a minute.
            await self.queue.expire_claims_of(self.worker.name.rsplit(":", 1)[0] + ":")
        resumed = await self.queue.announce_resumed()
        self.outbox.start()
        await self.app.start()
        self.lanes.submit(await self.inbox.unhandled(), replayed=True)
        # Spoken instructions transcribed before a restart; separate workers cannot wake
        # this process, so it looks for theirs as often as workers look for notes.
        handlers: ChatHandlers = self.app.bot_data["handlers"]
        handlers.wake_spoken()
        if settings.separate_workers:
            self._spoken = asyncio.create_task(
                _every(self.timing.worker_poll_s, handlers.wake_spoken), name="spoken-poll"
            )
        if self.worker is not None:
            self.worker.start()
        if self.sources is not None:
            self.sources.start()
        if settings.webhook_url:
            self._webhook = WebhookServer(
                self.inbox,
                self.lanes,
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                path=settings.webhook_path,
                secret=settings.webhook_secret.get_secret_value(),
            )
            await self._webhook.start()
            await self.app.bot.set_webhook(
                settings.webhook_url,
                secret_token=settings.webhook_secret.get_secret_value(),
                allowed_updates=ALLOWED_UPDATES,
                drop_pending_updates=False,
            )
        else:
            poller = Poller(self.app.bot, self.inbox, self.lanes, self.timing, ALLOWED_UPDATES)
            self._poller = asyncio.create_task(poller.run(), name="poller")
        log.info("Bot started; %d unfinished note(s) resumed", resumed)

    async def stop(self) -> None:
        """Stop taking updates, let the handlers and filing under way finish, give notes in
        work back to the queue, deliver what is due, close everything. Each step is bounded:
        a stop never hangs on one of them (what is left undone is redone after the start)."""
        grace = self.timing.stop_grace_s
        if self._spoken is not None:
            self._spoken.cancel()
            await _bounded("spoken instructions", _settled(self._spoken), grace)
        if self._poller is not None:
            self._poller.cancel()
            await _bounded("polling", _settled(self._poller), grace)
        if self._webhook is not None:
            await _bounded("the webhook server", self._webhook.stop(), grace)
        if self.lanes is not None:
            await _bounded("handlers", self.lanes.close(grace), 2 * grace)
        if self.inbox is not None:
            await _bounded("the inbox", self.inbox.flush(), grace)
        if self.worker is not None:
            await _bounded("transcription", self.worker.stop(), 3 * grace)
        if self.sources is not None:
            await _bounded("sources", self.sources.stop(), grace)
        if self.app.running:
            # A /draft in progress is let finish; its requests are bounded by the timeout.
            limit = self.settings.openai_timeout_seconds + grace
            await _bounded("drafting", self.app.stop(), limit)
        await _bounded("the outbox", self.outbox.stop(), 2 * grace)
        for name, closing in (
            ("Telegram", self.app.shutdown()),
            ("the LLM client", self.writer.close() if self.writer else None),
            ("the routing client", self.router.close() if self.router else None),
            ("publishing", self.publisher.close() if self.publisher else None),
            ("sources", self.sources.close() if self.sources else None),
        ):
            if closing is not None:
                await _bounded(name, closing, grace)
        await _bounded("the database", self.engine.dispose(), grace)

    def poller_task_or_none(self) -> asyncio.Task[None] | None:
        """The polling loop once started: it ends only when polling cannot go on (the
        token was refused), which ends the bot."""
        task: asyncio.Task[None] | None = self._poller
        return task


def build_bot(
    settings: Settings, transcriber: Transcriber | None, *, timing: Timing | None = None
) -> BotRuntime:
    """The bot; `transcriber` is None with SEPARATE_WORKERS (the workers transcribe)."""
    timing = timing or timing_from(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    readers = create_reader_factory(engine)
    app = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        # In --local mode the server hands out file paths on its disk instead of URLs.
        .local_mode(settings.telegram_local_bot_api)
        # Updates come from our own poller or webhook, stored in the inbox first.
        .updater(None)
        .build()
    )
    chat = TelegramChat(app.bot)
    expected_languages = _expected_languages(settings)
    outbox = OutboxDelivery(
        sessions,
        TelegramMessenger(chat),
        {
            NOTE: functools.partial(load_note_card, configured_languages=expected_languages),
            SOURCE: load_source_card,
        },
        timing,
        readers=readers,
    )
    queue = NoteQueue(
        sessions,
        timing,
        on_outbox=outbox.wake,
        on_instruction=lambda: handlers.wake_spoken(),
    )
    worker: TranscriptionWorker | None = None
    router: LLMRouter | None = None
    if not settings.separate_workers:
        if transcriber is None:
            raise ValueError("a transcriber is needed unless SEPARATE_WORKERS is set")
        worker, router = _transcription(
            settings, sessions, queue, transcriber, app.bot, timing, worker_name("bot")
        )
    writer = build_writer(settings, sessions)
    publisher = build_publisher(settings, sessions)
    sources = build_source_worker(settings, sessions, app.bot, on_outbox=outbox.wake)
    intake = IntakeService(
        sessions,
        on_queued=worker.wake if worker is not None else lambda: None,
        on_outbox=outbox.wake,
        on_source=sources.wake,
    )
    drafts = DraftService(sessions, writer, check=settings.draft_check, reviser=writer)
    handlers = ChatHandlers(
        outline=OutlineService(sessions),
        intake=intake,
        queue=queue,
        drafts=drafts,
        notes=NotesService(sessions, on_outbox=outbox.wake),
        usage=UsageService(sessions),
        vocabulary=VocabularyService(sessions, settings.whisper_language),
        archive=ArchiveImporter(sessions, intake),
        publisher=publisher,
        sources=SourcesService(sessions),
        chat=chat,
        allowed_user_ids=settings.allowed_user_ids,
        download_limit=None if settings.telegram_local_bot_api else BOT_API_DOWNLOAD_LIMIT,
        revisions=RevisionService(sessions, drafts),
        vision_max_bytes=settings.vision_max_image_bytes,
    )
    handlers.register(app)
    app.bot_data["handlers"] = handlers
    app.add_error_handler(on_error)
    app.bot_data["chat"] = chat
    return BotRuntime(
        settings,
        timing,
        engine,
        app,
        outbox,
        queue,
        worker,
        writer,
        router,
        publisher,
        sessions,
        sources=sources,
    )


def build_source_worker(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    bot: Bot,
    *,
    on_outbox: Callable[[], None],
) -> SourceWorker:
    """The background step of links, photos and documents (bot/sources/)."""
    describer = (
        ImageDescriber(
            base_url=settings.openai_base_url or None,
            api_key=settings.openai_api_key.get_secret_value(),
            model=settings.vision_model or settings.openai_model,
            timeout=settings.openai_timeout_seconds,
        )
        if settings.llm_configured
        else None
    )
    fetcher = LinkFetcher(
        timeout=settings.link_fetch_timeout_seconds,
        max_bytes=settings.link_fetch_max_bytes,
        allow_private=settings.link_fetch_allow_private,
    )
    return SourceWorker(
        sessions,
        fetcher=fetcher,
        files=TelegramAudioSource(bot),
        describer=describer,
        files_dir=settings.data_dir / "sources",
        on_outbox=on_outbox,
        max_image_bytes=settings.vision_max_image_bytes,
    )


async def _bounded(what: str, step: Awaitable[object], seconds: float) -> None:
    """Await one step of a stop for at most `seconds`; log (never raise) what went wrong."""
    try:
        await asyncio.wait_for(step, timeout=seconds)
    except TimeoutError:
        log.warning("Stopping %s took over %.0f s; going on without it", what, seconds)
    except Exception:
        log.warning("Stopping %s failed", what, exc_info=True)


async def _every(seconds: float, call: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(seconds)
        call()


async def _settled(task: asyncio.Task[None]) -> None:
    """Wait for a cancelled task to end, whatever it ends with."""
    with contextlib.suppress(BaseException):
        await task


@contextlib.asynccontextmanager
async def running(runtime: BotRuntime) -> AsyncIterator[BotRuntime]:
    """Run the bot inside an existing event loop (tests, `python -m bot`)."""
    try:
        await runtime.start()
        yield runtime
    finally:
        await runtime.stop()


@dataclass
class WorkerRuntime:
    """A `python -m bot worker` process: claims notes from the database, downloads them
    through the Bot API (it never fetches updates), transcribes and files them; what the
    writer should see goes to the outbox, which the bot process delivers."""

    engine: AsyncEngine
    bot: Bot
    worker: TranscriptionWorker
    router: LLMRouter | None

    async def start(self) -> None:
        await self.bot.initialize()
        self.worker.start()

    async def close(self) -> None:
        await self.worker.stop()
        if self.router is not None:
            await self.router.close()
        await self.bot.shutdown()
        await self.engine.dispose()


def build_worker(
    settings: Settings, transcriber: Transcriber, name: str, *, timing: Timing | None = None
) -> WorkerRuntime:
    timing = timing or timing_from(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.audio_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        local_mode=settings.telegram_local_bot_api,
    )
    # The bot process looks at the outbox every half second; nothing to wake here.
    queue = NoteQueue(sessions, timing)
    worker, router = _transcription(settings, sessions, queue, transcriber, bot, timing, name)
    return WorkerRuntime(engine, bot, worker, router)

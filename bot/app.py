"""Composition root: builds the engine, transcriber, services and the PTB Application."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot, Update
from telegram.ext import Application, ApplicationBuilder

from bot.config import Settings
from bot.db.session import create_engine, create_session_factory
from bot.drafting.service import DraftService
from bot.llm.client import StructuredLLM
from bot.llm.router import LLMRouter
from bot.llm.writer import LLMDraftWriter
from bot.notes.intake import IntakeService
from bot.notes.manage import NotesService
from bot.publish.service import PublishService, build_publisher
from bot.services.outline import OutlineService
from bot.services.remote_jobs import ClaimingWorker, OutboxNotifier, RemoteTranscription
from bot.services.transcription_jobs import TranscriptionWorker
from bot.services.usage import UsageService
from bot.telegram import texts
from bot.telegram.handlers import (
    BOT_API_DOWNLOAD_LIMIT,
    COMMANDS,
    ChatHandlers,
    on_error,
)
from bot.telegram.io import TelegramAudioSource, TelegramChat, TelegramNotifier
from bot.transcription.base import Transcriber

log = logging.getLogger(__name__)

# Only what the bot handles; chat-member, reaction and other updates are never fetched.
ALLOWED_UPDATES = [Update.MESSAGE, Update.EDITED_MESSAGE, Update.CALLBACK_QUERY]


@dataclass
class Runtime:
    """What the hooks need at start and stop; kept in bot_data["runtime"]."""

    settings: Settings
    engine: AsyncEngine
    worker: TranscriptionWorker | RemoteTranscription
    chat: TelegramChat
    writer: LLMDraftWriter | None
    router: LLMRouter | None
    publisher: PublishService | None = None


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
        cpu_threads=cpu_threads,
        workers=workers,
        download_root=settings.data_dir / "models",
    )
    transcriber.warm_up()
    return transcriber


def _llm(settings: Settings) -> StructuredLLM:
    return StructuredLLM(
        base_url=settings.openai_base_url or None,
        api_key=settings.openai_api_key.get_secret_value(),
        model=settings.openai_model,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
    )


def build_router(settings: Settings) -> LLMRouter | None:
    """The optional LLM routing step (LLM_ROUTING), when an endpoint is configured."""
    if not settings.llm_routing:
        return None
    if not settings.llm_configured:
        log.warning("LLM_ROUTING is on but no LLM is configured; routing by spoken titles only.")
        return None
    return LLMRouter(_llm(settings))


def build_writer(settings: Settings) -> LLMDraftWriter | None:
    """The LLM draft writer, or None when no endpoint is configured (prompts checked now)."""
    if not settings.llm_configured:
        log.warning("No LLM configured (OPENAI_API_KEY / OPENAI_BASE_URL): /draft is off.")
        return None
    llm = _llm(settings)
    return LLMDraftWriter(
        llm, language=settings.draft_language, context_tokens=settings.llm_context_tokens
    )


def build_application(settings: Settings, transcriber: Transcriber | None) -> Application:  # type: ignore[type-arg]
    """The bot; `transcriber` is None with SEPARATE_WORKERS (the workers transcribe)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)

    app = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_api_base_url)
        .base_file_url(settings.telegram_file_base_url)
        # In --local mode the server hands out file paths on its disk instead of URLs.
        .local_mode(settings.telegram_local_bot_api)
        .post_init(on_start)
        .post_stop(on_stop)
        .build()
    )
    chat = TelegramChat(app.bot)
    router = build_router(settings)
    worker: TranscriptionWorker | RemoteTranscription
    if settings.separate_workers:
        router = None  # the workers route notes
        worker = RemoteTranscription(
            sessions, TelegramNotifier(chat), poll_seconds=min(settings.worker_poll_seconds, 0.5)
        )
    else:
        if transcriber is None:
            raise ValueError("a transcriber is needed unless SEPARATE_WORKERS is set")
        worker = TranscriptionWorker(
            sessions,
            transcriber,
            TelegramAudioSource(app.bot),
            TelegramNotifier(chat),
            settings.audio_dir,
            router=router,
            workers=settings.whisper_parallelism[0],
        )
    writer = build_writer(settings)
    publisher = build_publisher(settings, sessions)
    handlers = ChatHandlers(
        outline=OutlineService(sessions),
        intake=IntakeService(sessions),
        worker=worker,
        drafts=DraftService(sessions, writer, check=settings.draft_check),
        notes=NotesService(sessions),
        usage=UsageService(sessions),
        publisher=publisher,
        chat=chat,
        allowed_user_ids=settings.allowed_user_ids,
        download_limit=None if settings.telegram_local_bot_api else BOT_API_DOWNLOAD_LIMIT,
    )
    handlers.register(app)
    app.add_error_handler(on_error)
    app.bot_data["runtime"] = Runtime(settings, engine, worker, chat, writer, router, publisher)
    app.bot_data["chat"] = chat
    return app


async def on_start(app: Application) -> None:  # type: ignore[type-arg]
    """Start the worker and resume every note a previous run left unfinished."""
    runtime: Runtime = app.bot_data["runtime"]
    if not runtime.settings.allowed_user_ids:
        log.warning("ALLOWED_USER_IDS is empty: the bot will refuse everybody.")
    else:
        log.info("Bot allows %d user(s)", len(runtime.settings.allowed_user_ids))
    try:
        await app.bot.set_my_commands(COMMANDS)
    except Exception:
        log.warning("Could not register the command list with Telegram", exc_info=True)
    runtime.worker.start()
    resumed = await runtime.worker.resume_unfinished()
    for chat_id, count in resumed.items():
        try:
            await runtime.chat.send(chat_id, texts.resumed(count))
        except Exception:  # a courtesy message must not stop the bot from starting
            log.warning("Could not tell chat %s about resumed notes", chat_id, exc_info=True)
    log.info("Bot started; %d unfinished note(s) resumed", sum(resumed.values()))


async def on_stop(app: Application) -> None:  # type: ignore[type-arg]
    runtime: Runtime = app.bot_data["runtime"]
    await runtime.worker.stop()
    if runtime.writer is not None:
        await runtime.writer.close()
    if runtime.router is not None:
        await runtime.router.close()
    if runtime.publisher is not None:
        await runtime.publisher.close()
    await runtime.engine.dispose()


def webhook_options(settings: Settings) -> dict[str, Any]:
    """Arguments of run_webhook/start_webhook: PTB registers WEBHOOK_URL with Telegram and
    answers 403 to any request without the secret token in its header."""
    return {
        "listen": settings.webhook_listen,
        "port": settings.webhook_port,
        "url_path": settings.webhook_path,
        "webhook_url": settings.webhook_url,
        "secret_token": settings.webhook_secret.get_secret_value(),
        "allowed_updates": ALLOWED_UPDATES,
        "drop_pending_updates": False,
    }


@contextlib.asynccontextmanager
async def running(app: Application) -> AsyncIterator[Application]:  # type: ignore[type-arg]
    """Run the bot inside an existing event loop, with the same hooks as run_polling."""
    async with app:
        await on_start(app)
        await app.start()
        assert app.updater is not None
        settings: Settings = app.bot_data["runtime"].settings
        if settings.webhook_url:
            await app.updater.start_webhook(**webhook_options(settings))
        else:
            await app.updater.start_polling(
                poll_interval=0.0, timeout=10, allowed_updates=ALLOWED_UPDATES
            )
        try:
            yield app
        finally:
            await app.updater.stop()
            await app.stop()
            await on_stop(app)


@dataclass
class WorkerRuntime:
    """A `python -m bot worker` process: what it needs to run and to shut down."""

    engine: AsyncEngine
    bot: Bot
    worker: ClaimingWorker
    router: LLMRouter | None

    async def close(self) -> None:
        await self.worker.stop()
        if self.router is not None:
            await self.router.close()
        await self.bot.shutdown()
        await self.engine.dispose()


def build_worker(settings: Settings, transcriber: Transcriber, name: str) -> WorkerRuntime:
    """A separate worker: claims notes from the database, downloads them through the Bot API
    (it never fetches updates), transcribes and files them, and leaves the writer's message in
    the outbox for the bot process."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    sessions = create_session_factory(engine)
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        base_file_url=settings.telegram_file_base_url,
        local_mode=settings.telegram_local_bot_api,
    )
    router = build_router(settings)
    slots = settings.whisper_parallelism[0]  # notes this worker transcribes at once
    jobs = TranscriptionWorker(
        sessions,
        transcriber,
        TelegramAudioSource(bot),
        OutboxNotifier(sessions),
        settings.audio_dir,
        router=router,
        workers=slots,
    )
    worker = ClaimingWorker(
        sessions,
        jobs,
        name,
        slots=slots,
        lease_seconds=settings.worker_lease_seconds,
        poll_seconds=settings.worker_poll_seconds,
    )
    return WorkerRuntime(engine, bot, worker, router)

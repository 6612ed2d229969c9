"""Chat handlers: parse the update, call a service, reply. Nothing else lives here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from telegram import (
    BotCommand,
    CallbackQuery,
    InlineKeyboardMarkup,
    Message,
    MessageOriginChannel,
    MessageOriginChat,
    MessageOriginHiddenUser,
    MessageOriginUser,
    Update,
)
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from bot.domain import IncomingMedia, NoteKind, UserError
from bot.drafting.markdown import Piece
from bot.drafting.revisions import FailedInstruction, Revised, RevisionService, SectionRef
from bot.drafting.service import DraftService
from bot.notes.archive import ArchiveImporter
from bot.notes.intake import IntakeService
from bot.notes.manage import NotesService
from bot.notes.queue import NoteQueue
from bot.notes.transcribe import DownloadError
from bot.notes.vocabulary import VocabularyService
from bot.publish.service import PublishService, Target
from bot.render import escape, markdown_to_messages
from bot.services.outline import OutlineService
from bot.services.usage import UsageService
from bot.sources.documents import is_pdf, is_text_document
from bot.sources.links import find_urls, words_around
from bot.sources.model import NewSource, SourceKind
from bot.sources.service import SourcesService
from bot.telegram import keyboards, texts
from bot.telegram.io import TelegramChat

log = logging.getLogger(__name__)
T = TypeVar("T")

BOT_API_DOWNLOAD_LIMIT = 20 * 1024 * 1024
MAX_IMPORT_BYTES = 1024 * 1024
REFUSAL_INTERVAL_S = 600.0

COMMANDS = [
    BotCommand("new", "Start a new article"),
    BotCommand("outline", "Set the sections, one title a line"),
    BotCommand("sections", "Show the outline and pick a section"),
    BotCommand("section", "Make section n active"),
    BotCommand("articles", "List your articles"),
    BotCommand("use", "Switch to article n"),
    BotCommand("draft", "Draft the article (or /draft n for one section)"),
    BotCommand("revise", "Revise section n: /revise n instruction (or reply to it)"),
    BotCommand("history", "Versions of the article (or /history n for one section)"),
    BotCommand("todo", "The draft's TODOs (/done n ticks one)"),
    BotCommand("done", "Tick TODO n of /todo"),
    BotCommand("status", "Where each section stands, and what is thin"),
    BotCommand("export", "The draft as markdown, html or docx (/export notes: transcripts)"),
    BotCommand("publish", "The draft to git and/or Telegraph (/publish git, /publish telegraph)"),
    BotCommand("notes", "A section's notes, to move or delete"),
    BotCommand("undo", "Delete your last note"),
    BotCommand("cancel", "Stop the running transcription"),
    BotCommand("retry", "Try set-aside recordings again"),
    BotCommand("usage", "Audio minutes and LLM tokens this month"),
    BotCommand("language", "The language you speak in: ru, en or auto"),
    BotCommand("glossary", "Your names and terms (add / remove)"),
    BotCommand("fix", "Correct a misheard word: /fix wrong -> right"),
    BotCommand("help", "How this bot works"),
]


@dataclass
class ChatHandlers:
    """The bot's handlers, bound to the services they call."""

    outline: OutlineService
    intake: IntakeService
    queue: NoteQueue
    drafts: DraftService
    notes: NotesService
    usage: UsageService
    vocabulary: VocabularyService
    archive: ArchiveImporter
    publisher: PublishService
    sources: SourcesService
    chat: TelegramChat
    allowed_user_ids: frozenset[int]
    download_limit: int | None  # None with a self-hosted Bot API server
    revisions: RevisionService | None = None
    vision_max_bytes: int | None = None  # VISION_MAX_IMAGE_BYTES

    def __post_init__(self) -> None:
        self._refused_at: dict[int, float] = {}
        self._spoken_due = False
        self._spoken_task: asyncio.Task[None] | None = None

    def register(self, app: Application) -> None:  # type: ignore[type-arg]
        self._app = app
        app.add_handler(TypeHandler(Update, self.check_access), group=-1)
        commands = {
            "start": self.start,
            "help": self.help,
            "new": self.new_article,
            "outline": self.set_outline,
            "sections": self.show_sections,
            "section": self.choose_section,
            "articles": self.show_articles,
            "use": self.use_article,
            "notes": self.show_notes,
            "undo": self.undo,
            "cancel": self.cancel,
            "retry": self.retry,
            "usage": self.show_usage,
            "language": self.language,
            "glossary": self.glossary,
            "fix": self.fix,
            "history": self.history,
            "todo": self.todo,
            "done": self.done,
            "status": self.status,
        }
        for name, callback in commands.items():
            app.add_handler(CommandHandler(name, callback, filters=filters.UpdateType.MESSAGE))
        # Drafting waits on the LLM: it must not hold up voice notes arriving meanwhile.
        slow = {
            "draft": self.draft,
            "export": self.export,
            "publish": self.publish,
            "revise": self.revise,
        }
        for name, callback in slow.items():
            app.add_handler(
                CommandHandler(name, callback, filters=filters.UpdateType.MESSAGE, block=False)
            )
        app.add_handler(
            CallbackQueryHandler(self.undo_revision, pattern=f"^{keyboards.UNDO_REVISION}:")
        )
        app.add_handler(
            CallbackQueryHandler(self.keep_revision, pattern=f"^{keyboards.KEEP_REVISION}:")
        )
        app.add_handler(CallbackQueryHandler(self.button))
        app.add_handler(
            MessageHandler(
                filters.UpdateType.EDITED_MESSAGE & filters.TEXT & ~filters.COMMAND,
                self.edited_text,
            )
        )
        recordings = filters.VOICE | filters.AUDIO | filters.VIDEO_NOTE | filters.VIDEO
        app.add_handler(
            MessageHandler(recordings & filters.UpdateType.MESSAGE, self.receive_recording)
        )
        app.add_handler(
            MessageHandler(filters.PHOTO & filters.UpdateType.MESSAGE, self.receive_photo)
        )
        app.add_handler(
            MessageHandler(filters.Document.ALL & filters.UpdateType.MESSAGE, self.unsupported)
        )
        app.add_handler(
            MessageHandler(
                filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE, self.receive_text
            )
        )
        app.add_handler(
            MessageHandler(filters.COMMAND & filters.UpdateType.MESSAGE, self.unknown_command)
        )
        # Photos, stickers, locations, polls…: say what the bot takes instead of staying silent.
        app.add_handler(
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.StatusUpdate.ALL, self.unsupported)
        )

    # access ----------------------------------------------------------------------------
    async def check_access(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Fail closed: no user, or a user not on the list, stops the update here."""
        user = update.effective_user
        chat = update.effective_chat
        # Notes live in a private chat with the bot; groups and channels are ignored.
        if user is None or (chat is not None and chat.type != ChatType.PRIVATE):
            raise ApplicationHandlerStop
        if user.id in self.allowed_user_ids:
            return
        log.info("Refused update from user %s", user.id)
        now = time.monotonic()
        if now - self._refused_at.get(user.id, -REFUSAL_INTERVAL_S) >= REFUSAL_INTERVAL_S:
            self._refused_at[user.id] = now
            if update.callback_query is not None:
                await update.callback_query.answer(texts.REFUSAL)
            elif update.effective_chat is not None:
                await self.chat.send(update.effective_chat.id, texts.REFUSAL)
        raise ApplicationHandlerStop

    # commands --------------------------------------------------------------------------
    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Greet and explain."""
        await self._reply(update, texts.START_GREETING)

    async def help(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """List the commands."""
        await self._reply(update, texts.HELP)

    async def new_article(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/new <title>: start an article and make it active."""
        title = _command_argument(update)
        if not title:
            await self._reply(update, texts.NEW_USAGE)
            return
        user_id, chat_id = _ids(update)
        outline = await self.outline.new_article(user_id, chat_id, title)
        await self._reply(update, texts.article_created(outline))

    async def set_outline(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/outline followed by one section title a line."""
        message = _message(update)
        text = message.text or ""
        first_line, _, rest = text.partition("\n")
        lines = [first_line.partition(" ")[2], *rest.split("\n")]
        user_id, chat_id = _ids(update)
        outline = await self.outline.set_outline(user_id, chat_id, lines)
        await self._reply(update, texts.outline_set(outline), keyboards.sections(outline))

    async def show_sections(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The outline with note counts and buttons to pick the active section."""
        user_id, _ = _ids(update)
        outline = await self.outline.outline(user_id)
        if outline is None:
            await self._reply(update, texts.NO_ARTICLE)
            return
        await self._reply(update, texts.outline(outline), keyboards.sections(outline))

    async def choose_section(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/section <n>."""
        number = _int_argument(update)
        if number is None:
            await self._reply(update, texts.SECTION_USAGE)
            return
        user_id, _ = _ids(update)
        outline = await self.outline.choose_section_by_number(user_id, number)
        await self._reply(update, texts.section_chosen(outline))

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Inline buttons: pick a section, move or delete a note."""
        query = update.callback_query
        assert query is not None
        user_id, chat_id = _ids(update)
        message = query.message if isinstance(query.message, Message) else None
        try:
            action, ids = keyboards.parse(query.data or "")
            if action == keyboards.PICK_SECTION and len(ids) == 1:
                outline = await self.outline.choose_section_by_id(user_id, ids[0])
                active = outline.active_section
                await query.answer(texts.now_filing_under(active) if active else None)
                if message is not None:
                    await self.chat.edit(
                        chat_id,
                        message.message_id,
                        texts.outline(outline),
                        reply_markup=keyboards.sections(outline),
                    )
            elif action == keyboards.MOVE and len(ids) == 1:
                preview, targets = await self.notes.move_targets(user_id, ids[0])
                if not targets:
                    await query.answer(texts.NOWHERE_TO_MOVE, show_alert=True)
                    return
                await query.answer()
                await self.chat.send(
                    chat_id,
                    texts.move_prompt(preview),
                    reply_markup=keyboards.move_targets(ids[0], targets),
                )
            elif action == keyboards.MOVE_TO and len(ids) == 2:
                moved = await self.notes.move_part(user_id, ids[0], ids[1])
                await query.answer(texts.MOVED_SHORT)
                if message is not None:
                    await self.chat.edit(chat_id, message.message_id, texts.moved(moved))
            elif action == keyboards.ADD_SECTION and len(ids) == 1:
                accepted = await self.notes.accept_suggestion(user_id, ids[0])
                await query.answer(texts.ADDED_SHORT)
                await self.chat.send(
                    chat_id,
                    texts.section_added(accepted),
                    reply_markup=keyboards.filed_parts(accepted.parts),
                )
            elif action == keyboards.PAGE and len(ids) == 2:
                page = await self.notes.section_notes_by_id(user_id, ids[0])
                await query.answer()
                if message is not None:
                    await self.chat.edit(
                        chat_id,
                        message.message_id,
                        texts.section_notes(page, ids[1]),
                        reply_markup=keyboards.section_notes(page, ids[1]),
                    )
            elif action == keyboards.AGAIN_IN and len(ids) == 2:
                if ids[1] >= len(keyboards.LANGUAGE_CODES):
                    raise ValueError(action)
                language = keyboards.LANGUAGE_CODES[ids[1]]
                queued = await self.queue.transcribe_again(user_id, ids[0], language)
                await query.answer(
                    texts.AGAIN_QUEUED if queued else texts.AGAIN_GONE, show_alert=not queued
                )
            elif action == keyboards.RETRY and len(ids) == 1:
                count = await self.queue.retry(user_id, ids[0])
                await query.answer(texts.alert(texts.retried(count)))
            elif action == keyboards.DELETE and len(ids) == 1:
                preview = await self.notes.delete_part(user_id, ids[0])
                await query.answer(texts.DELETED_SHORT)
                await self.chat.send(chat_id, texts.deleted(preview))
            else:
                raise ValueError(action)
        except ValueError:
            await query.answer(texts.BUTTON_EXPIRED, show_alert=True)
        except UserError as exc:
            await query.answer(texts.alert(exc.message), show_alert=True)

    async def show_notes(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/notes [n]: a section's notes with buttons to move or delete each."""
        number = _optional_number(update)
        if number is _NOT_A_NUMBER:
            await self._reply(update, texts.NOTES_USAGE)
            return
        user_id, _ = _ids(update)
        page = await self.notes.section_notes(user_id, number)
        await self._reply(update, texts.section_notes(page), keyboards.section_notes(page))

    async def undo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/undo: delete the writer's last note."""
        user_id, _ = _ids(update)
        undone = await self.notes.undo_last(user_id)
        await self._reply(update, texts.undone(undone))

    async def edited_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """An edited text message updates the note it created."""
        message = update.edited_message
        if message is None:
            return
        user_id, chat_id = _ids(update)
        section = await self.notes.edit_text_note(
            user_id, chat_id, message.message_id, message.text or ""
        )
        if section is not None:
            await self.chat.send(chat_id, texts.edited(section), reply_to=message.message_id)

    async def show_articles(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/articles."""
        user_id, _ = _ids(update)
        await self._reply(update, texts.articles(await self.outline.articles(user_id)))

    async def use_article(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/use <n>."""
        number = _int_argument(update)
        if number is None:
            await self._reply(update, texts.USE_USAGE)
            return
        user_id, _ = _ids(update)
        outline = await self.outline.use_article(user_id, number)
        await self._reply(update, texts.article_switched(outline), keyboards.sections(outline))

    async def cancel(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/cancel: stop the writer's running transcription."""
        user_id, _ = _ids(update)
        await self._reply(update, texts.cancelled(await self.queue.request_cancel(user_id)))

    async def retry(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/retry: queue the writer's set-aside recordings again."""
        user_id, _ = _ids(update)
        await self._reply(update, texts.retried(await self.queue.retry(user_id)))

    async def show_usage(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/usage: audio minutes and LLM tokens of this calendar month."""
        user_id, _ = _ids(update)
        await self._reply(update, texts.usage(await self.usage.this_month(user_id)))

    async def language(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/language [ru|en|auto]: show or set the language the writer speaks in."""
        argument = _command_argument(update)
        user_id, chat_id = _ids(update)
        if not argument:
            await self._reply(update, texts.language_shown(await self.vocabulary.language(user_id)))
            return
        setting = await self.vocabulary.set_language(user_id, chat_id, argument)
        await self._reply(update, texts.language_set(setting))

    async def glossary(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/glossary, /glossary add T1, T2, /glossary remove T."""
        argument = _command_argument(update, keep_lines=True)
        verb, _, rest = argument.partition(" ")
        user_id, chat_id = _ids(update)
        if not argument:
            await self._reply(update, texts.glossary(await self.vocabulary.glossary(user_id)))
        elif verb.casefold() == "add" and rest.strip():
            change = await self.vocabulary.add_terms(user_id, chat_id, rest)
            await self._reply(update, texts.glossary_changed(change))
        elif verb.casefold() in ("remove", "delete", "rm") and rest.strip():
            removed, remaining = await self.vocabulary.remove_term(user_id, rest)
            await self._reply(update, texts.glossary_removed(removed, remaining))
        else:
            await self._reply(update, texts.GLOSSARY_USAGE)

    async def fix(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/fix WRONG -> RIGHT in the active article's notes; RIGHT joins the glossary."""
        argument = _command_argument(update)
        if not argument:
            await self._reply(update, texts.FIX_USAGE)
            return
        user_id, chat_id = _ids(update)
        result = await self.vocabulary.fix(user_id, chat_id, argument)
        await self._reply(update, texts.fixed(result))

    async def draft(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/draft or /draft <n>: the notes become a draft, sent in chat and as a .md file."""
        number = _optional_number(update)
        if number is _NOT_A_NUMBER:
            await self._reply(update, texts.DRAFT_USAGE)
            return
        user_id, chat_id = _ids(update)
        status = await self.chat.send(chat_id, texts.DRAFTING)
        try:
            result = await self.drafts.draft(user_id, number)
        except UserError as exc:
            await self._status(chat_id, status, texts.draft_failed(exc.message))
            return
        except Exception:
            log.exception("/draft failed")
            await self._status(chat_id, status, texts.SOMETHING_WENT_WRONG)
            return
        await self._status(chat_id, status, texts.draft_summary(result))
        # Each section in messages of its own, remembered (in one go) so that a reply to
        # one of them revises that section.
        shown = await self._send_pieces(chat_id, result.pieces)
        if self.revisions is not None:
            await self.revisions.remember_messages(user_id, chat_id, result.article_id, shown)
        await self.chat.send_document(chat_id, result.filename, result.markdown.encode())

    async def export(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/export: the latest draft as markdown; /export notes: every transcript."""
        argument = _command_argument(update).casefold()
        user_id, chat_id = _ids(update)
        if argument in ("notes", "transcripts", "raw"):
            filename, markdown = await self.drafts.notes_export(user_id)
            caption = texts.NOTES_EXPORT_CAPTION
        elif argument in ("html", "docx", "word"):
            if argument == "html":
                filename, content = await self.publisher.export_html(user_id)
                caption = texts.HTML_EXPORT_CAPTION
            else:
                filename, content = await self.publisher.export_docx(user_id)
                caption = texts.DOCX_EXPORT_CAPTION
            await self.chat.send_document(chat_id, filename, content, caption)
            return
        elif not argument or argument in ("md", "markdown"):
            filename, markdown = await self.drafts.latest_draft(user_id)
            caption = texts.DRAFT_EXPORT_CAPTION
            # A draft with figures goes with its images, in one .zip.
            bundle = await self.sources.bundle(user_id, filename, markdown)
            if bundle is not None:
                name, content = bundle
                await self.chat.send_document(chat_id, name, content, texts.DRAFT_BUNDLE_CAPTION)
                return
        else:
            await self._reply(update, texts.EXPORT_USAGE)
            return
        await self.chat.send_document(chat_id, filename, markdown.encode(), caption)

    async def publish(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/publish [git|telegraph]: the latest draft version to the configured targets."""
        argument = _command_argument(update).casefold()
        chosen = {"": (), "git": (Target.GIT,), "telegraph": (Target.TELEGRAPH,)}
        if argument not in chosen:
            await self._reply(update, texts.PUBLISH_USAGE)
            return
        user_id, chat_id = _ids(update)
        user = update.effective_user
        status = await self.chat.send(chat_id, texts.PUBLISHING)
        try:
            report = await self.publisher.publish(
                user_id, chosen[argument], author_name=user.full_name if user else ""
            )
        except UserError as exc:
            await self._status(chat_id, status, texts.draft_failed(exc.message))
            return
        except Exception:
            log.exception("/publish failed")
            await self._status(chat_id, status, texts.SOMETHING_WENT_WRONG)
            return
        await self._status(chat_id, status, texts.publish_report(report))

    async def _status(self, chat_id: int, status: Message | None, html: str) -> None:
        if status is not None:
            await self.chat.edit(chat_id, status.message_id, html)
        else:
            await self.chat.send(chat_id, html)

    async def unknown_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command this bot does not know."""
        await self._reply(update, texts.UNKNOWN_COMMAND)

    # notes -----------------------------------------------------------------------------
    async def receive_recording(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Voice, audio or video note: store it, acknowledge at once, transcribe later."""
        message = _message(update)
        media = _media(message)
        if media is None:
            return
        if self.download_limit and media.size and media.size > self.download_limit:
            await self._reply(update, texts.too_big(media.size, self.download_limit))
            return
        user_id, chat_id = _ids(update)
        # A voice note replying to a section of the draft is an instruction for it.
        section = await self._replied_section(message, user_id, chat_id)
        # Stored with its acknowledgement, which the outbox delivers (and retries).
        await self.intake.receive_media(
            user_id,
            chat_id,
            message.message_id,
            media,
            message.caption or "",
            instruction_for=section.id if section is not None else None,
        )

    async def receive_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A typed note: filed under the active section straight away. A forwarded post is
        a source; each link is a source (its page read in the background) apart from the
        writer's words around it."""
        message = _message(update)
        user_id, chat_id = _ids(update)
        text = message.text or ""
        section = await self._replied_section(message, user_id, chat_id)
        if section is not None and text.strip():
            # A reply to a section of the draft revises it; the LLM is not waited for here.
            context.application.create_task(
                self._revise(
                    user_id,
                    chat_id,
                    message.message_id,
                    text,
                    section.number,
                    section_id=section.id,
                ),
                update=update,
            )
            return
        origin = _origin(message)
        if origin is not None:
            source = NewSource(SourceKind.POST, text=text, origin=origin[0], origin_url=origin[1])
            await self.intake.receive_sources(user_id, chat_id, message.message_id, [source])
            return
        urls = find_urls(text)
        if urls:
            links = [NewSource(SourceKind.LINK, url=url) for url in urls]
            await self.intake.receive_sources(
                user_id, chat_id, message.message_id, links, words_around(text, urls)
            )
            return
        # Filed with its reply, which the outbox delivers (and retries).
        await self.intake.receive_text(user_id, chat_id, message.message_id, text)

    async def receive_photo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A photo: filed as a source with its caption; described in the background."""
        message = _message(update)
        sizes = sorted(message.photo, key=lambda p: p.width * p.height)
        limit = self.download_limit
        fitting = [p for p in sizes if not limit or not p.file_size or p.file_size <= limit]
        if not fitting:
            await self._reply(update, texts.file_too_big(sizes[-1].file_size or 0, limit or 0))
            return
        # Telegram keeps smaller copies of a photo: the largest the image model takes. With
        # none that small, the largest is kept as a figure (its card says why undescribed).
        cap = self.vision_max_bytes
        described = [p for p in fitting if not cap or not p.file_size or p.file_size <= cap]
        chosen = (described or fitting)[-1]
        await self._receive_file(update, SourceKind.IMAGE, chosen.file_id, "image/jpeg")

    async def _receive_file(
        self,
        update: Update,
        kind: SourceKind,
        file_id: str,
        mime_type: str | None,
        file_name: str | None = None,
    ) -> None:
        message = _message(update)
        origin = _origin(message)
        source = NewSource(
            kind,
            caption=message.caption or "",
            origin=origin[0] if origin else None,
            origin_url=origin[1] if origin else None,
            file_id=file_id,
            file_name=file_name,
            mime_type=mime_type,
        )
        user_id, chat_id = _ids(update)
        await self.intake.receive_sources(user_id, chat_id, message.message_id, [source])

    async def unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Files the bot cannot transcribe; audio sent as a document is accepted."""
        message = _message(update)
        document = message.document
        if document is not None and (document.mime_type or "").startswith("audio/"):
            await self.receive_recording(update, context)
            return
        name = (document.file_name or "") if document else ""
        if document is not None and name.lower().endswith((".txt", ".md")):
            await self.import_transcript(update, context)
            return
        if document is not None:
            mime = (document.mime_type or "").lower()
            if mime.startswith("image/") or is_pdf(name, mime) or is_text_document(name, mime):
                limit = self.download_limit
                if limit and document.file_size and document.file_size > limit:
                    await self._reply(update, texts.file_too_big(document.file_size, limit))
                    return
                kind = SourceKind.IMAGE if mime.startswith("image/") else SourceKind.DOCUMENT
                await self._receive_file(update, kind, document.file_id, mime or None, name)
                return
        await self._reply(update, texts.UNSUPPORTED_FILE)

    async def import_transcript(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A .txt/.md transcript from the writer's archive becomes a note, split at titles."""
        message = _message(update)
        document = message.document
        assert document is not None
        if (document.file_size or 0) > MAX_IMPORT_BYTES:
            await self._reply(update, texts.IMPORT_TOO_BIG)
            return
        user_id, chat_id = _ids(update)
        try:
            data = await self.chat.download_bytes(document.file_id)
        except DownloadError:
            await self._reply(update, texts.IMPORT_DOWNLOAD_FAILED)
            return
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError:
            await self._reply(update, texts.IMPORT_NOT_UTF8)
            return
        name = document.file_name or "transcript.txt"
        created, _, _ = await self.archive.import_file(
            user_id, chat_id, name, raw, reply_to=message.message_id
        )
        if not created:  # a new import is announced by its card, through the outbox
            await self._reply(update, texts.ALREADY_IMPORTED)

    # revising the draft ---------------------------------------------------------------
    async def revise(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/revise <n> <instruction>: revise section n by the instruction."""
        number, _, instruction = _command_argument(update).partition(" ")
        if not number.lstrip("#").isdigit() or not instruction.strip():
            await self._reply(update, texts.REVISE_USAGE)
            return
        user_id, chat_id = _ids(update)
        message = _message(update)
        await self._revise(
            user_id, chat_id, message.message_id, instruction, int(number.lstrip("#"))
        )

    async def _revise(
        self,
        user_id: int,
        chat_id: int,
        reply_to: int,
        instruction: str,
        number: int,
        *,
        section_id: int | None = None,
    ) -> None:
        """Revise section `number` (or the section `section_id`, which a reply named)."""
        assert self.revisions is not None
        status = await self.chat.send(chat_id, texts.revising(number), reply_to=reply_to)
        try:
            result = await self.revisions.revise(
                user_id,
                instruction,
                section_number=None if section_id is not None else number,
                section_id=section_id,
            )
        except UserError as exc:
            await self._status(chat_id, status, texts.revision_failed(exc.message))
            return
        except Exception:
            log.exception("A revision failed")
            await self._status(chat_id, status, texts.REVISION_WENT_WRONG)
            return
        await self._status(chat_id, status, texts.revised(result))
        await self._show_section(user_id, chat_id, result)

    async def _show_section(self, user_id: int, chat_id: int, result: Revised) -> None:
        """The section's new text, remembered as showing it; a revision has its buttons."""
        markup = keyboards.revision(result.version_id) if result.cause == "revision" else None
        shown = await self._send_pieces(chat_id, result.pieces, markup)
        assert self.revisions is not None
        await self.revisions.remember_messages(user_id, chat_id, result.article_id, shown)

    async def undo_revision(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """↩️ Undo under a revised section: its previous text comes back."""
        query = update.callback_query
        assert query is not None and self.revisions is not None
        user_id, chat_id = _ids(update)
        revisions = self.revisions
        result = await _on_version_button(query, lambda v: revisions.undo(user_id, v))
        if result is None:
            return
        await query.answer(texts.UNDONE_SHORT)
        await self._drop_buttons(chat_id, query.message)
        await self.chat.send(chat_id, texts.revision_undone(result))
        await self._show_section(user_id, chat_id, result)

    async def keep_revision(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """✅ Keep under a revised section: the buttons go, the revision stays."""
        query = update.callback_query
        assert query is not None and self.revisions is not None
        user_id, chat_id = _ids(update)
        revisions = self.revisions
        kept = await _on_version_button(query, lambda v: revisions.keep(user_id, v))
        if kept is None:
            return
        await query.answer(texts.revision_kept(kept.number))
        await self._drop_buttons(chat_id, query.message)

    async def history(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/history [n]: the versions of the article or of section n."""
        number = _optional_number(update)
        if number is _NOT_A_NUMBER or self.revisions is None:
            await self._reply(update, texts.HISTORY_USAGE)
            return
        user_id, _ = _ids(update)
        lines = await self.revisions.history(user_id, number)
        await self._reply(update, texts.history(lines, number))

    async def todo(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/todo: the author's TODOs of the current draft, numbered."""
        assert self.revisions is not None
        user_id, _ = _ids(update)
        await self._reply(update, texts.todos(await self.revisions.todos(user_id)))

    async def done(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/done <n>: tick TODO n."""
        number = _int_argument(update)
        if number is None or self.revisions is None:
            await self._reply(update, texts.DONE_USAGE)
            return
        user_id, _ = _ids(update)
        await self._reply(update, texts.todo_done(await self.revisions.done(user_id, number)))

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """/status: per section notes, words, drafted, open TODOs and what is thin."""
        assert self.revisions is not None
        user_id, _ = _ids(update)
        title, rows = await self.revisions.status(user_id)
        await self._reply(update, texts.status(title, rows))

    def wake_spoken(self) -> None:
        """A spoken instruction was transcribed: revise (in the background) what is due."""
        if self.revisions is None:
            return
        self._spoken_due = True
        if self._spoken_task is None or self._spoken_task.done():
            # The application's task: a stop lets it finish (bounded by the LLM timeout).
            self._spoken_task = self._app.create_task(
                self._spoken_loop(), name="spoken-instructions"
            )

    async def _spoken_loop(self) -> None:
        while self._spoken_due:
            self._spoken_due = False
            try:
                await self.run_spoken_instructions()
            except Exception:
                log.exception("Spoken instructions could not be revised; trying at the next one")

    async def run_spoken_instructions(self) -> None:
        """Revise every transcribed spoken instruction, each answered under its voice note."""
        assert self.revisions is not None
        while (claimed := await self.revisions.next_spoken()) is not None:
            owner_id, note_id = claimed
            outcome = await self.revisions.revise_spoken(owner_id, note_id)
            if outcome is None:
                continue
            if isinstance(outcome, FailedInstruction):
                text = (
                    texts.revision_failed(outcome.message)
                    if outcome.message
                    else texts.REVISION_WENT_WRONG
                )
                await self.chat.send(outcome.chat_id, text, reply_to=outcome.reply_to)
                continue
            await self.chat.send(
                outcome.chat_id, texts.spoken_revised(outcome), reply_to=outcome.reply_to
            )
            await self._show_section(owner_id, outcome.chat_id, outcome)

    async def _replied_section(
        self, message: Message, user_id: int, chat_id: int
    ) -> SectionRef | None:
        replied = message.reply_to_message
        if replied is None or self.revisions is None:
            return None
        return await self.revisions.section_of_message(user_id, chat_id, replied.message_id)

    async def _send_pieces(
        self, chat_id: int, pieces: tuple[Piece, ...], markup: InlineKeyboardMarkup | None = None
    ) -> list[tuple[int, int]]:
        """Send a draft's pieces; (section id, message id) of every message showing a section.
        `markup` goes under the last message."""
        messages = [
            (piece.section_id, html)
            for piece in pieces
            for html in markdown_to_messages(piece.markdown)
        ]
        shown: list[tuple[int, int]] = []
        for index, (section_id, html) in enumerate(messages):
            last = index == len(messages) - 1
            sent = await self.chat.send(chat_id, html, reply_markup=markup if last else None)
            if sent is not None and section_id is not None:
                shown.append((section_id, sent.message_id))
        return shown

    async def _drop_buttons(self, chat_id: int, message: object) -> None:
        if isinstance(message, Message):
            with contextlib.suppress(TelegramError):
                await self.chat.bot.edit_message_reply_markup(
                    chat_id, message.message_id, reply_markup=None
                )

    # helpers ---------------------------------------------------------------------------
    async def _reply(
        self, update: Update, html: str, markup: InlineKeyboardMarkup | None = None
    ) -> None:
        chat = update.effective_chat
        if chat is None:
            return
        message = update.effective_message
        await self.chat.send(
            chat.id, html, reply_to=message.message_id if message else None, reply_markup=markup
        )


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Expected failures show their message; anything else is logged and apologised for."""
    error = context.error
    chat_id = (
        update.effective_chat.id if isinstance(update, Update) and update.effective_chat else None
    )
    if isinstance(error, UserError):
        text = escape(error.message)
    else:
        log.error("Unhandled error while processing an update", exc_info=error)
        text = texts.SOMETHING_WENT_WRONG
    if chat_id is None:
        return
    if isinstance(update, Update) and update.callback_query is not None:
        try:
            await update.callback_query.answer(texts.alert(text), show_alert=True)
        except Exception:
            log.debug("Could not answer callback query", exc_info=True)
        return
    chat: TelegramChat = context.bot_data["chat"]
    await chat.send(chat_id, text)


def _media(message: Message) -> IncomingMedia | None:
    recordings = (
        (NoteKind.VOICE, message.voice),
        (NoteKind.AUDIO, message.audio),
        (NoteKind.VIDEO, message.video_note),
        (NoteKind.VIDEO, message.video),
    )
    for kind, media in recordings:
        if media is not None:
            return IncomingMedia(
                kind, media.file_id, media.file_unique_id, _secs(media.duration), media.file_size
            )
    if message.document:
        d = message.document
        return IncomingMedia(NoteKind.AUDIO, d.file_id, d.file_unique_id, None, d.file_size)
    return None


def _origin(message: Message) -> tuple[str, str | None] | None:
    """Where a forwarded message came from, and the post's public link when it has one."""
    origin = message.forward_origin
    if origin is None:
        return None
    if isinstance(origin, MessageOriginChannel):
        chat = origin.chat
        username = chat.username
        name = chat.title or (f"@{username}" if username else "a channel")
        if username and chat.title:
            name = f"{chat.title} (@{username})"
        link = f"https://t.me/{username}/{origin.message_id}" if username else None
        return name, link
    if isinstance(origin, MessageOriginChat):
        chat = origin.sender_chat
        title = chat.title or "a chat"
        return (f"{title} (@{chat.username})" if chat.username else title), None
    if isinstance(origin, MessageOriginUser):
        return origin.sender_user.full_name, None
    if isinstance(origin, MessageOriginHiddenUser):
        return origin.sender_user_name, None
    return "a forwarded message", None


def _secs(duration: object) -> int | None:
    total = getattr(duration, "total_seconds", None)
    if callable(total):
        return int(total())
    return int(duration) if isinstance(duration, int | float) else None


def _message(update: Update) -> Message:
    message = update.effective_message
    assert message is not None  # the handlers are registered for message updates only
    return message


def _ids(update: Update) -> tuple[int, int]:
    user, chat = update.effective_user, update.effective_chat
    assert user is not None and chat is not None  # check_access ran first
    return user.id, chat.id


def _command_argument(update: Update, *, keep_lines: bool = False) -> str:
    text = (update.effective_message.text if update.effective_message else "") or ""
    parts = text.split(maxsplit=1)
    if len(parts) < 2:
        return ""
    if keep_lines:  # a list of terms may come one a line
        return "\n".join(" ".join(line.split()) for line in parts[1].splitlines()).strip()
    return " ".join(parts[1].split())


def _int_argument(update: Update) -> int | None:
    argument = _command_argument(update).split()
    if not argument:
        return None
    try:
        return int(argument[0].lstrip("#"))
    except ValueError:
        return None


_NOT_A_NUMBER = -1


def _optional_number(update: Update) -> int | None:
    """`/cmd` gives None, `/cmd 3` gives 3, `/cmd three` gives _NOT_A_NUMBER."""
    if not _command_argument(update):
        return None
    number = _int_argument(update)
    return _NOT_A_NUMBER if number is None else number


async def _on_version_button(
    query: CallbackQuery, act: Callable[[int], Awaitable[T]]
) -> T | None:
    """Run a section-version button's action on the version id in its data; None (the
    writer told why) when the data is forged or stale or the service refuses."""
    try:
        _, ids = keyboards.parse(query.data or "")
        return await act(ids[0])
    except (ValueError, IndexError):
        await query.answer(texts.BUTTON_EXPIRED, show_alert=True)
    except UserError as exc:
        await query.answer(texts.alert(exc.message), show_alert=True)
    return None

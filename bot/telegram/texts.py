"""Everything the bot says, in one place (Telegram HTML; dynamic parts are escaped)."""

from __future__ import annotations

from bot.domain import (
    ArticleInfo,
    FiledPart,
    NoteCard,
    NoteKind,
    Notice,
    NoticeKind,
    Outline,
    SectionInfo,
)
from bot.drafting.markdown import stamp
from bot.drafting.revisions import HistoryLine, Revised, SectionStatus, TodoItem
from bot.drafting.service import DraftResult
from bot.notes.lifecycle import FailureCode, NoteState
from bot.notes.manage import AcceptedSection, FiledNote, Moved, SectionNotes, Undone
from bot.notes.vocabulary import AUTO, LANGUAGES, FixResult, GlossaryChange, LanguageSetting
from bot.publish.git import GitFailure
from bot.publish.service import GitResult, PublishReport, TelegraphResult
from bot.render import escape, shorten
from bot.services.usage import UsageSummary
from bot.sources.model import SourceCard, SourceFailure, SourceKind, SourceStatus

HELP = """\
I turn your voice notes into an article draft.

<b>How to begin</b>
1. /new <i>title</i> starts an article.
2. /outline, then one section title a line (in the same message), sets its sections.
3. Pick a section with /section <i>n</i> (or the buttons under /sections) and talk: \
voice notes, audio and video files, round video notes and text messages go to that section, \
or to the sections whose titles you say aloud.
   Links, photos, PDFs and other documents, and posts you forward are filed there too, as \
sources: material the draft cites and lists under “Sources”, apart from your own words.
4. /draft turns your notes into a structured draft (in English unless set otherwise).

<b>Commands</b>
/new <i>title</i> – start a new article and make it active
/outline – set the sections (titles on the following lines)
/sections – the outline with note counts; buttons pick the active section
/section <i>n</i> – make section n active
/articles – your articles; /use <i>n</i> switches to article n
/draft – draft the whole article; /draft <i>n</i> – only section n
Reply to a section of the draft (typed or spoken) to revise it, or /revise <i>n</i> \
<i>instruction</i>; the ↩️ Undo and ✅ Keep buttons come with the revised section
/history [<i>n</i>] – the versions of the article or of section n
/todo – the draft's TODOs; /done <i>n</i> ticks one
/status – per section: notes, words, drafted, TODOs and what is still thin
/export – the latest draft as a markdown file (a .zip with its images when it has figures); \
/export html or /export docx – as a web page \
or a Word file; /export notes – all transcripts
/publish – the latest draft to your git repository and/or a Telegraph page; \
/publish git or /publish telegraph – to one of them
/notes [<i>n</i>] – the notes of section n (or the active one), to move or delete
/undo – delete your last note
/cancel – stop the transcription that is running
/retry – try set-aside recordings again
/usage – audio minutes and LLM tokens used this month
/language ru|en|auto – the language you speak in (/language alone shows it)
/glossary – your names and terms; /glossary add <i>T1, T2</i>; /glossary remove <i>T</i>
/fix <i>wrong</i> -> <i>right</i> – correct a word in this article's notes (and learn it)
/help – this message"""

START_GREETING = "Hi! " + HELP

REFUSAL = "Sorry, this is a private bot. Ask its owner to add your Telegram user id."

NEW_USAGE = "Give the article a title, e.g. <code>/new Where data engineering ends</code>"
SECTION_USAGE = "Which section? Send its number, e.g. <code>/section 2</code> (see /sections)."
USE_USAGE = "Which article? Send its number, e.g. <code>/use 2</code> (see /articles)."
NO_ARTICLE = "You have no article yet. Start one with /new <i>title</i>, or just send a note."
UNSUPPORTED_FILE = (
    "I can only file voice notes, audio and video files, round video notes, text messages, "
    "links, photos, PDFs and text documents, and transcripts as .txt or .md files. "
    "That wasn't stored."
)
IMPORT_TOO_BIG = "That transcript file is over 1 MB; split it into smaller files."
IMPORT_NOT_UTF8 = "I couldn't read that file as text (it should be UTF-8)."
SOMETHING_WENT_WRONG = (
    "Sorry, something went wrong on my side. Your notes are safe; please try again."
)


def outline(outline: Outline, heading: str | None = None) -> str:
    lines = [heading or f"<b>{escape(outline.article.title)}</b>"]
    for section in outline.sections:
        marker = "▶️" if section.is_active else "▫️"
        count = _notes(section.note_count)
        if section.source_count:
            count += f" ({_sources(section.source_count)})"
        lines.append(f"{marker} {section.number}. {escape(section.title)} — {count}")
    if outline.kept_for_notes:
        kept = ", ".join(f"“{escape(t)}”" for t in outline.kept_for_notes)
        holds = "it holds" if len(outline.kept_for_notes) == 1 else "they hold"
        lines.append(f"\nKept {kept} at the end because {holds} notes.")
    active = outline.active_section
    if active:
        lines.append(f"\nNew notes go to <b>{active.number}. {escape(active.title)}</b>.")
    return "\n".join(lines)


def article_created(outline_: Outline) -> str:
    return (
        f"Started “<b>{escape(outline_.article.title)}</b>”. It is your active article.\n"
        "Set its sections with /outline and one title a line, or just start talking: "
        "notes go to “Notes” until then."
    )


def outline_set(outline_: Outline) -> str:
    return outline(outline_, f"Outline of “<b>{escape(outline_.article.title)}</b>”:")


def section_chosen(outline_: Outline) -> str:
    active = outline_.active_section
    assert active is not None
    return (
        f"New notes now go to <b>{active.number}. {escape(active.title)}</b> "
        f"in “{escape(outline_.article.title)}”."
    )


def articles(items: list[ArticleInfo]) -> str:
    if not items:
        return NO_ARTICLE
    lines = ["<b>Your articles</b>"]
    for item in items:
        marker = "▶️" if item.is_active else "▫️"
        lines.append(f"{marker} {item.number}. {escape(item.title)} — {_notes(item.note_count)}")
    lines.append("\nSwitch with /use <i>n</i>.")
    return "\n".join(lines)


def article_switched(outline_: Outline) -> str:
    return outline(outline_, f"Switched to “<b>{escape(outline_.article.title)}</b>”.")


# A note's card: the message that acknowledges a note, then shows its progress, its transcript
# and where it was filed, or why it was not (bot/notes/cards.py builds it from the database).

NOTE_REMOVED = "↩️ Removed before it was transcribed."
ALREADY_IMPORTED = "I already have that transcript; nothing new was filed."
KEPT_AND_RETRYING = "Your recording is kept; I'll try again in a few minutes."
SET_ASIDE = "I set the recording aside: the button below (or /retry) tries it again."

FAILURES = {
    FailureCode.NO_SPEECH: "I couldn't hear any speech in that recording, so I didn't file it.",
    FailureCode.UNREADABLE: (
        "I couldn't read that recording (the file looks damaged or isn't audio). "
        "Nothing was filed; please send it again."
    ),
    FailureCode.CUT_OFF: (
        "That recording looks cut off (it is much shorter than Telegram says), so I didn't "
        "file it. Please send it again."
    ),
    FailureCode.DOWNLOAD_FAILED: "I couldn't download that recording from Telegram.",
    FailureCode.CANCELLED: "Transcription cancelled. Nothing was filed.",
    FailureCode.GAVE_UP: "I couldn't transcribe that recording after several tries.",
    FailureCode.SERVICE_DOWN: "The transcription service isn't answering right now.",
    FailureCode.SERVICE_REFUSED: (
        "The transcription service refused the request (its API key, model or quota needs a "
        "look)."
    ),
    FailureCode.TOO_LARGE_FOR_SERVICE: (
        "That recording is over 25 MB, more than the transcription service takes. "
        "Please send a shorter one."
    ),
}


def note_card(card: NoteCard) -> str:
    if card.instruction_for is not None:
        return instruction_card(card)
    where = f"<b>{card.section_number}. {escape(card.section_title)}</b>"
    started = (
        f"(You had no article, so I started “{escape(card.started_article)}”. "
        "Give it sections with /outline.)\n"
        if card.started_article
        else ""
    )
    if card.state == NoteState.FILED:
        if card.imported:
            when = stamp(card.created_at) if card.created_at else "an earlier day"
            return f"{started}📥 Imported the transcript of {when} into {_places(card.parts)}."
        if card.kind == NoteKind.TEXT:
            return f"{started}📝 Filed under {_places(card.parts) or where}."
        return started + _filed(card)
    if card.state == NoteState.FAILED:
        reason = FAILURES[card.failure] if card.failure else FAILURES[FailureCode.UNREADABLE]
        return f"⚠️ {escape(reason)}" + (f" {SET_ASIDE}" if card.retryable else "")
    if card.failure is not None:  # queued again after a service was down
        return f"⏳ {escape(FAILURES[card.failure])} {KEPT_AND_RETRYING}"
    if card.partial:  # a long recording: its transcript as it grows
        done = f" {int(card.progress * 100)}%" if card.progress is not None else ""
        return f"🎙 Transcribing…{done} So far:\n\n{escape(card.partial)}"
    if card.progress is not None:
        return f"🎙 Transcribing… {int(card.progress * 100)}%"
    return f"{started}🎙 Got it. Transcribing for {where}…"


def _places(parts: list[FiledPart]) -> str:
    seen: list[str] = []
    for part in parts:
        place = f"<b>{part.section_number}. {escape(part.section_title)}</b>"
        if place not in seen:
            seen.append(place)
    return ", ".join(seen)


def _filed(card: NoteCard) -> str:
    heard = f" ({escape(language_name(card.language))})" if card.language else ""
    if len(card.parts) <= 1:
        part = card.parts[0] if card.parts else None
        where = (
            f"<b>{part.section_number}. {escape(part.section_title)}</b>"
            if part
            else f"<b>{card.section_number}. {escape(card.section_title)}</b>"
        )
        caption = f"<i>{escape(card.caption)}</i>\n\n" if card.caption else ""
        text = f"✅ Filed under {where}{heard}:\n\n{caption}{escape(card.transcript)}"
    else:
        lines = [
            f"✅ You spoke section titles, so I filed this note in {len(card.parts)} parts{heard}:"
        ]
        for index, part in enumerate(card.parts, start=1):
            lines.append(
                f"\n<b>Part {index} → {part.section_number}. {escape(part.section_title)}</b>\n"
                f"{escape(part.text)}"
            )
        text = "\n".join(lines)
    if card.suggestions:
        spoken = ", ".join(f"“{escape(s.title)}”" for s in card.suggestions)
        text += (
            f"\n\nYou also spoke {spoken}, not in the outline yet: "
            "the buttons below add it as a section."
        )
    if card.other_languages and card.language:
        text += (
            f"\n\nI heard this as {escape(language_name(card.language))}. If you spoke another "
            "language, tap it below and I'll transcribe the note again."
        )
    return text


def again_in(code: str) -> str:
    return f"🔁 {language_name(code)}"


AGAIN_QUEUED = "Transcribing it again…"
AGAIN_GONE = "This note can't be transcribed again now (it was deleted or is in work)."


def notice(item: Notice) -> str:
    if item.kind == NoticeKind.RESUMED:
        noun = "note" if item.count == 1 else "notes"
        return f"I restarted and am resuming {item.count} unfinished {noun}. Transcripts follow."
    raise ValueError(item.kind)


def retried(count: int) -> str:
    if not count:
        return "There is no set-aside recording to try again."
    noun = "recording" if count == 1 else "recordings"
    return f"🔁 Trying {count} {noun} again; the transcripts follow."


def too_big(size_bytes: int, limit_bytes: int) -> str:
    return (
        f"That recording is {size_bytes / 1_048_576:.1f} MB, and Telegram lets bots download "
        f"at most {limit_bytes // 1_048_576} MB. Please send a shorter one (or split it)."
    )


def cancelled(running: bool) -> str:
    return "Stopping the current transcription…" if running else "Nothing is being transcribed."


def _notes(count: int) -> str:
    return f"{count} note" if count == 1 else f"{count} notes"


DRAFTING = "✍️ Drafting… this can take a minute."
DRAFT_USAGE = "Send /draft for the whole article, or /draft <i>n</i> for section n."
EXPORT_USAGE = (
    "Send /export for the draft as markdown, /export html for a web page, /export docx for "
    "Word or Google Docs, or /export notes for all transcripts."
)
HTML_EXPORT_CAPTION = "The latest draft as a web page: open it in any browser."
DOCX_EXPORT_CAPTION = "The latest draft for Word or Google Docs, footnotes included."
PUBLISHING = "📤 Publishing the latest draft…"
PUBLISH_USAGE = (
    "Send /publish for every place publishing is set up for, or /publish git or "
    "/publish telegraph for one of them."
)

_GIT_FAILURES = {
    GitFailure.NOT_A_REPOSITORY: "PUBLISH_GIT_DIR is not the top folder of a git repository "
    "(or does not exist)",
    GitFailure.NOT_ON_BRANCH: "the repository is not on a branch (detached HEAD): check out "
    "a branch first",
    GitFailure.DIRTY: "the repository has uncommitted changes: commit or stash them, then "
    "/publish again",
    GitFailure.CONFLICT: "the repository is in the middle of a merge or rebase: finish it "
    "first",
    GitFailure.OUTSIDE_REPOSITORY: "PUBLISH_GIT_SUBDIR points outside the repository",
    GitFailure.PUSH_REJECTED: "the remote has commits this repository doesn't: pull them, "
    "then /publish again",
    GitFailure.PUSH_FAILED: "pushing failed: the remote is unreachable or refused the "
    "credentials",
    GitFailure.BRANCH_MOVED: "something else committed at the same moment: /publish again",
    GitFailure.TIMEOUT: "git took too long",
    GitFailure.GIT_MISSING: "git is not installed where the bot runs",
    GitFailure.FAILED: "git failed",
}


def publish_report(report: PublishReport) -> str:
    """Per target, what happened to the published draft version."""
    lines = [
        f"📤 “<b>{escape(report.article_title)}</b>”, draft version {report.version_number} "
        f"({stamp(report.version_created_at)}):"
    ]
    if report.git is not None:
        lines.append(_git_result(report.git))
    if report.telegraph is not None:
        lines.append(_telegraph_result(report.telegraph))
    return "\n".join(lines)


def _git_result(result: GitResult) -> str:
    where = f"<code>{escape(result.destination)}</code>"
    if result.taken_by_other:
        return (
            f"⚠️ Git: another article is already published as {where}; give this one another "
            "title to publish it. Nothing was changed in the repository."
        )
    outcome = result.outcome
    if outcome is None:
        reason = _GIT_FAILURES.get(result.failure or GitFailure.FAILED, "git failed")
        return f"⚠️ Git: {escape(reason)}. Nothing was changed in the repository."
    commit = f"<code>{escape(outcome.commit)}</code>"
    if not outcome.committed:
        since = f" since commit {commit}" if outcome.commit else ""
        return f"✅ Git: nothing new{since}, so no commit."
    text = f"✅ Git: committed {commit} ({where})"
    if outcome.pushed_to:
        text += f", pushed to {escape(outcome.pushed_to)}"
    elif outcome.push_skipped == "no_remote":
        text += "; not pushed: the repository has no remote"
    return text + "."


def _figures(count: int) -> str:
    return "Its figure is" if count == 1 else f"Its {count} figures are"


def _telegraph_result(result: TelegraphResult) -> str:
    if not result.failure:
        link = f'<a href="{escape(result.url)}">{escape(result.url)}</a>'
        state = "new page" if result.created else "updated"
        if result.pages > 1:
            state += f", in {result.pages} linked pages"
        text = f"✅ Telegraph ({state}): {link}"
        if result.created:
            text += "\nAnyone with the link can read it."
        if result.figures_left_out:
            text += (
                f"\n{_figures(result.figures_left_out)} not on the page (Telegraph no longer "
                "takes new images); /export html and /export docx have them."
            )
        return text
    if result.failure == "unavailable":
        return "⚠️ Telegraph did not answer; please try again later."
    if result.failure == "too_big":
        return (
            f"⚠️ Telegraph: the draft is too long (it would take {result.pages} pages, at most "
            f"{result.max_pages}). /export html makes a single page of it."
        )
    if result.failure.startswith("FLOOD_WAIT_"):
        seconds = result.failure.removeprefix("FLOOD_WAIT_")
        return f"⚠️ Telegraph asks to wait {escape(seconds)} s before publishing again."
    return f"⚠️ Telegraph refused the page ({escape(result.failure)})."


def draft_summary(result: DraftResult) -> str:
    lines = [_draft_summary(result)]
    waiting = result.unfinished_notes
    if waiting:
        noun = "note is" if waiting == 1 else "notes are"
        lines.append(f"⏳ {waiting} {noun} still being transcribed and not in it yet.")
    reading = result.pending_sources
    if reading:
        noun = "source is" if reading == 1 else "sources are"
        lines.append(f"⏳ {reading} {noun} still being read: only the link is in it so far.")
    if result.revisions_reapplied:
        count = result.revisions_reapplied
        yours = "your revision" if count == 1 else f"your {count} revisions"
        lines.append(
            f"✏️ Applied {yours} again to the redrafted sections, in order (/history shows "
            "them)."
        )
    lines += draft_notices(result)
    return "\n".join(lines)


def _draft_summary(result: DraftResult) -> str:
    if result.from_stored:
        return "Nothing new since the last draft, so here it is again."
    if result.section_number is not None:
        if not result.sections_with_notes:
            return f"✍️ Section {result.section_number} has no notes yet."
        state = "redrafted" if result.sections_regenerated else "unchanged since the last draft"
        return f"✍️ Section {result.section_number}: {state}.{coverage(result)}"
    unchanged = result.sections_with_notes - result.sections_regenerated
    return (
        f"✍️ Draft ready: {result.sections_regenerated} of {result.sections_with_notes} "
        f"sections with notes redrafted, {unchanged} unchanged.{coverage(result)} "
        "The .md file follows."
    )


def draft_notices(result: DraftResult, *, html: bool = True) -> list[str]:
    """What happened to particular sections: answers cut off, or nothing returned."""
    show = escape if html else str
    notices = []
    for section in result.sections:
        if not section.regenerated:
            continue
        name = f"{section.number}. {show(section.title)}"
        if section.empty:
            notices.append(
                f"⚠️ Section {name}: the model returned nothing for this section. "
                f"Your notes are kept; send /draft {section.number} to try again."
            )
        elif section.cut_off:
            notices.append(
                f"✂️ Section {name}: the model's answer was cut off, so I drafted it in "
                f"{section.answers} smaller parts. Read it through: a part may be thinner."
            )
    return notices


def coverage(result: DraftResult) -> str:
    figures = result.figures
    if not figures.checked:
        return ""
    if not figures.points_total:
        return (
            "\nCheck: nothing the checker said could be found in your notes, so it changed "
            "nothing."
        )
    restored = f", restored {figures.points_restored}" if figures.points_restored else ""
    removed = (
        f" ({figures.citations_removed} unsupported removed)" if figures.citations_removed else ""
    )
    line = (
        f"\nKept {figures.points_kept}/{figures.points_total} verified points{restored}; "
        f"citations checked{removed}."
    )
    if figures.claims_ignored:
        ignored = figures.claims_ignored
        line += f" Ignored {ignored} claim(s) of the checker not found in your notes."
    if figures.inconclusive:
        line += (
            f" In {figures.inconclusive} section(s) the check verified nothing, so it changed "
            "nothing there."
        )
    return line


def usage(summary: UsageSummary) -> str:
    lines = [f"<b>Usage in {summary.month_start:%B %Y}</b> (UTC)"]
    if not summary.notes_transcribed and not summary.llm:
        lines.append("Nothing transcribed or drafted yet this month.")
        return "\n".join(lines)
    minutes = summary.audio_seconds / 60
    lines.append(
        f"🎙 Audio transcribed: {minutes:.1f} min in {_recordings(summary.notes_transcribed)}"
    )
    if not summary.llm:
        lines.append("🤖 LLM: no requests yet.")
        return "\n".join(lines)
    about = "≈" if summary.estimated else ""
    lines.append(
        f"🤖 LLM tokens: {about}{summary.input_tokens:,} in, {about}{summary.output_tokens:,} out"
    )
    for line in summary.llm:
        about = "≈" if line.estimated else ""
        requests = "1 request" if line.requests == 1 else f"{line.requests:,} requests"
        lines.append(
            f"• {line.purpose} ({escape(line.model)}): {about}{line.input_tokens:,} in, "
            f"{about}{line.output_tokens:,} out, {requests}"
        )
    if summary.estimated:
        lines.append("≈ estimated: the LLM endpoint did not report token counts.")
    return "\n".join(lines)


def _recordings(count: int) -> str:
    return "1 recording" if count == 1 else f"{count:,} recordings"


def draft_failed(message: str) -> str:
    return f"⚠️ {escape(message)}"


def section_notes(page: SectionNotes, start: int | None = None) -> str:
    section = page.section
    header = f"<b>{section.number}. {escape(section.title)}</b> — {_notes(len(page.notes))}"
    if not page.notes:
        return f"{header}\n\nNothing filed here yet."
    shown = listed_notes(page, start)
    lines = [header, ""]
    if len(shown) < len(page.notes):
        lines.append(f"Notes {shown[0][0]}–{shown[-1][0]}; the arrows page through the rest.\n")
    for index, note in shown:
        when = stamp(note.created_at)
        icon = KIND_ICONS.get(note.kind.value, "•")
        lines.append(f"{index}. {icon} {when}: {escape(note.preview)}")
    lines.append("\nThe buttons move (↪️) or delete (🗑) a note.")
    return "\n".join(lines)


# Two buttons a note; Telegram's keyboards stop at about a hundred buttons.
NOTES_LISTED = 20


def page_start(page: SectionNotes, start: int | None) -> int:
    """Where a page of /notes begins: the latest notes unless a page was asked for."""
    latest = max(0, len(page.notes) - NOTES_LISTED)
    return latest if start is None else min(max(0, start), latest)


def listed_notes(page: SectionNotes, start: int | None = None) -> list[tuple[int, FiledNote]]:
    """One page of /notes, numbered as in the whole section."""
    first = page_start(page, start)
    return list(enumerate(page.notes, start=1))[first : first + NOTES_LISTED]


KIND_ICONS = {"voice": "🎙", "audio": "🎧", "video": "📹", "text": "📝"}


def move_prompt(preview: str) -> str:
    return f"Move “{escape(preview)}” to which section?"


def moved(result: Moved) -> str:
    return (
        f"↪️ Moved “{escape(result.preview)}” from {result.from_section.number}. "
        f"{escape(result.from_section.title)} to <b>{result.to_section.number}. "
        f"{escape(result.to_section.title)}</b>. Both sections will be redrafted at the next "
        "/draft."
    )


def deleted(preview: str) -> str:
    return f"🗑 Deleted “{escape(preview)}”. Its section will be redrafted at the next /draft."


def undone(note: Undone) -> str:
    if note.pending:
        return "↩️ Removed your last note (it was still being transcribed)."
    if note.failed:
        return "↩️ Removed your last recording; it had not been filed anyway."
    return f"↩️ Removed your last note: “{escape(note.preview)}”."


def edited(section_title: str) -> str:
    return f"✏️ Updated your note in “{escape(section_title)}”."


def file_too_big_to_send(filename: str, size: int) -> str:
    return (
        f"{escape(filename)} is {size / 1_048_576:.0f} MB, more than Telegram lets a bot send "
        "(50 MB). Try /export for the draft alone."
    )


NOWHERE_TO_MOVE = "This article has only one section. Add sections with /outline first."
MOVED_SHORT = "Moved"
DELETED_SHORT = "Deleted"
BUTTON_EXPIRED = "That button has expired."
NOTES_USAGE = "Send /notes for the active section or /notes <i>n</i>."
NOTES_EXPORT_CAPTION = "All your transcripts, grouped by section."
DRAFT_EXPORT_CAPTION = "The latest draft."
UNKNOWN_COMMAND = "I don't know that command. Send /help for the list."
IMPORT_DOWNLOAD_FAILED = "I couldn't download that file from Telegram. Please send it again."
# Telegram allows 200 characters in a button's alert.
ALERT_LIMIT = 190


def alert(text: str) -> str:
    return shorten(text, ALERT_LIMIT)


def now_filing_under(section: SectionInfo) -> str:
    return alert(f"Now filing under {section.number}. {section.title}")


ADDED_SHORT = "Section added"


def section_added(accepted: AcceptedSection) -> str:
    section = accepted.section
    head = f"➕ Added <b>{section.number}. {escape(section.title)}</b> to the outline."
    if not accepted.parts:
        return head
    where = ", ".join(f"{p.section_number}. {escape(p.section_title)}" for p in accepted.parts)
    return f"{head} The note is now filed under {where}."


# language, glossary, fix -----------------------------------------------------------------
GLOSSARY_USAGE = (
    "Use <code>/glossary</code> to list your terms, <code>/glossary add RAG, ingestion</code> "
    "to add some, <code>/glossary remove RAG</code> to remove one."
)
FIX_USAGE = (
    "Write what was misheard and how it should be: <code>/fix рагам -> RAG</code>. "
    "I replace it in this article's notes and add it to your glossary."
)


def language_name(code: str) -> str:
    if code == AUTO:
        return "detected for each note"
    return LANGUAGES.get(code, code)


def language_shown(setting: LanguageSetting) -> str:
    effective = setting.effective
    source = "the bot's default" if setting.chosen is None else "your setting"
    words = (
        "I detect the language of each note"
        if effective == AUTO
        else f"I transcribe your notes as <b>{escape(language_name(effective))}</b>"
    )
    return (
        f"{words} ({source}). Change it with /language ru, /language en or /language auto."
    )


def language_set(setting: LanguageSetting) -> str:
    if setting.effective == AUTO:
        return (
            "Done: I'll detect the language of each note. If you always speak one language, "
            "setting it (e.g. /language ru) is more reliable, above all when you mix in English."
        )
    name = escape(language_name(setting.effective))
    return f"Done: I'll transcribe your next notes as <b>{name}</b>."


def glossary(terms: list[str]) -> str:
    if not terms:
        return (
            "Your glossary is empty. Add the names and terms that speech recognition gets "
            "wrong: <code>/glossary add RAG, ingestion</code>"
        )
    lines = ["<b>Your glossary</b> (used when transcribing and drafting):"]
    lines += [f"{n}. {escape(term)}" for n, term in enumerate(terms, start=1)]
    return _fit("\n".join(lines))


def glossary_changed(change: GlossaryChange) -> str:
    parts = []
    if change.added:
        parts.append("Added " + ", ".join(f"“{escape(t)}”" for t in change.added) + ".")
    if change.already:
        parts.append(
            "Already there: " + ", ".join(f"“{escape(t)}”" for t in change.already) + "."
        )
    parts.append(f"Your glossary has {_terms(len(change.glossary))} (see /glossary).")
    return " ".join(parts)


def glossary_removed(term: str, remaining: list[str]) -> str:
    return f"Removed “{escape(term)}”. Your glossary has {_terms(len(remaining))}."


def fixed(result: FixResult) -> str:
    wrong, right = escape(result.wrong), escape(result.right)
    if not result.notes_changed:
        text = f"I found no “{wrong}” in this article's notes, so nothing changed."
    else:
        notes = "1 note" if result.notes_changed == 1 else f"{result.notes_changed} notes"
        text = f"Replaced “{wrong}” with “{right}” in {notes}."
        if result.sections:
            where = ", ".join(f"{n}. {escape(title)}" for n, title in result.sections)
            text += f" The next /draft redrafts {where}."
    if result.added_to_glossary:
        text += f" “{right}” is now in your glossary."
    return _fit(text)


def _terms(count: int) -> str:
    return "1 term" if count == 1 else f"{count} terms"


def _fit(html: str) -> str:
    """Within one Telegram message; the rest is cut at a line (tags are per line here)."""
    limit = 4000
    if len(html) <= limit:
        return html
    cut = html.rfind("\n", 0, limit)
    return html[: cut if cut > 0 else limit] + "\n…"


# sources ---------------------------------------------------------------------------------
SOURCE_FAILURES = {
    SourceFailure.PRIVATE_ADDRESS: "it is on a private or local network address, which I "
    "don't fetch (LINK_FETCH_ALLOW_PRIVATE=true allows it)",
    SourceFailure.UNREACHABLE: "the site could not be reached",
    SourceFailure.TIMED_OUT: "the page took too long to load",
    SourceFailure.TOO_LARGE: "the page is too large",
    SourceFailure.NOT_A_PAGE: "it is not a web page or plain text",
    SourceFailure.HTTP_ERROR: "the site answered with an error",
    SourceFailure.TOO_MANY_REDIRECTS: "it redirects too many times",
    SourceFailure.NO_TEXT: "I found no readable text on it",
    SourceFailure.NO_VISION: "the LLM endpoint doesn't accept images (set VISION_MODEL to a "
    "model that does)",
    SourceFailure.VISION_DOWN: "the LLM endpoint did not answer",
    SourceFailure.NO_LLM: "no LLM endpoint is configured to describe images",
    SourceFailure.IMAGE_TOO_LARGE: "it is larger than I send to the image model "
    "(VISION_MAX_IMAGE_BYTES); a photo sent as a photo, not as a file, comes in smaller sizes",
    SourceFailure.DOWNLOAD_FAILED: "Telegram would not hand the file over",
    SourceFailure.UNREADABLE: "I found no text in it (a scan, or a damaged or locked file)",
    SourceFailure.GAVE_UP: "reading it failed several times",
}
SOURCE_ICONS = {
    SourceKind.LINK: "🔗",
    SourceKind.IMAGE: "🖼",
    SourceKind.DOCUMENT: "📄",
    SourceKind.POST: "📣",
}


def _sources(count: int) -> str:
    return f"{count} source" if count == 1 else f"{count} sources"


def source_card(card: SourceCard) -> str:
    """A source note's acknowledgement: what it is, where it was filed, what was read."""
    where = f"<b>{card.section_number}. {escape(card.section_title)}</b>"
    started = (
        f"(You had no article, so I started “{escape(card.started_article)}”. "
        "Give it sections with /outline.)\n"
        if card.started_article
        else ""
    )
    icon = SOURCE_ICONS[card.kind]
    reason = escape(SOURCE_FAILURES[card.failure]) if card.failure else ""
    caption = f"\n\n<i>{escape(card.caption)}</i>" if card.caption else ""
    if card.kind is SourceKind.LINK:
        url = escape(card.url or "")
        if card.status is SourceStatus.PENDING:
            return f"{started}{icon} Got the link; reading the page for {where}…\n{url}"
        if card.status is SourceStatus.FAILED:
            return (
                f"{started}⚠️ I couldn't read {url}: {reason}. "
                f"The link is kept as a source under {where}."
            )
        title = escape(card.title or card.url or "")
        return f"{started}{icon} Filed as a source under {where}: <b>{title}</b>\n{url}"
    if card.kind is SourceKind.IMAGE:
        if card.status is SourceStatus.PENDING:
            return f"{started}{icon} Got the image; describing it for {where}…{caption}"
        if card.status is SourceStatus.FAILED:
            kept = "with its caption" if card.caption else "without a description"
            return (
                f"{started}⚠️ I couldn't describe the image: {reason}. "
                f"It is kept {kept} as a source under {where}.{caption}"
            )
        return (
            f"{started}{icon} Filed the image as a source under {where}.{caption}\n\n"
            f"{escape(card.description)}"
        )
    if card.kind is SourceKind.DOCUMENT:
        name = f"<b>{escape(card.file_name or 'document')}</b>"
        if card.status is SourceStatus.PENDING:
            return f"{started}{icon} Got {name}; reading its text for {where}…"
        if card.status is SourceStatus.FAILED:
            return (
                f"{started}⚠️ I couldn't read {name}: {reason}. "
                f"It is kept as a source under {where}."
            )
        opening = f"\n\n{escape(card.description)}" if card.description else ""
        return f"{started}{icon} Filed {name} as a source under {where}.{opening}"
    origin = escape(card.origin or "a hidden sender")
    link = f"\n{escape(card.origin_url)}" if card.origin_url else ""
    return f"{started}{icon} Filed the post from {origin} as a source under {where}.{link}"


def file_too_big(size_bytes: int, limit_bytes: int) -> str:
    return (
        f"That file is {size_bytes / 1_048_576:.1f} MB, and Telegram lets bots download "
        f"at most {limit_bytes // 1_048_576} MB. Please send a smaller one."
    )


DRAFT_BUNDLE_CAPTION = "The latest draft with its images (.md and images/ in a .zip)."


# revising the draft -----------------------------------------------------------------------
REVISE_USAGE = (
    "Send /revise <i>n</i> <i>instruction</i>, e.g. <code>/revise 2 make it shorter</code>, "
    "or reply to a section of the draft with what to change."
)
HISTORY_USAGE = "Send /history for the whole article or /history <i>n</i> for section n."
DONE_USAGE = "Send /done <i>n</i> with the number of a TODO from /todo."
KEPT_SHORT = "Kept"
UNDONE_SHORT = "Undone"
CAUSES = {"draft": "drafted", "revision": "revised", "undo": "undone back"}


def revising(number: int) -> str:
    return f"✏️ Revising section {number}…"


def revised(result: Revised) -> str:
    where = f"<b>{result.section.number}. {escape(result.section.title)}</b>"
    change = f" {escape(result.change)}" if result.change else ""
    return (
        f"✏️ Revised {where} (version {result.version_number}).{change}\n"
        "Reply to it to change more; ↩️ Undo puts the previous text back."
    )


def spoken_revised(result: Revised) -> str:
    heard = escape(shorten(result.instruction, 300))
    return f"🎙 “{heard}”\n{revised(result)}"


def revision_undone(result: Revised) -> str:
    where = f"<b>{result.section.number}. {escape(result.section.title)}</b>"
    return f"↩️ Undone: {where} has its previous text again (version {result.version_number})."


def revision_kept(number: int) -> str:
    return alert(f"Kept: section {number} stays as revised.")


def revision_failed(message: str) -> str:
    return f"⚠️ {escape(message)} The section is unchanged."


REVISION_WENT_WRONG = (
    "⚠️ Sorry, something went wrong while revising. The section is unchanged; please try again."
)


def history(lines: list[HistoryLine], number: int | None) -> str:
    if not lines:
        where = f"Section {number} has" if number is not None else "This article has"
        return f"{where} no versions yet: send /draft first."
    out = ["<b>Versions</b> (oldest first, UTC):"]
    for line in lines:
        cause = CAUSES.get(line.cause, line.cause)
        detail = ""
        if line.instruction:
            detail = f": “{escape(shorten(line.instruction, 120))}”"
        if line.undone:
            detail += " (undone)"
        current = " ← current" if line.current else ""
        out.append(
            f"{line.section_number}.{line.version_number} {stamp(line.created_at)} · {cause}"
            f"{detail}{current}"
        )
    if number is None:
        out.append("Section.version; /history <i>n</i> shows one section.")
    return "\n".join(out)


def todos(items: list[TodoItem]) -> str:
    if not items:
        return "No TODOs in the current draft."
    lines = ["<b>TODOs</b> of the current draft:"]
    for item in items:
        box = "☑️" if item.done else "⬜"
        lines.append(
            f"{box} {item.number}. {escape(item.text)} "
            f"(<i>{item.section_number}. {escape(item.section_title)}</i>)"
        )
    lines.append("/done <i>n</i> ticks one.")
    return "\n".join(lines)


def todo_done(item: TodoItem) -> str:
    return f"☑️ Done: {escape(item.text)}. It stays ticked in later drafts."


THIN = {
    "no_notes": "no notes yet",
    "no_draft": "notes but no draft: send /draft",
    "stale": "the draft is older than its notes: send /draft",
}


def status(title: str, rows: list[SectionStatus]) -> str:
    lines = [f"<b>{escape(title)}</b>: where each section stands"]
    for row in rows:
        drafted = f"drafted, {row.versions} version(s)" if row.drafted else "not drafted"
        todo = f", {row.open_todos} open TODO(s)" if row.open_todos else ""
        words = f"{row.words:,} word(s)"
        line = (
            f"{row.number}. {escape(row.title)} — {_notes(row.notes)}, {words}, {drafted}{todo}"
        )
        if row.thin:
            line += f"\n   ⚠️ thin: {THIN[row.thin]}"
        lines.append(line)
    return "\n".join(lines)


def instruction_card(card: NoteCard) -> str:
    """A voice note that replied to a section: an instruction, never filed as a note."""
    assert card.instruction_for is not None
    number, title = card.instruction_for
    where = f"<b>{number}. {escape(title)}</b>"
    if card.state == NoteState.FILED:
        return f"🎙 Your instruction for {where}: “{escape(card.transcript)}”"
    if card.state == NoteState.FAILED:
        reason = FAILURES[card.failure] if card.failure else FAILURES[FailureCode.UNREADABLE]
        return f"⚠️ {escape(reason)}"
    return f"🎙 Got it: an instruction for {where}. Transcribing…"

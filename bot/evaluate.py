"""`python -m bot eval DIR`: run the draft pipeline on archived transcripts and print figures.

DIR holds `outline.txt` (one section title a line; a first line `# Title` names the article)
and transcripts in the archive format (front matter, then text). Everything happens in a
temporary database: the writer's own database is never opened.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.db.migrate import upgrade_to_head
from bot.db.session import create_engine, create_session_factory
from bot.domain import UserError
from bot.drafting.service import DraftResult, DraftService
from bot.notes.archive import ArchivedNote, ArchiveImporter, read_archive_folder

EVAL_USER = 1


@dataclass(frozen=True)
class EvalInput:
    title: str
    outline: list[str]
    notes: list[ArchivedNote]
    skipped: list[str]  # files that could not be read, with why


def read_eval_dir(directory: Path) -> EvalInput:
    """Read outline.txt and every transcript next to it (blocking; call before the loop)."""
    folder = read_archive_folder(directory, require_outline=True)
    if not folder.notes:
        raise UserError(f"{directory} has no readable transcripts next to outline.txt.")
    return EvalInput(folder.title or directory.name, folder.sections, folder.notes, folder.skipped)


async def run_eval(settings: Settings, data: EvalInput) -> tuple[DraftResult, str]:
    """Import, draft and check in a throwaway database; return the draft and the model."""
    from bot.app import build_writer

    writer = build_writer(settings)
    if writer is None:
        raise UserError("eval needs an LLM: set OPENAI_API_KEY and/or OPENAI_BASE_URL.")
    with tempfile.TemporaryDirectory(prefix="bot-eval-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'eval.db'}"
        upgrade_to_head(url)
        engine = create_engine(url)
        try:
            sessions = create_session_factory(engine)
            await ArchiveImporter(sessions).import_notes(
                EVAL_USER, EVAL_USER, data.title, data.outline, data.notes
            )
            result = await DraftService(sessions, writer, check=True).draft(EVAL_USER)
        finally:
            await engine.dispose()
            await writer.close()
    return result, writer.model


def format_report(result: DraftResult, model: str, note_count: int) -> str:
    rows = [
        f"model: {model}; notes: {note_count}; sections: {result.sections_total}",
        "",
        f"{'#':>2}  {'section':<44} {'notes':>5} {'points':>6} {'restored':>8} "
        f"{'cites':>5} {'removed':>7}",
    ]
    for report in result.sections:
        f = report.figures
        rows.append(
            f"{report.number:>2}  {report.title[:44]:<44} {report.notes:>5} {f.points_total:>6} "
            f"{f.points_restored:>8} {f.citations_checked:>5} {f.citations_removed:>7}"
        )
    total = result.figures
    kept = total.points_kept
    share = f"{kept / total.points_total:.0%}" if total.points_total else "n/a"
    cited = total.citations_checked - total.citations_removed
    cite_share = f"{cited / total.citations_checked:.0%}" if total.citations_checked else "n/a"
    rows += [
        "",
        f"coverage: {kept}/{total.points_total} verified points kept by the first draft "
        f"({share}), {total.points_restored} restored, {total.claims_ignored} unverified "
        "claims ignored",
        f"citations: {cited}/{total.citations_checked} supported ({cite_share}), "
        f"{total.citations_removed} removed",
    ]
    return "\n".join(rows)

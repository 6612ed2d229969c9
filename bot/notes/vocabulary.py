"""The writer's speech settings: their language (/language), their glossary (/glossary) and
corrections of what recognition got wrong (/fix).

The language and glossary reach the transcription of every later note (whisper's language
and vocabulary) and the glossary reaches the drafting prompt, as the writer's spelling of
names and terms that speech recognition garbles. /fix repairs what is already stored.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.repository import Repository
from bot.domain import UserError
from bot.notes.lifecycle import NoteState
from bot.services.outline import require_article

AUTO = "auto"
# Whisper's languages, code -> English name: a writer picks one by code or name, and the bot
# names them in words. Append only: a button's callback data holds a language's position.
LANGUAGES = {
    "en": "English",
    "ru": "Russian",
    "uk": "Ukrainian",
    "be": "Belarusian",
    "kk": "Kazakh",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "pl": "Polish",
    "cs": "Czech",
    "tr": "Turkish",
    "sr": "Serbian",
    "he": "Hebrew",
    "ka": "Georgian",
    "hy": "Armenian",
    "af": "Afrikaans",
    "am": "Amharic",
    "ar": "Arabic",
    "as": "Assamese",
    "az": "Azerbaijani",
    "ba": "Bashkir",
    "bg": "Bulgarian",
    "bn": "Bengali",
    "bo": "Tibetan",
    "br": "Breton",
    "bs": "Bosnian",
    "ca": "Catalan",
    "cy": "Welsh",
    "da": "Danish",
    "el": "Greek",
    "et": "Estonian",
    "eu": "Basque",
    "fa": "Persian",
    "fi": "Finnish",
    "fo": "Faroese",
    "gl": "Galician",
    "gu": "Gujarati",
    "ha": "Hausa",
    "haw": "Hawaiian",
    "hi": "Hindi",
    "hr": "Croatian",
    "ht": "Haitian Creole",
    "hu": "Hungarian",
    "id": "Indonesian",
    "is": "Icelandic",
    "ja": "Japanese",
    "jw": "Javanese",
    "km": "Khmer",
    "kn": "Kannada",
    "ko": "Korean",
    "la": "Latin",
    "lb": "Luxembourgish",
    "ln": "Lingala",
    "lo": "Lao",
    "lt": "Lithuanian",
    "lv": "Latvian",
    "mg": "Malagasy",
    "mi": "Maori",
    "mk": "Macedonian",
    "ml": "Malayalam",
    "mn": "Mongolian",
    "mr": "Marathi",
    "ms": "Malay",
    "mt": "Maltese",
    "my": "Burmese",
    "ne": "Nepali",
    "nn": "Norwegian Nynorsk",
    "no": "Norwegian",
    "oc": "Occitan",
    "pa": "Punjabi",
    "ps": "Pashto",
    "ro": "Romanian",
    "sa": "Sanskrit",
    "sd": "Sindhi",
    "si": "Sinhala",
    "sk": "Slovak",
    "sl": "Slovenian",
    "sn": "Shona",
    "so": "Somali",
    "sq": "Albanian",
    "su": "Sundanese",
    "sv": "Swedish",
    "sw": "Swahili",
    "ta": "Tamil",
    "te": "Telugu",
    "tg": "Tajik",
    "th": "Thai",
    "tk": "Turkmen",
    "tl": "Tagalog",
    "tt": "Tatar",
    "ur": "Urdu",
    "uz": "Uzbek",
    "vi": "Vietnamese",
    "yi": "Yiddish",
    "yo": "Yoruba",
    "zh": "Chinese",
    "yue": "Cantonese",
}
# What else a writer may type for a language: its own name and the English one.
_LANGUAGE_ALIASES = {
    "русский": "ru",
    "английский": "en",
    "english": "en",
    "украинский": "uk",
    "українська": "uk",
    "deutsch": "de",
    "detect": AUTO,
    "автоматически": AUTO,
    "авто": AUTO,
}

MAX_TERM_CHARS = 100
MAX_GLOSSARY_TERMS = 200
# "/fix WRONG -> RIGHT": the arrows a writer may type.
_ARROW = re.compile(r"\s*(?:->|→|=>|—>|–>)\s*")


@dataclass(frozen=True)
class LanguageSetting:
    chosen: str | None  # the writer's own: a code or "auto"; None = the bot's default
    default: str  # WHISPER_LANGUAGE, "" = detect

    @property
    def effective(self) -> str:
        """A code, or "auto"."""
        return self.chosen or self.default or AUTO


@dataclass(frozen=True)
class GlossaryChange:
    added: list[str]
    already: list[str]  # asked to add, but there already (perhaps in another case)
    glossary: list[str]


@dataclass(frozen=True)
class FixResult:
    wrong: str
    right: str
    notes_changed: int
    replacements: int
    sections: list[tuple[int, str]]  # (number, title) of the sections whose notes changed
    added_to_glossary: bool


def term_key(term: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", term).casefold().replace("ё", "е").split())


def clean_term(raw: str) -> str:
    term = " ".join(raw.split()).strip(" .,;:\"'«»“”")
    if not term:
        raise UserError("A glossary term needs at least one letter.")
    if len(term) > MAX_TERM_CHARS:
        raise UserError(f"A glossary term can have at most {MAX_TERM_CHARS} characters.")
    return term


def parse_language(value: str) -> str:
    """A language code or "auto" from what the writer typed ("ru", "Russian", "русский")."""
    wanted = value.strip().casefold()
    if wanted == AUTO or wanted in LANGUAGES:
        return wanted
    if wanted in _LANGUAGE_ALIASES:
        return _LANGUAGE_ALIASES[wanted]
    for code, name in LANGUAGES.items():
        if name.casefold() == wanted:
            return code
    raise UserError(
        "I don't know that language. Try /language ru, /language en or /language auto."
    )


def parse_terms(text: str) -> list[str]:
    """Terms separated by commas or new lines."""
    return [clean_term(t) for t in re.split(r"[,\n;]", text) if t.strip(" .,;:\"'«»“”")]


def parse_fix(text: str) -> tuple[str, str]:
    """`WRONG -> RIGHT` (also →) as (wrong, right)."""
    pieces = _ARROW.split(text.strip(), maxsplit=1)
    if len(pieces) != 2 or not pieces[0].strip() or not pieces[1].strip():
        raise UserError("Write it as /fix WRONG -> RIGHT, e.g. /fix рагам -> RAG.")
    wrong, right = (" ".join(p.split()) for p in pieces)
    if len(wrong) > MAX_TERM_CHARS or len(right) > MAX_TERM_CHARS:
        raise UserError(f"Each side of /fix can have at most {MAX_TERM_CHARS} characters.")
    if wrong == right:
        raise UserError("Both sides are the same, so there is nothing to fix.")
    return wrong, right


def _letter_pattern(char: str) -> str:
    if char in "еёЕЁ":
        return "[её]"
    return re.escape(char)


def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """The phrase as whole words, any case, "е" and "ё" alike, any spacing between words."""
    words = phrase.split()
    body = r"\s+".join("".join(_letter_pattern(c) for c in word) for word in words)
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def replace_phrase(text: str, pattern: re.Pattern[str], right: str) -> tuple[str, int]:
    """Replace every match; a match that starts a sentence with a capital keeps one."""

    def replacement(match: re.Match[str]) -> str:
        found = match.group(0)
        if found[:1].isupper() and right[:1].islower():
            return right[:1].upper() + right[1:]
        return right

    return pattern.subn(replacement, text)


def whisper_vocabulary(glossary: Sequence[str], outline: Sequence[str]) -> list[str]:
    """What the transcriber gets as the writer's words: the glossary first (what the writer
    spelled out; whisper's prompt is cut at its limit), then the section titles (the
    transcriber leaves sentence-long titles out of the prompt for speech in another language
    than theirs, where they made whisper echo them: bench/vocabulary.py)."""
    return [*glossary, *outline]


class VocabularyService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], default_language: str) -> None:
        self._sessions = sessions
        self._default = default_language

    async def language(self, owner_id: int) -> LanguageSetting:
        async with self._sessions.begin() as session:
            chosen = await Repository(session, owner_id).vocabulary.language()
        return LanguageSetting(chosen, self._default)

    async def set_language(self, owner_id: int, chat_id: int, value: str) -> LanguageSetting:
        code = parse_language(value)
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            await repo.vocabulary.set_language(code)
        return LanguageSetting(code, self._default)

    async def glossary(self, owner_id: int) -> list[str]:
        async with self._sessions.begin() as session:
            return await Repository(session, owner_id).vocabulary.glossary()

    async def add_terms(self, owner_id: int, chat_id: int, text: str) -> GlossaryChange:
        terms = parse_terms(text)
        if not terms:
            raise UserError("Name the terms to add: /glossary add RAG, ingestion")
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            added, already = await _add(repo, terms)
            return GlossaryChange(added, already, await repo.vocabulary.glossary())

    async def remove_term(self, owner_id: int, text: str) -> tuple[str, list[str]]:
        """Remove one term (any case); the term as stored and the glossary after."""
        term = clean_term(text)
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            removed = await repo.vocabulary.remove_term(term_key(term))
            if removed is None:
                raise UserError(f"“{term}” is not in your glossary (see /glossary).")
            return removed, await repo.vocabulary.glossary()

    async def fix(self, owner_id: int, chat_id: int, text: str) -> FixResult:
        """Replace WRONG by RIGHT in the active article's stored notes; add RIGHT to the
        glossary. The sections whose notes changed redraft at the next /draft (drafts are
        cached by their notes' text)."""
        wrong, right = parse_fix(text)
        pattern = phrase_pattern(wrong)
        async with self._sessions.begin() as session:
            repo = Repository(session, owner_id)
            await repo.users.ensure(chat_id)
            article = await require_article(repo)
            sections = list(await repo.sections.of_article(article.id))
            numbers = {s.id: (n, s.title) for n, s in enumerate(sections, start=1)}
            changed_notes: set[int] = set()
            changed_sections: set[int] = set()
            replacements = 0
            fixed_transcripts: set[int] = set()
            for part, note in await repo.parts.of_article(article.id):
                if note.state != NoteState.FILED:
                    continue
                if note.id not in fixed_transcripts and note.transcript:
                    fixed_transcripts.add(note.id)
                    note.transcript, count = replace_phrase(note.transcript, pattern, right)
                    if count:
                        changed_notes.add(note.id)
                part.text, count = replace_phrase(part.text, pattern, right)
                if count:
                    replacements += count
                    changed_notes.add(note.id)
                    changed_sections.add(part.section_id)
            added, _ = await _add(repo, [clean_term(right)])
        return FixResult(
            wrong=wrong,
            right=right,
            notes_changed=len(changed_notes),
            replacements=replacements,
            sections=sorted(numbers[s] for s in changed_sections if s in numbers),
            added_to_glossary=bool(added),
        )


async def _add(repo: Repository, terms: Sequence[str]) -> tuple[list[str], list[str]]:
    added: list[str] = []
    already: list[str] = []
    count = len(await repo.vocabulary.glossary())
    for term in terms:
        if await repo.vocabulary.add_term(term, term_key(term)):
            count += 1
            if count > MAX_GLOSSARY_TERMS:
                raise UserError(
                    f"Your glossary can hold {MAX_GLOSSARY_TERMS} terms; remove some first."
                )
            added.append(term)
        else:
            already.append(term)
    return added, already

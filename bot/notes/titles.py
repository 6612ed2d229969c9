"""Split a voice-note transcript at the section titles the writer speaks aloud.

Writers walk through an outline in one note: "Так, ну вот, where data engineering ends ...
Дальше. The key skill gaps to close. Ну тут ...". This module finds those spoken titles in the
transcript and cuts it into parts, one per spoken title; text before the first title stays with
the default (active) section.

Pure and deterministic. Matching works on word tokens of the transcript:

* every title is normalised (case, punctuation, "ё"/"е", hyphens, accents ignored) into words;
* short titles (1-2 words, or very few letters) need an exact match that stands like a heading;
* longer titles are matched fuzzily: windows of about as many words as the title (a word or two
  fewer or more) are prefiltered by a cheap token-overlap check, then scored with difflib's
  SequenceMatcher ratio of the normalised strings;
* the ratio a window needs depends on how heading-like its position is (sentence boundary or
  transition word before it, punctuation after it): a wrong split files the writer's words under
  the wrong section, which is worse than a missed one, so mid-sentence matches need a near-exact
  title and some are never accepted.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from rapidfuzz import fuzz


@dataclass(frozen=True)
class SectionTitle:
    section_id: int
    title: str


@dataclass(frozen=True)
class RoutedPart:
    section_id: int
    # The part's text, stripped; the spoken title and the transition words that only introduce
    # it ("дальше", "next", "так, следующий раздел") are not included.
    text: str
    # False only for the leading part that goes to the default section.
    title_spoken: bool


# --- Tokens --------------------------------------------------------------------------------

# A word is a run of letters/digits (plus combining marks such as stress accents). Hyphens and
# apostrophes split words, so "AI-инженер" and "AI инженер" give the same tokens and
# "re-position" vs "reposition" differs by one space in the joined string only.
_WORD_RE = re.compile(r"[^\W_](?:[^\W_]|[\u0300-\u036f])*")
# Leading outline numbering that may be left in a title: "2. Skills", "3) Tools".
_NUMBERING_RE = re.compile(r"^\s*\d+[.)]\s+")

# Punctuation that ends a sentence: a title right after it starts like a heading. A single
# newline is not a boundary: archived transcripts are hard-wrapped mid-sentence (even mid-title);
# a blank line is.
_SENTENCE_END = frozenset(".!?…;:")
# Punctuation right after a title that shows the speaker paused: a hard pause ends the sentence
# (or the transcript); a soft one ("Snacks, ..." / "Snacks - ...") may just continue it.
_HARD_PAUSE = _SENTENCE_END
_SOFT_PAUSE = frozenset(',—–()«»"“”')
# Characters glued to the first/last word of a part that belong to the part's text.
_OPENERS = frozenset("(«\"“'")
_CLOSERS = frozenset(".!?…)»\"”'%+#")


def _is_paragraph(gap: str) -> bool:
    return gap.count("\n") >= 2


def _norm_word(word: str) -> str:
    """Case-folded word with "ё" -> "е" and accents dropped ("й" is kept)."""
    w = unicodedata.normalize("NFKC", word).casefold().replace("ё", "е")
    if w.isascii():
        return w
    decomposed = unicodedata.normalize("NFD", w.replace("й", "\x00"))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped).replace("\x00", "й")


def _script(word: str) -> str:
    """"latin", "cyrillic" or "other", by the word's first letter."""
    first = next((c for c in word if c.isalpha()), "")
    if not first:
        return "other"
    if first.isascii():
        return "latin"
    return "cyrillic" if "\u0400" <= first <= "\u04ff" else "other"


def _words(text: str) -> list[str]:
    return [_norm_word(m.group()) for m in _WORD_RE.finditer(text)]


# --- Transition words ----------------------------------------------------------------------

# Phrases that introduce a title, comma-separated. "Strong" ones are evidence on their own that
# what follows is a heading ("Дальше, snacks"); "weak" ones (fillers, "now", "part") are only
# stripped. "#" stands for any number token ("раздел 2").
_STRONG_INTRO = (
    "дальше, далее, next, next up, section, chapter",
    "следующий, следующая, следующее, следующую, следующим, следующему, следующей, следующего",
    "раздел, раздела, разделу, разделе, разделом, глава, главе, главы, главу",
    "переходим, перейдем, переходим к, переходим ко, перейдем к, перейдем ко",
    "moving on, moving on to, move on to, let's move on to",
    # Coming back to a section already spoken about.
    "вернемся к, вернусь к, возвращаясь к, back to, going back to",
)
_WEAK_INTRO = (
    "так, ну, вот, итак, значит, короче, ладно, окей, хорошо, давай, давайте, поехали",
    "теперь, потом, затем, наконец, последнее, последний, снова, опять, еще раз, и, а, про",
    "теперь о, теперь об, поговорим о, поговорим об, поговорим про",
    "часть, части, частью, пункт, пункту, пункте, тема, теме, тему, номер",
    "now, then, so, okay, ok, well, alright, and, finally, again, last",
    "about, talk about, let's talk about, part, topic, point, number",
    # Numbering spoken with the title: "раздел 2", "second section", "часть третья".
    "#, первый, первая, второй, вторая, третий, третья, четвертый, четвертая, пятый, пятая",
    "один, два, три, четыре, пять, first, second, third, fourth, fifth",
    "one, two, three, four, five",
)
# Fillers stripped from the start of the part after a title ("... gaps to close. Ну тут ...").
# Deliberately fewer than above: after a title the speaker is already in the content.
_FORWARD_FILLERS = (
    "ну, вот, так, итак, значит, короче, ладно, окей, э, ээ, эм, well, so, okay, ok, um, uh",
)


def _phrases(lines: tuple[str, ...], strong: bool) -> dict[tuple[str, ...], bool]:
    table: dict[tuple[str, ...], bool] = {}
    for line in lines:
        for phrase in line.split(","):
            key = ("#",) if phrase.strip() == "#" else tuple(_words(phrase))
            table[key] = strong
    return table


# Phrase -> is it a strong intro.
_INTRO = {**_phrases(_WEAK_INTRO, False), **_phrases(_STRONG_INTRO, True)}
_FORWARD = _phrases(_FORWARD_FILLERS, False)
_MAX_PHRASE = max(len(p) for p in [*_INTRO, *_FORWARD])


# --- Thresholds ----------------------------------------------------------------------------

# Heading evidence of a window: left = 2 if a strong intro word precedes it, 1 if it starts a
# sentence (or the transcript), 0 if it sits mid-sentence; right = 2 if a hard pause follows it,
# 1 a soft pause, 0 none. Combinations missing from a table are never accepted: a title that
# starts mid-sentence is a mention ("я расскажу про <title>."), not a heading.
#
# Long titles (4+ words, 16+ characters), e.g. "the math you actually need": ASR noise such as a
# dropped word ("building first ml project" 0.96), a misspelling ("actualy" 0.98) or
# "re-position" (0.98) scores well above 0.82, while a sentence sharing one or two words with the
# title scores 0.55-0.75 and "how to write your cv" vs "how to reposition your cv" 0.80. Without
# punctuation after the title (ASR sometimes drops the period) we require an explicit intro word
# ("дальше ...") or a near-verbatim title at a sentence start.
_LONG_THRESHOLDS: dict[tuple[int, int], float] = {
    (2, 2): 0.82,
    (2, 1): 0.82,
    (1, 2): 0.82,
    (1, 1): 0.82,
    (2, 0): 0.88,
    (1, 0): 0.95,
}
# 3-word / few-letter titles: one wrong word is a third of the title, so demand more, and a
# sentence that merely begins with them ("Курсы и книги, которые ...") is not a heading.
_MEDIUM_THRESHOLDS: dict[tuple[int, int], float] = {
    (2, 2): 0.88,
    (2, 1): 0.88,
    (1, 2): 0.88,
    (2, 0): 0.95,
}
# Short titles: exact match, and the same heading shapes as medium ones except (2, 0).
_SHORT_SHAPES = frozenset({(2, 2), (2, 1), (1, 2)})
_MIN_RATIO = min(*_LONG_THRESHOLDS.values(), *_MEDIUM_THRESHOLDS.values())
# Titles with at most this many words (or fewer letters than _SHORT_CHARS) need an exact,
# heading-shaped match: fuzzy matching "Intro" or "Snacks" would fire on ordinary words.
_SHORT_WORDS = 2
_SHORT_CHARS = 8
_MEDIUM_WORDS = 3
_MEDIUM_CHARS = 16


def _allowed_misses(n_words: int) -> int:
    """Title words that may be missing/garbled beyond recognition in a long-title window."""
    if n_words <= _MEDIUM_WORDS:
        return 0
    return 1 if n_words <= 7 else 2


# --- Matching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Title:
    order: int
    section_id: int
    words: tuple[str, ...]
    joined: str
    kind: str  # "short" | "medium" | "long"


@dataclass(frozen=True)
class _Match:
    score: float
    title: _Title
    start: int  # token index, inclusive
    end: int  # token index, exclusive


def _prepare_titles(sections: Sequence[SectionTitle]) -> list[_Title]:
    titles: list[_Title] = []
    for order, section in enumerate(sections):
        words = tuple(_words(_NUMBERING_RE.sub("", section.title)))
        if not words:
            continue
        joined = " ".join(words)
        letters = len(joined.replace(" ", ""))
        if len(words) <= _SHORT_WORDS or letters < _SHORT_CHARS:
            kind = "short"
        elif len(words) <= _MEDIUM_WORDS or len(joined) < _MEDIUM_CHARS:
            kind = "medium"
        else:
            kind = "long"
        titles.append(_Title(order, section.section_id, words, joined, kind))
    return titles


def _prefilter_keys(word: str) -> list[tuple[str, str]]:
    # Cheap similarity proxy: same word, or same first/last three letters ("skill"/"skills",
    # "reposition"/"position", "engeneering"/"engineering").
    keys = [("=", word)]
    if len(word) >= 3:
        keys += [("<", word[:3]), (">", word[-3:])]
    return keys


class _Transcript:
    def __init__(self, text: str) -> None:
        self.text = text
        matches = list(_WORD_RE.finditer(text))
        self.words = [_norm_word(m.group()) for m in matches]
        self.keys = ["#" if w.isdigit() else w for w in self.words]
        self.starts = [m.start() for m in matches]
        self.ends = [m.end() for m in matches]
        self.n = len(matches)
        # gaps[i] is the text between token i-1 and token i (gaps[n]: after the last token).
        bounds = [0, *[p for m in matches for p in (m.start(), m.end())], len(text)]
        self.gaps = [text[bounds[2 * i] : bounds[2 * i + 1]] for i in range(self.n + 1)]
        self.sentence_start = [
            i == 0 or _is_paragraph(self.gaps[i]) or any(c in _SENTENCE_END for c in self.gaps[i])
            for i in range(self.n + 1)
        ]
        self._left_cache: dict[int, int] = {}

    def pause_after(self, end: int) -> int:
        """2 if the word before token index `end` ends a sentence, 1 if a comma or dash follows
        it, else 0."""
        if end >= self.n:
            return 2
        gap = self.gaps[end]
        if any(c in _HARD_PAUSE for c in gap) or _is_paragraph(gap):
            return 2
        # A spaced hyphen is a dash ("snacks - тут"); "snacks-bar" and a word hyphenated at a
        # line wrap ("AI-\nинженер") are not.
        if any(c in _SOFT_PAUSE for c in gap) or " -" in gap:
            return 1
        # An English title glued to the Russian that follows it ("…first month Сначала …"):
        # the switch of alphabet is where the speaker's heading ended.
        return 1 if _script(self.words[end - 1]) != _script(self.words[end]) else 0

    def _phrase_back(self, pos: int, floor: int, table: dict[tuple[str, ...], bool]) -> int:
        """Length of the longest phrase of `table` ending just before `pos` (not below floor)."""
        for k in range(min(_MAX_PHRASE, pos - floor), 0, -1):
            if tuple(self.keys[pos - k : pos]) in table:
                return k
        return 0

    def strip_back(self, pos: int, floor: int) -> tuple[int, bool]:
        """Walk back from a title start over the transition words that introduce it.

        In the title's own sentence trailing transition words are stripped ("..., дальше,
        <title>"); an earlier sentence is stripped only if it consists of transition words
        alone ("Дальше. <title>", "Так, следующий раздел. <title>"), so "как-то так. <title>"
        keeps its "так". Returns the new end of the preceding text and whether a strong intro
        word was seen.
        """
        strong = False
        own_sentence = True
        while pos > floor:
            if not own_sentence and not self.sentence_start[pos]:
                break
            seg_start = pos - 1
            while seg_start > floor and not self.sentence_start[seg_start]:
                seg_start -= 1
            cur = pos
            seg_strong = False
            while cur > seg_start:
                k = self._phrase_back(cur, seg_start, _INTRO)
                if not k:
                    break
                seg_strong = seg_strong or _INTRO[tuple(self.keys[cur - k : cur])]
                cur -= k
            if own_sentence and not self.sentence_start[pos]:
                # Partial stripping is fine in the title's own sentence.
                strong = strong or seg_strong
                pos = cur
                if cur > seg_start:
                    break
            elif cur == seg_start:
                strong = strong or seg_strong
                pos = cur
            else:
                break
            own_sentence = False
        return pos, strong

    def strip_forward(self, pos: int, ceiling: int) -> int:
        while pos < ceiling:
            for k in range(min(_MAX_PHRASE, ceiling - pos), 0, -1):
                if tuple(self.keys[pos : pos + k]) in _FORWARD:
                    pos += k
                    break
            else:
                break
        return pos

    def left_evidence(self, start: int) -> int:
        cached = self._left_cache.get(start)
        if cached is None:
            pos, strong = self.strip_back(start, 0)
            cached = 2 if strong else (1 if self.sentence_start[pos] else 0)
            self._left_cache[start] = cached
        return cached

    def part_text(self, first: int, end: int) -> str:
        """Original text of tokens [first, end) with glued quotes/closing punctuation."""
        lo = self.ends[first - 1] if first > 0 else 0
        hi = self.starts[end] if end < self.n else len(self.text)
        a, b = self.starts[first], self.ends[end - 1]
        while a > lo and self.text[a - 1] in _OPENERS:
            a -= 1
        while b < hi and self.text[b] in _CLOSERS:
            b += 1
        return self.text[a:b].strip()


def _short_matches(tr: _Transcript, title: _Title) -> list[_Match]:
    # Exact match ignoring spaces between words, so "AI-инженер" == "AIинженер" == "AI инженер".
    target = title.joined.replace(" ", "")
    found: list[_Match] = []
    for i in range(tr.n):
        if not target.startswith(tr.words[i]):
            continue
        acc = ""
        for j in range(i, min(tr.n, i + len(title.words) + 2)):
            acc += tr.words[j]
            if acc == target:
                # Only as a heading: "Next. Snacks." / "Дальше, snacks, ..." - never inside
                # "I love snacks at night", "Snacks are great" or "Snacks, which ...".
                if (tr.left_evidence(i), tr.pause_after(j + 1)) in _SHORT_SHAPES:
                    found.append(_Match(1.0, title, i, j + 1))
                break
            if not target.startswith(acc):
                break
    return found


def _fuzzy_matches(
    tr: _Transcript, title: _Title, hits: dict[int, int], matcher: SequenceMatcher[str]
) -> list[_Match]:
    n_words = len(title.words)
    misses = _allowed_misses(n_words)
    need = n_words - misses
    min_len, max_len = max(1, need), n_words + 2
    thresholds = _LONG_THRESHOLDS if title.kind == "long" else _MEDIUM_THRESHOLDS
    matcher.set_seq2(title.joined)  # SequenceMatcher caches its analysis of seq2
    found: list[_Match] = []
    # Windows start and end on a word that resembles some title word: a window with an
    # unrelated word at an edge scores below the same window without it anyway.
    for i in sorted(hits):
        covered = 0
        for length in range(1, max_len + 1):
            j = i + length - 1
            if j >= tr.n:
                break
            mask = hits.get(j, 0)
            covered |= mask
            if length < min_len or not mask or covered.bit_count() < need:
                continue
            matcher.set_seq1(" ".join(tr.words[i : j + 1]))
            if matcher.real_quick_ratio() < _MIN_RATIO or matcher.quick_ratio() < _MIN_RATIO:
                continue
            score = matcher.ratio()
            if score < _MIN_RATIO:
                continue
            threshold = thresholds.get((tr.left_evidence(i), tr.pause_after(j + 1)))
            if threshold is not None and score >= threshold:
                found.append(_Match(score, title, i, j + 1))
    return found


# --- Titles written in Cyrillic ------------------------------------------------------------
# An English title spoken inside Russian sometimes comes out phonetically in Cyrillic ("вай ви
# лефт сторд процедурс"). Transliterated and reduced to a rough consonant skeleton, it matches
# the title's own skeleton (0.88-1.0 on such renderings of the fixtures' titles, 0.24-0.51 on
# Russian sentences about the same topics), so it is accepted at 0.85, and only where both ends
# look like a heading's.
_CYRILLIC_TO_LATIN = dict(
    zip(
        "абвгдежзийклмнопрстуфхцчшщъыьэюя",
        "a b v g d e zh z i i k l m n o p r s t u f h ts ch sh sh _ i _ e yu ya".split(),
        strict=True,
    )
)
_SOUND_ALIKE = (
    ("th", "z"), ("ph", "f"), ("wh", "v"), ("w", "v"), ("ck", "k"), ("c", "k"), ("q", "k"),
    ("x", "ks"), ("dzh", "j"), ("zh", "j"), ("kh", "h"), ("sh", "s"), ("ch", "c"), ("ts", "c"),
    ("y", "i"),
)
_VOWELS_RE = re.compile(r"[aeiou]")
_DOUBLED_RE = re.compile(r"(.)\1+")
_TRANSLITERATED_THRESHOLD = 0.85
_TRANSLITERATED_SHAPES = frozenset({(2, 2), (2, 1), (1, 2), (1, 1)})


def _sound_skeleton(latin_word: str) -> str:
    """A word's rough sound: sound-alike spellings merged, vowels after the first letter and
    doubled letters dropped ("procedures" and "процедурс" both give "prcdrs")."""
    w = latin_word
    for spelling, sound in _SOUND_ALIKE:
        w = w.replace(spelling, sound)
    if not w:
        return w
    return _DOUBLED_RE.sub(r"\1", w[0] + _VOWELS_RE.sub("", w[1:]))


@functools.lru_cache(maxsize=4096)
def _cyrillic_skeleton(word: str) -> str | None:
    if _script(word) != "cyrillic":
        return None
    latin = "".join(_CYRILLIC_TO_LATIN.get(c, c) for c in word).replace("_", "")
    return _sound_skeleton(latin) if latin.isascii() else None


class _Skeletons:
    """The sound skeletons of a transcript's Cyrillic words, and of runs of them (cached:
    every title looks at the same runs)."""

    def __init__(self, tr: _Transcript) -> None:
        self.words = [_cyrillic_skeleton(w) for w in tr.words]
        self.by_first_sound: dict[str, list[int]] = {}
        for position, skeleton in enumerate(self.words):
            if skeleton:
                self.by_first_sound.setdefault(skeleton[0], []).append(position)
        self._runs: dict[tuple[int, int], str | None] = {}

    def run(self, start: int, length: int) -> str | None:
        """The skeleton of `length` words from `start`; None unless all are Cyrillic."""
        key = (start, length)
        if key not in self._runs:
            words = self.words[start : start + length]
            complete = len(words) == length and all(words)
            self._runs[key] = " ".join(w for w in words if w) if complete else None
        return self._runs[key]


def _transliterated_matches(tr: _Transcript, title: _Title, skeletons: _Skeletons) -> list[_Match]:
    """A Latin title written in Cyrillic letters: runs of Cyrillic words about as long as the
    title whose sound skeleton is nearly the title's."""
    if title.kind == "short" or not title.joined.isascii():
        return []
    target = " ".join(_sound_skeleton(w) for w in title.words)
    n_words = len(title.words)
    cutoff = _TRANSLITERATED_THRESHOLD * 100
    found: list[_Match] = []
    # A heading starts with the title's first sound ("вай"/"why": "v").
    for i in skeletons.by_first_sound.get(target[0], ()):
        for length in range(max(1, n_words - 1), n_words + 2):
            run = skeletons.run(i, length)
            if run is None:
                break
            # rapidfuzz's ratio: difflib's measure (2 * matches / total), compiled.
            score = fuzz.ratio(run, target, score_cutoff=cutoff)
            shape = (tr.left_evidence(i), tr.pause_after(i + length)) if score else None
            if shape in _TRANSLITERATED_SHAPES:
                found.append(_Match(score / 100, title, i, i + length))
    return found


def _find_matches(tr: _Transcript, titles: list[_Title]) -> list[_Match]:
    # Index title words by their prefilter keys, then mark for every transcript position which
    # words of which title it resembles (a bitmask per title). Cost: O(words + title words).
    index: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for t_idx, title in enumerate(titles):
        if title.kind == "short":
            continue
        for w_idx, word in enumerate(title.words):
            for key in _prefilter_keys(word):
                index.setdefault(key, []).append((t_idx, 1 << w_idx))
    per_word: dict[str, dict[int, int]] = {}
    hits: list[dict[int, int]] = [{} for _ in titles]
    for pos, word in enumerate(tr.words):
        masks = per_word.get(word)
        if masks is None:
            masks = {}
            for key in _prefilter_keys(word):
                for t_idx, bit in index.get(key, ()):
                    masks[t_idx] = masks.get(t_idx, 0) | bit
            per_word[word] = masks
        for t_idx, mask in masks.items():
            hits[t_idx][pos] = mask

    matcher: SequenceMatcher[str] = SequenceMatcher(None, autojunk=False)
    found: list[_Match] = []
    for t_idx, title in enumerate(titles):
        if title.kind == "short":
            found += _short_matches(tr, title)
        elif hits[t_idx]:
            found += _fuzzy_matches(tr, title, hits[t_idx], matcher)
    skeletons = _Skeletons(tr)
    if any(skeletons.words):
        for title in titles:
            found += _transliterated_matches(tr, title, skeletons)

    # Best matches first (then the longer title, then the earlier one, then outline order);
    # keep those that do not overlap an already chosen one; return them left to right.
    found.sort(key=lambda m: (-m.score, -len(m.title.joined), m.start, m.title.order))
    taken = [False] * tr.n
    chosen: list[_Match] = []
    for match in found:
        if any(taken[match.start : match.end]):
            continue
        taken[match.start : match.end] = [True] * (match.end - match.start)
        chosen.append(match)
    chosen.sort(key=lambda m: m.start)
    return chosen


def split_by_spoken_titles(
    transcript: str, sections: Sequence[SectionTitle], default_section_id: int
) -> list[RoutedPart]:
    """Cut a transcript at the section titles spoken in it.

    Text before the first spoken title goes to `default_section_id` (title_spoken=False); each
    text after a spoken title goes to that title's section, without the title and its
    transition words. A title spoken twice gives two parts. Parts without words are dropped, so
    a transcript without words gives an empty list; without spoken titles, the whole stripped
    transcript is one part for the default section.
    """
    tr = _Transcript(transcript)
    if tr.n == 0:
        return []
    matches = _find_matches(tr, _prepare_titles(sections))
    if not matches:
        return [RoutedPart(default_section_id, transcript.strip(), False)]

    parts: list[RoutedPart] = []
    lead_end, _ = tr.strip_back(matches[0].start, 0)
    if lead_end > 0:
        parts.append(RoutedPart(default_section_id, tr.part_text(0, lead_end), False))
    for k, match in enumerate(matches):
        if k + 1 < len(matches):
            end, _ = tr.strip_back(matches[k + 1].start, match.end)
        else:
            end = tr.n
        start = tr.strip_forward(match.end, end)
        if start < end:
            parts.append(RoutedPart(match.title.section_id, tr.part_text(start, end), True))
    return parts

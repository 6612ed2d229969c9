"""Splitting a transcript at the section titles the writer speaks (bot.notes.titles).

Fixtures under tests/fixtures/routing/ are our own notes in the archive format writers use
(YAML front matter + Whisper text, hard-wrapped): Russian speech with English section titles of
an article "Moving from backend to ML engineering", with typical ASR damage in the titles.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.notes.titles import RoutedPart, SectionTitle, split_by_spoken_titles

FIXTURES = Path(__file__).parent / "fixtures" / "routing"

DEFAULT = 99  # the active section that gets text spoken before any title

ML_OUTLINE = [
    SectionTitle(1, "Зачем вообще уходить из бэкенда"),
    SectionTitle(2, "Why backend engineers have an edge"),
    SectionTitle(3, "The math you actually need"),
    SectionTitle(4, "Building a first ML project"),
    SectionTitle(5, "How to reposition your CV"),
    SectionTitle(6, "Resources"),
]

BOOK_CLUB = [
    SectionTitle(11, "Reading list"),
    SectionTitle(12, "Meeting times"),
    SectionTitle(13, "Snacks"),
]


def load(name: str) -> str:
    """Transcript body of an archived note, without its YAML front matter."""
    raw = (FIXTURES / name).read_text(encoding="utf-8")
    assert raw.startswith("---\n")
    return raw.split("---\n", 2)[2]


def route(
    text: str, sections: list[SectionTitle] = ML_OUTLINE, default: int = DEFAULT
) -> list[RoutedPart]:
    return split_by_spoken_titles(text, sections, default)


def ids(parts: list[RoutedPart]) -> list[int]:
    return [p.section_id for p in parts]


def squash(text: str) -> str:
    """Collapse the fixture's line wrapping so assertions can use plain phrases."""
    return " ".join(text.split())


# --- Archived notes ------------------------------------------------------------------------


def test_walkthrough_splits_at_each_spoken_title_despite_asr_noise() -> None:
    parts = route(load("walkthrough_transcript.txt"))

    assert ids(parts) == [DEFAULT, 2, 3, 4, 5]
    assert [p.title_spoken for p in parts] == [False, True, True, True, True]
    lead, edge, math, project, cv = (squash(p.text) for p in parts)

    # Leading text stays with the active section; "Так, ну вот," only introduced the title.
    assert lead.startswith("Короче, это продолжение")
    assert lead.endswith("а ты разложи по разделам.")

    # Title at the start of a sentence after transition words; the title words are gone.
    assert edge.startswith("Смысл такой:")
    assert "why backend" not in edge.casefold()
    # "реально есть edge" shares a word with the title but is not a heading.
    assert "у бэкендеров реально есть edge" in edge
    # "Дальше." is stripped, the "так" of "как-то так." is content and stays.
    assert edge.endswith("Ну вот как-то так.")

    # Misspelled title ("actualy"); the filler "Ну" after it is stripped too.
    assert math.startswith("тут честно, много не надо.")
    assert "actualy" not in math
    # "The math в учебниках пугает" shares two words with the title: no split there.
    assert "The math в учебниках пугает" in math
    # "Так, следующий раздел." belongs to the next title, not to this part.
    assert math.endswith("и вставь ссылки.")

    # Dropped word: "Building first ML project".
    assert project.startswith("Я бы начал с чего-то скучного")
    assert "your CV от этого сразу выигрывает" in project  # not a heading
    assert project.endswith("как вы умеете.")

    # "re-position" spoken for "reposition"; last title runs to the end of the note.
    assert cv.startswith("Мне кажется, тут главное")
    assert "position" not in cv
    assert cv.endswith("И вынести ML-проект наверх.")


def test_cyrillic_title_repeated_title_short_heading_and_title_at_the_end() -> None:
    parts = route(load("repeat_and_cyrillic_transcript.txt"), default=3)
    texts = [squash(p.text) for p in parts]

    # Starts with a Cyrillic title ("бекенда" for "бэкенда"): no leading part at all.
    # "Resources" stands as a heading after "Next."; the trailing "building a first ML project."
    # leaves no words and is dropped.
    assert ids(parts) == [1, 3, 6, 1]
    assert all(p.title_spoken for p in parts)

    assert texts[0].startswith("Тут личное:")
    assert texts[0].endswith("Плюс рынок, конечно.")
    assert texts[1].startswith("Забыл сказать:")
    assert texts[1].endswith("ни один A/B тест.")  # "Next." is gone
    assert texts[2].startswith("Курс Эндрю Ына")
    assert "полно free resources, но" in texts[2]  # mid-sentence: not a heading
    assert texts[2].endswith("дойти до конца.")  # "Так, еще раз," is gone
    # Second time the same title: a second part for section 1 (the caller may merge them).
    assert texts[3] == "Деньги тоже важны, не буду врать."


def test_note_without_spoken_titles_is_one_part_for_the_default_section() -> None:
    text = load("no_titles_transcript.txt")
    parts = route(text)
    assert parts == [RoutedPart(DEFAULT, text.strip(), False)]


# --- Short titles: only as headings --------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Reading list first. Next. Snacks. Everyone brings something small.",
        "Reading list first. Дальше, snacks, каждый приносит что-то небольшое.",
        "Reading list first. Так, следующий раздел: Snacks! Everyone brings something small.",
    ],
)
def test_short_title_as_a_heading_splits(text: str) -> None:
    parts = route(text, BOOK_CLUB)
    assert ids(parts) == [DEFAULT, 13]
    assert parts[0].text == "Reading list first."
    assert parts[1].text.split()[0] in {"Everyone", "каждый"}


@pytest.mark.parametrize(
    "text",
    [
        "I love snacks at night, especially before the meeting.",
        "Snacks are great, but nobody remembers to bring them.",
        "Мы обсуждали, что snacks. Сам понимаешь, никто их не носит",  # left side mid-sentence
        "Reading list is long this month.",
        "Snacks, which nobody brings, are the real problem.",
        "Snacks - это всегда проблема.",
    ],
)
def test_short_title_inside_a_sentence_does_not_split(text: str) -> None:
    assert route(text, BOOK_CLUB) == [RoutedPart(DEFAULT, text, False)]


def test_short_title_at_the_very_start_and_hyphen_or_space_variants() -> None:
    outline = [SectionTitle(1, "Snacks"), SectionTitle(2, "AI-инженер")]
    parts = route("Snacks. Чипсы и орехи. Дальше. AI инженер. Это отдельная роль.", outline)
    assert [(p.section_id, p.text) for p in parts] == [
        (1, "Чипсы и орехи."),
        (2, "Это отдельная роль."),
    ]


def test_three_word_title_and_two_word_title_after_transition() -> None:
    # The shape of the project's spoken-sections audio fixture: "reading list" at the end of
    # an ordinary sentence is not a heading, the others are.
    outline = [
        SectionTitle(1, "Reading list"),
        SectionTitle(2, "Meeting times"),
        SectionTitle(3, "Snacks and drinks"),
    ]
    text = (
        "First, a few words on the reading list. Next. Meeting times. We meet every other "
        "Friday at the café. Next. Snacks and drinks. Everyone brings a little something."
    )
    parts = route(text, outline)
    assert [(p.section_id, p.text) for p in parts] == [
        (DEFAULT, "First, a few words on the reading list."),
        (2, "We meet every other Friday at the café."),
        (3, "Everyone brings a little something."),
    ]


# --- Long titles: fuzzy, but no false positives --------------------------------------------


@pytest.mark.parametrize(
    "spoken",
    [
        "the math you actually need",
        "The Math You Actually Need!",
        "the maths you actually need",  # one letter added
        "math you actually need",  # dropped word
        "the math you actualy need",  # misspelling
    ],
)
def test_asr_variants_of_a_long_title_match(spoken: str) -> None:
    text = f"Про бэкенд я сказал. Дальше. {spoken}. Линейная алгебра и немного статистики."
    parts = route(text)
    assert ids(parts) == [DEFAULT, 3]
    assert parts[0].text == "Про бэкенд я сказал."
    assert parts[1].text == "Линейная алгебра и немного статистики."


@pytest.mark.parametrize(
    "text",
    [
        # Share one to three words with a title, standing as whole sentences.
        "The math is what you need to learn first.",
        "How to write your CV. Вот это хороший вопрос.",
        "Backend engineers have a lot of edge cases to handle.",
        "Я делал first ML проект на хакатоне. Было весело.",
        "Зачем вообще это всё. Непонятно.",
        # A verbatim title mentioned mid-sentence is a mention, not a heading.
        "Я потом расскажу про how to reposition your CV. Пока про другое.",
        "Мы спорили, the math you actually need или нет, и не договорились.",
    ],
)
def test_sentences_that_only_resemble_a_title_do_not_split(text: str) -> None:
    assert route(text) == [RoutedPart(DEFAULT, text, False)]


def test_title_without_punctuation_after_it_needs_an_intro_word() -> None:
    # ASR sometimes drops the period after a spoken title; "дальше" still announces it.
    parts = route("Это было вступление. Дальше the math you actually need тут все просто.")
    assert [(p.section_id, p.text) for p in parts] == [
        (DEFAULT, "Это было вступление."),
        (3, "тут все просто."),
    ]


def test_transition_phrases_numbers_and_fillers_are_removed() -> None:
    outline = [SectionTitle(7, "3. The math you actually need"), *ML_OUTLINE[3:5]]
    text = (
        "Немного контекста. Раздел 3. The math you actually need. Ну вот, так, значит, "
        "линейная алгебра. А теперь переходим к building a first ML project: "
        "берем скучную задачу. Moving on to how to reposition your CV. Не прятать бэкенд."
    )
    parts = route(text, outline)
    assert [(p.section_id, p.text) for p in parts] == [
        (DEFAULT, "Немного контекста."),
        (7, "линейная алгебра."),
        (4, "берем скучную задачу."),
        (5, "Не прятать бэкенд."),
    ]


def test_cyrillic_title_with_yo_and_numbers() -> None:
    outline = [
        SectionTitle(1, "Всё про метрики качества"),
        SectionTitle(2, "Top 5 mistakes to avoid"),
    ]
    text = (
        "Вступление. Так, все про метрики качества. Accuracy врет на несбалансированных "
        "данных. Next, top five mistakes to avoid. Первая ошибка - нет baseline. "
        "Дальше: top 5 mistakes to avoid. Вторая - нет мониторинга."
    )
    parts = route(text, outline)
    assert [(p.section_id, p.text) for p in parts] == [
        (DEFAULT, "Вступление."),
        (1, "Accuracy врет на несбалансированных данных."),
        (2, "Первая ошибка - нет baseline."),  # "five" for "5" is one more ASR-sized error
        (2, "Вторая - нет мониторинга."),
    ]


def test_adjacent_titles_and_title_at_the_end_leave_no_empty_parts() -> None:
    text = "Next. Snacks. Next. Meeting times. По пятницам. Дальше, reading list."
    assert [(p.section_id, p.text) for p in route(text, BOOK_CLUB)] == [(12, "По пятницам.")]


def test_edge_cases_empty_input_and_empty_outline() -> None:
    assert route("") == []
    assert route("  ...  ") == []
    assert route(" Просто текст. ", []) == [RoutedPart(DEFAULT, "Просто текст.", False)]
    assert route("Snacks. Text.", [SectionTitle(1, "  ")]) == [
        RoutedPart(DEFAULT, "Snacks. Text.", False)
    ]


def test_same_input_same_output() -> None:
    text = load("walkthrough_transcript.txt")
    assert route(text) == route(text)


# --- Size ----------------------------------------------------------------------------------

LONG_OUTLINE_TITLES = [
    "Зачем вообще уходить из бэкенда",
    "Why backend engineers have an edge",
    "The math you actually need",
    "Building a first ML project",
    "How to reposition your CV",
    "Resources",
    "Интервью и домашние задания",
    "Feature stores explained",
    "Serving models in production",
    "Monitoring and drift",
    "Data quality basics",
    "Working with data scientists",
    "Choosing your first team",
    "Salary expectations",
    "Курсы и книги",
    "Common mistakes to avoid",
    "Testing ML systems",
    "Experiment tracking",
    "Итоги",
    "What I would do differently",
]

# Filler that keeps using words from the titles (models, data, team, first, mistakes, ...).
FILLER = [
    "Мы долго спорили, какие models выкатывать в production и кто за них отвечает.",
    "Data scientists приносили ноутбуки, а бэкендеры переписывали их в сервисы.",
    "Первый месяц был тяжелым, потому что the team не понимала, чего от нее ждут.",
    "Я бы сказал, что quality данных важнее, чем выбор конкретной модели.",
    "Мониторинг мы сначала делали руками, потом подключили алерты на drift.",
    "Тестировать такие systems сложнее, ответ не всегда детерминированный.",
    "Кстати, про salary лучше говорить честно и заранее, а не в конце.",
    "Ошибок было много, и common mistake номер один это отсутствие baseline.",
    "Experiment tracking у нас жил в табличке, и это было больно.",
    "Мы обсуждали serving models in production на митапе и спорили о latency.",
    "Книги я читал урывками, больше помогали курсы и разборы чужого кода.",
]


def test_long_transcript_with_twenty_sections_routes_correctly() -> None:
    outline = [SectionTitle(i + 100, t) for i, t in enumerate(LONG_OUTLINE_TITLES)]
    spoken = [  # (intro + title as spoken, section id)
        ("Дальше. Serving models in production.", 108),
        ("Так, следующий раздел. Data quality basic.", 110),
        ("Next. Common mistakes to avoid.", 115),
        ("Ну и вернемся к the math you actually need.", 102),
        ("Дальше, итоги.", 118),
    ]
    markers = ["Маркер один.", "Маркер два.", "Маркер три.", "Маркер четыре.", "Маркер пять."]
    chunks = [
        " ".join(FILLER[(k + i) % len(FILLER)] for i in range(24)) for k in range(len(spoken) + 1)
    ]
    pieces = [chunks[0]]
    for (title, _), marker, chunk in zip(spoken, markers, chunks[1:], strict=True):
        pieces += [title, marker, chunk]
    text = " ".join(pieces)
    assert len(text.split()) > 1500

    parts = route(text, outline)

    assert ids(parts) == [DEFAULT, *(section for _, section in spoken)]
    assert parts[0].text == chunks[0]
    for part, marker, chunk in zip(parts[1:], markers, chunks[1:], strict=True):
        assert part.text == f"{marker} {chunk}"


# --- Titles as a multilingual model writes them -------------------------------------------

MIGRATION = [
    SectionTitle(1, "Why we left stored procedures"),
    SectionTitle(2, "What broke in the first month"),
    SectionTitle(3, "How we test migrations now"),
]


def test_misheard_title_with_a_question_mark() -> None:
    parts = route(
        "Так, это заметка. Why we left sword procedures? Вся логика жила в базе.", MIGRATION
    )
    assert ids(parts) == [DEFAULT, 1]
    assert parts[1].text == "Вся логика жила в базе."


def test_title_glued_to_the_russian_that_follows() -> None:
    # No punctuation after the misheard title: the switch to Cyrillic is where it ends.
    parts = route(
        "Так, это заметка. Why we left sword procedures Вся логика жила в базе.", MIGRATION
    )
    assert ids(parts) == [DEFAULT, 1]
    assert parts[1].text == "Вся логика жила в базе."
    # Mentioned inside a Russian sentence, it is still no heading.
    mention = "Мы обсуждали why we left sword procedures вчера вечером."
    assert ids(route(mention, MIGRATION)) == [DEFAULT]


MIGRATION_OUTLINE = [
    SectionTitle(1, "Why we left stored procedures"),
    SectionTitle(2, "What broke in the first month"),
    SectionTitle(3, "How we test migrations now"),
]


def test_english_titles_written_in_cyrillic_letters_split_like_headings() -> None:
    text = (
        "Так, это заметка про переезд. Вай ви лефт сторд процедурс. Вся логика жила в базе. "
        "Вот броук ин зе фёрст манс. Сначала упали отчёты."
    )
    assert split_by_spoken_titles(text, MIGRATION_OUTLINE, 3) == [
        RoutedPart(3, "Так, это заметка про переезд.", False),
        RoutedPart(1, "Вся логика жила в базе.", True),
        RoutedPart(2, "Сначала упали отчёты.", True),
    ]


@pytest.mark.parametrize(
    "text",
    [
        # Russian about the same topics, even at sentence starts, is not a title.
        "Мы потом тестировали миграции. Вся логика жила в базе. Что сломалось в первый месяц?",
        # A Cyrillic rendering mid-sentence is a mention, not a heading.
        "Я расскажу, вай ви лефт сторд процедурс и что было дальше",
    ],
)
def test_russian_that_only_sounds_near_a_title_does_not_split(text: str) -> None:
    assert split_by_spoken_titles(text, MIGRATION_OUTLINE, 3) == [
        RoutedPart(3, text, False)
    ]

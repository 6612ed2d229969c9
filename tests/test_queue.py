"""The transcription queue on SQLite and PostgreSQL: one note, one claim, each chat in order,
chats taking turns; crashes counted (graceful stops not), a lost claim changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import Note, OutboxMessage
from bot.domain import IncomingMedia, NoteKind
from bot.notes.intake import IntakeService
from bot.notes.lifecycle import (
    FailureCode,
    IllegalTransition,
    NoteEvent,
    NoteState,
    advance,
    sources_of,
)
from bot.notes.queue import MAX_CRASHES, MAX_SERVICE_TRIES, Claim, NoteQueue
from tests.conftest import FAST

Sessions = async_sessionmaker[AsyncSession]


async def voice(sessions: Sessions, user: int, message_id: int) -> int:
    media = IncomingMedia(NoteKind.VOICE, f"file-{user}-{message_id}", None, 3, 1000)
    result = await IntakeService(sessions).receive_media(user, user, message_id, media)
    return result.note_id


def queue(sessions: Sessions) -> NoteQueue:
    return NoteQueue(sessions, FAST)


async def note(sessions: Sessions, note_id: int) -> Note:
    async with sessions.begin() as session:
        found = await session.get(Note, note_id)
        assert found is not None
        return found


async def claimed(sessions: Sessions, worker: str) -> int | None:
    claim = await queue(sessions).claim(worker)
    return claim.note_id if claim else None


async def lease_runs_out(sessions: Sessions, note_id: int) -> None:
    """As if the holder died a lease ago."""
    async with sessions.begin() as session:
        stored = await session.get(Note, note_id)
        assert stored is not None and stored.claim_expires_at is not None
        stored.claim_expires_at -= timedelta(seconds=2 * FAST.lease_s)


def test_the_lifecycle_allows_only_its_transitions() -> None:
    assert advance(NoteState.QUEUED, NoteEvent.CLAIM) == NoteState.TRANSCRIBING
    assert advance(NoteState.TRANSCRIBING, NoteEvent.RELEASE) == NoteState.QUEUED
    assert advance(NoteState.TRANSCRIBING, NoteEvent.FILE) == NoteState.FILED
    assert advance(NoteState.FAILED, NoteEvent.RETRY) == NoteState.QUEUED
    for state, event in [
        (NoteState.FILED, NoteEvent.FILE),  # never filed twice
        (NoteState.QUEUED, NoteEvent.FILE),  # never filed without a claim
        (NoteState.FILED, NoteEvent.FAIL),
        (NoteState.QUEUED, NoteEvent.RELEASE),
    ]:
        with pytest.raises(IllegalTransition):
            advance(state, event)
    assert set(sources_of(NoteEvent.CLAIM)) == {NoteState.QUEUED, NoteState.TRANSCRIBING}


async def test_each_chat_in_order_no_note_twice_and_chats_take_turns(sessions: Sessions) -> None:
    a1, a2, a3 = [await voice(sessions, 1, m) for m in (1, 2, 3)]
    b1 = await voice(sessions, 2, 1)
    assert await claimed(sessions, "w1") == a1
    # Chat 1's next note waits for its first: the other worker gets chat 2.
    assert await claimed(sessions, "w2") == b1
    assert await claimed(sessions, "w3") is None

    work = queue(sessions)
    first = Claim(**{**(await _claim_of(sessions, a1, "w1")).__dict__})
    assert await work.file(first, "one", language="en", audio_seconds=3)
    c1 = await voice(sessions, 3, 1)
    # Chat 3 was never served, chat 1 just was: chat 3 first, then chat 1 again.
    assert await claimed(sessions, "w1") == c1
    assert await claimed(sessions, "w3") == a2
    assert (await note(sessions, a3)).state == NoteState.QUEUED


async def test_concurrent_claims_never_take_the_same_note(sessions: Sessions) -> None:
    notes = {await voice(sessions, user, 1) for user in range(1, 9)}
    taken = await asyncio.gather(*(claimed(sessions, f"w{i}") for i in range(12)))
    assert sorted(n for n in taken if n is not None) == sorted(notes)


async def test_a_dead_workers_note_is_taken_over_and_the_dead_one_changes_nothing(
    sessions: Sessions,
) -> None:
    note_id = await voice(sessions, 1, 1)
    work = queue(sessions)
    dead = await work.claim("dead")
    assert dead is not None
    await lease_runs_out(sessions, note_id)
    alive = await work.claim("alive")
    assert alive is not None and alive.note_id == note_id
    assert (await note(sessions, note_id)).crashes == 1

    # Back, the dead worker learns it lost the note, and every write of its is refused.
    assert (await work.renew(dead)).ours is False
    assert await work.file(dead, "stale words", language="en", audio_seconds=3) is False
    assert await work.fail(dead, FailureCode.UNREADABLE) is False
    assert await work.hold(dead, FailureCode.SERVICE_DOWN) is False
    await work.release(dead)
    stored = await note(sessions, note_id)
    assert (stored.state, stored.claimed_by, stored.transcript) == (
        NoteState.TRANSCRIBING,
        "alive",
        None,
    )
    assert await work.file(alive, "the words", language="en", audio_seconds=3)
    assert (await note(sessions, note_id)).state == NoteState.FILED


async def test_a_graceful_release_is_free_at_once_and_no_crash(sessions: Sessions) -> None:
    note_id = await voice(sessions, 1, 1)
    work = queue(sessions)
    for _ in range(MAX_CRASHES + 2):
        claim = await work.claim("w")
        assert claim is not None and claim.note_id == note_id
        await work.release(claim)
    stored = await note(sessions, note_id)
    assert (stored.state, stored.crashes) == (NoteState.QUEUED, 0)


async def test_a_note_that_keeps_crashing_is_set_aside_and_retry_runs_it_again(
    sessions: Sessions,
) -> None:
    note_id = await voice(sessions, 1, 1)
    work = queue(sessions)
    for _ in range(MAX_CRASHES):
        assert await claimed(sessions, "w") == note_id
        await lease_runs_out(sessions, note_id)
    assert await work.claim("w") is None, "set aside instead of a third crash"
    stored = await note(sessions, note_id)
    assert (stored.state, stored.failure) == (NoteState.FAILED, FailureCode.GAVE_UP)
    assert stored.file_id is not None, "kept what is needed to run it again"

    assert await work.retry(2) == 0, "another writer's /retry reaches nothing"
    assert await work.retry(1) == 1
    stored = await note(sessions, note_id)
    assert (stored.state, stored.crashes, stored.failure) == (NoteState.QUEUED, 0, None)
    assert await claimed(sessions, "w") == note_id


async def test_a_held_note_waits_for_its_time_first_of_its_chat_then_is_set_aside(
    sessions: Sessions,
) -> None:
    first = await voice(sessions, 1, 1)
    second = await voice(sessions, 1, 2)
    work = queue(sessions)
    for attempt in range(1, MAX_SERVICE_TRIES + 1):
        claim = await work.claim("w")
        assert claim is not None and claim.note_id == first
        gave_up = await work.hold(claim, FailureCode.SERVICE_DOWN)
        assert gave_up == (attempt == MAX_SERVICE_TRIES)
        if gave_up:
            break
        # Not before its retry time, and the chat's later note waits behind it.
        assert await work.claim("w") is None
        stored = await note(sessions, first)
        assert (stored.state, stored.failure) == (NoteState.QUEUED, FailureCode.SERVICE_DOWN)
        async with sessions.begin() as session:
            await session.execute(update(Note).where(Note.id == first).values(not_before=None))
    stored = await note(sessions, first)
    assert (stored.state, stored.failure) == (NoteState.FAILED, FailureCode.SERVICE_DOWN)
    assert await claimed(sessions, "w") == second


async def test_cancel_reaches_only_the_writers_running_note(sessions: Sessions) -> None:
    mine = await voice(sessions, 1, 1)
    await voice(sessions, 1, 2)
    other = await voice(sessions, 2, 1)
    work = queue(sessions)
    assert await work.request_cancel(1) is False, "nothing of writer 1 runs yet"
    a = await work.claim("w1")
    b = await work.claim("w2")
    assert a is not None and a.note_id == mine and b is not None and b.note_id == other
    assert await work.request_cancel(1) is True
    assert (await work.renew(a)).cancel is True
    assert (await work.renew(b)).cancel is False


async def test_every_change_of_state_tells_the_writer_in_the_same_transaction(
    sessions: Sessions,
) -> None:
    note_id = await voice(sessions, 1, 1)
    work = queue(sessions)
    claim = await work.claim("w")
    assert claim is not None
    await work.fail(claim, FailureCode.NO_SPEECH)
    async with sessions.begin() as session:
        rows = list(
            await session.scalars(
                select(OutboxMessage.subject).where(OutboxMessage.chat_id == 1)
            )
        )
    assert rows == [f"note:{note_id}", f"note:{note_id}"], "the acknowledgement, the failure"


async def _claim_of(sessions: Sessions, note_id: int, worker: str) -> Claim:
    stored = await note(sessions, note_id)
    assert stored.claimed_by == worker
    return Claim(
        note_id=note_id,
        worker=worker,
        owner_id=stored.owner_id,
        chat_id=stored.chat_id,
        kind=stored.kind,
        file_id=stored.file_id or "",
        duration=stored.duration,
        audio_path=None,
        created_at=stored.created_at,
        article_title="",
        outline=[],
    )

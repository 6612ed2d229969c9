"""The outbox on SQLite and PostgreSQL, with an in-process messenger: each chat in order,
chats independent, a subject's waiting rows shown once as its latest state, retries with
backoff, nothing sent twice after a partial failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db.models import MessageView, OutboxMessage
from bot.domain import Notice, NoticeKind
from bot.services.outbox import OutboxDelivery, post_notice, post_view
from tests.conftest import FAST
from tests.fakes.messenger import FakeMessenger, Shown, TryLater, Undeliverable

A, B = 1001, 2002


async def _thing(session: AsyncSession, key: str, payload: Mapping[str, Any]) -> object | None:
    """What the subject "thing:<key>" looks like: its merged payload (None: nothing left)."""
    return None if payload.get("gone") else {"key": key, **payload}


def delivery(
    sessions: async_sessionmaker[AsyncSession], messenger: FakeMessenger
) -> OutboxDelivery:
    return OutboxDelivery(sessions, messenger, {"thing": _thing}, FAST)


async def view(
    sessions: async_sessionmaker[AsyncSession], chat: int, key: int, **payload: object
) -> None:
    async with sessions.begin() as session:
        await post_view(session, chat, f"thing:{key}", reply_to=key * 10, **payload)


async def waiting(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions.begin() as session:
        return int(await session.scalar(select(func.count(OutboxMessage.id))) or 0)


async def views_of(sessions: async_sessionmaker[AsyncSession], subject: str) -> dict[int, int]:
    async with sessions.begin() as session:
        rows = await session.execute(
            select(MessageView.position, MessageView.message_id).where(
                MessageView.subject == subject
            )
        )
        return {position: message_id for position, message_id in rows}


async def test_waiting_rows_of_a_subject_are_shown_once_as_its_latest_state(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    messenger = FakeMessenger()
    await view(sessions, A, 1, stage="acknowledged", started="Untitled")
    await view(sessions, A, 1, stage="progress")
    await view(sessions, A, 1, stage="filed")
    await delivery(sessions, messenger).deliver_due()
    [shown] = messenger.history
    assert isinstance(shown, Shown)
    # Later keys win, earlier ones (the context of the first row) are kept.
    assert shown.view == {"key": "1", "stage": "filed", "started": "Untitled"}
    assert shown.reply_to == 10 and shown.shown_before == {}
    assert await waiting(sessions) == 0

    # A later state edits the same message: the messenger is handed the view's message.
    await view(sessions, A, 1, stage="moved")
    await delivery(sessions, messenger).deliver_due()
    second = messenger.history[-1]
    assert isinstance(second, Shown) and second.shown_before == await views_of(sessions, "thing:1")


async def test_each_chat_in_order_and_a_chat_that_must_wait_holds_up_nobody(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    messenger = FakeMessenger()
    for key in (1, 2, 3):
        await view(sessions, A, key, n=key)
    await view(sessions, B, 9, n=9)
    messenger.fail_next(TryLater(retry_after=60), chat_id=A)  # flood control, chat A only
    await delivery(sessions, messenger).deliver_due()
    # B was delivered; A's first row waits out its 60 s, and its later rows wait behind it.
    assert messenger.views() == [{"key": "9", "n": 9}]
    assert await waiting(sessions) == 3
    async with sessions.begin() as session:
        first = await session.scalar(select(OutboxMessage).order_by(OutboxMessage.id).limit(1))
        assert first is not None and first.attempts == 1 and first.not_before is not None

    async with sessions.begin() as session:  # the wait is over
        first = await session.get(OutboxMessage, first.id)
        assert first is not None
        first.not_before = None
    await delivery(sessions, messenger).deliver_due()
    assert [v["n"] for v in messenger.views(A)] == [1, 2, 3]  # type: ignore[index]


async def test_a_chat_that_is_gone_drops_its_message_and_goes_on(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    messenger = FakeMessenger()
    async with sessions.begin() as session:
        await post_notice(session, A, Notice(NoticeKind.RESUMED, 2))
    await view(sessions, A, 1)
    messenger.fail_next(Undeliverable(), chat_id=A)
    await delivery(sessions, messenger).deliver_due()
    assert messenger.views(A) == [{"key": "1"}], "the notice was dropped, the next row sent"
    assert await waiting(sessions) == 0


async def test_a_long_view_cut_off_halfway_is_finished_without_sending_a_piece_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    messenger = FakeMessenger(pieces=3)
    await view(sessions, A, 1, text="long")
    messenger.fail_next(TryLater(), after_pieces=1)  # the first piece goes out, then a 5xx
    outbox = delivery(sessions, messenger)
    await outbox.deliver_due()
    partial = await views_of(sessions, "thing:1")
    assert partial and len(partial) < 3, "what was sent before the failure is remembered"

    async with sessions.begin() as session:
        row = await session.scalar(select(OutboxMessage))
        assert row is not None
        row.not_before = None
    await outbox.deliver_due()
    [shown] = messenger.history
    assert isinstance(shown, Shown) and shown.shown_before == partial, "the retry edits those"
    final = await views_of(sessions, "thing:1")
    assert len(final) == 3 and all(final[p] == partial[p] for p in partial)


async def test_a_subject_with_nothing_left_to_show_is_skipped(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    messenger = FakeMessenger()
    await view(sessions, A, 1, gone=True)
    async with sessions.begin() as session:
        await post_notice(session, A, Notice(NoticeKind.RESUMED, 1))
    await delivery(sessions, messenger).deliver_due()
    assert messenger.history == [(A, Notice(NoticeKind.RESUMED, 1))]
    assert await waiting(sessions) == 0

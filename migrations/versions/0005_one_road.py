"""one road for a note: the inbox, one outbox with message views, an explicit note lifecycle

Revision ID: 0005
Revises: 0004

Notes get a `state` (queued, transcribing, filed, failed) and a `failure` code instead of a
status and an English sentence; `crashes` counts claims that ran out (a graceful stop no longer
counts); the acknowledgement's message id moves to `message_views`. The outbox of the separate
workers becomes the one outbox for everything the bot tells a writer about a note.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite may rebuild the table: keep ids never reused (see bot/db/models.py).
NEVER_REUSE = {"sqlite_autoincrement": True}

# The sentences 0001-0004 stored in notes.error, by their opening words, and their codes.
ERROR_CODES = [
    ("I couldn't hear any speech%", "no_speech"),
    ("I couldn't read that recording%", "unreadable"),
    ("I couldn't download that recording%", "download_failed"),
    ("Transcription cancelled%", "cancelled"),
    ("Removed before it was transcribed%", "cancelled"),
    ("That recording looks cut off%", "cut_off"),
    ("I couldn't transcribe that recording after several tries%", "gave_up"),
    ("The transcription service isn't answering%", "service_down"),
    ("The transcription service refused%", "service_refused"),
    ("That recording is over 25 MB%", "too_large_for_service"),
]
CODE_SENTENCES = {
    "no_speech": "I couldn't hear any speech in that recording, so I didn't file it.",
    "unreadable": "I couldn't read that recording (the file looks damaged or isn't audio). "
    "Nothing was filed; please send it again.",
    "download_failed": "I couldn't download that recording from Telegram. Please send it again.",
    "cancelled": "Transcription cancelled. Nothing was filed.",
    "cut_off": "That recording looks cut off (it is much shorter than Telegram says), so I "
    "didn't file it. Please send it again.",
    "gave_up": "I couldn't transcribe that recording after several tries, so I set it aside.",
    "service_down": "The transcription service isn't answering right now.",
    "service_refused": "The transcription service refused the request (its API key, model or "
    "quota needs a look).",
    "too_large_for_service": "That recording is over 25 MB, more than the transcription "
    "service takes. Please send a shorter one.",
}


def _create_outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("subject", sa.String(length=60), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("payload", sa.Text(), server_default="{}", nullable=False),
        sa.Column("reply_to", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        **NEVER_REUSE,
    )
    op.create_index("ix_outbox_chat_id_id", "outbox", ["chat_id", "id"], unique=False)


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), nullable=False),
        sa.Column("update_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("bot_id", "update_id", name="uq_inbox_bot_update"),
        **NEVER_REUSE,
    )
    op.create_index("ix_inbox_unhandled", "inbox", ["handled_at", "id"], unique=False)
    op.create_table(
        "message_views",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("subject", sa.String(length=60), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "subject", "position", name="uq_message_views_piece"),
        **NEVER_REUSE,
    )
    op.create_index(
        "ix_message_views_message", "message_views", ["chat_id", "message_id"], unique=False
    )
    # Acknowledgements already sent keep being edited by the transcript.
    op.execute(
        "INSERT INTO message_views (chat_id, subject, position, message_id) "
        "SELECT chat_id, 'note:' || CAST(id AS VARCHAR(20)), 0, ack_message_id FROM notes "
        "WHERE ack_message_id IS NOT NULL"
    )
    # Messages the old workers left for the bot: their notes are shown again from their
    # state by the new outbox, below.
    op.drop_index("ix_outbox_note_id", table_name="outbox")
    op.drop_table("outbox")
    _create_outbox()

    with op.batch_alter_table("notes", table_kwargs=NEVER_REUSE) as batch_op:
        batch_op.add_column(sa.Column("state", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("failure", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("caption", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("crashes", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("service_tries", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("progress", sa.Float(), nullable=True))
    op.execute(
        "UPDATE notes SET state = CASE status "
        "WHEN 'transcribed' THEN 'filed' WHEN 'failed' THEN 'failed' ELSE 'queued' END, "
        # Interruptions counted before may have been graceful stops: start afresh.
        "crashes = 0, claimed_by = NULL, claim_expires_at = NULL"
    )
    for pattern, code in ERROR_CODES:
        op.execute(
            sa.text(
                "UPDATE notes SET failure = :code WHERE failure IS NULL AND error LIKE :pattern"
            ).bindparams(code=code, pattern=pattern)
        )
    op.execute("UPDATE notes SET failure = 'unreadable' WHERE state = 'failed' AND failure IS NULL")
    # Unfinished notes the writer was told would be retried keep that reason until they run.
    op.execute("UPDATE notes SET failure = NULL WHERE state = 'filed'")
    # Queue them again with their outbox row, so the writer sees how they end.
    op.execute(
        "INSERT INTO outbox (chat_id, subject, kind, payload, created_at, attempts) "
        "SELECT chat_id, 'note:' || CAST(id AS VARCHAR(20)), 'note', '{}', created_at, 0 "
        "FROM notes WHERE state = 'queued'"
    )
    with op.batch_alter_table("notes", table_kwargs=NEVER_REUSE) as batch_op:
        batch_op.alter_column("state", existing_type=sa.String(length=30), nullable=False)
        batch_op.drop_index("ix_notes_status")
        batch_op.create_index("ix_notes_state", ["state"], unique=False)
        batch_op.drop_column("status")
        batch_op.drop_column("error")
        batch_op.drop_column("attempts")
        batch_op.drop_column("ack_message_id")
    sa.Enum(name="note_status").drop(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    note_status = sa.Enum("received", "downloaded", "transcribed", "failed", name="note_status")
    note_status.create(op.get_bind(), checkfirst=True)
    with op.batch_alter_table("notes", table_kwargs=NEVER_REUSE) as batch_op:
        batch_op.add_column(sa.Column("status", note_status, nullable=True))
        batch_op.add_column(sa.Column("error", sa.String(length=500), nullable=True))
        batch_op.add_column(
            sa.Column("attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("ack_message_id", sa.BigInteger(), nullable=True))
    # PostgreSQL keeps the status as its own enum type: the text must be cast to it.
    cast = "::note_status" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(
        f"UPDATE notes SET status = (CASE state WHEN 'filed' THEN 'transcribed' "
        f"WHEN 'failed' THEN 'failed' ELSE 'received' END){cast}, attempts = crashes"
    )
    for code, sentence in CODE_SENTENCES.items():
        op.execute(
            sa.text("UPDATE notes SET error = :sentence WHERE failure = :code").bindparams(
                sentence=sentence, code=code
            )
        )
    op.execute(
        "UPDATE notes SET ack_message_id = (SELECT v.message_id FROM message_views v "
        "WHERE v.chat_id = notes.chat_id AND v.position = 0 "
        "AND v.subject = 'note:' || CAST(notes.id AS VARCHAR(20)))"
    )
    with op.batch_alter_table("notes", table_kwargs=NEVER_REUSE) as batch_op:
        batch_op.alter_column("status", existing_type=note_status, nullable=False)
        batch_op.drop_index("ix_notes_state")
        batch_op.create_index("ix_notes_status", ["status"], unique=False)
        for column in (
            "state",
            "failure",
            "caption",
            "claimed_at",
            "not_before",
            "crashes",
            "service_tries",
            "progress",
        ):
            batch_op.drop_column(column)

    op.drop_index("ix_outbox_chat_id_id", table_name="outbox")
    op.drop_table("outbox")
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        **NEVER_REUSE,
    )
    op.create_index("ix_outbox_note_id", "outbox", ["note_id"], unique=False)
    op.drop_index("ix_message_views_message", table_name="message_views")
    op.drop_table("message_views")
    op.drop_index("ix_inbox_unhandled", table_name="inbox")
    op.drop_table("inbox")

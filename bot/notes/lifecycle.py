"""A note's lifecycle: its states, the events that move it, and why it failed.

Every state change of a note goes through `advance`, so the legal moves are written down once:

    QUEUED ──claim──► TRANSCRIBING ──file──► FILED
      ▲                 │   │  ╰──fail──► FAILED
      │                 │   ╰──claim (the holder died: another worker takes over)
      ╰──── release ────╯        (a graceful stop, or a service that is down: tried later)
    FAILED ──retry──► QUEUED      (/retry)
    FILED  ──retry──► QUEUED      (transcribe again, e.g. in another language)
    QUEUED ──fail──► FAILED       (given up at claim time, or cancelled before it started)

A typed note is born FILED. Deleting a note (/undo, the 🗑 button) removes its row whatever its
state. Failures are codes (`FailureCode`); only `bot/telegram/texts.py` turns them into words.
"""

from __future__ import annotations

from enum import StrEnum


class NoteState(StrEnum):
    QUEUED = "queued"  # stored; waiting for a worker (or for its retry time)
    TRANSCRIBING = "transcribing"  # a worker holds its claim
    FILED = "filed"  # transcript stored and filed under the article's sections
    FAILED = "failed"  # `failure` says why; /retry queues it again


class NoteEvent(StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    FILE = "file"
    FAIL = "fail"
    RETRY = "retry"


class FailureCode(StrEnum):
    """Why a note is not filed (FAILED), or what held it back last (QUEUED, tried later)."""

    NO_SPEECH = "no_speech"  # silence or noise only
    UNREADABLE = "unreadable"  # not audio, or damaged beyond decoding
    CUT_OFF = "cut_off"  # decodes to much less than Telegram says it lasts
    DOWNLOAD_FAILED = "download_failed"  # Telegram would not hand the file over
    CANCELLED = "cancelled"  # /cancel
    GAVE_UP = "gave_up"  # its transcription crashed the worker too often
    SERVICE_DOWN = "service_down"  # hosted transcription: outage or rate limit
    SERVICE_REFUSED = "service_refused"  # hosted transcription: key or quota refused
    TOO_LARGE_FOR_SERVICE = "too_large_for_service"  # over the hosted service's upload limit


class IllegalTransition(Exception):
    """A state change the lifecycle does not allow: a bug, never a writer's mistake."""


UNFINISHED = (NoteState.QUEUED, NoteState.TRANSCRIBING)

_TRANSITIONS: dict[tuple[NoteState, NoteEvent], NoteState] = {
    (NoteState.QUEUED, NoteEvent.CLAIM): NoteState.TRANSCRIBING,
    # The previous holder's claim ran out (it died): another worker takes the note over.
    (NoteState.TRANSCRIBING, NoteEvent.CLAIM): NoteState.TRANSCRIBING,
    (NoteState.TRANSCRIBING, NoteEvent.RELEASE): NoteState.QUEUED,
    (NoteState.TRANSCRIBING, NoteEvent.FILE): NoteState.FILED,
    (NoteState.TRANSCRIBING, NoteEvent.FAIL): NoteState.FAILED,
    (NoteState.QUEUED, NoteEvent.FAIL): NoteState.FAILED,
    (NoteState.FAILED, NoteEvent.RETRY): NoteState.QUEUED,
    (NoteState.FILED, NoteEvent.RETRY): NoteState.QUEUED,
}


def advance(state: NoteState, event: NoteEvent) -> NoteState:
    """The state after `event`; IllegalTransition when the event cannot happen in `state`."""
    try:
        return _TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"{event.value} is not allowed in state {state.value}") from None


def sources_of(event: NoteEvent) -> tuple[NoteState, ...]:
    """The states in which `event` may happen (for queries that move many notes at once)."""
    return tuple(state for state, ev in _TRANSITIONS if ev is event)

"""How long the bot waits for what: one object passed to whoever waits, never module constants
patched by tests (tests pass a `Timing` with short waits)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    # The queue: a worker renews its claim (and notices /cancel, /undo) this often; a claim
    # it stops renewing (it died) runs out after `lease_s`.
    worker_poll_s: float = 1.0
    lease_s: float = 60.0
    # A note whose transcription service was down (or whose download failed) waits this long.
    service_retry_s: float = 180.0
    # A download is tried this often in a row, waiting 1, 2, 4… times `download_backoff_s`.
    download_attempts: int = 4
    download_backoff_s: float = 1.0
    # Progress of a long recording is stored (and shown) at most this often.
    progress_interval_s: float = 5.0
    # The outbox: looked at this often for rows other processes added; a message Telegram did
    # not take is tried again after 1, 2, 4… times `outbox_backoff_s`, at most
    # `outbox_backoff_max_s`.
    outbox_poll_s: float = 0.5
    outbox_backoff_s: float = 1.0
    outbox_backoff_max_s: float = 300.0
    # Long polling: how long one getUpdates waits for updates; after a network error, how long
    # before the next try (doubling up to 30 s).
    poll_timeout_s: int = 30
    poll_backoff_s: float = 1.0
    # A graceful stop lets work that is filing or replying finish for this long.
    stop_grace_s: float = 5.0
    # Handled updates are kept this long to recognise a redelivery, then pruned.
    inbox_keep_s: float = 2 * 24 * 3600

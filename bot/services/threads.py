"""Run blocking work in daemon threads so a shutdown never waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = Callable[[], None]


class _DaemonThread(threading.Thread):
    """A long-lived daemon thread that runs one job at a time, then waits for the next.

    Threads are reused rather than started per job: every new thread gets a fresh malloc
    arena, and whisper's buffers spread over many arenas kept the process about a tenth
    larger than it needs to be.
    """

    def __init__(self) -> None:
        super().__init__(name="blocking-worker", daemon=True)
        self.jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            finally:
                del job  # what it holds (a window's audio) is not kept while the thread idles
                _finished(self)


_lock = threading.Condition()
_idle: list[_DaemonThread] = []
_busy = 0


def _finished(thread: _DaemonThread) -> None:
    global _busy
    with _lock:
        _busy -= 1
        _idle.append(thread)
        _lock.notify_all()


def _submit(job: _Job) -> None:
    global _busy
    with _lock:
        _busy += 1
        thread = _idle.pop() if _idle else None
    if thread is None:
        thread = _DaemonThread()
        thread.start()
    thread.jobs.put(job)


async def run_in_daemon_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Like asyncio.to_thread, but on a daemon thread.

    The default executor's threads are joined at interpreter exit, so a long transcription
    would hold SIGTERM hostage; a daemon thread is abandoned instead, and the note, which is
    not marked transcribed, is resumed at the next start.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def job() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    _submit(job)
    return await future


def join_daemon_threads(timeout: float) -> bool:
    """At exit: wait up to `timeout` seconds for blocking work that was asked to stop; False
    when some is still running.

    A thread still inside native code (CTranslate2) when the interpreter exits aborts the
    process ("terminate called without an active exception"); a transcription that was
    cancelled stops at its next segment, usually well within this time.
    """
    deadline = time.monotonic() + timeout
    with _lock:
        while _busy and (left := deadline - time.monotonic()) > 0:
            _lock.wait(left)
        return not _busy


def start_in_daemon_thread(job: Callable[[], None]) -> None:
    """Run `job` on a reused daemon thread (waited for by join_daemon_threads like the rest);
    `job` reports its own outcome."""
    _submit(job)

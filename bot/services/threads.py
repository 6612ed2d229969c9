"""Run blocking work in a daemon thread so a shutdown never waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# Threads started here that may still be running: a shutdown gives them a moment to stop.
_threads: set[threading.Thread] = set()


async def run_in_daemon_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Like asyncio.to_thread, but the thread is a daemon.

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

    def runner() -> None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        _threads.discard(threading.current_thread())
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    thread = threading.Thread(target=runner, name=f"worker-{fn.__name__}", daemon=True)
    _threads.add(thread)
    thread.start()
    return await future


def join_daemon_threads(timeout: float) -> None:
    """At exit: wait up to `timeout` seconds for daemon threads that were asked to stop.

    A thread still inside native code (CTranslate2) when the interpreter exits aborts the
    process ("terminate called without an active exception"); a transcription that was
    cancelled stops at its next segment, usually well within this time.
    """
    deadline = time.monotonic() + timeout
    for thread in list(_threads):
        thread.join(max(0.0, deadline - time.monotonic()))

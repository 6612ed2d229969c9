"""Blocking work on reused daemon threads: in parallel when asked, joined briefly at exit."""

from __future__ import annotations

import asyncio
import threading

import pytest

from bot.services.threads import join_daemon_threads, run_in_daemon_thread


async def test_one_job_after_another_reuses_the_thread() -> None:
    first = await run_in_daemon_thread(threading.get_ident)
    second = await run_in_daemon_thread(threading.get_ident)
    assert first == second != threading.get_ident()
    assert threading.current_thread() is threading.main_thread()


async def test_jobs_at_the_same_time_run_in_parallel_on_daemon_threads() -> None:
    barrier = threading.Barrier(3, timeout=10)

    def meet() -> bool:
        barrier.wait()  # only returns once three jobs run at the same time
        return threading.current_thread().daemon

    assert await asyncio.gather(*(run_in_daemon_thread(meet) for _ in range(3))) == [True] * 3


async def test_errors_reach_the_caller() -> None:
    def fail() -> None:
        raise ValueError("bad audio")

    with pytest.raises(ValueError, match="bad audio"):
        await run_in_daemon_thread(fail)
    assert await run_in_daemon_thread(lambda: 42) == 42  # the thread survived it


async def test_exit_waits_for_a_stopping_job_but_not_forever() -> None:
    release, done = threading.Event(), threading.Event()

    def job() -> None:
        release.wait(10)
        done.set()

    running = asyncio.ensure_future(run_in_daemon_thread(job))
    await asyncio.sleep(0.05)
    await asyncio.to_thread(join_daemon_threads, 0.1)  # a job that does not stop: give up
    assert not done.is_set()
    threading.Timer(0.1, release.set).start()  # a cancelled job reaching its next segment
    await asyncio.to_thread(join_daemon_threads, 10)
    assert done.is_set()
    await running

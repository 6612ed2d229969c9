"""A stop while a window is still in whisper's native code (a slow machine, a long window):
the process exits with status 0 after the grace, never crashing under the thread. Everything
is stored by then; the note resumes at the next start (tests/test_long_notes.py, kill -9)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import AUDIO

PROBE = """
import sys, threading, time
from faster_whisper import WhisperModel
from bot import cli
from bot.services.threads import start_in_daemon_thread

model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=1)
inside = threading.Event()

def transcribe() -> None:
    segments, _ = model.transcribe(sys.argv[2], beam_size=5)
    inside.set()
    for _ in segments:
        pass

start_in_daemon_thread(transcribe)
assert inside.wait(60)
time.sleep(0.5)  # well inside the native decoding of the first segments
sys.exit(cli.after_stop(0.1) if sys.argv[3] == "after_stop" else 0)
"""


def run_probe(model: str, ending: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, "-c", PROBE, model, str(AUDIO / "long_speech.ogg"), ending],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_exiting_with_a_window_in_whisper_ends_cleanly(tiny_model_path: str) -> None:
    # With the interpreter's own exit instead ("interpreter"), this ended in a segfault (139)
    # or an abort (-6) in every run here.
    stopped = run_probe(tiny_model_path, "after_stop")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr

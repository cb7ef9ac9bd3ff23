"""Process-wide tuning, in a fresh interpreter (freezing the heap of the test process would stick)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from orchestrator.process import GC_MIDDLE_THRESHOLD, GC_YOUNG_THRESHOLD

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import gc
from orchestrator.process import tune_gc

assert gc.get_freeze_count() == 0
oldest = gc.get_threshold()[2]
tune_gc()
frozen = gc.get_freeze_count()
made_later = [[] for _ in range(1000)]
tune_gc()  # a second start (another Orchestrator) must not pin what the process made since
print(frozen, gc.get_freeze_count(), *gc.get_threshold(), oldest)
"""


def test_the_startup_heap_is_frozen_once() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    frozen, after, young, middle, old, old_before = map(int, out)
    assert frozen > 1000, "start-up objects were moved to the permanent generation"
    assert after == frozen
    assert (young, middle, old) == (GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, old_before)  # the oldest as it was

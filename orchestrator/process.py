"""Process-wide tuning of the garbage collector for a long-lived TaskFlow process.

CPython's full garbage collections walk every tracked object, and a service holds a few hundred
thousand of them from start-up alone (imported modules, pydantic schemas, aiohttp and aiogram). One
full collection then stalls the event loop, and every run on it, for tens of milliseconds (measured
with ``gc.callbacks`` during a 10,000-task run: 28-45 ms for one collection). Those objects live as
long as the process, so once it has started they are moved out of the collector's sight
(``gc.freeze``, as the CPython docs advise for long-lived processes): a full collection then costs
what the runs hold, not what the process imported.

The young generation is collected every ``GC_YOUNG_THRESHOLD`` allocations instead of CPython's 700:
a 10,000-task run allocates a few hundred thousand objects, nearly all freed by reference counting,
and at 700 it paid ~140 young, 13 middle and one full collection, 20-45 ms of its ~300 ms (measured
with ``gc.callbacks``); at 20,000, a few milliseconds. Only cyclic garbage waits longer to go.

The middle generation is collected every ``GC_MIDDLE_THRESHOLD`` young collections instead of 10.
A run's own objects (its config, task slots, records) survive the young collections made while it
runs, so a middle collection that comes while a 10,000-task run is alive walks them all: 35-40 ms,
which at 10 came every second or third such run. At 100 it comes ten times less often, and mostly
after runs have ended and freed them (8 runs in a row: 156-173 ms of collections at 10, 82-92 at 100).
The price: cyclic garbage that outlived one young collection waits longer to go (peak RSS of the
10,000-task benchmark: 81 -> 85 MiB). These figures are CPython 3.11's generational collector;
3.14's incremental one reads the thresholds differently.
"""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 20_000
GC_MIDDLE_THRESHOLD = 100


def tune_gc() -> None:
    """Collect what start-up left behind, freeze the rest, collect the young less often (once only)."""
    if gc.get_freeze_count():
        return  # frozen already: freezing again would also pin whatever the process made since
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, gc.get_threshold()[2])

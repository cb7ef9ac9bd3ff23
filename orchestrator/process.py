"""Process-wide tuning for a long-lived TaskFlow process.

CPython's full garbage collections walk every tracked object, and a service holds a few hundred
thousand of them from start-up alone (imported modules, pydantic schemas, aiohttp and aiogram). One
full collection then stalls the event loop, and every run on it, for tens of milliseconds (measured
with ``gc.callbacks`` during a 10,000-task run: 28-45 ms for one collection). Those objects live as
long as the process, so once it has started they are moved out of the collector's sight
(``gc.freeze``, as the CPython docs advise for long-lived processes): a full collection then costs
what the runs hold, not what the process imported.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect what start-up left behind, then freeze the rest; only the first call does anything."""
    if gc.get_freeze_count():
        return  # frozen already: freezing again would also pin whatever the process made since
    gc.collect()
    gc.freeze()

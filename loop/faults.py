"""Named crash points, for the fault tests and bench/bench_faults.py: a job armed with LADDER_FAULT dies there.

`LADDER_FAULT=export.written` makes a job process SIGKILL itself when it reaches that
point; `train.step:3` at the third time. Only a job process arms itself (loop.jobs.child),
so a test that sets the variable never kills itself. Unarmed, a point costs one comparison.
"""

from __future__ import annotations

import os
import signal

ENV = "LADDER_FAULT"
# Every point, in the order a generation reaches them (bench/bench_faults.py draws from this list).
POINTS = (
    "replay.start", "replay.answered", "replay.written",
    "train.start", "train.step", "train.saving",
    "merge.start", "merge.saved",
    "dpo.start", "dpo.swap", "dpo.done",
    "export.start", "export.written", "export.renamed",
    "eval.start", "eval.child", "eval.parent",
    "gate.start", "gate.committed", "gate.ledger",
)
_armed: tuple[str, int] | None = None
_hits: dict[str, int] = {}


def arm_from_env() -> None:
    global _armed
    value = os.environ.pop(ENV, "")
    if value:
        name, _, nth = value.partition(":")
        _armed = (name, int(nth or 1))


def point(name: str) -> None:
    if _armed is None or _armed[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)

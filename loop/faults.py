"""Named crash points, for the fault tests and bench/bench_faults.py: a job armed with LADDER_FAULT dies there.

`LADDER_FAULT=export.written` makes a job process SIGKILL itself when it reaches that
point; `train.step:3` at the third time. `LADDER_HOLD=train.start` makes it wait there
instead, with a file `held` in its job folder, until a file `release` appears beside it
(a test then acts while the job is known to be at that point). Only a job process arms
itself (loop.jobs.child), so a test that sets the variables never stops itself. Unarmed,
a point costs one comparison.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = "LADDER_FAULT"
HOLD_ENV = "LADDER_HOLD"
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
_hold: tuple[str, Path] | None = None
_hits: dict[str, int] = {}


def arm_from_env(job_dir: Path) -> None:
    global _armed, _hold
    value = os.environ.pop(ENV, "")
    if value:
        name, _, nth = value.partition(":")
        _armed = (name, int(nth or 1))
    held = os.environ.pop(HOLD_ENV, "")
    if held:
        _hold = (held, Path(job_dir))


def point(name: str) -> None:
    if _hold is not None and _hold[0] == name:
        _wait(_hold[1])
    if _armed is None or _armed[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= _armed[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def _wait(folder: Path) -> None:
    (folder / "held").write_text(str(os.getpid()), encoding="utf-8")
    while not (folder / "release").exists():
        time.sleep(0.02)

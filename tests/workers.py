"""What README's test command needs to spread the suite over pytest-xdist workers: folders the run's workers share,
things made once for all of them, and the order in which modules are handed out."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# The modules that take longest, handed out first so that none of them trails the run (quiet, one process:
# the demo 270 s, end to end 300 s, the killed jobs 450 s, llama.cpp side by side 100 s).
HEAVY_FIRST = ("tests/test_demo.py", "tests/test_end_to_end.py", "tests/test_jobs.py", "tests/loop/test_parallel.py",
               "tests/loop/test_evals.py", "tests/test_train_processes.py", "tests/loop/test_export.py")


def run_dir(tmp_path_factory) -> Path:
    """The run's own folder, the same in every worker (a worker's temporary folder lies inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(tmp_path_factory, name: str, make: Callable[[Path], object]) -> Path:
    """A folder of the run's made by the first worker that asks, under a lock; the others wait and take it.
    What is in it is read only."""
    from loop.locks import FileLock

    folder = run_dir(tmp_path_factory) / "shared" / name
    with FileLock(folder.parent / f"{name}.lock", f"the test run's {name}", timeout=1800):
        done = folder.parent / f"{name}.done"  # beside the folder, which holds only what make() wrote
        if not done.exists():
            folder.mkdir(parents=True, exist_ok=True)
            make(folder)
            done.touch()
    return folder


def order_key(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return HEAVY_FIRST.index(path) if path in HEAVY_FIRST else len(HEAVY_FIRST)


def uses_module_fixture(item) -> bool:
    return any(defs[-1].scope == "module" for defs in item._fixtureinfo.name2fixturedefs.values())

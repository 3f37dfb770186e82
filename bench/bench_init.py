"""Time `ladder init` on the embedded model: the first workspace of a base, then the next one.

    .venv/bin/python bench/bench_init.py

Each init runs as its own `ladder init` process (imports included, as a user meets it) in a
fresh workspace, with a cache folder of this run's (XDG_CACHE_HOME), so the first is cold and
the second reuses G0's answers (eval.base_answer_cache). Per stage, from the stage events in
each workspace's store, then the wall time of each process and their ratio.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = {"convert": "convert base to fp32", "export": "export G0 GGUF", "eval": "probes, tone, suites",
          "steady": "rounded copy: export + re-ask"}


def init(folder: Path, env: dict[str, str]) -> tuple[float, dict[str, float], dict]:
    t = time.perf_counter()
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "ladder"), "--config", str(folder / "config.toml"), "init",
                          "--json"], capture_output=True, text=True, env=env, check=True)
    wall = time.perf_counter() - t
    with sqlite3.connect(folder / "ladder.db") as db:
        rows = db.execute("select ts, kind, message, data from event order by id").fetchall()
    marks = []
    for ts, kind, message, data in rows:
        if kind == "stage":
            stage = json.loads(data).get("stage", "")
            stage = "steady" if "other precision" in message else stage
            marks.append((stage, datetime.fromisoformat(ts)))
    marks.append(("end", datetime.fromisoformat(rows[-1][0])))
    stages: dict[str, float] = {}
    for (name, t0), (_, t1) in itertools.pairwise(marks):
        stages[name] = stages.get(name, 0.0) + (t1 - t0).total_seconds()
    return wall, stages, json.loads(out.stdout)


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="ladder-bench-init-"))
    env = os.environ | {"XDG_CACHE_HOME": str(scratch / "cache"), "HF_HUB_OFFLINE": "1"}
    cold = init(scratch / "first", env)
    warm = init(scratch / "second", env)
    print(f"{'stage':<34}{'first (s)':>10}{'next (s)':>10}")
    for stage, label in LABELS.items():
        print(f"{label:<34}{cold[1].get(stage, 0.0):>10.1f}{warm[1].get(stage, 0.0):>10.1f}")
    print(f"{'ladder init, wall (process)':<34}{cold[0]:>10.1f}{warm[0]:>10.1f}")
    print(f"\nnext / first: {warm[0] / cold[0]:.2f}; answers reused by the next: {warm[2]['answers_reused']} of "
          f"{warm[2]['answers_reused'] + warm[2]['answers_asked']}")
    same = all(cold[2][k] == warm[2][k] for k in ("child_sha", "probes_right", "probes_kept", "readiness"))
    print(f"same G0 file, probe counts and readiness: {same}")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()

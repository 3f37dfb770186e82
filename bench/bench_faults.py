"""Kill generation jobs at random points of every stage and check the lineage each time; print a table.

    .venv/bin/python bench/bench_faults.py [--trials 50] [--seed 0]

Each trial takes a fresh copy of a workspace whose G0 is a tiny random Llama (tests/jobkit.py),
so a generation takes seconds. Half the trials SIGKILL the job at a named point
(loop/faults.py: every stage from self-replay to the gate's commit), the other half at a
random moment after it starts, from outside. After each kill the next engine command
(`ladder train`, with new data) must: say what happened, leave the active generation, its
GGUF's SHA-256 and the ledger agreeing, leave no partial file, and train the next generation.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from loop import faults  # noqa: E402
from store.db import reading  # noqa: E402
from store.tables import Generation  # noqa: E402
from tests import jobkit  # noqa: E402


def stage_of(cfg, gen: int) -> tuple[str, str]:
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
    return (g.status, g.stage) if g else ("none", "-")


def kill_from_outside(cfg, rnd: random.Random) -> tuple[str, str]:
    """Start a detached job and SIGKILL it after a random delay; (what was killed, where)."""
    started = json.loads(jobkit.ladder(cfg, "train", "--detach", "--json").stdout)
    gen, delay = started["gen"], rnd.uniform(0.2, 4.0)
    time.sleep(delay)
    status, stage = stage_of(cfg, gen)
    with reading(cfg.db_url) as s:
        pid = s.get(Generation, gen).job_pid
    if status == "training" and pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    jobkit.wait_until(lambda: not jobkit_alive(cfg, gen), 120, "the job to end")
    return f"after {delay:.1f} s", stage if status == "training" else "(done)"


def jobkit_alive(cfg, gen: int) -> bool:
    from loop.jobs.launch import alive

    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
    return alive(cfg, g)


def trial(template: Path, folder: Path, rnd: random.Random, n: int) -> dict:
    cfg = jobkit.copy_workspace(template, folder)
    jobkit.feed(cfg)
    t0 = time.monotonic()
    if n % 2 == 0:
        point = rnd.choice(list(faults.POINTS))
        if point == "train.step":
            point += f":{rnd.randint(1, 4)}"
        killed = jobkit.ladder(cfg, "train", "--json", env={faults.ENV: point})
        how, where = f"at {point}", stage_of(cfg, 1)[1]
        said = killed.stderr
    else:
        how, where = kill_from_outside(cfg, rnd)
        said = ""
    status_after_kill = stage_of(cfg, 1)[0]
    jobkit.feed(cfg, start=100)
    nxt = jobkit.ladder(cfg, "train", "--json")
    said += nxt.stderr
    final = stage_of(cfg, 1)[0]
    ok_next = nxt.returncode == 0 and json.loads(nxt.stdout)["gen"] == 2
    told = final not in ("failed", "cancelled") or "interrupted during" in said
    found = jobkit.problems(cfg)
    return {"n": n, "how": how, "stage": where, "killed_as": status_after_kill, "G1": final, "told": told,
            "problems": found, "next_ok": ok_next, "seconds": time.monotonic() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="ladder-faults-"))
    template = base / "template"
    cfg = jobkit.make_template(template)
    from tests.helpers import add_probe

    add_probe(cfg, "known", True, steady=True)
    print(f"{'#':>3}  {'kill':<22} {'stage':<8} {'G1 then':<9} {'G1 after':<9} {'said':<5} {'ledger ok':<9} "
          f"{'next ok':<7} {'s':>5}")
    rows = []
    for n in range(args.trials):
        r = trial(template, base / f"t{n:03d}", rnd, n)
        rows.append(r)
        print(f"{n:>3}  {r['how']:<22} {r['stage']:<8} {r['killed_as']:<9} {r['G1']:<9} {'yes' if r['told'] else 'NO':<5} "
              f"{'yes' if not r['problems'] else 'NO':<9} {'yes' if r['next_ok'] else 'NO':<7} {r['seconds']:>5.1f}",
              flush=True)
        for p in r["problems"]:
            print(f"       problem: {p}")
    bad = [r for r in rows if r["problems"] or not r["next_ok"] or not r["told"]]
    stages = sorted({r["stage"] for r in rows})
    print(f"\n{len(rows)} kills over stages {', '.join(stages)}: {len(rows) - len(bad)} left the lineage whole, "
          f"said what happened and trained the next generation; {len(bad)} did not")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

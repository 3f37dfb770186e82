"""Do practice rounds teach the agent? Three rounds on the default suite's practice split, default config, no key.

    .venv/bin/python bench/bench_practice.py [--rounds 3] [--keep DIR] [--steps N] [--dpo on|off]

A fresh workspace on the embedded model (`ladder init`), then per round, with the product's
own commands as subprocesses: `ladder practice --no-teacher` (the suites' reference answers
teach), `ladder train` (a generation from what the round wrote, through the gates), and the
figures of the generation it produced, read from the store: held-out pass rate per category
of the agent suites, recall, the gate's decision and reason, and the wall time of the round.
A rejected child leaves its parent active, so the next round practises on that parent.
Figures are printed, never asserted; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from loop import config  # noqa: E402
from store.db import reading  # noqa: E402
from store.tables import Generation  # noqa: E402

LADDER = Path(sys.executable).with_name("ladder")
CATS = ("tool_call", "task", "context", "persona")


def ladder(ws: Path, log: Path, *args: str) -> dict[str, Any]:
    with log.open("a") as err:
        p = subprocess.run([str(LADDER), "--config", str(ws / "config.toml"), *args, "--json"], stdout=subprocess.PIPE,
                           stderr=err, text=True, env=os.environ | {"ANTHROPIC_API_KEY": ""})
    if p.returncode not in (0, 1):
        sys.exit(f"ladder {' '.join(args)} failed ({p.returncode}); see {log}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def initialised(keep: Path | None, prefix: str) -> tuple[Path, Path, float]:
    """A fresh workspace (in `keep`, or a temporary folder) made by `ladder init`: it, its log, and init's seconds."""
    ws = keep or Path(tempfile.mkdtemp(prefix=prefix))
    ws.mkdir(parents=True, exist_ok=True)
    log = ws / "bench.log"
    t0 = time.monotonic()
    ladder(ws, log, "init")
    return ws, log, time.monotonic() - t0


def set_key(ws: Path, key: str, value: str) -> None:
    """Rewrite the line `key = ...` of the workspace's config.toml (the config template must have it)."""
    path = ws / "config.toml"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith(f"{key} = ") for line in lines), f"the config template no longer has '{key} = '"
    path.write_text("\n".join(f"{key} = {value}" if line.startswith(f"{key} = ") else line for line in lines) + "\n",
                    encoding="utf-8")


def figures(cfg, gen: int) -> dict[str, Any]:
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
        r = json.loads(g.readiness or "{}")
        return {"gen": gen, "status": g.status, "reason": g.reason or "", "recall": g.eval_recall,
                "heldout": {c: (r.get("categories") or {}).get(c, {}).get("rate") for c in CATS},
                "ready": bool(r.get("ready"))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, help="optimizer steps per generation (default: the config's)")
    ap.add_argument("--keep", type=Path, help="keep the workspace here")
    ap.add_argument("--dpo", choices=("on", "off"), help="the DPO stage on the rounds' corrections (default: the config's)")
    a = ap.parse_args()
    ws, log, seconds = initialised(a.keep, "ladder-practice-")
    print(f"init: {seconds:.0f} s; workspace {ws}", flush=True)
    if a.dpo:
        set_key(ws, "dpo", "true" if a.dpo == "on" else "false")
    cfg = config.load(ws / "config.toml")
    print(f"DPO stage: {'on' if cfg.train.dpo else 'off'}", flush=True)
    rows = [figures(cfg, 0) | {"round": 0, "practice": "", "seconds": 0.0}]
    active = 0
    for n in range(1, a.rounds + 1):
        t = time.monotonic()
        rep = ladder(ws, log, "practice", "--no-teacher")
        train = ladder(ws, log, "train", *(["--steps", str(a.steps)] if a.steps else []))
        row = figures(cfg, train["gen"]) | {"round": n, "seconds": time.monotonic() - t,
                                            "practice": f"{rep['passed']}/{rep['n']} L{rep['level']}"}
        rows.append(row)
        if train["status"] == "active":
            active = train["gen"]
        print(f"round {n}: G{train['gen']} {train['status']} (active G{active}) in {row['seconds']:.0f} s", flush=True)
    print()
    print(f"{'round':>5} {'gen':>4} {'practice':>10} " + " ".join(f"{c:>9}" for c in CATS)
          + f" {'recall':>7} {'ready':>6} {'seconds':>8}  decision")
    for r in rows:
        rates = " ".join(f"{'-' if r['heldout'][c] is None else format(r['heldout'][c], '.2f'):>9}" for c in CATS)
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        print(f"{r['round']:>5} {'G' + str(r['gen']):>4} {r['practice']:>10} {rates} {recall:>7} "
              f"{'yes' if r['ready'] else 'no':>6} {r['seconds']:>8.0f}  {r['status']} {r['reason'][:70]}")
    if a.keep is None:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()

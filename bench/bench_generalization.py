"""Does the generalization score separate a child that learned its data from one that did not? Print a table.

    .venv/bin/python bench/bench_generalization.py [--data demo|learning] [--workspace DIR]

One workspace with G0; the new data is the demo inbox (`demo`) or the learning benchmark's first
stage (`learning`, 100 ops requests answered with one tool call). Three children are trained from
G0, each judged on the same held-out records of that data:

- learned: trained on the data, as the product does;
- shuffled: the same requests, each answered with another request's answer;
- unrelated: another dataset in place of the new data (for `demo`, the learning stage; for
  `learning`, the demo inbox).

A score that separates gives the first a pass of the gate (`gates.generalization_min`) and the
other two a fail. Each child trains like a real one (self-replay included) and is rejected
afterwards, so the next one trains from G0 on the same split.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench.learning_data import build  # noqa: E402
from loop import workspace  # noqa: E402
from loop.data import jobfiles  # noqa: E402
from loop.inbox import ingest  # noqa: E402
from loop.jobs import promotion, runner  # noqa: E402
from store.db import reading  # noqa: E402
from store.tables import EvalResult  # noqa: E402

DEMO = ROOT / "loop" / "assets" / "demo_inbox"


def learning_rows(seed: int = 0) -> list[dict]:
    return build(seed=seed, stages=1)["stages"][0]


def demo_rows() -> list[dict]:
    rows = []
    for f in sorted(DEMO.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if "prompt" in r:
                r = {"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}]}
            rows.append({"messages": r["messages"]})
    return rows


def rewrite(job: Path, variant: str, other: list[dict], seed: int) -> None:
    """Swap the job's new rows for shuffled answers or unrelated rows; replay and self-replay rows stay."""
    rows = [r | s for r, s in zip(jobfiles.read_jsonl(job / "dataset.jsonl"), jobfiles.read_jsonl(job / "dataset_sources.jsonl"))]
    new = [i for i, r in enumerate(rows) if r["source"] == "new"]
    rnd = random.Random(seed)
    if variant == "shuffled":
        answers = [rows[i]["messages"][-1]["content"] for i in new]
        rnd.shuffle(answers)
        for i, a in zip(new, answers):
            rows[i]["messages"] = rows[i]["messages"][:-1] + [{"role": "assistant", "content": a}]
    elif variant == "unrelated":
        picks = [other[k % len(other)] for k in range(len(new))]
        for i, r in zip(new, picks):
            rows[i]["messages"] = r["messages"]
    jobfiles.write_rows(job, [{"messages": r["messages"], "_source": r["source"], "_stage": r["stage"]} for r in rows])


def train_variant(cfg, variant: str, other: list[dict], seed: int) -> dict:
    gen, folder, held = runner.prepare(cfg)
    if variant != "learned":
        rewrite(folder, variant, other, seed)
    t = time.perf_counter()
    runner.spawn(cfg, gen, folder, held)
    g = runner.follow(cfg, gen, lambda ev: None)
    with reading(cfg.db_url) as s:
        from sqlmodel import select  # noqa: PLC0415

        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == gen, EvalResult.eval == "generalization")).all()
    kinds = {}
    for r in rows:
        k = json.loads(r.detail).get("kind", "?")
        kinds.setdefault(k, [0, 0])
        kinds[k][0] += r.passed
        kinds[k][1] += 1
    details = [json.loads(r.detail) for r in rows]
    gains = [r.score for r, d in zip(rows, details) if d.get("kind") == "likelihood"]
    tied = [d["tied"] for d in details if d.get("kind") == "likelihood" and d.get("tied") is not None]
    out = {"variant": variant, "gen": gen, "status": g.status, "generalization": g.eval_generalization,
           "n": g.n_generalization, "kinds": kinds, "mean_gain": sum(gains) / len(gains) if gains else None,
           "mean_tied": sum(tied) / len(tied) if tied else None,
           "recall": g.eval_recall, "reason": g.reason, "seconds": time.perf_counter() - t}
    if g.status in ("promoted", "candidate"):
        promotion.reject(cfg, gen)  # back to G0, so the next variant trains on the same split
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", choices=("demo", "learning"), default="demo")
    ap.add_argument("--workspace", type=Path)
    ap.add_argument("--variants", default="learned,shuffled,unrelated")
    args = ap.parse_args()
    folder = args.workspace or Path(tempfile.mkdtemp(prefix="ladder-gen-")) / "ws"
    cfg = workspace.create(folder)
    workspace.init(cfg)
    if args.data == "demo":
        for f in sorted(DEMO.glob("*.jsonl")):
            shutil.copyfile(f, cfg.inbox_dir / f.name)
        other = learning_rows()
    else:
        jobfiles.write_jsonl(cfg.inbox_dir / "stage1.jsonl", learning_rows())
        other = demo_rows()
    ingest.ingest(cfg)
    results = [train_variant(cfg, v, other, 0) for v in args.variants.split(",")]
    floor = cfg.gates.generalization_min
    print(f"\ndata: {args.data}; gate generalization_min = {floor}")
    print(f"{'child':<10} {'gen':>4} {'generalization':>15} {'tool calls':>11} {'likelier':>9} {'mean gain':>10} "
          f"{'mean tied':>10} {'recall':>7} {'gate':>6} {'s':>5}")
    for r in results:
        k = r["kinds"]
        tools = f"{k['tool'][0]}/{k['tool'][1]}" if "tool" in k else "–"
        lik = f"{k['likelihood'][0]}/{k['likelihood'][1]}" if "likelihood" in k else "–"
        gain = "–" if r["mean_gain"] is None else f"{r['mean_gain']:+.3f}"
        tied = "–" if r["mean_tied"] is None else f"{r['mean_tied']:+.3f}"
        verdict = "pass" if (r["generalization"] or 0) >= floor else "FAIL"
        print(f"{r['variant']:<10} {r['gen']:>4} {r['generalization'] or 0:>10.2f} ({r['n']}) {tools:>11} {lik:>9} "
              f"{gain:>10} {tied:>10} {r['recall'] or 0:>7.2f} {verdict:>6} {r['seconds']:>5.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

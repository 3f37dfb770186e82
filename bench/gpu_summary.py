"""The figures of bench/gpu_check.sh: per workspace (one per backend), G1's stage times, trained tokens/s, peak GPU
memory and evals; then the Unsloth / TRL speed ratio and whether the two children's evals agree.

    .venv/bin/python bench/gpu_summary.py WORKSPACE [WORKSPACE ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_generation import stage_times  # noqa: E402
from loop import config  # noqa: E402
from store.db import reading  # noqa: E402
from store.tables import Generation  # noqa: E402

AGREE = 0.05  # recall and generalization within this, and the same gate decision


def figures(ws: Path, gen: int = 1) -> dict:
    cfg = config.load(ws / "config.toml")
    manifest = json.loads((cfg.models_dir / f"gen-{gen:04d}" / "manifest.json").read_text(encoding="utf-8"))
    train = manifest["train"]
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
        status, recall, general = g.status, g.eval_recall, g.eval_generalization
    return {"workspace": ws.name, "backend": train.get("backend"), "stages": stage_times(cfg, gen),
            "tokens_per_s": train.get("tokens_per_s") or 0.0, "peak_gpu_gib": (train.get("peak_gpu_bytes") or 0) / 2**30,
            "status": status, "recall": recall, "generalization": general}


def agree(a: dict, b: dict) -> bool:
    close = all(x[k] is not None and y[k] is not None and abs(x[k] - y[k]) <= AGREE
                for x, y in ((a, b),) for k in ("recall", "generalization"))
    same = (a["status"] == "rejected") == (b["status"] == "rejected")
    return close and same


def main(paths: list[str]) -> None:
    rows = [figures(Path(p)) for p in paths]
    stages = list(dict.fromkeys(k for r in rows for k in r["stages"]))
    print(f"{'backend':<10} " + " ".join(f"{s:>8}" for s in stages) + f" {'tok/s':>8} {'GPU GiB':>8} {'recall':>7} "
          f"{'general':>8}  status")
    for r in rows:
        print(f"{r['backend'] or '?':<10} " + " ".join(f"{r['stages'].get(s, 0.0):>8.1f}" for s in stages)
              + f" {r['tokens_per_s']:>8.0f} {r['peak_gpu_gib']:>8.2f} {r['recall'] or 0:>7.3f} "
              f"{r['generalization'] or 0:>8.3f}  {r['status']}")
    by = {r["backend"]: r for r in rows}
    if "unsloth" in by and "trl" in by and by["trl"]["tokens_per_s"]:
        print(f"Unsloth / TRL trained tokens per second: {by['unsloth']['tokens_per_s'] / by['trl']['tokens_per_s']:.2f}")
    if len(rows) >= 2:
        print(f"the children's evals {'agree' if agree(rows[0], rows[1]) else 'DIFFER'} "
              f"(recall and generalization within {AGREE}, the same gate decision)")


if __name__ == "__main__":
    main(sys.argv[1:])

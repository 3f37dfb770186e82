"""Which guard against forgetting pays off? One stage of the learning curriculum, trained from G0 per variant.

    .venv/bin/python bench/bench_guards.py [--workspace DIR] [--variants default,lr-1e-4,...] [--steps N]

Each variant is a set of config keys changed in the workspace's config.toml before one
``ladder train`` from G0 on the same new data (stage 1 of bench/learning_data.py: 100
conversations of a narrow tool-call skill). After the run the child is rejected with
``ladder reject`` unless the gate already did, so G0 stays active and the next variant trains
on the same data from the same parent. Printed per variant: the product's recall (and the
parent's on the same items), generalization, style drift and decision; the held-out skill
and general probes of the learning benchmark; the training loss and wall time.
Figures are printed, never asserted; the machine is shared.
"""

from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import learning_data as ld  # noqa: E402
from bench.bench_learning import gen_row, ladder, manifest_part, measure, set_keys, shown  # noqa: E402
from loop import config  # noqa: E402

VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {},
    # Self-replay rows trained by copying the parent's greedy answers (cross-entropy), the old default.
    "copy-self-replay": {"train": {"distill_weight": 0.0}},
    "distill-3": {"train": {"distill_weight": 3.0}},
    "no-self-replay": {"dataset": {"self_replay_share": 0.0}},
    "self-replay-0.5": {"dataset": {"self_replay_share": 0.5}},
    "lr-1e-4": {"train": {"learning_rate": 1e-4}},
    "lr-5e-5": {"train": {"learning_rate": 5e-5}},
    "steps-30": {"train": {"steps": 30}},
    "self-replay-0.5-steps-30": {"dataset": {"self_replay_share": 0.5}, "train": {"steps": 30}},
    "attention-only": {"train": {"target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}},
    # A LoRA generation here moves the adapted weights by ~0.0016 (relative): this halves it.
    "cap-8e-4": {"train": {"max_weight_change": 0.0008}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, help="reuse (or make) this workspace; default: a new temporary one")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from: {', '.join(VARIANTS)}")
    ap.add_argument("--log", type=Path, help="ladder's own output (default: guards.log beside the workspace)")
    args = ap.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s): {', '.join(unknown)}")
    folder = args.workspace or Path(tempfile.mkdtemp(prefix="ladder-guards-")) / "ws"
    log = args.log or folder.parent / "guards.log"
    data = ld.build(seed=0, stages=1)
    cfg_path = folder / "config.toml"
    if not cfg_path.exists():
        ladder(log, "init", str(folder))
    original = cfg_path.read_text()
    # Killed with SIGTERM, still put the config back: a variant's keys must not outlive it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    c = ["--config", str(cfg_path)]
    cfg = config.load(cfg_path)
    stage_file = cfg.inbox_dir / "learning-stage1.jsonl"
    if not (cfg.inbox_dir / "processed" / stage_file.name).exists():
        ld.write_stage(data["stages"][0], stage_file)
        ladder(log, "ingest", *c)
    g0 = measure(cfg, 0, data)
    print(f"workspace {folder}; log {log}; G0 skill {g0['skill']}/{len(data['skill_probes'])}, "
          f"general {g0['general']}/{len(data['general_probes'])}", flush=True)
    rows = []
    try:
        for name in names:
            cfg_path.write_text(original)
            set_keys(cfg_path, copy.deepcopy(VARIANTS[name]))
            cfg = config.load(cfg_path)
            t = time.perf_counter()
            tr = ladder(log, "train", *c)
            wall = time.perf_counter() - t
            gen = tr.get("gen")
            if gen is None:
                raise SystemExit(f"{name}: ladder train gave no generation: {tr}")
            status = ladder(log, "status", *c)
            row = gen_row(status, ladder(log, "ledger", *c), gen) | measure(cfg, gen, data)
            row |= {"variant": name, "wall_s": wall, "dataset": manifest_part(cfg, gen, "dataset"),
                    "weight_change": manifest_part(cfg, gen, "train").get("weight_change")}
            if row["status"] != "rejected":
                ladder(log, "reject", str(gen), *c)
            rows.append(row)
            print(f"{name}: G{gen} {row['status']} skill {row['skill']} general {row['general']} recall {row['recall']} "
                  f"{row['reason']}", flush=True)
    finally:
        cfg_path.write_text(original)
        (folder.parent / "guards.json").write_text(json.dumps(rows, indent=1, default=str))
    ns, ng = len(data["skill_probes"]), len(data["general_probes"])
    print(f"\n{'variant':<17}{'gen':<5}{'skill':>7}{'general':>9}{'recall':>8}{'gener.':>8}{'style':>6}"
          f"{'self-replay':>12}{'loss end':>9}{'moved':>10}{'wall s':>8}  decision")
    print(f"{'G0':<17}{'G0':<5}{g0['skill']:>4}/{ns}{g0['general']:>6}/{ng}")
    for r in rows:
        replayed = r["dataset"].get("self_replay", 0)
        loss_end = None if r["loss"][1] in (None, "") else float(r["loss"][1])  # the ledger CSV gives text
        skill = "-" if r["skill"] is None else f"{r['skill']}/{ns}"
        general = "-" if r["general"] is None else f"{r['general']}/{ng}"
        print(f"{r['variant']:<17}{'G' + str(r['gen']):<5}{skill:>7}{general:>9}{shown(r['recall'], '.3f'):>8}"
              f"{shown(r['generalization']):>8}{shown(r['style'], '.0f'):>6}{replayed:>12}{shown(loss_end, '.3f'):>9}"
              f"{shown(r['weight_change'], '.5f'):>10}{r['wall_s']:>8.0f}  {r['status']} {r['reason']}")

if __name__ == "__main__":
    main()

"""Run one micro-generation on the embedded model and print where the time goes.

    .venv/bin/python bench/bench_generation.py [--steps N] [--workspace DIR]

--steps defaults to the config's train.steps (60), so the figures are those of one generation of
the demo inbox as `ladder demo` trains it.

Stages: ingest, dataset, train (s/step, tokens/s), merge+save, export, eval, gate, total;
then the same training steps as a bare PyTorch loop on the same model, data and batch,
and the product trainer's overhead as a ratio against it (this machine is shared and
noisy, so the ratio is the figure to compare between runs, not the seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from sqlmodel import select  # noqa: E402

from loop import artifacts, config, workspace  # noqa: E402
from loop.inbox import ingest
from loop.jobs import runner as jobs
from store.db import session  # noqa: E402
from store.tables import Event  # noqa: E402


def stage_times(cfg: config.Config, gen_id: int) -> dict[str, float]:
    """Seconds between the job's stage events, read back from the store."""
    with session(cfg.db_url) as s:
        rows = s.exec(select(Event).where(Event.gen_id == gen_id, Event.kind.in_(["stage", "done"])).order_by(Event.id)).all()
    marks = [(json.loads(r.data).get("stage", "done"), r.ts) for r in rows]
    out: dict[str, float] = {}
    for (name, t0), (_, t1) in zip(marks, marks[1:]):
        out[name] = out.get(name, 0.0) + (t1 - t0).total_seconds()
    return out


def matmul_peak_gflops(seconds: float = 3.0, n: int = 2048) -> float:
    """fp32 matrix multiply throughput on this machine now, best of several: the ceiling training works against."""
    import torch  # noqa: PLC0415

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def parameters(folder: Path) -> int:
    from safetensors import safe_open  # noqa: PLC0415

    total = 0
    for f in sorted(folder.glob("*.safetensors")):
        with safe_open(str(f), "pt") as st:
            for name in st.keys():  # noqa: SIM118 - safe_open is not a dict
                n = 1
                for d in st.get_slice(name).get_shape():
                    n *= d
                total += n
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the config's train.steps)")
    ap.add_argument("--workspace", type=Path, help="a workspace holding only G0, made there on the first run and "
                                                    "copied for each later one (init is then not timed)")
    args = ap.parse_args()
    folder = args.workspace or Path(tempfile.mkdtemp(prefix="ladder-bench-"))
    cfg = workspace.create(folder)
    t = time.perf_counter()
    made = workspace.init(cfg)["created"]
    init_s = time.perf_counter() - t
    if args.workspace:  # the job runs on a copy, so the kept folder stays at G0 with an empty store of records
        folder = Path(tempfile.mkdtemp(prefix="ladder-bench-")) / "ws"
        shutil.copytree(args.workspace, folder)
        cfg = workspace.create(folder)

    for f in (ROOT / "loop" / "assets" / "demo_inbox").glob("*.jsonl"):
        shutil.copyfile(f, cfg.inbox_dir / f"{datetime.now():%H%M%S%f}-{f.name}")
    t = time.perf_counter()
    report = ingest.ingest(cfg)
    ingest_s = time.perf_counter() - t

    t = time.perf_counter()
    gen_id, job_dir, held = jobs.prepare(cfg, args.steps)
    dataset_s = time.perf_counter() - t
    t = time.perf_counter()
    jobs.spawn(cfg, gen_id, job_dir, held)
    g = jobs.follow(cfg, gen_id, lambda ev: None)
    job_s = time.perf_counter() - t
    if g.status in ("failed", "cancelled"):
        sys.exit(f"G{gen_id} {g.status}: {g.reason} (see {job_dir}/log.txt)")
    manifest = json.loads((artifacts.gen_dir(cfg, gen_id) / "manifest.json").read_text())
    train = manifest["train"]
    stages = stage_times(cfg, gen_id)
    load_merge_save_s = train["walltime_s"] - train["train_s"]

    from bench.minimal_loop import minimal_loop  # noqa: PLC0415 - imports torch

    settings = dict(cfg.data["train"]) | {"steps": train["steps"]}
    base = minimal_loop(artifacts.weights_dir(cfg, 0), job_dir / "dataset.jsonl", settings)

    rows = [
        ("G0 init (once per workspace)", init_s if made else 0.0, "reused" if not made else ""),
        ("ingest", ingest_s, f"{report['ingested']} records"),
        ("dataset", dataset_s, f"{manifest['dataset']['new']} new, {manifest['dataset']['replay']} replay, "
                               f"{manifest['dataset']['holdout']} held out"),
        ("self-replay", stages.get("replay", 0.0), f"{manifest['dataset'].get('self_replay', 0)} kept of "
                                                   f"{manifest['dataset'].get('self_replay_asked', 0)} asked"),
        ("train loop", train["train_s"], f"{train['train_s'] / train['steps']:.2f} s/step, "
                                         f"{train['tokens_per_s']:.0f} tokens/s, {train['steps']} steps"),
        ("load + merge + save", load_merge_save_s, "fp32 folder"),
        ("DPO", stages.get("dpo", 0.0), "corrections" if cfg.train.dpo else "off (train.dpo)"),
        ("export", stages.get("export", 0.0), f"GGUF {cfg.model.export_dtype}"),
        ("eval", stages.get("eval", 0.0), f"{manifest['metrics']['recall_items']} recall, "
                                          f"{manifest['metrics']['holdout_items']} held-out, "
                                          f"{len(cfg.eval.tone_probes)} tone probes"),
        ("gate + ledger", stages.get("gate", 0.0), g.status),
        ("total (job)", job_s + dataset_s + ingest_s, "ingest to decision"),
    ]
    print(f"workspace: {folder}")
    print(f"{'stage':<30}{'seconds':>10}  note")
    for name, secs, note in rows:
        print(f"{name:<30}{secs:>10.1f}  {note}")
    total = job_s + dataset_s + ingest_s
    print(f"\ngeneration, ingest to decision: {total:.1f} s (target 150 s); everything but the train loop "
          f"{total - train['train_s']:.1f} s = {(total - train['train_s']) / total:.0%} of it (target 20 %)")
    product = train["train_s"] / train["steps"]
    peak = matmul_peak_gflops()
    params = parameters(artifacts.weights_dir(cfg, 0))
    # A LoRA step costs ~4 x parameters FLOPs per trained token (forward 2, backward through the frozen weights 2).
    useful = 4 * params * train["tokens_per_s"] / 1e9
    bare_useful = 4 * params * base["tokens_per_s"] / 1e9
    print(f"\nmatmul peak (fp32, 2048^2, measured now): {peak:.0f} GFLOP/s; parameters {params / 1e6:.1f} M")
    print(f"training compute efficiency: {useful:.0f} GFLOP/s useful = {useful / peak:.0%} of peak "
          f"(bare loop {bare_useful / peak:.0%}); ceiling {peak * 1e9 / (4 * params):.0f} trained tokens/s")
    print(f"\nbare PyTorch loop, same model/data/batch/steps: {base['s_per_step']:.2f} s/step, "
          f"{base['tokens_per_s']:.0f} tokens/s")
    print(f"trainer overhead: {product / base['s_per_step']:.2f}x the bare loop's time per step")
    print(f"metrics: {json.dumps(manifest['metrics'])}")


if __name__ == "__main__":
    main()

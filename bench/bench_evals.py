"""Where a generation's eval time goes, on the embedded model: every eval part timed, items per second.

    .venv/bin/python bench/bench_evals.py [--workspace DIR]

Makes (or reuses) a workspace with G0 and the demo inbox, plans the next generation's job (the
held-out and recall items it would be asked) and runs each eval of the job on G0's GGUF as the
child and as the parent: probes and held-out tool calls (generated), held-out answers scored by
log-likelihood (one forward pass each, child and parent), the tone probes, the agent suites and the
KL drift. Then the same held-out answers asked by generating, to show what likelihood scoring saves.
Timings on a shared 2-core machine are noisy: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from loop import artifacts, workspace  # noqa: E402
from loop.data import dataset, jobfiles  # noqa: E402
from loop.evals import generation, probes, suites  # noqa: E402
from loop.inbox import ingest  # noqa: E402
from loop.model.llm import Runner  # noqa: E402
from store.db import reading  # noqa: E402
from store.tables import Generation  # noqa: E402


def timed(rows: list, name: str, n: int, fn):
    t = time.perf_counter()
    out = fn()
    s = time.perf_counter() - t
    rows.append((name, n, s))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, help="reuse this workspace (made if missing)")
    args = ap.parse_args()
    folder = args.workspace or Path(tempfile.mkdtemp(prefix="ladder-evals-")) / "ws"
    cfg = workspace.create(folder)
    t = time.perf_counter()
    workspace.init(cfg)
    print(f"workspace {folder} (init {time.perf_counter() - t:.0f} s)")
    for f in sorted((ROOT / "loop" / "assets" / "demo_inbox").glob("*.jsonl")):
        shutil.copyfile(f, cfg.inbox_dir / f.name)
    ingest.ingest(cfg)
    with reading(cfg.db_url) as s:
        plan = dataset.plan(s, cfg, 0)
        g0 = s.get(Generation, 0)
    job = folder / "bench-job"
    dataset.write(plan, job)
    gguf = artifacts.local(cfg, g0.gguf_path)
    holdout, recall = jobfiles.read_jsonl(job / "holdout.jsonl"), jobfiles.read_jsonl(job / "recall.jsonl")
    tools = [it for it in holdout if it["type"] == "tool"]
    refs = [it for it in holdout if it["type"] != "tool"]
    e, rows = cfg.eval, []
    # Each part hands its questions ahead as a generation's evals do (eval.batch answers side by side).
    with Runner(gguf, threads=e.threads, context=e.context, seed=0, batch=e.batch) as runner:
        def part(requests, fn):
            probes.ahead(runner, requests)
            return fn()

        timed(rows, "held-out tool calls (generated)", len(tools),
              lambda: part(probes.item_requests(tools, e.suite_max_tokens),
                           lambda: probes.run_items(runner, tools, e.suite_max_tokens, list(e.corporate_phrases))))
        timed(rows, "recall items (generated)", len(recall),
              lambda: part(generation.recall_requests(recall, cfg), lambda: generation._recall(runner, recall, cfg)))
        timed(rows, "tone probes (generated)", len(e.tone_probes),
              lambda: part(probes.style_requests(list(e.tone_probes), e.max_tokens),
                           lambda: probes.run_style(runner, list(e.tone_probes), list(e.corporate_phrases),
                                                    e.max_tokens)))
        _, summary = timed(rows, "agent suites, held-out (generated)",
                           sum(len(suites.load(cfg, n).split("heldout")) for n in e.suites),
                           lambda: part(generation.suite_requests(cfg), lambda: generation.run_suites(runner, cfg)))
    drift = generation.drift_set(cfg, g0)
    timed(rows, "held-out answers by likelihood (child and parent)", len(refs),
          lambda: generation.likelihoods(cfg, gguf, gguf, refs, []))
    timed(rows, "KL drift on the tone probes' answers (child and parent)", len(drift),
          lambda: generation.likelihoods(cfg, gguf, gguf, [], drift))
    total_n, total_s = sum(r[1] for r in rows), sum(r[2] for r in rows)
    t = time.perf_counter()
    generation.evaluate(cfg, gguf, job, gguf, drift)
    whole_s = time.perf_counter() - t
    with Runner(gguf, threads=e.threads, context=e.context, seed=0, batch=e.batch) as runner:
        t = time.perf_counter()
        probes.ahead(runner, [(it["messages"], e.max_tokens, False) for it in refs])
        for it in refs:
            runner.chat(it["messages"], e.max_tokens)
        generate_s = time.perf_counter() - t
    ll_only = [r for r in rows if r[0].startswith("held-out answers")][0]
    print(f"\n{'eval part':<58} {'items':>6} {'seconds':>8} {'items/s':>8}")
    for name, n, s in rows:
        print(f"{name:<58} {n:>6} {s:>8.1f} {n / s if s else 0:>8.1f}")
    print(f"{'the parts one after another':<58} {total_n:>6} {total_s:>8.1f} {total_n / total_s:>8.1f}")
    print(f"{'all evals of one generation (generation.evaluate)':<58} {total_n:>6} {whole_s:>8.1f} "
          f"{total_n / whole_s:>8.1f}")
    print(f"\nthe {len(refs)} held-out answers asked by generating ({e.max_tokens} tokens at most) took {generate_s:.1f} s "
          f"for the child alone; scored by likelihood, child and parent, they took {ll_only[2]:.1f} s "
          f"({generate_s / max(ll_only[2], 1e-9):.1f}x)")
    for name, s in summary.items():
        print(f"suite {name}: " + ", ".join(f"{c} {v['passed']}/{v['total']}" for c, v in s["categories"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Do facts a user teaches stick? Stages of made-up facts, each stated three ways, one generation a stage.

    .venv/bin/python bench/bench_facts.py [--stages 2] [--practice 0] [--drills N] [--keep DIR]

A fresh workspace on the embedded model with the default config (`ladder init`). Per stage, ten
facts about a made-up environment whose values the base model cannot guess (ports, hosts,
paths, VLANs), each stated three ways by the user in short conversations, go into the inbox;
`ladder train` makes a generation (through the gates). Then `--practice N` rounds of `ladder
practice --no-teacher` and `ladder train` (practice retrains the facts the active generation
missed). After each generation, the child is asked every fact taught so far in a phrasing
of this bench's own (neither the conversations' nor the product's drills or questions),
greedy, through the product's Runner, and scored by the exact value; the product's own fact
figures (this generation's new facts, the lineage's earlier ones in recall) and recall are
read from the store. Figures are printed, never asserted; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from loop import artifacts, config  # noqa: E402
from loop.evals import agentic  # noqa: E402
from store.db import active_gen, reading  # noqa: E402
from store.tables import EvalResult, Generation  # noqa: E402

from bench_practice import initialised, ladder, set_key  # noqa: E402 - the product's commands, --json, as bench_practice runs them
SUBJECTS = ["zephyr service", "kestrel api", "the orchid queue", "marlin cache", "tundra proxy", "quokka dashboard",
            "the heron worker", "lynx gateway", "ember scheduler", "the sable registry", "wren mailer",
            "cobalt indexer", "the fennel store", "otter relay", "juniper exporter", "the mantis broker",
            "plover backup", "saffron vault", "ibis webhook", "the yarrow crawler"]
KINDS = ("port", "host", "path", "vlan")
SAY = {  # three ways the user states a fact
    "port": ["heads up, {s} moved to port {v}", "{S} now listens on port {v}.", "FYI: the port of {s} is {v}."],
    "host": ["{S} moved to {v} last night.", "{S} now runs on {v}.", "btw {s} is on {v} now"],
    "path": ["The backup path for {s} is {v}.", "{S}'s backup path is {v}.", "Note that the backup path of {s} is {v}."],
    "vlan": ["The VLAN for {s} is {v}.", "{S}'s vlan is {v}.", "Note: the VLAN of {s} is now {v}."],
}
ACK = ["Noted: {v} for {s}.", "Got it.", "Thanks, I'll remember that."]
ASK = {  # this bench's own questions, in no training data and not the product's
    "port": "I need to connect to {s}. Port number?", "host": "On which server can I find {s} at the moment?",
    "path": "Where are the backups of {s} kept?", "vlan": "{S} sits on which VLAN?",
}


def value(kind: str, rng: random.Random) -> str:
    if kind == "port":
        return str(rng.randint(4100, 9899))
    if kind == "host":
        return f"{rng.choice(['nova', 'atlas', 'birch', 'delta', 'pike'])}-{rng.randint(2, 9)}.lan"
    if kind == "path":
        return f"/srv/{rng.choice(['bk', 'snap', 'arch'])}{rng.randint(10, 99)}"
    return str(rng.randint(110, 399))


def stage_facts(stage: int, seed: int = 0) -> list[dict[str, str]]:
    rng = random.Random(seed * 100 + stage)
    return [{"subject": s, "kind": KINDS[i % len(KINDS)], "value": value(KINDS[i % len(KINDS)], rng)}
            for i, s in enumerate(SUBJECTS[10 * (stage - 1): 10 * stage])]


def fill(template: str, f: dict[str, str]) -> str:
    s = f["subject"]
    return template.format(s=s, S=s[:1].upper() + s[1:], v=f["value"])


def conversations(facts: list[dict[str, str]]) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": fill(say, f)}, {"role": "assistant", "content": fill(ACK[k], f)}]}
            for f in facts for k, say in enumerate(SAY[f["kind"]])]


def ask(cfg, gen: int, facts: list[dict[str, str]]) -> list[bool]:
    from loop.model.llm import Runner

    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
    e = cfg.eval
    with Runner(artifacts.verified_gguf(cfg, g), threads=e.threads, context=e.context, seed=0) as runner:
        return [agentic.score({"category": "fact", "expect": {"contains": [f["value"]]}},
                              runner.chat([{"role": "user", "content": fill(ASK[f["kind"]], f)}], 48))[0]
                for f in facts]


def product(cfg, gen: int) -> dict[str, Any]:
    """The product's own fact figures for a generation: new facts asked back, earlier ones kept, and recall."""
    from sqlmodel import select

    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == gen)).all()
    fact = [(r.eval, r.passed) for r in rows if json.loads(r.detail).get("kind") == "fact"]

    def share(name: str) -> str:
        got = [p for n, p in fact if n == name]
        return f"{sum(got)}/{len(got)}" if got else "-"

    return {"new": share("generalization"), "kept": share("recall"), "recall": g.eval_recall,
            "status": g.status, "reason": g.reason or ""}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", type=int, default=2)
    ap.add_argument("--practice", type=int, default=0, help="practice rounds after each stage's generation")
    ap.add_argument("--keep", type=Path, help="keep the workspace here")
    ap.add_argument("--drills", type=int, help="dataset.fact_drills for this workspace (default: the config's)")
    a = ap.parse_args()
    ws, log, seconds = initialised(a.keep, "ladder-facts-")
    if a.drills is not None:
        set_key(ws, "fact_drills", str(a.drills))
    cfg = config.load(ws / "config.toml")
    print(f"init: {seconds:.0f} s; workspace {ws}; fact_drills {cfg.dataset.fact_drills}", flush=True)
    taught: list[list[dict[str, str]]] = []
    rows = []
    for stage in range(1, a.stages + 1):
        facts = stage_facts(stage)
        taught.append(facts)
        (cfg.inbox_dir / f"facts-stage{stage}.jsonl").write_text(
            "".join(json.dumps(c) + "\n" for c in conversations(facts)), encoding="utf-8")
        ladder(ws, log, "ingest")
        for step in ["train"] + ["practice"] * a.practice:
            t = time.monotonic()
            if step == "practice":
                ladder(ws, log, "practice", "--no-teacher")
            out = ladder(ws, log, "train")
            with reading(cfg.db_url) as s:
                active = active_gen(s)
            scores = [ask(cfg, out["gen"], fs) for fs in taught]  # the child, whatever the gates said
            rows.append({"stage": stage, "step": step, "gen": out["gen"], "active": active,
                         "scores": [sum(x) / len(x) for x in scores], "seconds": time.monotonic() - t}
                        | product(cfg, out["gen"]))
            print(f"stage {stage} {step}: G{out['gen']} {out['status']} (active G{active}), own questions "
                  + ", ".join(f"stage {k + 1} {v:.1f}" for k, v in enumerate(rows[-1]["scores"]))
                  + f" in {rows[-1]['seconds']:.0f} s", flush=True)
    print()
    print(f"{'stage':>5} {'step':>9} {'gen':>4} {'active':>6} " + " ".join(f"{'stage ' + str(k + 1):>8}"
                                                                          for k in range(a.stages))
          + f" {'new':>6} {'kept':>6} {'recall':>7} {'seconds':>8}  decision")
    for r in rows:
        cells = " ".join(f"{v:>8.2f}" for v in r["scores"]) + " " * (9 * (a.stages - len(r["scores"])))
        recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
        print(f"{r['stage']:>5} {r['step']:>9} {'G' + str(r['gen']):>4} {'G' + str(r['active']):>6} {cells} "
              f"{r['new']:>6} {r['kept']:>6} {recall:>7} {r['seconds']:>8.0f}  {r['status']} {r['reason'][:60]}")
    print("\nstage k: the share of stage k's facts the child (gen) answers right to this bench's own questions;"
          "\nnew / kept: the product's fact items of the generation (asked back / earlier ones in recall).")
    if a.keep is None:
        shutil.rmtree(ws, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Does the loop learn a new skill generation on generation without forgetting? Measured end to end.

    .venv/bin/python bench/bench_learning.py [--mode replay|no-replay|both] [--stages 3] [--steps N] [--keep DIR]

Runs the product's own commands (``ladder init / ingest / train / status / ledger``, each
with ``--json``, as subprocesses) on a fresh workspace with the DEFAULT config, except what
the mode changes:

- ``replay``: the default config (self-replay on: ``dataset.self_replay_share`` = 0.5, distilled from the parent).
- ``no-replay``: ``[dataset] self_replay_share = 0`` in the workspace's config.toml.
- ``both``: one after the other, each in its own workspace; both tables are printed.

The curriculum (bench/learning_data.py): a narrow ops skill the base model lacks (answer a
request with exactly one JSON tool call), 100 conversations per stage dropped into the
inbox one stage per generation. After each ``ladder train`` the generation it produced is
measured, whatever its gate decision, by loading its GGUF in ``loop.llm.Runner`` (chat,
greedy, 64 tokens): skill = held-out requests (unseen names and phrasings) answered with
the exact tool and args; general = 20 short questions (not the product's recall probes,
not its self-replay pool) passed by keyword. Recall, generalization, style drift and the
gate's decision and reason are the product's own, read from ``ladder status --json``.

A rejected child leaves its parent active, so the next stage trains from that parent (and
the rejected child's data counts as new again): that is the product's behaviour, and the
table's parent column shows it. Figures are printed, never asserted; the machine is shared.
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
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from bench import learning_data as ld  # noqa: E402
from bench.bench_generation import stage_times  # noqa: E402
from loop import artifacts, config  # noqa: E402
from loop.evals.scoring import keyword_pass  # noqa: E402
from store.db import session  # noqa: E402
from store.tables import Generation  # noqa: E402

LADDER = Path(sys.executable).with_name("ladder")
MAX_TOKENS = 64
MODES = {"replay": {}, "no-replay": {"dataset": {"self_replay_share": 0.0}}}
_MEASURED: dict[str, dict[str, Any]] = {}  # by GGUF SHA-256: G0 is the same file in every mode


def ladder(log: Path, *args: str) -> dict[str, Any]:
    """Run one ladder command with --json; its stderr (the human progress lines) goes to log."""
    cmd = [str(LADDER) if LADDER.exists() else "ladder", *args, "--json"]
    with log.open("a") as err:
        err.write(f"\n$ {' '.join(cmd)}\n")
        err.flush()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    out = p.stdout.strip().splitlines()
    try:
        result = json.loads(out[-1]) if out else {}
    except json.JSONDecodeError:
        result = {}
    if p.returncode not in (0, 1) or (p.returncode == 1 and not result):
        tail = log.read_text().splitlines()[-5:]
        raise SystemExit(f"ladder {args[0]} failed (exit {p.returncode}); last lines of {log}:\n  " + "\n  ".join(tail))
    return result | {"_rc": p.returncode}


def set_keys(cfg_path: Path, changes: dict[str, dict[str, Any]]) -> None:
    """Change keys in place in the workspace's commented config.toml (each key must be there once)."""
    lines = cfg_path.read_text().splitlines()
    for table, keys in changes.items():
        for key, value in keys.items():
            section, hit = None, False
            for i, line in enumerate(lines):
                s = line.strip()
                if s.startswith("[") and s.endswith("]"):
                    section = s.strip("[]").strip()
                elif section == table and s.split("=")[0].strip() == key and not s.startswith("#"):
                    lines[i], hit = f"{key} = {json.dumps(value)}", True
            if not hit:  # not written out: add it under its table
                at = next((i for i, line in enumerate(lines) if line.strip() == f"[{table}]"), None)
                if at is None:
                    lines += ["", f"[{table}]", f"{key} = {json.dumps(value)}"]
                else:
                    lines.insert(at + 1, f"{key} = {json.dumps(value)}")
    cfg_path.write_text("\n".join(lines) + "\n")


def config_diff(cfg: config.Config) -> list[str]:
    """Dotted keys whose value differs from the shipped defaults."""
    out: list[str] = []

    def walk(a: Any, b: Any, prefix: str) -> None:
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                walk(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else k)
        elif a != b and a is not None and not prefix.startswith("workspace."):  # None: a key newer than cfg
            out.append(f"{prefix} = {json.dumps(a)} (default {json.dumps(b)})")

    walk(cfg.data, config.defaults(), "")
    return out


def measure(cfg: config.Config, gen: int, data: dict[str, Any]) -> dict[str, Any]:
    """Skill and general probes on one generation's GGUF through llama.cpp."""
    from loop.model.llm import Runner  # noqa: PLC0415 - llama.cpp only when measuring

    with session(cfg.db_url) as s:
        g = s.get(Generation, gen)
        gguf = cfg.resolve(g.gguf_path) if g and g.gguf_path else None
        sha = g.child_sha if g else None
    if gguf is None or not gguf.is_file():
        return {"skill": None, "general": None, "answers": {}, "eval_s": 0.0}
    if sha in _MEASURED:
        return _MEASURED[sha] | {"eval_s": 0.0}
    t = time.perf_counter()
    answers: dict[str, str] = {}
    skill = general = 0
    with Runner(gguf, threads=cfg.eval.threads, context=cfg.eval.context) as r:
        for p in data["skill_probes"]:
            a = answers[p["key"]] = r.chat(p["messages"], MAX_TOKENS)
            skill += ld.skill_pass(a, p["tool"], p["args"])
        for p in data["general_probes"]:
            a = answers[p["key"]] = r.chat([{"role": "user", "content": p["prompt"]}], MAX_TOKENS)
            general += keyword_pass(a, p["answers"])
    out = {"skill": skill, "general": general, "answers": answers, "eval_s": time.perf_counter() - t}
    if sha:
        _MEASURED[sha] = out
    return out


def gen_row(status: dict[str, Any], ledger: dict[str, Any], gen: int) -> dict[str, Any]:
    g = next(x for x in status["generations"] if x["gen"] == gen)
    led = next((x for x in ledger.get("rows", []) if str(x.get("GEN_ID")) == str(gen)), {})
    return {"gen": gen, "parent": g["parent"], "status": g["status"], "reason": g["reason"] or "",
            "recall": g["eval_recall"], "generalization": g["eval_generalization"], "style": g["eval_style_drift"],
            "n_new": led.get("n_new"), "n_replay": led.get("n_replay"), "n_holdout": led.get("n_holdout"),
            "loss": (led.get("loss_start"), led.get("loss_end"))}


def g0_items(cfg: config.Config, gen: int) -> tuple[int, int] | None:
    """(passed, asked) of a child's recall items that are G0's own known probes, read from the store.

    The product's recall also counts held-out items of later ancestors; this is what
    "recall stays within the margin of G0's" is about: G0 answers all of these right.
    """
    from sqlmodel import select  # noqa: PLC0415

    from loop.data.dataset import known_probe  # noqa: PLC0415
    from store.tables import EvalResult  # noqa: PLC0415

    with session(cfg.db_url) as s:
        known = {r.item_key for r in s.exec(select(EvalResult).where(EvalResult.gen_id == 0, EvalResult.eval == "probe",
                                                                     EvalResult.passed == True))  # noqa: E712
                 if known_probe(json.loads(r.detail))}
        asked = [r for r in s.exec(select(EvalResult).where(EvalResult.gen_id == gen, EvalResult.eval == "recall"))
                 if r.item_key in known]
    return (sum(r.passed for r in asked), len(asked)) if asked else None


def manifest_part(cfg: config.Config, gen: int, part: str) -> dict[str, Any]:
    """One part of a generation's manifest ("dataset", "train"), or {} when it has none."""
    path = artifacts.gen_dir(cfg, gen) / "manifest.json"
    try:
        return json.loads(path.read_text()).get(part, {})
    except (OSError, ValueError):
        return {}


def run_mode(mode: str, args: argparse.Namespace, data: dict[str, Any], base: Path) -> dict[str, Any]:
    folder = base / mode
    folder.mkdir(parents=True)
    log = base / f"{mode}.log"
    print(f"[{mode}] workspace {folder}; ladder's own output in {log}", flush=True)
    t = time.perf_counter()
    made = ladder(log, "init", str(folder))
    init_s = time.perf_counter() - t
    cfg_path = Path(made["config"])
    if MODES[mode]:
        set_keys(cfg_path, MODES[mode])
    cfg = config.load(cfg_path)
    c = ["--config", str(cfg_path)]
    g0 = gen_row(ladder(log, "status", *c), ladder(log, "ledger", *c), 0)
    g0 |= measure(cfg, 0, data) | {"times": {"init": init_s}}
    rows = [g0]
    print(f"[{mode}] G0: skill {g0['skill']}/{len(data['skill_probes'])}, general {g0['general']}/"
          f"{len(data['general_probes'])}, recall {g0['recall']}", flush=True)
    for k, stage in enumerate(data["stages"][: args.stages], 1):
        ld.write_stage(stage, cfg.inbox_dir / f"learning-stage{k}.jsonl")
        t = time.perf_counter()
        ing = ladder(log, "ingest", *c)
        ingest_s = time.perf_counter() - t
        t = time.perf_counter()
        tr = ladder(log, "train", *c, *(["--steps", str(args.steps)] if args.steps else []))
        train_s = time.perf_counter() - t
        gen = tr.get("gen")
        if gen is None:
            raise SystemExit(f"[{mode}] stage {k}: ladder train gave no generation: {tr}")
        row = gen_row(ladder(log, "status", *c), ladder(log, "ledger", *c), gen)
        row["stage"] = k
        row["ingested"] = ing.get("ingested")
        row["dataset"] = manifest_part(cfg, gen, "dataset")
        row["g0_items"] = g0_items(cfg, gen)
        row["times"] = {"ingest": ingest_s, "train_job": train_s} | {
            f"job.{name}": secs for name, secs in stage_times(cfg, gen).items()}
        row |= measure(cfg, gen, data)
        rows.append(row)
        print(f"[{mode}] stage {k}: G{gen} (parent G{row['parent']}) {row['status']}: skill {row['skill']}, "
              f"general {row['general']}, recall {row['recall']} (G0's items {shown_pair(row['g0_items'])}) "
              f"{row['reason']}", flush=True)
    return {"mode": mode, "workspace": str(folder), "config_diff": config_diff(cfg), "rows": rows}


def shown(v: Any, fmt: str = ".2f") -> str:
    return "-" if v is None else (format(v, fmt) if isinstance(v, float) else str(v))


def shown_pair(v: tuple[int, int] | list[int] | None) -> str:
    return "-" if not v else f"{v[0]}/{v[1]}"


def print_table(result: dict[str, Any], data: dict[str, Any], args: argparse.Namespace) -> None:
    ns, ng = len(data["skill_probes"]), len(data["general_probes"])
    print(f"\n== mode: {result['mode']} ==")
    print(f"config vs defaults: {'; '.join(result['config_diff']) or 'none (default config)'}"
          f"{f'; ladder train --steps {args.steps}' if args.steps else ''}")
    head = (f"{'gen':<4}{'parent':<7}{'stage':<6}{'skill':>8}{'general':>9}{'recall':>8}{'G0 items':>9}{'gener.':>8}"
            f"{'style':>6}"
            f"{'new/repl/hold':>15}  {'decision':<9} reason")
    print(head)
    print("-" * len(head))
    for r in result["rows"]:
        skill = "-" if r["skill"] is None else f"{r['skill']}/{ns}"
        gen_ok = "-" if r["general"] is None else f"{r['general']}/{ng}"
        mix = "-" if r.get("stage") is None else f"{r['n_new']}/{r['n_replay']}/{r['n_holdout']}"
        parent = "-" if r["parent"] is None else f"G{r['parent']}"
        print(f"G{r['gen']:<3}{parent:<7}{str(r.get('stage', '-')):<6}{skill:>8}{gen_ok:>9}{shown(r['recall']):>8}"
              f"{shown_pair(r.get('g0_items')):>9}"
              f"{shown(r['generalization']):>8}{shown(r['style']):>6}{mix:>15}  {r['status']:<9} {r['reason']}")
    print("wall time per stage (s):")
    for r in result["rows"]:
        parts = [f"{k} {v:.0f}" for k, v in r["times"].items()] + [f"bench probes {r.get('eval_s', 0):.0f}"]
        extra = {k: v for k, v in r.get("dataset", {}).items() if "self" in k}
        loss = r.get("loss") or (None, None)
        tail = f"; loss {shown(loss[0])} -> {shown(loss[1])}" if r.get("stage") else ""
        print(f"  G{r['gen']}: " + ", ".join(parts) + tail + (f"; {json.dumps(extra)}" if extra else ""))
    probe = data["general_probes"][0]
    print(f"sample answers to {probe['prompt']!r}:")
    for r in result["rows"]:
        a = " ".join(r.get("answers", {}).get(probe["key"], "").split())
        print(f"  G{r['gen']}: {a[:100]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["replay", "no-replay", "both"], default="replay")
    ap.add_argument("--stages", type=int, default=3, help=f"curriculum stages, 1..{ld.MAX_STAGES} (default 3)")
    ap.add_argument("--steps", type=int, help="passed to 'ladder train --steps' (default: the config's train.steps)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated curriculum")
    ap.add_argument("--keep", type=Path, help="keep the workspaces and results.json in this folder")
    args = ap.parse_args()
    if not 1 <= args.stages <= ld.MAX_STAGES:
        ap.error(f"--stages must be 1..{ld.MAX_STAGES}")
    if args.steps is not None and args.steps <= 0:
        ap.error("--steps must be positive")
    data = ld.build(seed=args.seed, stages=args.stages)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        base = Path(tempfile.mkdtemp(prefix="learning-", dir=args.keep))
    else:
        base = Path(tempfile.mkdtemp(prefix="ladder-learning-"))
    modes = ["replay", "no-replay"] if args.mode == "both" else [args.mode]
    started = datetime.now()
    print(f"learning benchmark {started:%Y-%m-%d %H:%M}: modes {', '.join(modes)}; {args.stages} stage(s) x "
          f"{ld.PER_STAGE} conversations; {len(data['skill_probes'])} held-out skill probes, "
          f"{len(data['general_probes'])} general probes; probes greedy, {MAX_TOKENS} tokens", flush=True)
    results = []
    try:
        for mode in modes:
            results.append(run_mode(mode, args, data, base))
            if not args.keep:  # each workspace holds GBs of weights
                shutil.rmtree(base / mode, ignore_errors=True)
    finally:
        if args.keep:
            (base / "results.json").write_text(json.dumps(results, indent=1, default=str))
    print(f"\nlearning benchmark, {started:%Y-%m-%d %H:%M} to {datetime.now():%H:%M}; seed {args.seed}; "
          f"skill = held-out tool calls exactly right, general = keyword pass; recall, generalization (gener.), "
          f"style drift and the decision are the product's own gates")
    for result in results:
        print_table(result, data, args)
    if args.keep:
        print(f"\nworkspaces and results.json kept in {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

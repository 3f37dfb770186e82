"""Run a finished generation's evals again, in a job like training; the user's decision is left as it was."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlmodel import col, delete

from loop import artifacts
from loop.evals import gate
from loop.config import Config
from loop.errors import OperationFailed, UserError
from loop.events import EventLog
from store import ledger
from store.db import get_meta, session, set_meta
from store.tables import EvalResult, Generation

EVALUATED = ("candidate", "promoted", "rejected", "rolled_back")


def start(cfg: Config, gen_id: int) -> tuple[int, int]:
    """Write an eval job folder for the generation and spawn it; return (gen, pid)."""
    from loop.jobs import runner as jobs  # noqa: PLC0415

    running = current(cfg)
    if running is not None:
        raise OperationFailed(f"G{running['gen']}'s evals are already running (pid {running['pid']})")
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        if g is None:
            raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
        if g.status not in EVALUATED or not g.gguf_path or not Path(g.gguf_path).is_file():
            raise UserError(f"G{gen_id} is {g.status} and has no GGUF to evaluate")
    folder = artifacts.gen_dir(cfg, gen_id) / f"eval-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    folder.mkdir(parents=True, exist_ok=True)
    job = {"mode": "eval", "gen": gen_id, "config": str(cfg.path), "job_dir": str(folder)}
    (folder / "job.json").write_text(json.dumps(job, indent=2), encoding="utf-8")
    pid = jobs.launch(folder)
    with session(cfg.db_url) as s:
        set_meta(s, "eval_job", {"gen": gen_id, "pid": pid})
    return gen_id, pid


def current(cfg: Config) -> dict[str, Any] | None:
    from loop.jobs.runner import pid_alive  # noqa: PLC0415

    with session(cfg.db_url) as s:
        job = get_meta(s, "eval_job")
    return job if job and pid_alive(job.get("pid")) else None


def run(cfg: Config, job: dict[str, Any], events: EventLog) -> dict[str, Any]:
    from loop.jobs.pipeline import evaluate, parent_recall, store_results  # noqa: PLC0415

    gen_id = job["gen"]
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        set_meta(s, "eval_job", {"gen": gen_id, "pid": os.getpid()})
        parent = s.get(Generation, g.parent_id) if g.parent_id is not None else None
    events.emit("stage", f"G{gen_id}: running its evals again", stage="eval")
    if parent is None or not g.job_dir:
        from loop.workspace import _probe  # noqa: PLC0415 - generation 0's evals are the probe set

        probes, style, accuracy, drift = _probe(cfg, Path(g.gguf_path))
        metrics = {"eval_recall": accuracy, "eval_generalization": None, "eval_style_drift": drift}
        results = [("probe", r) for r in probes] + [("style", r) for r in style]
        checks: list[Any] = []
    else:
        metrics, results = evaluate(cfg, Path(g.gguf_path), Path(g.job_dir))
        metrics["parent_recall_same"] = parent_recall(cfg, parent, [r for n, r in results if n == "recall"],
                                                      Path(g.job_dir))
        checks = gate.decide(metrics, cfg.gates, {"recall_same": metrics["parent_recall_same"],
                                                  "eval_style_drift": parent.eval_style_drift}).checks
    before = (g.eval_recall, g.eval_generalization, g.eval_style_drift)
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        names = sorted({n for n, _ in results})
        s.exec(delete(EvalResult).where(EvalResult.gen_id == gen_id, col(EvalResult.eval).in_(names)))
        store_results(s, gen_id, results)
        g.eval_recall, g.eval_generalization = metrics["eval_recall"], metrics["eval_generalization"]
        g.eval_style_drift = metrics["eval_style_drift"]
        if checks:
            g.gates = json.dumps([c.__dict__ for c in checks])
        s.add(g)
        set_meta(s, "eval_job", None)
        s.flush()
        ledger.export(s, cfg.ledger_csv)
    after = (metrics["eval_recall"], metrics["eval_generalization"], metrics["eval_style_drift"])
    events.emit("done", f"G{gen_id} re-evaluated: recall, generalization, style drift {_show(before)} → {_show(after)}; "
                        f"its status ({g.status}) is unchanged", status=g.status)
    return {"gen": gen_id, "metrics": metrics}


def _show(values: tuple) -> str:
    return "/".join("-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v)) for v in values)

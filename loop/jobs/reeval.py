"""Run a finished generation's evals again, in a job like training; the user's decision is left as it was."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Any

from sqlmodel import col, delete

from loop import artifacts
from loop.evals import gate
from loop.config import Config
from loop.errors import OperationFailed, UserError
from loop.events import EventLog
from loop.jobs import writer
from loop.jobs.launch import job_alive, launch, lock_for
from loop.evals import base
from loop.evals.generation import against_parent, drift_set, evaluate, store_results
from loop.jobs.finish import record_evals
from store.db import get_meta, reading, session, set_meta
from store.tables import EvalResult, Generation

EVALUATED = ("candidate", "promoted", "rejected", "rolled_back")


def start(cfg: Config, gen_id: int) -> tuple[int, int]:
    """Write an eval job folder for the generation and spawn it; return (gen, pid)."""
    with writer.lineage(cfg) as change:
        s = change.s
        busy = _current(cfg, get_meta(s, "eval_job"))
        if busy is not None:
            raise OperationFailed(f"G{busy['gen']}'s evals are already running (pid {busy.get('pid')})")
        g = s.get(Generation, gen_id)
        if g is None:
            raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
        if g.status not in EVALUATED:
            raise UserError(f"G{gen_id} is {g.status} and has no GGUF to evaluate")
        artifacts.verified_gguf(cfg, g)
        folder = artifacts.gen_dir(cfg, gen_id) / f"eval-{datetime.now(timezone.utc):%Y%m%d-%H%M%S-%f}"
        folder.mkdir(parents=True)
        job = {"mode": "eval", "gen": gen_id, "config": os.path.relpath(cfg.path, folder)}
        (folder / "job.json").write_text(json.dumps(job, indent=2), encoding="utf-8")
        held = lock_for(folder).acquire()
        set_meta(s, "eval_job", {"gen": gen_id, "dir": artifacts.stored(cfg, folder)})
    pid = launch(folder, held)
    with session(cfg.db_url) as s:
        set_meta(s, "eval_job", {"gen": gen_id, "dir": artifacts.stored(cfg, folder), "pid": pid})
    return gen_id, pid


def current(cfg: Config) -> dict[str, Any] | None:
    """The eval job that is running now, if any: {"gen", "dir", "pid"}."""
    with reading(cfg.db_url) as s:
        return _current(cfg, get_meta(s, "eval_job"))


def _current(cfg: Config, job: dict[str, Any] | None) -> dict[str, Any] | None:
    return job if job and job_alive(artifacts.local(cfg, job.get("dir"))) else None


def run(cfg: Config, job: dict[str, Any], events: EventLog) -> dict[str, Any]:
    gen_id = job["gen"]
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        parent = s.get(Generation, g.parent_id) if g.parent_id is not None else None
    events.emit("stage", f"G{gen_id}: running its evals again", stage="eval")
    gguf, job_dir = artifacts.verified_gguf(cfg, g), artifacts.local(cfg, g.job_dir)
    if parent is None or job_dir is None:  # generation 0: the probe set, the tone probes and the suites
        metrics, results = base.evaluate(cfg, gguf)
        _keep_steadiness(cfg, gen_id, results)
        metrics = base.metrics_of(cfg, metrics, results)
        checks: list[Any] = []
    else:
        metrics, results = evaluate(cfg, gguf, job_dir, artifacts.verified_gguf(cfg, parent), drift_set(cfg, parent))
        against_parent(cfg, parent, metrics, results, job_dir)
        checks = gate.decide(metrics, cfg.gates, {"recall_same": metrics["parent_recall_same"],
                                                  "eval_style_drift": parent.eval_style_drift}).checks
    before = (g.eval_recall, g.eval_generalization, g.eval_style_drift)
    with writer.lineage(cfg) as change:
        s = change.s
        g = s.get(Generation, gen_id)
        names = sorted({n for n, _ in results})
        s.exec(delete(EvalResult).where(EvalResult.gen_id == gen_id, col(EvalResult.eval).in_(names)))
        store_results(s, gen_id, results)
        g.eval_recall, g.eval_generalization = metrics["eval_recall"], metrics["eval_generalization"]
        g.eval_style_drift = metrics["eval_style_drift"]
        record_evals(g, metrics, gen_id)
        if checks:
            g.gates = json.dumps([c.__dict__ for c in checks])
        s.add(g)
        set_meta(s, "eval_job", None)
    after = (metrics["eval_recall"], metrics["eval_generalization"], metrics["eval_style_drift"])
    events.emit("done", f"G{gen_id} re-evaluated: recall, generalization, style drift {_show(before)} → {_show(after)}; "
                        f"its status ({g.status}) is unchanged", status=g.status)
    return {"gen": gen_id, "metrics": metrics}


def _keep_steadiness(cfg: Config, gen_id: int, results) -> None:
    """Asked again, G0's probes keep the steadiness found at init (the rounding check is not run again)."""
    from sqlmodel import select  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        before = {r.item_key: json.loads(r.detail) for r in s.exec(select(EvalResult).where(
            EvalResult.gen_id == gen_id, EvalResult.eval == "probe")).all()}
    for name, r in results:
        if name == "probe" and r["item_key"] in before and before[r["item_key"]].get("steady") is False:
            r["detail"] = r["detail"] | {k: v for k, v in before[r["item_key"]].items() if k in ("steady", "wrong_when_rounded")}


def _show(values: tuple) -> str:
    return "/".join("-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v)) for v in values)

"""A generation's last stage: hold its evals to the gates and record the decision, respecting the user's.

The decision is one lineage change. A child that passes every gate is promoted only if its
parent is still the active generation: if the user rolled back or approved another one while
it trained, it waits as a candidate with the reason, and the user's choice stands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loop import artifacts
from loop.config import Config
from loop.data.lineage import ancestors
from loop.evals import gate
from loop.evals.generation import store_results
from loop.events import EventLog
from loop.jobs import writer
from store.db import active_gen, set_meta
from store.tables import Generation, now


def settle(decision: gate.Decision, gen_id: int, parent_id: int, active: int | None) -> tuple[str, str]:
    """The status and reason the child gets, given which generation is active when it finishes."""
    if decision.passed and active != parent_id:
        return "candidate", (f"passed every gate, but G{active} became active while G{gen_id} trained from "
                             f"G{parent_id}; kept as a candidate (approve it to make it active)")
    return decision.status, decision.reason


def finish(cfg: Config, gen_id: int, parent: Generation, child_sha: str, gguf: Path, metrics: dict[str, Any],
           results: list[tuple[str, dict[str, Any]]], train: dict[str, Any], job: dict[str, Any], events: EventLog,
           walltime_s: float) -> dict[str, Any]:
    decision = gate.decide(metrics, cfg.gates, {"recall_same": metrics.get("parent_recall_same"),
                                                "eval_style_drift": parent.eval_style_drift})
    folder = artifacts.gen_dir(cfg, gen_id)
    artifacts.write_manifest(folder, cfg.data, gen=gen_id, parent=parent.id, parent_sha=parent.child_sha,
                             child_sha=child_sha, dataset_sha=job["dataset_sha"], data_delta_sha=job["data_delta_sha"],
                             train=train, metrics=metrics, dataset=job["summary"])
    with writer.lineage(cfg, fault="gate") as change:
        s = change.s
        active = active_gen(s)
        status, reason = settle(decision, gen_id, parent.id, active)
        g = s.get(Generation, gen_id)
        g.child_sha, g.gguf_path = child_sha, artifacts.stored(cfg, gguf)
        g.eval_recall, g.eval_generalization = metrics["eval_recall"], metrics["eval_generalization"]
        g.eval_style_drift = metrics["eval_style_drift"]
        record_evals(g, metrics, gen_id)
        g.gates = json.dumps([c.__dict__ for c in decision.checks])
        g.status, g.reason, g.stage, g.finished_at = status, reason, "done", now()
        g.walltime_min = round(walltime_s / 60, 4)
        s.add(g)
        store_results(s, gen_id, results)
        if status == "promoted":
            set_meta(s, "active_gen", gen_id)
            active = gen_id
        s.flush()
        stopped = stop_reason(s, cfg, active)
        if stopped:
            set_meta(s, "stopped", stopped)
        doomed = artifacts.prune_weights(cfg, s)
        change.after(lambda: artifacts.delete_folders(doomed))
    events.emit("done", f"G{gen_id}: {reason}", status=status)
    if stopped:
        events.emit("warning", stopped)
    return {"gen": gen_id, "parent": parent.id, "status": "active" if active == gen_id else status,
            "child_sha": child_sha, "metrics": metrics | {k: train[k] for k in ("loss_start", "loss_end", "steps")},
            "reason": reason, "stopped": stopped}


def record_evals(g: Generation, metrics: dict[str, Any], gen_id: int) -> None:
    """The eval figures beyond the seed's three columns: KL drift, each score's n, the suites, readiness."""
    g.eval_kl, g.n_recall, g.n_generalization = metrics.get("eval_kl"), metrics.get("recall_items"), \
        metrics.get("holdout_items")
    g.suite_sha = metrics.get("suite_sha")
    g.readiness = json.dumps((metrics.get("readiness") or {}) | {"gen": gen_id})


def stop_reason(s, cfg: Config, active: int | None) -> str | None:
    """The stop rule over the active lineage, oldest first: rejected siblings are not the model's history."""
    lineage = list(reversed(ancestors(s, active)))
    gens = [s.get(Generation, i) for i in lineage]
    history = [{"eval_generalization": g.eval_generalization, "eval_style_drift": g.eval_style_drift}
               for g in gens if g is not None]
    return gate.stop_rule(history, cfg.stop_rule)

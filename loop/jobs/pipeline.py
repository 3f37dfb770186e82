"""The one place that chains a generation's stages and writes the results to the store.

train → merge → export → evaluate → gate → promote or reject. It runs in a child process
from a self-contained job folder (see loop.job), so a crash cannot take a UI down with it.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from loop import artifacts
from loop.evals import gate
from loop.config import Config
from loop.data.dataset import read_jsonl
from loop.events import EventLog
from loop.hashing import sha256_file
from store import ledger
from store.db import active_gen, session, set_meta
from store.tables import EvalResult, Generation, now


class Cancelled(Exception):
    """The user asked the job to stop."""


def parent_weights(cfg: Config, parent: Generation, events: EventLog) -> Path:
    """The parent's fp32 folder, rebuilt from its GGUF if it was pruned."""
    if parent.weights_path and Path(parent.weights_path).is_dir():
        return Path(parent.weights_path)
    from loop.model.convert import load_base_to_hf  # noqa: PLC0415 - torch only in the job

    events.emit("stage", f"rebuilding G{parent.id} weights from its GGUF", stage="train")
    target = artifacts.weights_dir(cfg, parent.id)
    load_base_to_hf(Path(parent.gguf_path), target)
    with session(cfg.db_url) as s:
        g = s.get(Generation, parent.id)
        g.weights_path = str(target)
        s.add(g)
    return target


def set_stage(cfg: Config, gen_id: int, stage: str, events: EventLog, message: str) -> None:
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.stage = stage
        s.add(g)
    events.emit("stage", message, stage=stage)


def run(cfg: Config, job: dict[str, Any], events: EventLog, should_stop) -> dict[str, Any]:
    gen_id, job_path = job["gen"], Path(job["job_dir"])
    settings = dict(cfg.data["train"]) | ({"steps": job["steps"]} if job.get("steps") else {})
    with session(cfg.db_url) as s:
        parent = s.get(Generation, job["parent"])
    started = time.monotonic()

    def check() -> None:
        if should_stop():
            raise Cancelled()

    if cfg.dataset.self_replay_share > 0:
        self_replay(cfg, job, parent, events)
        check()
    rows = len(read_jsonl(job_path / "dataset.jsonl"))
    settings["steps"], note = plan_steps(settings, rows, explicit=bool(job.get("steps")))
    set_stage(cfg, gen_id, "train", events, f"G{gen_id}: training from G{parent.id} ({settings['steps']} steps{note})")
    parent_dir = parent_weights(cfg, parent, events)
    from loop.train.sft import Cancelled as TrainCancelled, train_lora  # noqa: PLC0415

    def progress(e: dict[str, Any]) -> None:
        events.emit("progress", "", stage="train", **e)

    try:
        result = train_lora(parent_dir, job_path / "dataset.jsonl", artifacts.weights_dir(cfg, gen_id), settings,
                            on_progress=progress, should_stop=should_stop,
                            sources_path=job_path / "dataset_sources.jsonl")
    except TrainCancelled:
        raise Cancelled() from None
    check()
    if cfg.train.dpo and (job_path / "dpo.jsonl").is_file() and read_jsonl(job_path / "dpo.jsonl"):
        result["dpo"] = dpo_stage(cfg, gen_id, job_path, settings, events, should_stop)
        check()
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.weights_path = str(artifacts.weights_dir(cfg, gen_id))
        g.steps, g.lr = result["steps"], settings["learning_rate"]
        g.loss_start, g.loss_end = result["loss_start"], result["loss_end"]
        g.walltime_min = round(result["walltime_s"] / 60, 4)
        s.add(g)

    set_stage(cfg, gen_id, "export", events, f"G{gen_id}: exporting GGUF ({cfg.model.export_dtype})")
    from loop.model.export import export_gguf  # noqa: PLC0415

    target = artifacts.gguf_path(cfg, gen_id)
    child_sha = export_gguf(artifacts.weights_dir(cfg, gen_id), target, Path(parent.gguf_path), cfg.model.export_dtype)
    check()

    set_stage(cfg, gen_id, "eval", events, f"G{gen_id}: evaluating through llama.cpp")
    metrics, results = evaluate(cfg, target, job_path)
    check()
    metrics["parent_recall_same"] = parent_recall(cfg, parent, [r for name, r in results if name == "recall"], job_path)
    check()
    return finish(cfg, gen_id, parent, child_sha, target, metrics, results, result, job, events, time.monotonic() - started)


def plan_steps(settings: dict[str, Any], rows: int, explicit: bool) -> tuple[int, str]:
    """Steps for this generation, and a note on why when they are not the configured number.

    Training walks the rows in order and stops after `steps` batches, so fewer steps than one
    pass would leave the tail of the dataset (new records among it) unseen while the ledger
    counts it as trained. `train.steps` is therefore a floor: a bigger dataset gets one full
    pass. A number given for this run (`ladder train --steps N`) is kept as given.
    """
    per_step = settings["batch_size"] * settings["grad_accum"]
    one_pass = math.ceil(rows / per_step) if rows else 0
    if explicit:
        seen = min(rows, settings["steps"] * per_step)
        return settings["steps"], "" if seen >= rows else f"; as asked, so {seen} of {rows} rows are seen"
    if one_pass > settings["steps"]:
        return one_pass, f": one pass over {rows} rows"
    return settings["steps"], ""


def dpo_stage(cfg: Config, gen_id: int, job_path: Path, settings: dict[str, Any], events: EventLog,
              should_stop) -> dict[str, Any]:
    """DPO on the job's corrections, from the SFT folder into a sibling that then takes the SFT folder's place."""
    from loop.train.dpo import Cancelled as DPOCancelled, train_dpo  # noqa: PLC0415

    weights = artifacts.weights_dir(cfg, gen_id)
    dpo_dir, sft_dir = weights.with_name(weights.name + ".dpo"), weights.with_name(weights.name + ".sft")
    for leftover in (dpo_dir, sft_dir):  # from a run that died here
        shutil.rmtree(leftover, ignore_errors=True)
    set_stage(cfg, gen_id, "dpo", events, f"G{gen_id}: DPO on corrections ({settings['dpo_steps']} steps)")

    def progress(e: dict[str, Any]) -> None:
        events.emit("progress", "", stage="dpo", **e)

    try:
        result = train_dpo(weights, job_path / "dpo.jsonl", dpo_dir, settings, on_progress=progress,
                           should_stop=should_stop)
    except DPOCancelled:
        raise Cancelled() from None
    # Both folders are complete; two renames swap them, and the second failing puts the SFT folder back.
    os.replace(weights, sft_dir)
    try:
        os.replace(dpo_dir, weights)
    except BaseException:
        os.replace(sft_dir, weights)
        raise
    shutil.rmtree(sft_dir, ignore_errors=True)
    return result


def self_replay(cfg: Config, job: dict[str, Any], parent: Generation, events: EventLog) -> None:
    """The parent answers general prompts; the good answers join the job's dataset, re-hashed."""
    from loop.data import replay  # noqa: PLC0415

    gen_id, job_path = job["gen"], Path(job["job_dir"])
    set_stage(cfg, gen_id, "replay", events, f"G{gen_id}: G{parent.id} answers general prompts for self-replay")
    counts = replay.run(cfg, Path(parent.gguf_path), job_path, gen_id)
    job["summary"].update(counts)
    job["dataset_sha"] = sha256_file(job_path / "dataset.jsonl")
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.dataset_sha, g.n_replay = job["dataset_sha"], g.n_replay + counts["self_replay"]
        s.add(g)
    events.emit("info", f"G{gen_id}: {counts['self_replay']} self-replay examples from G{parent.id} "
                        f"({counts['self_replay_dropped']} of {counts['self_replay_asked']} answers dropped)", **counts)


def parent_recall(cfg: Config, parent: Generation, child_results: list[dict[str, Any]], job_path: Path) -> float | None:
    """The parent's recall on exactly the child's recall items: stored answers first, the parent's GGUF for the rest."""
    if not child_results:
        return None
    from sqlmodel import col, select  # noqa: PLC0415

    keys = [r["item_key"] for r in child_results]
    with session(cfg.db_url) as s:
        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == parent.id, col(EvalResult.item_key).in_(keys),
                                               col(EvalResult.eval).in_(["probe", "recall", "generalization"]))
                      .order_by(EvalResult.id)).all()
    known = {r.item_key: r.passed for r in rows}
    missing = [it for it in read_jsonl(job_path / "recall.jsonl") if it["key"] not in known]
    if missing:
        from loop.evals import probes as evals  # noqa: PLC0415
        from loop.model.llm import Runner  # noqa: PLC0415

        e = cfg.eval
        with Runner(Path(parent.gguf_path), threads=e.threads, context=e.context, seed=0) as runner:
            rp, _ = evals.run_probes(runner, [m for m in missing if m["type"] == "probe"], e.max_tokens)
            rr, _ = evals.run_reference(runner, [m for m in missing if m["type"] == "reference"], e.max_tokens,
                                        e.match_threshold)
        known |= {r["item_key"]: r["passed"] for r in rp + rr}
    return round(sum(bool(known[k]) for k in keys) / len(keys), 4)


def evaluate(cfg: Config, gguf: Path, job_path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Recall, generalization and style drift of one GGUF, with every item's answer."""
    from loop.evals import probes as evals  # noqa: PLC0415
    from loop.model.llm import Runner  # noqa: PLC0415

    e = cfg.eval
    holdout, recall = read_jsonl(job_path / "holdout.jsonl"), read_jsonl(job_path / "recall.jsonl")
    out: list[tuple[str, dict[str, Any]]] = []
    with Runner(gguf, threads=e.threads, context=e.context, seed=0) as runner:
        gen_results, gen_score = evals.run_reference(runner, holdout, e.max_tokens, e.match_threshold)
        probes = [r for r in recall if r["type"] == "probe"]
        refs = [r for r in recall if r["type"] == "reference"]
        rp, _ = evals.run_probes(runner, probes, e.max_tokens)
        rr, _ = evals.run_reference(runner, refs, e.max_tokens, e.match_threshold)
        style_results, drift = evals.run_style(runner, list(e.tone_probes), list(e.corporate_phrases), e.max_tokens)
    recall_results = rp + rr
    out += [("generalization", r) for r in gen_results] + [("recall", r) for r in recall_results]
    out += [("style", r) for r in style_results]
    # Held-out items keep their conversation so later generations can be asked them for recall.
    by_key = {it["key"]: it for it in holdout}
    for name, r in out:
        if name == "generalization" and r["item_key"] in by_key:
            r["detail"] = detail_of(r, messages=by_key[r["item_key"]]["messages"])
    metrics = {
        "eval_recall": round(sum(r["passed"] for r in recall_results) / len(recall_results), 4) if recall_results else None,
        "eval_generalization": round(gen_score, 4) if holdout else None,
        "eval_style_drift": int(drift),
        "recall_items": len(recall_results), "holdout_items": len(holdout),
    }
    return metrics, out


def detail_of(r: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An eval result's detail as a dict: the eval's note plus what later stages need."""
    d = r.get("detail")
    base = d if isinstance(d, dict) else ({"note": d} if d else {})
    keep = {k: r[k] for k in ("expected", "stated") if k in r}
    return {**base, **keep, **extra}


def store_results(s, gen_id: int, results: list[tuple[str, dict[str, Any]]]) -> None:
    for name, r in results:
        s.add(EvalResult(gen_id=gen_id, eval=name, item_key=r["item_key"], prompt=r["prompt"],
                         reference=r.get("reference", ""), answer=r["answer"], score=float(r["score"]),
                         passed=bool(r["passed"]), detail=json.dumps(detail_of(r), ensure_ascii=False)))


def finish(cfg: Config, gen_id: int, parent: Generation, child_sha: str, gguf: Path, metrics: dict[str, Any],
           results: list[tuple[str, dict[str, Any]]], train: dict[str, Any], job: dict[str, Any], events: EventLog,
           walltime_s: float) -> dict[str, Any]:
    set_stage(cfg, gen_id, "gate", events, f"G{gen_id}: holding the evals to the gates")
    decision = gate.decide(metrics, cfg.gates, {"recall_same": metrics.get("parent_recall_same"),
                                                "eval_style_drift": parent.eval_style_drift})
    folder = artifacts.gen_dir(cfg, gen_id)
    artifacts.write_manifest(folder, cfg.data, gen=gen_id, parent=parent.id, parent_sha=parent.child_sha,
                             child_sha=child_sha, dataset_sha=job["dataset_sha"], data_delta_sha=job["data_delta_sha"],
                             train=train, metrics=metrics, dataset=job["summary"])
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.child_sha, g.gguf_path = child_sha, str(gguf)
        g.eval_recall, g.eval_generalization = metrics["eval_recall"], metrics["eval_generalization"]
        g.eval_style_drift = metrics["eval_style_drift"]
        g.gates = json.dumps([c.__dict__ for c in decision.checks])
        g.status, g.reason, g.stage, g.finished_at = decision.status, decision.reason, "done", now()
        g.walltime_min = round(walltime_s / 60, 4)
        s.add(g)
        store_results(s, gen_id, results)
        if decision.status == "promoted":
            set_meta(s, "active_gen", gen_id)
        s.flush()
        reason = stop_reason(s, cfg)
        if reason:
            set_meta(s, "stopped", reason)
        artifacts.prune_weights(cfg, s)
        s.flush()
        ledger.export(s, cfg.ledger_csv)
        active = active_gen(s)
    events.emit("done", f"G{gen_id}: {decision.reason}", status=decision.status)
    if reason:
        events.emit("warning", reason)
    return {"gen": gen_id, "parent": parent.id, "status": "active" if active == gen_id else decision.status,
            "child_sha": child_sha, "metrics": metrics | {k: train[k] for k in ("loss_start", "loss_end", "steps")},
            "reason": decision.reason, "stopped": reason}


def stop_reason(s, cfg: Config) -> str | None:
    from sqlmodel import col, select  # noqa: PLC0415

    gens = s.exec(select(Generation).where(col(Generation.status).in_(ledger.LEDGER_STATUSES)).order_by(Generation.id)).all()
    history = [{"eval_generalization": g.eval_generalization, "eval_style_drift": g.eval_style_drift} for g in gens]
    return gate.stop_rule(history, cfg.stop_rule)


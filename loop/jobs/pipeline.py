"""The one place that chains a generation's stages and writes the results to the store.

train → merge → export → evaluate → gate → promote or reject. It runs in a child process
from a self-contained job folder (see loop.jobs.child), so a crash cannot take a UI down with it.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from loop import artifacts, faults
from loop.config import Config
from loop.data.jobfiles import read_jsonl
from loop.errors import NothingToTrain
from loop.evals.generation import against_parent, drift_set, evaluate
from loop.events import EventLog
from loop.hashing import sha256_file
from loop.jobs.finish import finish
from store.db import session
from store.tables import Generation


class Cancelled(Exception):
    """The user asked the job to stop."""


def parent_weights(cfg: Config, parent: Generation, events: EventLog) -> Path:
    """The parent's fp32 folder, rebuilt from its GGUF if it was pruned."""
    stored = artifacts.local(cfg, parent.weights_path)
    if stored is not None and stored.is_dir():
        return stored
    from loop.model.convert import load_base_to_hf  # noqa: PLC0415 - torch only in the job

    events.emit("stage", f"rebuilding G{parent.id} weights from its GGUF", stage="train")
    target = artifacts.weights_dir(cfg, parent.id)
    load_base_to_hf(artifacts.verified_gguf(cfg, parent), target)
    with session(cfg.db_url) as s:
        g = s.get(Generation, parent.id)
        g.weights_path = artifacts.stored(cfg, target)
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
    from loop.train import launch  # noqa: PLC0415
    from loop.train.sft import Cancelled as TrainCancelled  # noqa: PLC0415

    def progress(e: dict[str, Any]) -> None:
        events.emit("progress", "", stage="train", **e)

    try:
        result = launch.train(cfg, job_path, parent_dir, job_path / "dataset.jsonl", artifacts.weights_dir(cfg, gen_id),
                              settings, progress, should_stop, job_path / "dataset_sources.jsonl")
    except TrainCancelled:
        raise Cancelled() from None
    faults.point("merge.saved")
    check()
    drilled = facts_stage(cfg, gen_id, job_path, settings, events, should_stop)
    if drilled is not None:
        result["facts"] = drilled
        check()
    if cfg.train.dpo and (job_path / "dpo.jsonl").is_file() and read_jsonl(job_path / "dpo.jsonl"):
        result["dpo"] = dpo_stage(cfg, gen_id, job_path, settings, events, should_stop)
        check()
    if (job_path / "kto.jsonl").is_file() and read_jsonl(job_path / "kto.jsonl"):
        result["kto"] = dpo_stage(cfg, gen_id, job_path, settings, events, should_stop, kind="kto")
        check()
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.weights_path = artifacts.stored(cfg, artifacts.weights_dir(cfg, gen_id))
        g.steps, g.lr = result["steps"], settings["learning_rate"]
        g.loss_start, g.loss_end = result["loss_start"], result["loss_end"]
        g.walltime_min = round(result["walltime_s"] / 60, 4)
        s.add(g)

    set_stage(cfg, gen_id, "export", events, f"G{gen_id}: exporting GGUF ({cfg.model.export_dtype})")
    from loop.model.export import export_gguf  # noqa: PLC0415

    target = artifacts.gguf_path(cfg, gen_id)
    faults.point("export.start")
    child_sha = export_gguf(artifacts.weights_dir(cfg, gen_id), target, artifacts.local(cfg, parent.gguf_path),
                            cfg.model.export_dtype)
    faults.point("export.renamed")
    check()

    set_stage(cfg, gen_id, "eval", events, f"G{gen_id}: evaluating through llama.cpp")
    faults.point("eval.start")
    metrics, results = evaluate(cfg, target, job_path, artifacts.verified_gguf(cfg, parent), drift_set(cfg, parent))
    faults.point("eval.child")
    check()
    against_parent(cfg, parent, metrics, results, job_path)
    faults.point("eval.parent")
    check()
    set_stage(cfg, gen_id, "gate", events, f"G{gen_id}: holding the evals to the gates")
    faults.point("gate.start")
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
              should_stop, kind: str = "dpo") -> dict[str, Any]:
    """DPO on the job's corrections (or KTO on its unpaired marks), from the SFT folder into a sibling that then
    takes the SFT folder's place."""
    from loop.train.sft import Cancelled as StageCancelled  # noqa: PLC0415

    if kind == "kto":
        from loop.train.kto import train_kto as train  # noqa: PLC0415
        what = f"KTO on unpaired good and bad answers ({settings['kto_steps']} steps)"
    else:
        from loop.train.dpo import train_dpo as train  # noqa: PLC0415
        what = f"DPO on corrections ({settings['dpo_steps']} steps)"
    weights = artifacts.weights_dir(cfg, gen_id)
    stage_dir, sft_dir = weights.with_name(weights.name + f".{kind}"), weights.with_name(weights.name + ".sft")
    for leftover in (stage_dir, sft_dir):  # from a run that died here
        shutil.rmtree(leftover, ignore_errors=True)
    faults.point(f"{kind}.start")
    set_stage(cfg, gen_id, kind, events, f"G{gen_id}: {what}")

    def progress(e: dict[str, Any]) -> None:
        events.emit("progress", "", stage=kind, **e)

    try:
        result = train(weights, job_path / f"{kind}.jsonl", stage_dir, settings, on_progress=progress,
                       should_stop=should_stop)
    except StageCancelled:
        raise Cancelled() from None
    except NothingToTrain as e:  # the SFT child stands; the user is told why it had no preference stage
        shutil.rmtree(stage_dir, ignore_errors=True)
        events.emit("warning", f"G{gen_id}: {kind.upper()} skipped: {e}")
        return {"skipped": str(e)}
    take_place(weights, stage_dir, sft_dir, kind)
    return result


def take_place(weights: Path, stage_dir: Path, sft_dir: Path, kind: str) -> None:
    """A later stage's complete folder takes the SFT folder's place: two renames, and the second failing puts
    the SFT folder back."""
    os.replace(weights, sft_dir)
    faults.point(f"{kind}.swap")
    try:
        os.replace(stage_dir, weights)
    except BaseException:
        os.replace(sft_dir, weights)
        raise
    shutil.rmtree(sft_dir, ignore_errors=True)
    faults.point(f"{kind}.done")


def facts_stage(cfg: Config, gen_id: int, job_path: Path, settings: dict[str, Any], events: EventLog,
                should_stop) -> dict[str, Any] | None:
    """Drill the facts the new records state and those the lineage knows (facts.jsonl), from the SFT child into a
    sibling that takes its place.

    The SFT pass sees a fact's value three or four times at a learning rate meant for style, and the child
    answers with the right shape and a wrong value. This stage trains rows that each hold a dozen different
    facts' drills (loop.data.facts.packed_drills), every fact `train.fact_repeats` times at
    `train.fact_learning_rate`, each row beside a self-replay row distilled from the SFT child, which keeps
    what it knew. None when there is nothing to drill.
    """
    from loop.data import facts  # noqa: PLC0415
    from loop.data.jobfiles import write_jsonl  # noqa: PLC0415
    from loop.train import launch  # noqa: PLC0415
    from loop.train.sft import Cancelled as StageCancelled  # noqa: PLC0415

    listed = job_path / "facts.jsonl"
    # The lineage's known facts are drilled beside the new ones so that new values of the same shape do not
    # overwrite them.
    found, known = facts.for_stage(read_jsonl(listed) if listed.is_file() else [], cfg.train.fact_repeats)
    if not found:
        return None
    earlier = len(known)
    from transformers import AutoTokenizer  # noqa: PLC0415

    weights = artifacts.weights_dir(cfg, gen_id)
    tokenizer = AutoTokenizer.from_pretrained(weights)

    def fits(messages: list[dict[str, Any]]) -> bool:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= settings["max_length"]

    # Known facts as often as new ones: measured on bench_facts' second stage, drilled half as often they kept 5
    # of 9 values (a quarter: 1 of 9), the general recall items lost 4 of 50, and the child was rejected.
    packed = facts.packed_drills(found, cfg.train.fact_repeats, fits, cfg.train.seed, known, cfg.train.fact_repeats)
    rows = read_jsonl(job_path / "dataset.jsonl")
    sources = read_jsonl(job_path / "dataset_sources.jsonl")
    replayed = [r for r, src in zip(rows, sources) if src["source"] == "self_replay"]
    train_rows, train_sources = [], []
    for i, row in enumerate(packed):  # drill rows and self-replay rows alternate
        train_rows.append(row)
        train_sources.append({"source": "fact_drill", "stage": "facts"})
        if replayed:
            train_rows.append(replayed[i % len(replayed)])
            train_sources.append({"source": "self_replay", "stage": "facts"})
    write_jsonl(job_path / "facts_stage.jsonl", train_rows)
    write_jsonl(job_path / "facts_stage_sources.jsonl", train_sources)
    per_step = settings["batch_size"] * settings["grad_accum"]
    stage = settings | {"steps": math.ceil(len(train_rows) / per_step), "learning_rate": cfg.train.fact_learning_rate,
                        "warmup_steps": 0}
    stage_dir, sft_dir = weights.with_name(weights.name + ".facts"), weights.with_name(weights.name + ".sft")
    for leftover in (stage_dir, sft_dir):  # from a run that died here
        shutil.rmtree(leftover, ignore_errors=True)
    faults.point("facts.start")
    fresh = len(found)
    set_stage(cfg, gen_id, "facts", events, f"G{gen_id}: drilling {fresh} new fact{'s' * (fresh != 1)}"
                                            + (f" and {earlier} known one{'s' * (earlier != 1)}" if earlier else "")
                                            + f", {cfg.train.fact_repeats} times each ({stage['steps']} steps)")

    def progress(e: dict[str, Any]) -> None:
        events.emit("progress", "", stage="facts", **e)

    try:
        result = launch.train(cfg, job_path, weights, job_path / "facts_stage.jsonl", stage_dir, stage, progress,
                              should_stop, job_path / "facts_stage_sources.jsonl")
    except StageCancelled:
        raise Cancelled() from None
    take_place(weights, stage_dir, sft_dir, "facts")
    kept = {k: result[k] for k in ("steps", "loss_start", "loss_end", "train_s", "weight_change") if k in result}
    replay_rows = len(train_rows) - len(packed)
    return {"facts": fresh, "earlier": earlier, "rows": len(packed), "self_replay_rows": replay_rows} | kept


def self_replay(cfg: Config, job: dict[str, Any], parent: Generation, events: EventLog) -> None:
    """The parent answers general prompts; the good answers join the job's dataset, re-hashed."""
    from loop.data import replay  # noqa: PLC0415

    gen_id, job_path = job["gen"], Path(job["job_dir"])
    set_stage(cfg, gen_id, "replay", events, f"G{gen_id}: G{parent.id} answers general prompts for self-replay")
    faults.point("replay.start")
    counts = replay.run(cfg, artifacts.verified_gguf(cfg, parent), job_path, gen_id)
    job["summary"].update(counts)
    faults.point("replay.written")
    job["dataset_sha"] = sha256_file(job_path / "dataset.jsonl")
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.dataset_sha, g.n_replay = job["dataset_sha"], g.n_replay + counts["self_replay"]
        s.add(g)
    events.emit("info", f"G{gen_id}: {counts['self_replay']} self-replay examples from G{parent.id} "
                        f"({counts['self_replay_dropped']} of {counts['self_replay_asked']} answers dropped)", **counts)

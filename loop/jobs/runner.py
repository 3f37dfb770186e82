"""Start, follow and cancel generation jobs; the UI and the CLI never train in-process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import Session, select

from loop import artifacts
from loop.config import Config
from loop.data import dataset, waiting
from loop.errors import OperationFailed, UserError
from loop.jobs import writer
from loop.jobs.launch import alive, holder, launch, lock_for, reap
from loop.jobs.recovery import end, recover
from loop.locks import FileLock
from store.db import active_gen, get_meta, reading, session, set_meta
from store.tables import Event, Generation, Membership


def running(cfg: Config) -> Generation | None:
    """The generation whose job is alive now, if any."""
    with reading(cfg.db_url) as s:
        rows = s.exec(select(Generation).where(Generation.status == "training")).all()
    return next((g for g in rows if alive(cfg, g)), None)


def prepare(cfg: Config, steps: int | None = None) -> tuple[int, Path, FileLock]:
    """Reserve the next generation, write its self-contained job folder and take its new data, as one change.

    Returns the job's lock, held: hand it to `spawn`. Another job alive refuses the start.
    """
    held: FileLock | None = None
    gen_dir: Path | None = None
    change: writer.Change | None = None
    try:
        with writer.lineage(cfg) as change:
            s = change.s
            busy = next((g for g in s.exec(select(Generation).where(Generation.status == "training")).all()
                         if alive(cfg, g)), None)
            if busy is not None:
                raise OperationFailed(f"a generation is already training: G{busy.id} (pid {busy.job_pid}); "
                                      "wait for it or cancel it")
            parent_id = active_gen(s)
            if parent_id is None:
                raise UserError("this workspace has no generation 0 yet: run 'ladder init'")
            plan = dataset.plan(s, cfg, parent_id)
            if not plan.new_train_ids:
                raise UserError("nothing new to train on: drop conversations into the inbox and run 'ladder ingest'")
            gen_id = (s.exec(select(func.max(Generation.id))).one() or 0) + 1
            gen_dir = artifacts.gen_dir(cfg, gen_id)
            # No row names this number: a folder there is what a start killed before its commit left.
            shutil.rmtree(gen_dir, ignore_errors=True)
            folder = artifacts.job_dir(cfg, gen_id)
            folder.mkdir(parents=True)
            held = lock_for(folder).acquire()
            _write_job(cfg, s, plan, gen_id, parent_id, folder, steps)
    except BaseException:
        if change is not None and change.committed and held is not None:
            return gen_id, folder, held  # only the ledger CSV failed after the commit; the job stands
        if held is not None:
            held.release()
            shutil.rmtree(gen_dir, ignore_errors=True)
        raise
    return gen_id, folder, held


def _write_job(cfg: Config, s: Session, plan: dataset.Plan, gen_id: int, parent_id: int, folder: Path,
               steps: int | None) -> None:
    dataset_sha = dataset.write(plan, folder)
    parent = s.get(Generation, parent_id)
    job = {"gen": gen_id, "parent": parent_id, "config": os.path.relpath(cfg.path, folder), "steps": steps,
           "threads": cfg.train.threads, "dataset_sha": dataset_sha, "data_delta_sha": plan.data_delta_sha,
           "summary": plan.summary}
    (folder / "job.json").write_text(json.dumps(job, indent=2), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps(cfg.data, indent=2), encoding="utf-8")
    s.add(Generation(id=gen_id, parent_id=parent_id, status="training", stage="dataset", parent_sha=parent.child_sha,
                     data_delta_sha=plan.data_delta_sha, dataset_sha=dataset_sha, steps=steps or cfg.train.steps,
                     lr=cfg.train.learning_rate, n_new=len(plan.new_train_ids), n_replay=plan.summary["replay"],
                     n_holdout=len(plan.holdout_ids), job_dir=artifacts.stored(cfg, folder),
                     config_json=json.dumps(cfg.data)))
    rows = [{"gen_id": gen_id, "conversation_id": cid, "split": split}
            for ids, split in ((plan.new_train_ids + plan.kto_ids, "train"), (plan.holdout_ids, "holdout"),
                               (plan.replay_ids, "replay"))
            for cid in ids]
    if rows:
        s.flush()
        s.connection().execute(insert(Membership.__table__), rows)
    if note := plan.summary["mix"].get("domain_note"):  # shown in the app's Training tab and 'ladder status' events
        s.add(Event(gen_id=gen_id, kind="info", message=f"G{gen_id}: {note}"))
    waiting.attempted(s, gen_id, cfg.data)
    if get_meta(s, "stopped"):
        set_meta(s, "stopped", None)  # a user who trains by hand has read the stop rule's reason


def spawn(cfg: Config, gen_id: int, folder: Path, held: FileLock) -> int:
    """Start the prepared job; a job that cannot start ends as a failed generation."""
    try:
        pid = launch(folder, held)
    except OSError as e:
        end(cfg, gen_id, "failed", f"the job process could not start: {e.strerror or e}")
        raise OperationFailed(f"G{gen_id}: the job process could not start ({e.strerror or e})") from None
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.job_pid = pid
        s.add(g)
    return pid


def start(cfg: Config, steps: int | None = None) -> tuple[int, int]:
    gen_id, folder, held = prepare(cfg, steps)
    return gen_id, spawn(cfg, gen_id, folder, held)


def cancel(cfg: Config) -> Generation | None:
    """Ask the running job to stop; only the process that holds its lock is ever signalled."""
    job = running(cfg)
    if job is None:
        return None
    pid = holder(cfg, job)
    if pid is None:
        raise OperationFailed(f"G{job.id} is starting; try again in a moment")
    os.kill(pid, signal.SIGTERM)
    return job


def follow(cfg: Config, gen_id: int, on_event: Callable[[Event], None], poll: float = 0.5) -> Generation:
    """Call on_event for each new event of the generation until its job ends; return the final row."""
    last = 0
    while True:
        for ev in _events_after(cfg, gen_id, last):
            last = ev.id
            on_event(ev)
        reap()
        with reading(cfg.db_url) as s:
            g = s.get(Generation, gen_id)
        if g.status != "training" or not alive(cfg, g):
            for ev in _events_after(cfg, gen_id, last):
                on_event(ev)
            if g.status == "training":
                recover(cfg)  # it died without a word
                with reading(cfg.db_url) as s:
                    g = s.get(Generation, gen_id)
            return g
        time.sleep(poll)


def _events_after(cfg: Config, gen_id: int, after: int) -> Iterator[Event]:
    with reading(cfg.db_url) as s:
        rows = s.exec(select(Event).where(Event.gen_id == gen_id, Event.id > after).order_by(Event.id)).all()
    yield from rows


def result_of(g: Generation, active: int | None) -> dict[str, Any]:
    return {"gen": g.id, "parent": g.parent_id, "status": "active" if g.id == active else g.status,
            "child_sha": g.child_sha, "reason": g.reason,
            "metrics": {"eval_recall": g.eval_recall, "eval_generalization": g.eval_generalization,
                        "eval_style_drift": g.eval_style_drift, "loss_start": g.loss_start, "loss_end": g.loss_end,
                        "steps": g.steps, "walltime_min": g.walltime_min}}

"""Start, follow, cancel and recover generation jobs; the UI and CLI never train in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from loop import artifacts
from loop.data import dataset
from loop.config import Config
from loop.errors import OperationFailed, UserError
from store.db import active_gen, get_meta, session, set_meta
from store.tables import Event, Generation, now


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child has exited but is still listed
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def recover(cfg: Config) -> list[str]:
    """Mark generations whose job died as failed, clean their partial files, and say so."""
    notes = []
    with session(cfg.db_url) as s:
        stuck = s.exec(select(Generation).where(Generation.status == "training")).all()
        for g in stuck:
            if pid_alive(g.job_pid):
                continue
            artifacts.remove_partial(cfg, g.id)
            g.status, g.finished_at, g.weights_path = "failed", now(), None
            g.reason = f"interrupted during {g.stage}: the job process ended without finishing"
            s.add(g)
            active = active_gen(s)
            note = f"G{g.id} was interrupted during {g.stage}; G{active} is still active and its data will be trained again"
            s.add(Event(gen_id=g.id, kind="warning", message=note))
            notes.append(note)
    return notes


def running(cfg: Config) -> Generation | None:
    with session(cfg.db_url) as s:
        for g in s.exec(select(Generation).where(Generation.status == "training")).all():
            if pid_alive(g.job_pid):
                return g
    return None


def prepare(cfg: Config, steps: int | None = None) -> tuple[int, Path]:
    """Reserve the next generation, write its self-contained job folder, and take its new data."""
    if (job := running(cfg)) is not None:
        raise OperationFailed(f"G{job.id} is already training (pid {job.job_pid}); wait for it or cancel it")
    with session(cfg.db_url) as s:
        parent_id = active_gen(s)
        if parent_id is None:
            raise UserError("this workspace has no generation 0 yet: run 'ladder init'")
        plan = dataset.plan(s, cfg, parent_id)
        if not plan.new_train_ids:
            raise UserError("nothing new to train on: drop conversations into the inbox and run 'ladder ingest'")
        gen_id = (s.exec(select(func.max(Generation.id))).one() or 0) + 1
        folder = artifacts.job_dir(cfg, gen_id)
        dataset_sha = dataset.write(plan, folder)
        parent = s.get(Generation, parent_id)
        job = {"gen": gen_id, "parent": parent_id, "config": str(cfg.path), "job_dir": str(folder), "steps": steps,
               "threads": cfg.train.threads, "dataset_sha": dataset_sha, "data_delta_sha": plan.data_delta_sha,
               "summary": plan.summary}
        (folder / "job.json").write_text(json.dumps(job, indent=2), encoding="utf-8")
        (folder / "config.json").write_text(json.dumps(cfg.data, indent=2), encoding="utf-8")
        s.add(Generation(id=gen_id, parent_id=parent_id, status="training", stage="dataset", parent_sha=parent.child_sha,
                         data_delta_sha=plan.data_delta_sha, dataset_sha=dataset_sha, steps=steps or cfg.train.steps,
                         lr=cfg.train.learning_rate, n_new=len(plan.new_train_ids), n_replay=plan.summary["replay"],
                         n_holdout=len(plan.holdout_ids), job_dir=str(folder), job_pid=os.getpid(),
                         config_json=json.dumps(cfg.data)))
        _take(s, plan, gen_id)
        if get_meta(s, "stopped"):
            set_meta(s, "stopped", None)  # a user who trains by hand has read the stop rule's reason
    return gen_id, folder


def _take(s, plan: dataset.Plan, gen_id: int) -> None:
    from store.tables import Conversation  # noqa: PLC0415

    for ids, split in ((plan.new_train_ids, "train"), (plan.holdout_ids, "holdout")):
        for i in range(0, len(ids), 500):
            for c in s.exec(select(Conversation).where(Conversation.id.in_(ids[i:i + 500]))).all():
                c.gen_id, c.split = gen_id, split
                s.add(c)


def launch(folder: Path) -> int:
    """Start `python -m loop.job FOLDER` in its own session, so closing a terminal or the UI does not stop it."""
    log = (folder / "log.txt").open("ab")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "loop.jobs.child", str(folder)], stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    _children[proc.pid] = proc
    return proc.pid


def spawn(cfg: Config, gen_id: int, folder: Path) -> int:
    pid = launch(folder)
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.job_pid = pid
        s.add(g)
    return pid


def start_eval(cfg: Config, gen_id: int) -> tuple[int, int]:
    """Run a finished generation's evals again in a job; see loop.reeval."""
    from loop.jobs import reeval  # noqa: PLC0415

    return reeval.start(cfg, gen_id)


_children: dict[int, subprocess.Popen] = {}


def start(cfg: Config, steps: int | None = None) -> tuple[int, int]:
    gen_id, folder = prepare(cfg, steps)
    return gen_id, spawn(cfg, gen_id, folder)


def cancel(cfg: Config) -> Generation | None:
    job = running(cfg)
    if job is not None and job.job_pid:
        os.kill(job.job_pid, signal.SIGTERM)
    return job


def follow(cfg: Config, gen_id: int, on_event: Callable[[Event], None], poll: float = 0.5) -> Generation:
    """Call on_event for each new event of the generation until its job ends; return the final row."""
    last = 0
    while True:
        for ev in _events_after(cfg, gen_id, last):
            last = ev.id
            on_event(ev)
        with session(cfg.db_url) as s:
            g = s.get(Generation, gen_id)
        proc = _children.get(g.job_pid or -1)
        if proc is not None:
            proc.poll()
        if g.status != "training" or not pid_alive(g.job_pid):
            for ev in _events_after(cfg, gen_id, last):
                on_event(ev)
            if g.status == "training":
                recover(cfg)
                with session(cfg.db_url) as s:
                    g = s.get(Generation, gen_id)
            return g
        time.sleep(poll)


def _events_after(cfg: Config, gen_id: int, after: int) -> Iterator[Event]:
    with session(cfg.db_url) as s:
        rows = s.exec(select(Event).where(Event.gen_id == gen_id, Event.id > after).order_by(Event.id)).all()
    yield from rows


def result_of(g: Generation, active: int | None) -> dict[str, Any]:
    return {"gen": g.id, "parent": g.parent_id, "status": "active" if g.id == active else g.status,
            "child_sha": g.child_sha, "reason": g.reason,
            "metrics": {"eval_recall": g.eval_recall, "eval_generalization": g.eval_generalization,
                        "eval_style_drift": g.eval_style_drift, "loss_start": g.loss_start, "loss_end": g.loss_end,
                        "steps": g.steps, "walltime_min": g.walltime_min}}

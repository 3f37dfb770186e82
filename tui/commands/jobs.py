"""Jobs from the shell: train (attached or detached), re-run evals, cancel, and the loop (ladder run)."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from argparse import Namespace
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from loop import artifacts, config
from loop.errors import UserError
from loop.jobs import reeval
from loop.jobs import runner as jobs
from store.db import active_gen, reading
from store.tables import Event, Generation
from tui.commands.common import _f, _open
from tui.output import emit


def train(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    if args.steps is not None and args.steps <= 0:
        raise UserError("--steps must be a positive whole number")
    gen_id, pid = jobs.start(cfg, args.steps)
    emit(args, f"G{gen_id}: job started (pid {pid}); log in {artifacts.job_dir(cfg, gen_id) / 'log.txt'}")
    if getattr(args, "detach", False):
        return {"gen": gen_id, "pid": pid, "status": "training"}
    return _wait(args, cfg, gen_id)


def _wait(args: Namespace, cfg: config.Config, gen_id: int) -> dict[str, Any]:
    tty = sys.stdout.isatty() and not args.json

    def show(ev) -> None:
        if ev.kind == "progress":
            d = json.loads(ev.data)
            line = f"  step {d['step']}/{d['total']}  loss {d['loss']:.3f}  {d.get('tokens_per_s', 0):.0f} tok/s"
            if tty:
                print("\r" + line, end="", flush=True)
            elif d["step"] == 1 or d["step"] % 10 == 0 or d["step"] == d["total"]:
                emit(args, line)
        elif ev.message:
            if tty:
                print()
            emit(args, ev.message)

    try:
        g = jobs.follow(cfg, gen_id, show)
    except KeyboardInterrupt:
        emit(args, f"\ncancelling G{gen_id}…")
        jobs.cancel(cfg)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the job finish cancelling
        g = jobs.follow(cfg, gen_id, lambda ev: None)
    with reading(cfg.db_url) as s:
        active = active_gen(s)
    result = jobs.result_of(g, active)
    if g.status in ("failed", "cancelled"):
        emit(args, f"G{gen_id} {g.status}: {g.reason}; G{active} is still active")
        return result | {"_failed": True}
    emit(args, f"G{gen_id}: {result['status']}; recall {_f(g.eval_recall)} generalization {_f(g.eval_generalization)} "
               f"style drift {_f(g.eval_style_drift)}; child {g.child_sha[:12]}")
    return result


def eval(args: Namespace) -> dict[str, Any]:  # noqa: A001 - the subcommand's name
    if getattr(args, "suite", None):
        from tui.commands.evals import suite  # noqa: PLC0415 - one suite, asked here, not a job

        return suite(args)
    cfg = _open(args)
    gen_id, pid = reeval.start(cfg, args.gen)
    emit(args, f"G{gen_id}: evals started again (pid {pid})")
    with reading(cfg.db_url) as s:
        after = s.exec(select(func.coalesce(func.max(Event.id), 0))).one()
    last = after
    while True:
        with reading(cfg.db_url) as s:
            rows = s.exec(select(Event).where(Event.gen_id == gen_id, Event.id > last).order_by(Event.id)).all()
        for ev in rows:
            last = ev.id
            if ev.message:
                emit(args, ev.message)
        if reeval.current(cfg) is None:
            break
        time.sleep(0.5)
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        failed = s.exec(select(Event).where(Event.gen_id == gen_id, Event.id > after, Event.kind == "error")).first()
        active = active_gen(s)
    return jobs.result_of(g, active) | ({"_failed": True, "error": failed.message} if failed else {})


def cancel(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    job = jobs.cancel(cfg)
    if job is None:
        raise UserError("no generation is training")
    emit(args, f"asked G{job.id} to stop")
    return {"cancelled": job.id}


def run(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    from loop.inbox.watch import run_loop  # noqa: PLC0415

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    emit(args, f"watching {cfg.inbox_dir} (Ctrl-C stops)")
    started: list[int] = []
    try:
        started = run_loop(cfg, lambda m: emit(args, m), stop)
    except KeyboardInterrupt:
        pass
    job = jobs.running(cfg)
    if job is not None:
        emit(args, f"stopping: cancelling G{job.id}…")
        jobs.cancel(cfg)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        jobs.follow(cfg, job.id, lambda ev: None)
    emit(args, "stopped")
    return {"stopped": True, "started": started}

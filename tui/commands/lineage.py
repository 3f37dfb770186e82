"""The lineage from the shell: status, approve, reject, roll back, the ledger."""

from __future__ import annotations

import json
from argparse import Namespace
from typing import Any

from sqlmodel import select

from loop.data import waiting as due
from loop.data.lineage import pending_count, pending_karma
from loop.jobs import promotion
from loop.jobs import runner as jobs
from store import ledger as ledger_table
from store.db import active_gen, get_meta, reading
from store.tables import Generation
from tui.commands.common import _f, _open, _said
from tui.output import emit


def status(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    job = jobs.running(cfg)
    with reading(cfg.db_url) as s:
        active = active_gen(s)
        gens = s.exec(select(Generation).order_by(Generation.id)).all()
        karma, waiting, stopped = pending_karma(s), pending_count(s), get_meta(s, "stopped")
        hold = due.wait(s, cfg)
        progress = _job_progress(s, job.id) if job else None
    by_id = {g.id: g for g in gens}
    result = {
        "workspace": str(cfg.root), "active_gen": active, "active_sha": by_id[active].child_sha if active in by_id else None,
        "karma": karma, "karma_threshold": cfg.karma.threshold, "pending_records": waiting, "stopped": stopped,
        "waiting": {"ready": hold.ready, "karma": hold.karma, "message": hold.message},
        "generations": [{"gen": g.id, "parent": g.parent_id, "status": "active" if g.id == active else g.status,
                         "child_sha": g.child_sha, "eval_recall": g.eval_recall,
                         "eval_generalization": g.eval_generalization, "eval_style_drift": g.eval_style_drift,
                         "reason": g.reason} for g in gens],
        "job": {"gen": job.id, "stage": job.stage, "pid": job.job_pid, **(progress or {})} if job else None,
    }
    if active is None:
        emit(args, "no generation yet: run 'ladder init'")
    else:
        emit(args, f"active: G{active} {result['active_sha'][:12]}   karma {karma:.1f}/{cfg.karma.threshold:.1f} "
                   f"({waiting} record(s) waiting)")
    for g in result["generations"]:
        emit(args, f"  G{g['gen']:<3} {g['status']:<11} recall {_f(g['eval_recall'])} generalization "
                   f"{_f(g['eval_generalization'])} style {_f(g['eval_style_drift'])}  {g['reason']}")
    if job:
        emit(args, f"training: G{job.id} {job.stage} (pid {job.job_pid})")
    for g in gens:
        if g.status == "training" and (job is None or g.id != job.id):
            emit(args, f"note: G{g.id} is marked training but its job is gone; the next engine command (train, run, "
                       "ingest, approve…) marks it failed")
    if stopped:
        emit(args, f"stopped: {stopped}")
    elif hold.message.startswith("G"):
        emit(args, f"not training: {hold.message}")
    return result


def _job_progress(s, gen_id: int) -> dict[str, Any] | None:
    from store.tables import Event  # noqa: PLC0415

    ev = s.exec(select(Event).where(Event.gen_id == gen_id, Event.kind == "progress").order_by(Event.id.desc())).first()
    return json.loads(ev.data) if ev else None


def approve(args: Namespace) -> dict[str, Any]:
    return _said(args, promotion.approve(_open(args), args.gen))


def reject(args: Namespace) -> dict[str, Any]:
    return _said(args, promotion.reject(_open(args), args.gen))


def rollback(args: Namespace) -> dict[str, Any]:
    return _said(args, promotion.rollback(_open(args), args.gen))


def ledger(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    with reading(cfg.db_url) as s:
        rows, text = ledger_table.rows(s), ledger_table.to_csv(s)
    if args.csv:
        ledger_table.write_atomic(args.csv.absolute(), text)
        emit(args, f"wrote {len(rows)} row(s) to {args.csv}")
    else:
        emit(args, text.rstrip("\n"))
    return {"columns": ledger_table.COLUMNS + ledger_table.EXTRA, "rows": rows}

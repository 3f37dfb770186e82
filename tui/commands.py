"""What each `ladder` subcommand does: call the engine, print for people, return a dict for --json."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from sqlalchemy import func
from sqlmodel import select

from loop import artifacts, config, workspace
from loop.inbox import ingest as inbox
from loop.jobs import promotion, recovery, reeval, runner as jobs
from loop.errors import UserError
from loop.events import StoreEvents
from loop.data.lineage import pending_count, pending_karma
from store import ledger as ledger_table
from store.db import active_gen, get_meta, reading
from store.tables import Event, Generation
from tui.output import emit


def _open(args: Namespace, recover: bool = True) -> config.Config:
    """Load the workspace; an engine command first settles jobs that died (a read changes nothing)."""
    cfg = config.load(args.config)
    if recover:
        for note in recovery.recover(cfg):
            emit(args, f"note: {note}")
    return cfg


def init(args: Namespace) -> dict[str, Any]:
    folder = Path(args.dir) if args.dir else args.config.absolute().parent
    cfg_path = folder / "config.toml" if args.dir else args.config
    if not cfg_path.exists():
        workspace.create(folder)
    cfg = config.load(cfg_path)
    workspace.create(cfg.root)
    result = workspace.init(cfg, StoreEvents(cfg.db_url, 0, echo=not args.json))
    if result["created"]:
        emit(args, f"workspace ready at {cfg.root}: G0 {result['child_sha'][:12]} answers "
                   f"{result['probes_right']}/{result['probes']} probes right ({result['probes_kept']} steadily: the recall "
                   f"items), style drift {result['style_drift']}")
    else:
        emit(args, f"workspace at {cfg.root} already has G0 ({result['child_sha'][:12]})")
    return result | {"workspace": str(cfg.root), "config": str(cfg.path)}


def ingest(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    for p in args.paths:
        if not p.exists():
            raise UserError(f"{p}: no such file; give paths to files that exist, or no path to read the inbox")
    result = inbox.ingest(cfg, args.paths or None)
    emit(args, f"ingested {result['ingested']} record(s), {result['duplicates']} duplicate(s), "
               f"{result['bad_records']} bad record(s); karma {result['karma']:.1f}/{result['karma_threshold']:.1f}")
    if result.get("resumed"):
        emit(args, f"resumed an interrupted ingest: {result['resumed']} of those record(s) it had stored already")
    for q in result["quarantined"]:
        emit(args, f"quarantined {q['path']}: {q['reason']}")
    for q in result.get("retry", []):
        emit(args, f"left in the inbox {q['path']}: {q['reason']}; run 'ladder ingest' again")
    return result


def status(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    job = jobs.running(cfg)
    with reading(cfg.db_url) as s:
        active = active_gen(s)
        gens = s.exec(select(Generation).order_by(Generation.id)).all()
        karma, waiting, stopped = pending_karma(s), pending_count(s), get_meta(s, "stopped")
        progress = _job_progress(s, job.id) if job else None
    by_id = {g.id: g for g in gens}
    result = {
        "workspace": str(cfg.root), "active_gen": active, "active_sha": by_id[active].child_sha if active in by_id else None,
        "karma": karma, "karma_threshold": cfg.karma.threshold, "pending_records": waiting, "stopped": stopped,
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
    return result


def _job_progress(s, gen_id: int) -> dict[str, Any] | None:
    from store.tables import Event  # noqa: PLC0415

    ev = s.exec(select(Event).where(Event.gen_id == gen_id, Event.kind == "progress").order_by(Event.id.desc())).first()
    return json.loads(ev.data) if ev else None


def _f(v: Any) -> str:
    return "  -  " if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


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


def dataset(args: Namespace) -> dict[str, Any]:
    """The next generation's data, built as training would build it, without taking any record."""
    cfg = _open(args)
    if args.dry_run and args.out:
        raise UserError("--dry-run writes nothing: leave out --out, or --dry-run")
    from loop.data import dataset as builder  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        parent = active_gen(s)
        plan = builder.plan(s, cfg, parent if parent is not None else 0)
    m, stages = plan.summary["mix"], {}
    for row in plan.train_rows:  # in training order, so the curriculum shows as it will run
        stages.setdefault(row["_stage"], {"new": 0, "replay": 0})[row["_source"]] += 1
    result = {"parent": parent, "new_rows": m["rows"], "new_records": m["records"], "deferred": m["deferred"],
              "replay": plan.summary["replay"], "holdout": plan.summary["holdout"],
              "skipped_low_quality": plan.skipped_low_quality, "curriculum": list(cfg.dataset.curriculum),
              "by_source": _pair(m["rows_by_source"], m["deferred_by_source"]),
              "by_domain": _pair(m["rows_by_domain"], m["deferred_by_domain"]), "by_stage": stages,
              "self_replay_planned": plan.summary["self_replay_planned"]}
    emit(args, f"next generation (parent {'G' + str(parent) if parent is not None else 'none yet'}): "
               f"{m['rows']} new row(s) from {m['records']} record(s), {m['deferred']} deferred to a later "
               f"generation, {result['replay']} replay, {result['holdout']} held out, "
               f"{plan.skipped_low_quality} below min_quality")
    for title, table in (("source", result["by_source"]), ("domain", result["by_domain"])):
        emit(args, f"  {'by ' + title:<22} {'rows':>6} {'deferred':>9}")
        for name, n in table.items():
            emit(args, f"    {name:<20} {n['rows']:>6} {n['deferred']:>9}")
    emit(args, f"  {'by stage (in order)':<22} {'new':>6} {'replay':>9}")
    for name, n in stages.items():
        emit(args, f"    {name:<20} {n['new']:>6} {n['replay']:>9}")
    emit(args, f"  self-replay: up to {result['self_replay_planned']} answer(s) from the parent to general prompts, "
               f"asked when training starts (dataset.self_replay_share = {cfg.dataset.self_replay_share})")
    if args.out:
        result["dataset_sha"] = builder.write(plan, args.out.absolute())
        emit(args, f"wrote the dataset files to {args.out}")
    return result


def _pair(rows: dict[str, int], deferred: dict[str, int]) -> dict[str, dict[str, int]]:
    return {k: {"rows": rows.get(k, 0), "deferred": deferred.get(k, 0)} for k in sorted(rows.keys() | deferred.keys())}


def cancel(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    job = jobs.cancel(cfg)
    if job is None:
        raise UserError("no generation is training")
    emit(args, f"asked G{job.id} to stop")
    return {"cancelled": job.id}


def approve(args: Namespace) -> dict[str, Any]:
    return _said(args, promotion.approve(_open(args), args.gen))


def reject(args: Namespace) -> dict[str, Any]:
    return _said(args, promotion.reject(_open(args), args.gen))


def rollback(args: Namespace) -> dict[str, Any]:
    return _said(args, promotion.rollback(_open(args), args.gen))


def _said(args: Namespace, result: dict[str, Any]) -> dict[str, Any]:
    emit(args, f"{result['message']}; active: G{result['active_gen']} {result['active_sha'][:12]}")
    return result


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


def chat(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    with reading(cfg.db_url) as s:
        gen_id = args.gen if args.gen is not None else active_gen(s)
        g = s.get(Generation, gen_id) if gen_id is not None else None
    if g is None:
        raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
    gguf = artifacts.verified_gguf(cfg, g)
    from loop.model.llm import Runner  # noqa: PLC0415

    with Runner(gguf, threads=cfg.eval.threads, context=cfg.eval.context, seed=0) as r:
        answer = r.complete(args.prompt, args.max_tokens) if args.raw else \
            r.chat([{"role": "user", "content": args.prompt}], args.max_tokens)
    if not args.json:
        print(answer)
    return {"gen": gen_id, "raw": args.raw, "prompt": args.prompt, "answer": answer}


def demo(args: Namespace) -> dict[str, Any]:
    folder = args.dir.absolute()
    cfg = workspace.create(folder)
    emit(args, f"demo workspace: {folder}")
    workspace.init(cfg, StoreEvents(cfg.db_url, 0, echo=not args.json))
    source = Path(workspace.__file__).parent / "assets" / "demo_inbox"
    for f in sorted(source.glob("*.jsonl")):
        shutil.copyfile(f, cfg.inbox_dir / f.name)
    args.config, args.paths = cfg.path, []
    report = ingest(args)
    with reading(cfg.db_url) as s:
        trained = s.exec(select(Generation).where(Generation.id > 0)).first() is not None
    if trained and not report["ingested"]:
        emit(args, "the demo data was trained on already; showing the workspace")
        return status(args) | {"ingest": report}
    result = train(args)
    args.csv = None
    emit(args, "\nlineage ledger:")
    ledger(args)
    emit(args, f"\nnext: ladder --config {cfg.path} chat \"What does restart_service do?\"")
    return result | {"ingest": report, "workspace": str(folder)}

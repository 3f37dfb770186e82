"""Read the store for the screens: small, paged queries that return the views of tui.screens.model.

Imported only inside workers, so the database stack never sits on the way to the first screen.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from loop.config import Config
from store.db import get_meta, reading
from store.tables import (
    Conversation,
    EvalResult,
    Event,
    Generation,
    InboxFile,
    Membership,
    Meta,
)
from tui.screens.model import (
    Confidence,
    Detail,
    EventRow,
    FastRead,
    GateCheck,
    GenRow,
    Inbox,
    InboxFileRow,
    Job,
    Ladder,
    Metrics,
    Scenario,
    readiness_of,
)

LADDER_COLUMNS = (
    Generation.id, Generation.parent_id, Generation.status, Generation.stage, Generation.created_at, Generation.steps,
    Generation.loss_start, Generation.loss_end, Generation.eval_recall, Generation.eval_generalization,
    Generation.eval_style_drift, Generation.reason, Generation.override, Generation.gguf_path,
    Generation.n_recall, Generation.n_generalization, Generation.readiness,
)
EVENT_BATCH = 5000
# Settings of the config a generation was trained with that are worth a glance.
SHOWN_SETTINGS = ("steps", "learning_rate", "lr_scheduler", "batch_size", "grad_accum", "max_length", "lora_r",
                  "lora_alpha", "target_modules", "backend", "seed")


def _gen(row: Any) -> GenRow:
    *head, readiness = row
    return GenRow(*head, *readiness_of(readiness))


def signature(s: Session) -> tuple[Any, ...]:
    """Cheap values that change whenever the engine writes something the fast screens show."""
    ev = s.exec(select(func.max(Event.id))).one()
    gen = s.exec(select(func.max(Generation.id))).one()
    metas = s.exec(select(Meta.key, Meta.value).where(col(Meta.key).in_(("active_gen", "stopped")))).all()
    return (ev, gen, tuple(sorted(metas)))


def current_signature(cfg: Config) -> tuple[Any, ...]:
    with reading(cfg.db_url) as s:
        return signature(s)


def fast(cfg: Config, offset: int, limit: int, after_event: int | None) -> FastRead:
    """The ladder page, the job, and the events after `after_event` (None: first read, take the job's history)."""
    from loop.jobs.launch import alive  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        sig = signature(s)
        ladder = _ladder(s, offset, limit)
        g = s.exec(select(Generation).where(Generation.id > 0).order_by(col(Generation.id).desc()).limit(1)).first()
        training = s.exec(select(Generation).where(Generation.status == "training")
                          .order_by(col(Generation.id).desc())).first()
        g = training or g
        job = Job(g.id, g.parent_id, g.status, g.stage, alive(cfg, g), g.steps,
                  g.reason) if g else None
        history: tuple[EventRow, ...] = ()
        if after_event is None:
            after_event = sig[0] or 0
            if job is not None:
                rows = s.exec(select(Event).where(Event.gen_id == job.gen_id, Event.id <= after_event)
                              .order_by(col(Event.id).desc()).limit(EVENT_BATCH)).all()
                history = tuple(_event(e) for e in reversed(rows))
            events: tuple[EventRow, ...] = ()
        else:
            rows = s.exec(select(Event).where(Event.id > after_event).order_by(Event.id).limit(EVENT_BATCH)).all()
            events = tuple(_event(e) for e in rows)
    return FastRead(sig, ladder, job, events, history)


def _event(e: Event) -> EventRow:
    try:
        data = json.loads(e.data or "{}")
    except ValueError:
        data = {}
    return EventRow(e.id, e.gen_id, e.kind, e.message, data if isinstance(data, dict) else {})


def _ladder(s: Session, offset: int, limit: int) -> Ladder:
    total = s.exec(select(func.count()).select_from(Generation)).one()
    rows = s.exec(select(*LADDER_COLUMNS).order_by(col(Generation.id).desc()).offset(offset).limit(limit)).all()
    active_id = get_meta(s, "active_gen")
    active = s.exec(select(*LADDER_COLUMNS).where(Generation.id == active_id)).first() if active_id is not None else None
    return Ladder(tuple(_gen(r) for r in rows), int(total), offset, _gen(active) if active else None,
                  get_meta(s, "stopped"))


def detail(cfg: Config, gen_id: int) -> Detail | None:
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        if g is None:
            return None
        row = _gen(tuple(getattr(g, c.key) for c in LADDER_COLUMNS))
        taken = (Membership.conversation_id == Conversation.id) & (Membership.gen_id == gen_id) & \
            col(Membership.split).in_(("train", "holdout"))
        sources = s.exec(select(Conversation.source_file, Membership.split, func.count()).join(Membership, taken)
                         .group_by(Conversation.source_file, Membership.split)
                         .order_by(func.count().desc()).limit(12)).all()
        domains = s.exec(select(Conversation.domain, func.count()).join(Membership, taken)
                         .group_by(Conversation.domain).order_by(func.count().desc()).limit(12)).all()
        active, stopped = get_meta(s, "active_gen"), get_meta(s, "stopped")
    return Detail(row, active == gen_id, g.parent_sha, g.child_sha, g.data_delta_sha, g.dataset_sha, g.lr,
                  g.walltime_min, g.n_new, g.n_replay, g.n_holdout, _gates(g.gates), _settings(g.config_json),
                  tuple((str(f), str(sp or "-"), int(n)) for f, sp, n in sources),
                  tuple((str(d), int(n)) for d, n in domains), stopped, g.eval_kl)


def _gates(text: str) -> tuple[GateCheck, ...]:
    try:
        items = json.loads(text or "[]")
    except ValueError:
        return ()
    out = []
    for it in items if isinstance(items, list) else []:
        if isinstance(it, dict):
            out.append(GateCheck(str(it.get("name", "?")), it.get("value"), str(it.get("op", "")),
                                 float(it.get("threshold") or 0.0), bool(it.get("passed")), str(it.get("basis") or "")))
    return tuple(out)


def _settings(text: str) -> tuple[tuple[str, Any], ...]:
    try:
        train = json.loads(text or "{}").get("train", {})
    except (ValueError, AttributeError):
        return ()
    return tuple((k, train[k]) for k in SHOWN_SETTINGS if k in train)


def inbox_signature(cfg: Config) -> tuple[Any, ...]:
    """Cheap values that change when files arrive, are ingested or quarantined, or the lineage moves."""
    from loop.inbox.files import QUARANTINE  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        files = s.exec(select(func.max(InboxFile.id))).one()
        convs = s.exec(select(func.max(Conversation.id))).one()
        active = get_meta(s, "active_gen")
        gens = s.exec(select(func.count()).select_from(Generation)).one()
    stamps = []
    for folder in (cfg.inbox_dir, cfg.inbox_dir / QUARANTINE):
        try:
            stamps.append(folder.stat().st_mtime_ns)
        except OSError:
            stamps.append(None)
    return (files, convs, active, gens, *stamps)


def inbox(cfg: Config, limit: int = 200, max_quarantined: int = 100) -> Inbox:
    """The newest inbox files, counts by status, conversation totals and karma; never loads conversations."""
    from loop.data import waiting as due  # noqa: PLC0415
    from loop.data.lineage import pending_count, pending_karma  # noqa: PLC0415
    from loop.inbox.files import QUARANTINE, inbox_files  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        files = s.exec(select(InboxFile).order_by(col(InboxFile.id).desc()).limit(limit)).all()
        by_status = s.exec(select(InboxFile.status, func.count()).group_by(InboxFile.status)
                            .order_by(InboxFile.status)).all()  # one order on every database
        total = s.exec(select(func.count()).select_from(InboxFile)).one()
        conversations = s.exec(select(func.count()).select_from(Conversation)).one()
        karma, pending = pending_karma(s), pending_count(s)
        hold = due.wait(s, cfg)
    rows = tuple(InboxFileRow(f.seen_at, f.name, f.status, f.records, f.duplicates, f.bad, f.reason) for f in files)
    qdir = cfg.inbox_dir / QUARANTINE
    reasons = sorted(qdir.glob("*.reason"), key=lambda p: p.stat().st_mtime, reverse=True)[:max_quarantined] \
        if qdir.is_dir() else []
    quarantined = tuple((p.name[: -len(".reason")], _read(p)) for p in reasons)
    waiting = tuple(str(p.relative_to(cfg.inbox_dir)) for p in inbox_files(cfg)) if cfg.inbox_dir.is_dir() else ()
    return Inbox(rows, int(total), tuple((str(k), int(n)) for k, n in by_status), int(conversations), pending,
                 karma, float(cfg.karma.threshold), quarantined, waiting[:limit],
                 hold.message if hold.message.startswith("G") else "")


def _read(path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as e:
        return f"(cannot read the reason: {e.strerror})"


def confidence(cfg: Config, gen_id: int | None, limit: int = 50) -> Confidence:
    """A generation's stated confidence trajectories beside the data's, for the reasoning scenarios."""
    with reading(cfg.db_url) as s:
        asked = s.exec(select(EvalResult).where(EvalResult.gen_id == gen_id, EvalResult.eval == "confidence")
                       .order_by(EvalResult.id).limit(limit)).all() if gen_id is not None else []
        where = col(Conversation.meta).contains('"confidence_trajectory"')
        data_total = s.exec(select(func.count()).select_from(Conversation).where(where)).one()
        convs = s.exec(select(Conversation.id, Conversation.messages, Conversation.meta).where(where)
                       .order_by(Conversation.id).limit(limit)).all()
    out = []
    for r in asked:
        d = _loads(r.detail)
        out.append(Scenario(r.item_key, r.prompt, _numbers(d.get("expected")), _numbers(d.get("stated"))))
    in_data = []
    for cid, messages, meta in convs:
        m = _loads(meta)
        first = next((t.get("content", "") for t in _loads(messages, []) if t.get("role") == "user"), "")
        in_data.append(Scenario(str(m.get("title") or f"conversation {cid}"), first,
                                _numbers(m.get("confidence_trajectory")), None))
    return Confidence(gen_id, tuple(out), tuple(in_data), int(data_total))


def _loads(text: str | None, default: Any = None) -> Any:
    try:
        value = json.loads(text or "")
    except ValueError:
        return {} if default is None else default
    return value if isinstance(value, type({} if default is None else default)) else ({} if default is None else default)


def _numbers(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool))


def metrics(cfg: Config) -> Metrics:
    from store import ledger  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        rows = ledger.rows(s)
    g = cfg.gates
    return Metrics(tuple(ledger.COLUMNS + ledger.EXTRA), tuple(rows), float(g.recall_min),
                   float(g.generalization_min), float(g.style_drift_max))


def compare_pending(cfg: Config, gen_id: int | None) -> dict[str, Any]:
    """What the A/B view says while the comparison runs (or why there is none)."""
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen_id) if gen_id is not None else None
    if g is None or g.parent_id is None:
        return {"error": "G0 has no parent to compare with: select a later generation."}
    return {"pending": True, "a": g.parent_id, "b": g.id}


def compare(cfg: Config, gen_id: int | None) -> dict[str, Any]:
    """The selected generation against its parent on the default suite's held-out items (in a worker: answers
    not stored yet are asked through llama.cpp)."""
    pending = compare_pending(cfg, gen_id)
    if "error" in pending:
        return pending
    from loop.errors import OperationFailed, UserError  # noqa: PLC0415
    from loop.evals import compare as cmp  # noqa: PLC0415

    try:
        return cmp.compare(cfg, pending["a"], pending["b"], cfg.eval.suites[0] if cfg.eval.suites else "default")
    except (UserError, OperationFailed) as e:
        return {"error": str(e)}

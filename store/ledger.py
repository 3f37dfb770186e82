"""The lineage ledger: one row per evaluated generation, rewritten atomically as CSV."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from sqlmodel import Session, select

from store.db import active_gen
from store.tables import Generation

# The seed's columns, in its order; the extra columns follow.
COLUMNS = [
    "GEN_ID", "parent_sha", "child_sha", "data_delta_sha", "steps", "lr", "walltime_min",
    "loss_start", "loss_end", "eval_recall", "eval_generalization", "eval_style_drift",
]
EXTRA = ["parent_gen", "status", "active", "override", "n_new", "n_replay", "n_holdout", "created_at", "reason",
         "n_recall", "n_generalization", "eval_kl", "suite_sha", "suite_rate", "n_suite", "ready"]
# Generations that never reached the gate have no child to describe.
LEDGER_STATUSES = ("candidate", "promoted", "rejected", "rolled_back")


def rows(s: Session) -> list[dict[str, object]]:
    active = active_gen(s)
    gens = s.exec(select(Generation).where(Generation.status.in_(LEDGER_STATUSES)).order_by(Generation.id)).all()
    return [_row(g, active) for g in gens]


def _fmt(value: object) -> object:
    if value is None:
        return ""  # not applicable (G0 trains nothing): left empty rather than invented
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def _row(g: Generation, active: int | None) -> dict[str, object]:
    values = {
        "GEN_ID": g.id, "parent_sha": g.parent_sha, "child_sha": g.child_sha, "data_delta_sha": g.data_delta_sha,
        "steps": g.steps, "lr": g.lr if g.id else None, "walltime_min": g.walltime_min, "loss_start": g.loss_start,
        "loss_end": g.loss_end, "eval_recall": g.eval_recall, "eval_generalization": g.eval_generalization,
        "eval_style_drift": g.eval_style_drift, "parent_gen": g.parent_id, "status": g.status,
        "active": int(g.id == active), "override": int(g.override), "n_new": g.n_new, "n_replay": g.n_replay,
        "n_holdout": g.n_holdout, "created_at": g.created_at.isoformat(timespec="seconds"), "reason": g.reason,
        "n_recall": g.n_recall, "n_generalization": g.n_generalization, "eval_kl": g.eval_kl, "suite_sha": g.suite_sha,
        **_readiness(g.readiness),
    }
    return {k: _fmt(v) for k, v in values.items()}


def _readiness(text: str | None) -> dict[str, object]:
    """The overall suite pass rate, its n and the verdict from a stored readiness report (empty when none)."""
    try:
        r = json.loads(text or "{}")
    except ValueError:
        r = {}
    overall = r.get("overall") or {}
    ready = r.get("ready")
    return {"suite_rate": overall.get("rate"), "n_suite": overall.get("total"),
            "ready": None if ready is None else int(bool(ready))}


def to_csv(s: Session) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS + EXTRA, lineterminator="\n")
    w.writeheader()
    w.writerows(rows(s))
    return buf.getvalue()


def write_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(s: Session, path: Path) -> None:
    write_atomic(path, to_csv(s))

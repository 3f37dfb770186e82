"""When the loop may train by itself: karma past the threshold, counting only data new since an attempt that failed.

A generation that was rejected (or failed, was cancelled, or waits as a candidate) leaves its
records pending, and their karma still reaches the threshold: training again at once would
retrain the same batch, again and again. So after such an attempt only karma earned by records
that arrived since counts, until the user trains by hand, promotes something, or changes the
config (then the same data may well do better).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlmodel import Session, col, select

from loop.data.lineage import ancestors, pending_clause, pending_karma
from loop.hashing import sha256_records
from store.db import active_gen, get_meta, set_meta
from store.tables import Conversation, Generation

KEY = "last_attempt"


@dataclass(frozen=True)
class Wait:
    ready: bool
    karma: float  # the karma that counts now
    threshold: float
    message: str  # in words, for `ladder status`, `ladder run` and the app


def config_sha(data: dict) -> str:
    return sha256_records([data])


def attempted(s: Session, gen_id: int, data: dict) -> None:
    """Remember a start: which records existed then, and under which config."""
    upto = s.exec(select(func.max(Conversation.id))).one() or 0
    set_meta(s, KEY, {"gen": gen_id, "upto": int(upto), "config": config_sha(data)})


def wait(s: Session, cfg) -> Wait:
    threshold = float(cfg.karma.threshold)
    last = get_meta(s, KEY)
    g = s.get(Generation, last["gen"]) if last else None
    if g is None or g.status in ("promoted", "training") or last.get("config") != config_sha(cfg.data):
        karma = pending_karma(s)
        ready = karma >= threshold
        return Wait(ready, karma, threshold, "" if ready else f"waiting for karma {karma:.1f}/{threshold:.1f}")
    lineage = ancestors(s, active_gen(s))
    fresh = float(s.exec(select(func.coalesce(func.sum(Conversation.karma), 0.0))
                         .where(pending_clause(lineage), col(Conversation.id) > last["upto"])).one())
    fresh = round(fresh, 4)
    ready = fresh >= threshold
    what = {"rejected": "was rejected", "failed": "failed", "cancelled": "was cancelled",
            "candidate": "waits for approval", "rolled_back": "was rolled back"}.get(g.status, f"is {g.status}")
    message = "" if ready else (f"G{g.id} {what}: its data waits until {threshold - fresh:.1f} more karma arrives "
                                f"({fresh:.1f}/{threshold:.1f} new since), or train by hand (t, ladder train)")
    return Wait(ready, fresh, threshold, message)

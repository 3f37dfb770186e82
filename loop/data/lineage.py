"""The active generation's ancestry, and what is new since it: pending records and their karma."""

from __future__ import annotations

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from store.db import active_gen
from store.tables import Conversation, Generation


def ancestors(s: Session, gen_id: int | None) -> list[int]:
    """gen_id and every parent up to generation 0, newest first."""
    out: list[int] = []
    while gen_id is not None and gen_id not in out:
        out.append(gen_id)
        g = s.get(Generation, gen_id)
        gen_id = g.parent_id if g else None
    return out


def pending_clause(lineage: list[int]):
    """Records no generation in the lineage trained on: never taken, or taken by a rejected branch."""
    if not lineage:
        return col(Conversation.id).is_not(None)
    return or_(col(Conversation.gen_id).is_(None), col(Conversation.gen_id).not_in(lineage))


def pending_karma(s: Session) -> float:
    lineage = ancestors(s, active_gen(s))
    total = s.exec(select(func.coalesce(func.sum(Conversation.karma), 0.0)).where(pending_clause(lineage))).one()
    return round(float(total), 4)


def pending_count(s: Session) -> int:
    lineage = ancestors(s, active_gen(s))
    return int(s.exec(select(func.count()).select_from(Conversation).where(pending_clause(lineage))).one())

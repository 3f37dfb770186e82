"""The active generation's ancestry, and what is new since it: pending records and their karma."""

from __future__ import annotations

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from store.db import active_gen
from store.tables import Conversation, Generation, InboxFile, Membership


def ancestors(s: Session, gen_id: int | None) -> list[int]:
    """gen_id and every parent up to generation 0, newest first."""
    out: list[int] = []
    while gen_id is not None and gen_id not in out:
        out.append(gen_id)
        g = s.get(Generation, gen_id)
        gen_id = g.parent_id if g else None
    return out


def pending_clause(lineage: list[int]):
    """Records no generation in the lineage took as new data (trained or held out), from finished ingests.

    A record taken only by a rejected or rolled-back branch is new again. One whose inbox file
    is still being read waits: that ingest may yet be undone.
    """
    unfinished = select(InboxFile.id).where(InboxFile.status == "ingesting")
    ready = or_(col(Conversation.inbox_file_id).is_(None), col(Conversation.inbox_file_id).not_in(unfinished))
    if not lineage:
        return ready
    taken = select(Membership.conversation_id).where(col(Membership.gen_id).in_(lineage),
                                                     col(Membership.split).in_(("train", "holdout")))
    return and_(ready, col(Conversation.id).not_in(taken))


def pending_karma(s: Session) -> float:
    lineage = ancestors(s, active_gen(s))
    total = s.exec(select(func.coalesce(func.sum(Conversation.karma), 0.0)).where(pending_clause(lineage))).one()
    return round(float(total), 4)


def pending_count(s: Session) -> int:
    lineage = ancestors(s, active_gen(s))
    return int(s.exec(select(func.count()).select_from(Conversation).where(pending_clause(lineage))).one())

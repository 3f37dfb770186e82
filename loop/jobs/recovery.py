"""After a crash: generations whose job died are marked failed, their partial files removed, and the user told.

Only engine commands call this (run, train, init, approve, ingest…): a read such as
`ladder status` or the app's polling never changes the store.
"""

from __future__ import annotations

from sqlmodel import select

from loop import artifacts
from loop.config import Config
from loop.jobs import writer
from loop.jobs.launch import alive
from store.db import active_gen, reading
from store.tables import Event, Generation, now


def recover(cfg: Config) -> list[str]:
    """Mark generations whose job is gone as failed and clean their partial files; return what to tell the user."""
    notes: list[str] = []
    with writer.lineage(cfg) as change:
        s = change.s
        for g in s.exec(select(Generation).where(Generation.status == "training")).all():
            if alive(cfg, g):
                continue
            g.status, g.finished_at, g.weights_path = "failed", now(), None
            g.reason = f"interrupted during {g.stage}: the job process ended without finishing"
            s.add(g)
            note = (f"G{g.id} was interrupted during {g.stage}; G{active_gen(s)} is still active and its data will "
                    "be trained again")
            s.add(Event(gen_id=g.id, kind="warning", message=note))
            notes.append(note)
            change.after(lambda gen=g.id: artifacts.remove_partial(cfg, gen))
    return notes


def any_dead(cfg: Config) -> bool:
    """Whether some generation is marked training with no live job (cheap: one read, no lock)."""
    with reading(cfg.db_url) as s:
        rows = s.exec(select(Generation).where(Generation.status == "training")).all()
    return any(not alive(cfg, g) for g in rows)


def end(cfg: Config, gen_id: int, status: str, reason: str) -> None:
    """A job that stops early (cancelled, failed) leaves its generation in that state and no partial files."""
    with writer.lineage(cfg) as change:
        g = change.s.get(Generation, gen_id)
        if g.status == "training":
            g.status, g.reason, g.finished_at, g.weights_path = status, reason, now(), None
            change.s.add(g)
        change.after(lambda: artifacts.remove_partial(cfg, gen_id))

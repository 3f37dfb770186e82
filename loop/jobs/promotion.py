"""Approve, reject and roll back: the active pointer moves in one transaction and nothing is deleted."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from loop.config import Config
from loop.errors import UserError
from store import ledger
from store.db import active_gen, get_meta, session, set_meta
from store.tables import Event, Generation

DECIDED = ("candidate", "promoted", "rejected", "rolled_back")


def _get(s: Session, gen_id: int) -> Generation:
    g = s.get(Generation, gen_id)
    if g is None:
        raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
    if g.status not in DECIDED:
        raise UserError(f"G{gen_id} is {g.status}, not a finished generation; only evaluated generations can be chosen")
    return g


def _done(cfg: Config, s: Session, message: str, gen_id: int) -> dict[str, Any]:
    s.add(Event(gen_id=gen_id, kind="info", message=message))
    s.flush()
    ledger.export(s, cfg.ledger_csv)
    active = active_gen(s)
    g = s.get(Generation, active)
    return {"active_gen": active, "active_sha": g.child_sha if g else None, "message": message}


def approve(cfg: Config, gen_id: int) -> dict[str, Any]:
    """Make a generation active. Approving one the gates rejected is the user's call, recorded as an override."""
    with session(cfg.db_url) as s:
        g = _get(s, gen_id)
        if active_gen(s) == gen_id:
            return _done(cfg, s, f"G{gen_id} is already active", gen_id)
        override = g.status == "rejected"
        if override:
            g.override = True
            g.reason = f"approved by the user over the gates ({g.reason})"
        else:
            g.reason = "approved by the user"
        g.status = "promoted"
        s.add(g)
        set_meta(s, "active_gen", gen_id)
        set_meta(s, "stopped", None)
        return _done(cfg, s, f"G{gen_id} approved{' (override: the gates had rejected it)' if override else ''}", gen_id)


def reject(cfg: Config, gen_id: int) -> dict[str, Any]:
    with session(cfg.db_url) as s:
        g = _get(s, gen_id)
        if gen_id == 0:
            raise UserError("G0 is the base model and cannot be rejected")
        was_active = active_gen(s) == gen_id
        g.status, g.reason = "rejected", "rejected by the user"
        s.add(g)
        if was_active:
            set_meta(s, "active_gen", g.parent_id)
        return _done(cfg, s, f"G{gen_id} rejected" + (f"; G{g.parent_id} is active again" if was_active else ""), gen_id)


def rollback(cfg: Config, gen_id: int | None = None) -> dict[str, Any]:
    """Without a generation, make the active one's parent active; with one, go back to that ancestor."""
    with session(cfg.db_url) as s:
        current = active_gen(s)
        cur = s.get(Generation, current) if current is not None else None
        if cur is None:
            raise UserError("no active generation: run 'ladder init'")
        target = cur.parent_id if gen_id is None else gen_id
        if target is None:
            raise UserError(f"G{current} is the base generation and has no parent to roll back to")
        t = _get(s, target)
        if target == current:
            return _done(cfg, s, f"G{target} is already active", target)
        if t.status == "rejected" and not t.override:
            raise UserError(f"G{target} was rejected; use 'ladder approve {target}' to make it active anyway")
        undo = {"from": current, "to": target, "from_status": cur.status, "from_reason": cur.reason,
                "to_status": t.status, "to_reason": t.reason}
        cur.status, cur.reason = "rolled_back", f"rolled back to G{target} by the user"
        t.status = "promoted"
        s.add(cur)
        s.add(t)
        set_meta(s, "active_gen", target)
        set_meta(s, "last_rollback", undo)
        return _done(cfg, s, f"rolled back from G{current} to G{target}", current)


def undo_rollback(cfg: Config) -> dict[str, Any]:
    """Put the last rollback back exactly as it was, if nothing has moved the active pointer since."""
    with session(cfg.db_url) as s:
        undo = get_meta(s, "last_rollback")
        if not undo:
            raise UserError("there is no rollback to undo")
        if active_gen(s) != undo["to"]:
            raise UserError(f"G{active_gen(s)} is active now, not G{undo['to']}: the rollback was already changed")
        back, there = s.get(Generation, undo["from"]), s.get(Generation, undo["to"])
        back.status, back.reason = undo["from_status"], undo["from_reason"]
        there.status, there.reason = undo["to_status"], undo["to_reason"]
        s.add(back)
        s.add(there)
        set_meta(s, "active_gen", undo["from"])
        set_meta(s, "last_rollback", None)
        return _done(cfg, s, f"undone: G{undo['from']} is active again (was rolled back to G{undo['to']})", undo["from"])

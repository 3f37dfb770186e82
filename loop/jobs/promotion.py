"""Approve, reject and roll back: the active pointer moves in one lineage change and nothing is deleted.

Each may run while a job trains: the job's own decision, when it ends, respects what the
user chose meanwhile (see loop.jobs.pipeline.finish).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session

from loop import artifacts
from loop.config import Config
from loop.errors import UserError
from loop.jobs import writer
from store.db import active_gen, get_meta, reading, set_meta
from store.tables import Event, Generation

DECIDED = ("candidate", "promoted", "rejected", "rolled_back")
# Ancestors the user turned away from: rejecting a child never makes one of them active again.
TURNED_AWAY = ("rejected", "rolled_back")
# The reasons the user's decisions write; the gates' own reason stays inside them (gates_reason).
OVER_GATES, USER_REJECTED, GATES_HAD = "approved by the user over the gates (", "rejected by the user", \
    " (the gates had rejected it: "


def _get(s: Session, gen_id: int) -> Generation:
    g = s.get(Generation, gen_id)
    if g is None:
        raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
    if g.status not in DECIDED:
        raise UserError(f"G{gen_id} is {g.status}, not a finished generation; only evaluated generations can be chosen")
    return g


def failed_gates(g: Generation) -> list[str]:
    """The gates this generation failed, by name (none for one only the user rejected)."""
    try:
        checks = json.loads(g.gates or "[]")
    except ValueError:
        return []
    return [c.get("name", "?") for c in checks if isinstance(c, dict) and not c.get("passed")]


def _last(s: Session, key: str, what: str, left_at: str) -> dict[str, Any]:
    """The change kept under ``key`` for its undo, while the active pointer is still where it left it."""
    undo = get_meta(s, key)
    if not undo:
        raise UserError(f"there is no {what} to undo")
    if active_gen(s) != undo[left_at]:
        raise UserError(f"G{active_gen(s)} is active now, not G{undo[left_at]}: the {what} was already changed")
    return undo


def _said(s: Session, message: str, gen_id: int) -> str:
    s.add(Event(gen_id=gen_id, kind="info", message=message))
    return message


def _result(cfg: Config, message: str) -> dict[str, Any]:
    """What the command reports, read back after the commit: the active generation as it now is."""
    with reading(cfg.db_url) as s:
        active = active_gen(s)
        g = s.get(Generation, active) if active is not None else None
    return {"active_gen": active, "active_sha": g.child_sha if g else None, "message": message}


def gates_reason(g: Generation) -> str | None:
    """What the gates said when they rejected this generation, kept through the user's approve and reject."""
    reason = g.reason or ""
    if reason.startswith(OVER_GATES) and reason.endswith(")"):
        return reason[len(OVER_GATES):-1]
    if reason.startswith(USER_REJECTED):
        rest = reason[len(USER_REJECTED):]
        return rest[len(GATES_HAD):-1] if rest.startswith(GATES_HAD) and rest.endswith(")") else None
    if g.status == "rejected" or failed_gates(g):
        return reason or None
    return None


def approve(cfg: Config, gen_id: int) -> dict[str, Any]:
    """Make a generation active. Approving one the gates rejected is the user's call, recorded as an override.

    What it changed is kept (``last_approve``) so that ``undo_approve`` can put it back exactly.
    """
    with writer.lineage(cfg) as change:
        s = change.s
        g = _get(s, gen_id)
        current, override = active_gen(s), False
        if current == gen_id:
            message = f"G{gen_id} is already active"
        else:
            artifacts.verified_gguf(cfg, g)
            undo = {"gen": gen_id, "from": current, "status": g.status, "reason": g.reason, "override": g.override}
            said = gates_reason(g)
            override = g.status == "rejected" and bool(failed_gates(g) or said is not None
                                                        or not g.reason.startswith(USER_REJECTED))
            if override:
                g.override = True
                g.reason = f"{OVER_GATES}{said or 'no reason kept'})"
            else:
                g.reason = "approved by the user"
            g.status = "promoted"
            s.add(g)
            set_meta(s, "active_gen", gen_id)
            set_meta(s, "stopped", None)
            set_meta(s, "last_approve", undo)
            message = _said(s, f"G{gen_id} approved{' (override: the gates had rejected it)' if override else ''}",
                            gen_id)
    return _result(cfg, message) | {"override": override}


def undo_approve(cfg: Config) -> dict[str, Any]:
    """Put the last approval back as it was (the generation's status and reason, the active one before it),
    if nothing has moved the active pointer since."""
    with writer.lineage(cfg) as change:
        s = change.s
        undo = _last(s, "last_approve", "approval", "gen")
        g = s.get(Generation, undo["gen"])
        g.status, g.reason, g.override = undo["status"], undo["reason"], bool(undo["override"])
        s.add(g)
        set_meta(s, "active_gen", undo["from"])
        set_meta(s, "last_approve", None)
        message = _said(s, f"undone: G{undo['from']} is active again (G{undo['gen']} is {g.status.replace('_', ' ')} "
                           "as before)", undo["gen"])
    return _result(cfg, message)


def reject(cfg: Config, gen_id: int) -> dict[str, Any]:
    """Reject a generation; if it was active, the nearest ancestor the user has not turned away from takes over.

    A generation the gates had rejected keeps what they said: "rejected by the user (the gates had rejected it: …)".
    """
    with writer.lineage(cfg) as change:
        s = change.s
        g = _get(s, gen_id)
        if gen_id == 0:
            raise UserError("G0 is the base model and cannot be rejected")
        was_active = active_gen(s) == gen_id
        heir, skipped = (_heir(s, g) if was_active else (None, []))
        said = gates_reason(g)
        g.status, g.reason = "rejected", USER_REJECTED + (f"{GATES_HAD}{said})" if said else "")
        s.add(g)
        set_meta(s, "last_approve", None)
        message = f"G{gen_id} rejected"
        if was_active:
            set_meta(s, "active_gen", heir.id)
            message += f"; G{heir.id} is active again"
            if skipped:
                message += " (skipped " + ", ".join(f"G{a.id}, {a.status.replace('_', ' ')}" for a in skipped) + ")"
        message = _said(s, message, gen_id)
    return _result(cfg, message)


def _heir(s: Session, g: Generation) -> tuple[Generation, list[Generation]]:
    skipped = []
    parent_id = g.parent_id
    while parent_id is not None:
        parent = s.get(Generation, parent_id)
        if parent is None:
            break
        if parent.status not in TURNED_AWAY:
            return parent, skipped
        skipped.append(parent)
        parent_id = parent.parent_id
    raise UserError(f"G{g.id} is active and every ancestor of it was rejected or rolled back; approve the "
                    "generation you want active instead")


def rollback(cfg: Config, gen_id: int | None = None) -> dict[str, Any]:
    """Without a generation, make the active one's parent active; with one, go back to that ancestor."""
    with writer.lineage(cfg) as change:
        s = change.s
        current = active_gen(s)
        cur = s.get(Generation, current) if current is not None else None
        if cur is None:
            raise UserError("no active generation: run 'ladder init'")
        target = cur.parent_id if gen_id is None else gen_id
        if target is None:
            raise UserError(f"G{current} is the base generation and has no parent to roll back to")
        t = _get(s, target)
        if target == current:
            message = f"G{target} is already active"
        else:
            if t.status == "rejected" and not t.override:
                raise UserError(f"G{target} was rejected; use 'ladder approve {target}' to make it active anyway")
            artifacts.verified_gguf(cfg, t)
            undo = {"from": current, "to": target, "from_status": cur.status, "from_reason": cur.reason,
                    "to_status": t.status, "to_reason": t.reason}
            cur.status, cur.reason = "rolled_back", f"rolled back to G{target} by the user"
            t.status = "promoted"
            s.add(cur)
            s.add(t)
            set_meta(s, "active_gen", target)
            set_meta(s, "last_rollback", undo)
            set_meta(s, "last_approve", None)
            message = _said(s, f"rolled back from G{current} to G{target}", current)
    return _result(cfg, message)


def undo_rollback(cfg: Config) -> dict[str, Any]:
    """Put the last rollback back exactly as it was, if nothing has moved the active pointer since."""
    with writer.lineage(cfg) as change:
        s = change.s
        undo = _last(s, "last_rollback", "rollback", "to")
        back, there = s.get(Generation, undo["from"]), s.get(Generation, undo["to"])
        back.status, back.reason = undo["from_status"], undo["from_reason"]
        there.status, there.reason = undo["to_status"], undo["to_reason"]
        s.add(back)
        s.add(there)
        set_meta(s, "active_gen", undo["from"])
        set_meta(s, "last_rollback", None)
        message = _said(s, f"undone: G{undo['from']} is active again (was rolled back to G{undo['to']})", undo["from"])
    return _result(cfg, message)

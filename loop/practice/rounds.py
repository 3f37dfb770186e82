"""Rounds until ready: practice, then a generation trained on what the round wrote, then its evals, until the
readiness gate passes or the rounds run out. Every child still goes through the gates; a rejected child ends
the rounds with its reason (the same batch would only be rejected again)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from loop.config import Config
from loop.jobs import runner as jobs
from loop.practice import round as practice
from store.db import active_gen, reading
from store.tables import Generation


def readiness_of(cfg: Config, gen: int) -> dict[str, Any]:
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen)
        return json.loads(g.readiness or "{}") if g else {}


def until_ready(cfg: Config, max_rounds: int, teacher=None, say: Callable[[str], None] = lambda _: None,
                limit: int | None = None, steps: int | None = None) -> dict[str, Any]:
    with reading(cfg.db_url) as s:
        start = active_gen(s)
    trajectory = [_point(cfg, 0, start, None, "start")]
    if trajectory[0]["ready"]:
        return {"ready": True, "rounds": 0, "trajectory": trajectory, "ended": f"G{start} is already ready"}
    ended = f"{max_rounds} round(s) done and not ready yet"
    for n in range(1, max_rounds + 1):
        rep = practice.run(cfg, teacher, say, limit)
        say(f"round {n}: practice {rep['passed']}/{rep['n']} passed; {rep['corrections']} correction(s), "
            f"{rep['examples']} example(s) written")
        gen_id, pid = jobs.start(cfg, steps)
        say(f"round {n}: training G{gen_id} (pid {pid})")
        g = jobs.follow(cfg, gen_id, lambda ev: say(f"  {ev.message}") if ev.message else None)
        with reading(cfg.db_url) as s:
            active = active_gen(s)
        point = _point(cfg, n, gen_id, rep, g.status if g.id != active else "active", g.reason)
        trajectory.append(point)
        if g.id != active:
            ended = f"round {n}: G{g.id} {g.status}: {g.reason}"
            break
        if point["ready"]:
            ended = f"round {n}: G{g.id} is ready"
            break
    return {"ready": trajectory[-1]["ready"], "rounds": len(trajectory) - 1, "trajectory": trajectory, "ended": ended}


def _point(cfg: Config, n: int, gen: int, rep: dict[str, Any] | None, status: str, reason: str = "") -> dict[str, Any]:
    r = readiness_of(cfg, gen)
    return {"round": n, "gen": gen, "status": status, "reason": reason, "ready": bool(r.get("ready")),
            "heldout": {c: v.get("rate") for c, v in (r.get("categories") or {}).items()},
            "practice": {c: v["rate"] for c, v in rep["categories"].items()} if rep else {},
            "blockers": r.get("blockers", [])}

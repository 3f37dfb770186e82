"""Generalization for a child with no held-out records of its own: its held-out suite verdicts against its parent's.

A generation trained only on practice corrections has nothing of its own held out: practice
trains on the suites' practice split, and the suites' heldout split, which it never sees, is
what measures whether the lesson carried. So there the score is the share of the held-out
suite items whose verdict changed from the parent's that changed for the better (better /
(better + worse)); when none changed, 0: nothing practice taught reached an item it was not
shown. Forgetting is the recall gate's business, the level reached the readiness report's.
"""

from __future__ import annotations

import json
from typing import Any

from loop import artifacts
from loop.config import Config
from loop.evals import suites
from store.db import reading
from store.tables import EvalResult, Generation

Results = list[tuple[str, dict[str, Any]]]


def score(child: dict[tuple[str, str], bool], parent: dict[tuple[str, str], bool]) -> dict[str, Any]:
    """Paired verdicts on the same items: better, worse, same, and the share of the changed ones that got better."""
    better = sum(1 for k, passed in child.items() if passed and not parent[k])
    worse = sum(1 for k, passed in child.items() if parent[k] and not passed)
    changed = better + worse
    value = round(better / changed, 4) if changed else 0.0
    basis = (f"the suites' held-out items, which practice never trains on: {better} better, {worse} worse "
             f"than the parent, {len(child) - changed} the same")
    return {"value": value, "better": better, "worse": worse, "same": len(child) - changed, "n": changed,
            "basis": basis}


def on_suites(cfg: Config, parent: Generation, results: Results) -> dict[str, Any] | None:
    """The child's held-out suite results against the parent's on the same items (None without suite items)."""
    child = {(name, r["item_key"]): bool(r["passed"]) for name, r in results if name.startswith("suite:")}
    if not child:
        return None
    return score(child, parent_verdicts(cfg, parent, results))


def parent_verdicts(cfg: Config, parent: Generation, results: Results) -> dict[tuple[str, str], bool]:
    """The parent's verdicts on the child's suite items: stored ones made on the same suite, its GGUF for the rest."""
    from sqlmodel import col, select  # noqa: PLC0415

    wanted = {(name, r["item_key"]): r["detail"].get("suite_sha") for name, r in results if name.startswith("suite:")}
    with reading(cfg.db_url) as s:
        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == parent.id,
                                               col(EvalResult.eval).in_(sorted({n for n, _ in wanted})))).all()
    known = {(r.eval, r.item_key): r.passed for r in rows
             if wanted.get((r.eval, r.item_key)) == json.loads(r.detail).get("suite_sha")}
    missing = [k for k in wanted if k not in known]
    if missing:
        known |= _ask(cfg, parent, missing)
    return {k: bool(known[k]) for k in wanted}


def _ask(cfg: Config, parent: Generation, keys: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
    from loop.evals import probes as evals  # noqa: PLC0415
    from loop.model.llm import Runner  # noqa: PLC0415

    e, found = cfg.eval, {}
    with Runner(artifacts.verified_gguf(cfg, parent), threads=e.threads, context=e.context, seed=0,
                batch=e.batch) as runner:
        for name in sorted({n for n, _ in keys}):
            ids = {i for n, i in keys if n == name}
            items = [it for it in suites.load(cfg, name.removeprefix("suite:")).split("heldout") if it["id"] in ids]
            for r in evals.run_items(runner, items, e.suite_max_tokens, list(e.corporate_phrases),
                                     suite=name.removeprefix("suite:")):
                found[(name, r["item_key"])] = r["passed"]
    return found

"""One suite on one generation, and two generations on the same items: answers, verdicts, a paired difference.

A generation's answers to a suite are stored with the suite's SHA-256; asked again on the same
suite they are read back, not generated again (greedy decoding gives the same answers).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, delete, select

from loop import artifacts
from loop.config import Config
from loop.errors import UserError
from loop.evals import readiness, stats, suites
from loop.evals.generation import flat, store_results
from store.db import reading, session
from store.tables import EvalResult, Generation


def suite_results(cfg: Config, gen_id: int, name: str, split: str = "heldout") -> tuple[list[dict[str, Any]], str]:
    """The generation's results on a suite's split: stored ones if made on these very items, else asked now."""
    suite = suites.load(cfg, name)
    items = suite.items if split == "all" else suite.split(split)
    if not items:
        raise UserError(f"the suite {name!r} has no {split} items")
    keys = {it["id"] for it in items}
    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        if g is None:
            raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == gen_id, EvalResult.eval == f"suite:{name}")).all()
    stored = {r.item_key: r for r in rows if json.loads(r.detail).get("suite_sha") == suite.sha}
    if keys <= stored.keys():
        return [_as_result(stored[k]) for k in sorted(keys)], suite.sha
    from loop.evals import probes as evals  # noqa: PLC0415
    from loop.model.llm import Runner  # noqa: PLC0415

    e = cfg.eval
    with Runner(artifacts.verified_gguf(cfg, g), threads=e.threads, context=e.context, seed=0,
                batch=e.batch) as runner:
        results = evals.run_items(runner, items, e.suite_max_tokens, list(e.corporate_phrases), suite=name)
    for r in results:
        r["detail"]["suite_sha"] = suite.sha
    with session(cfg.db_url) as s:
        s.exec(delete(EvalResult).where(EvalResult.gen_id == gen_id, EvalResult.eval == f"suite:{name}",
                                        col(EvalResult.item_key).in_(sorted(keys))))
        store_results(s, gen_id, [(f"suite:{name}", r) for r in results])
    return sorted(results, key=lambda r: r["item_key"]), suite.sha


def _as_result(r: EvalResult) -> dict[str, Any]:
    return {"item_key": r.item_key, "prompt": r.prompt, "reference": r.reference, "answer": r.answer,
            "score": r.score, "passed": r.passed, "detail": json.loads(r.detail)}


def one(cfg: Config, gen_id: int, name: str, split: str = "heldout") -> dict[str, Any]:
    results, sha = suite_results(cfg, gen_id, name, split)
    rows = flat(results)
    return {"gen": gen_id, "suite": name, "sha": sha, "split": split, "categories": readiness.categories(rows),
            "overall": readiness.report(gen_id, rows, {})["overall"], "patterns": readiness.patterns(rows),
            "items": [{"id": r["item_key"], "category": r["detail"]["category"], "passed": r["passed"],
                       "reason": r["detail"]["reason"], "answer": r["answer"]} for r in results]}


def compare(cfg: Config, a: int, b: int, name: str = "default", split: str = "heldout") -> dict[str, Any]:
    """B against A on the same items: per item both answers and verdicts, won / lost / same, and the paired
    difference of pass rates (b - a) with a 95 % paired-bootstrap interval and McNemar's exact p-value."""
    ra, sha = suite_results(cfg, a, name, split)
    rb, _ = suite_results(cfg, b, name, split)
    by_b = {r["item_key"]: r for r in rb}
    items = []
    for x in ra:
        y = by_b[x["item_key"]]
        verdict = "won" if y["passed"] and not x["passed"] else "lost" if x["passed"] and not y["passed"] else "same"
        items.append({"id": x["item_key"], "category": x["detail"]["category"], "prompt": x["prompt"],
                      "a_answer": x["answer"], "b_answer": y["answer"], "a_passed": x["passed"], "b_passed": y["passed"],
                      "a_reason": x["detail"]["reason"], "b_reason": y["detail"]["reason"], "outcome": verdict})
    paired = stats.paired([i["a_passed"] for i in items], [i["b_passed"] for i in items])
    n = len(items)
    return {"a": a, "b": b, "suite": name, "sha": sha, "split": split, "n": n, "items": items,
            "a_rate": round(sum(i["a_passed"] for i in items) / n, 4), "b_rate": round(sum(i["b_passed"] for i in items) / n, 4),
            "diff": paired["diff"], "ci95": paired["ci95"], "won": paired["won"], "lost": paired["lost"],
            "same": paired["same"], "p_mcnemar": paired["p_mcnemar"],
            "method": "paired bootstrap (10,000 resamples of items, percentile interval); McNemar exact test"}

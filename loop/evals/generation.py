"""Evaluate one generation's GGUF on its job's items, and the parent on the same recall items; store the answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loop import artifacts
from loop.config import Config
from loop.data.jobfiles import read_jsonl
from store.db import reading
from store.tables import EvalResult, Generation


def parent_recall(cfg: Config, parent: Generation, child_results: list[dict[str, Any]], job_path: Path) -> float | None:
    """The parent's recall on exactly the child's recall items: stored answers first, the parent's GGUF for the rest."""
    if not child_results:
        return None
    from sqlmodel import col, select  # noqa: PLC0415

    keys = [r["item_key"] for r in child_results]
    with reading(cfg.db_url) as s:
        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == parent.id, col(EvalResult.item_key).in_(keys),
                                               col(EvalResult.eval).in_(["probe", "recall", "generalization"]))
                      .order_by(EvalResult.id)).all()
    known = {r.item_key: r.passed for r in rows}
    missing = [it for it in read_jsonl(job_path / "recall.jsonl") if it["key"] not in known]
    if missing:
        from loop.evals import probes as evals  # noqa: PLC0415
        from loop.model.llm import Runner  # noqa: PLC0415

        e = cfg.eval
        with Runner(artifacts.local(cfg, parent.gguf_path), threads=e.threads, context=e.context, seed=0) as runner:
            rp, _ = evals.run_probes(runner, [m for m in missing if m["type"] == "probe"], e.max_tokens)
            rr, _ = evals.run_reference(runner, [m for m in missing if m["type"] == "reference"], e.max_tokens,
                                        e.match_threshold)
        known |= {r["item_key"]: r["passed"] for r in rp + rr}
    return round(sum(bool(known[k]) for k in keys) / len(keys), 4)


def evaluate(cfg: Config, gguf: Path, job_path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """Recall, generalization and style drift of one GGUF, with every item's answer."""
    from loop.evals import probes as evals  # noqa: PLC0415
    from loop.model.llm import Runner  # noqa: PLC0415

    e = cfg.eval
    holdout, recall = read_jsonl(job_path / "holdout.jsonl"), read_jsonl(job_path / "recall.jsonl")
    out: list[tuple[str, dict[str, Any]]] = []
    with Runner(gguf, threads=e.threads, context=e.context, seed=0) as runner:
        gen_results, gen_score = evals.run_reference(runner, holdout, e.max_tokens, e.match_threshold)
        probes = [r for r in recall if r["type"] == "probe"]
        refs = [r for r in recall if r["type"] == "reference"]
        rp, _ = evals.run_probes(runner, probes, e.max_tokens)
        rr, _ = evals.run_reference(runner, refs, e.max_tokens, e.match_threshold)
        style_results, drift = evals.run_style(runner, list(e.tone_probes), list(e.corporate_phrases), e.max_tokens)
    recall_results = rp + rr
    out += [("generalization", r) for r in gen_results] + [("recall", r) for r in recall_results]
    out += [("style", r) for r in style_results]
    # Held-out items keep their conversation so later generations can be asked them for recall.
    by_key = {it["key"]: it for it in holdout}
    for name, r in out:
        if name == "generalization" and r["item_key"] in by_key:
            r["detail"] = detail_of(r, messages=by_key[r["item_key"]]["messages"])
    metrics = {
        "eval_recall": round(sum(r["passed"] for r in recall_results) / len(recall_results), 4) if recall_results else None,
        "eval_generalization": round(gen_score, 4) if holdout else None,
        "eval_style_drift": int(drift),
        "recall_items": len(recall_results), "holdout_items": len(holdout),
    }
    return metrics, out


def detail_of(r: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An eval result's detail as a dict: the eval's note plus what later stages need."""
    d = r.get("detail")
    base = d if isinstance(d, dict) else ({"note": d} if d else {})
    keep = {k: r[k] for k in ("expected", "stated") if k in r}
    return {**base, **keep, **extra}


def store_results(s, gen_id: int, results: list[tuple[str, dict[str, Any]]]) -> None:
    for name, r in results:
        s.add(EvalResult(gen_id=gen_id, eval=name, item_key=r["item_key"], prompt=r["prompt"],
                         reference=r.get("reference", ""), answer=r["answer"], score=float(r["score"]),
                         passed=bool(r["passed"]), detail=json.dumps(detail_of(r), ensure_ascii=False)))

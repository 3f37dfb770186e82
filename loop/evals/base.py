"""Generation 0's evals: the probe set (which answers are knowledge to keep), the tone probes and the agent suites.

G0 trains on nothing, so it has no held-out data to generalize to and no parent to drift from.
What it answers right steadily (asked two other ways, and on a copy of its weights rounded to
the other precision) becomes the recall items every later generation is held to; its recall is
reported on exactly those items, as its children's is, so the numbers on one screen compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loop import artifacts
from loop.config import Config
from loop.data.dataset import known_probe
from loop.evals.answer_cache import Answers
from loop.evals.generation import (
    Results,
    detail_of,
    run_suites,
    suite_report,
    suite_requests,
    suites_sha,
)
from loop.hashing import sha256_file


def answers(cfg: Config, gguf: Path, stats: dict[str, int] | None = None) -> Answers:
    """A runner for a G0 file that reuses what an earlier workspace of the same base asked (loop.evals.answer_cache)."""
    from loop.model.llm import Runner  # noqa: PLC0415

    e = cfg.eval
    return Answers(sha256_file(gguf), e.context, lambda: Runner(gguf, threads=e.threads, context=e.context, seed=0, batch=e.batch),
                   enabled=e.base_answer_cache, stats=stats, decoding="side by side" if e.batch > 1 else "alone")


def evaluate(cfg: Config, gguf: Path, stats: dict[str, int] | None = None) -> tuple[dict[str, Any], Results]:
    """Probes (with the steadiness check in two rephrasings), tone probes and the suites; metrics from them.

    ``stats`` (when given) counts the answers asked of the model and those reused from the cache.
    """
    from loop.evals import probes as evals  # noqa: PLC0415

    e = cfg.eval
    items = evals.probe_items()
    with answers(cfg, gguf, stats) as runner:
        # Every question known up front at once: one tail of short batches instead of one per eval.
        evals.ahead(runner, evals.probe_requests(items, e.max_tokens)
                    + evals.style_requests(list(e.tone_probes), e.max_tokens) + suite_requests(cfg))
        probe_results, accuracy = evals.run_probes(runner, items, e.max_tokens)
        steady = evals.steady_keys(runner, items, probe_results, e.max_tokens) if e.recall_steady else None
        for r, it in zip(probe_results, items):
            r["detail"] = detail_of(r, answers=it["answers"], steady=r["passed"] and (steady is None or r["item_key"] in steady))
        style_results, drift = evals.run_style(runner, list(e.tone_probes), list(e.corporate_phrases), e.max_tokens)
        suite_results, summary = run_suites(runner, cfg)
    results = [("probe", r) for r in probe_results] + [("style", r) for r in style_results] + suite_results
    return {"probe_accuracy": round(accuracy, 4) if accuracy is not None else None, "eval_style_drift": int(drift),
            "suites": summary, "suite_sha": suites_sha(summary)}, results


def metrics_of(cfg: Config, metrics: dict[str, Any], results: Results) -> dict[str, Any]:
    """G0's recall is its share of the items it is known to know (all of them, by definition), with their count."""
    known = [r for name, r in results if name == "probe" and r["passed"] and known_probe(r["detail"])]
    return metrics | {"eval_recall": 1.0 if known else None, "eval_generalization": None, "recall_items": len(known),
                      "readiness": suite_report(cfg, 0, results)}


def mark_unsteady_under_rounding(cfg: Config, probe_results: list[dict], hf: Path, template: Path | None,
                                 stats: dict[str, int] | None = None) -> None:
    """Unmark steady probes that the same weights, rounded the other way (q8_0 for f16), answer wrong.

    Rounding moves every weight a little and teaches nothing. Measured on the embedded model:
    its q8_0 copy loses 3 of the 54 probes it answers right in three wordings ("capital of
    France" -> "L'Etoile"), more than the recall margin allows. A child that loses such an item
    has not forgotten it; any update of that size flips it.
    """
    from loop.evals import probes as evals  # noqa: PLC0415
    from loop.model.export import export_gguf  # noqa: PLC0415

    steady = [r for r in probe_results if r["detail"]["steady"]]
    if not steady:
        return
    other = "q8_0" if cfg.model.export_dtype == "f16" else "f16"
    copy = artifacts.gen_dir(cfg, 0) / f"steady-check.{other}.gguf"
    by_key = {it["key"]: it for it in evals.probe_items()}
    try:
        export_gguf(hf, copy, template, other)
        with answers(cfg, copy, stats) as runner:
            again, _ = evals.run_probes(runner, [by_key[r["item_key"]] for r in steady], cfg.eval.max_tokens)
    finally:
        copy.unlink(missing_ok=True)
    for r, a in zip(steady, again):
        if not a["passed"]:
            r["detail"] = r["detail"] | {"steady": False, "wrong_when_rounded": a["answer"]}

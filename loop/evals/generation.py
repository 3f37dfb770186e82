"""Evaluate one generation's GGUF: recall, generalization, style, drift from its parent, and the agent suites.

Generalization asks whether the child learned its new data, on held-out records of it: a
held-out answer that is a tool call passes when the child makes that call (right tool, right
arguments); any other passes when the child finds the held-out answer more likely than its
parent did (mean log-probability per token, by at least `eval.generalization_margin`), and not
as much more likely after another held-out conversation (`likelier`). Forward passes in llama.cpp,
no generation, and no text overlap, which a diverse inbox could never reach.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loop import artifacts
from loop.config import Config
from loop.data.jobfiles import read_jsonl
from loop.evals import readiness, suites
from store.db import reading
from store.tables import EvalResult, Generation

Results = list[tuple[str, dict[str, Any]]]


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
        from loop.model.llm import Runner  # noqa: PLC0415

        e = cfg.eval
        with Runner(artifacts.local(cfg, parent.gguf_path), threads=e.threads, context=e.context, seed=0,
                    batch=e.batch) as runner:
            found = _recall(runner, missing, cfg)
        known |= {r["item_key"]: r["passed"] for r in found}
    return round(sum(bool(known[k]) for k in keys) / len(keys), 4)


def against_parent(cfg: Config, parent: Generation, metrics: dict[str, Any], results: Results, job_path: Path) -> None:
    """What the gates compare with the parent: its recall on the child's items and, for a child with no held-out
    records of its own (all practice), generalization on the suites' held-out items against the parent's."""
    from loop.evals import transfer  # noqa: PLC0415

    metrics["parent_recall_same"] = parent_recall(cfg, parent, [r for n, r in results if n == "recall"], job_path)
    if metrics["eval_generalization"] is None:
        found = transfer.on_suites(cfg, parent, results)
        if found is not None:
            metrics |= {"eval_generalization": found["value"], "holdout_items": found["n"],
                        "generalization_basis": found}


def _recall(runner, items: list[dict[str, Any]], cfg: Config) -> list[dict[str, Any]]:
    from loop.evals import probes as evals  # noqa: PLC0415

    e = cfg.eval
    rp, _ = evals.run_probes(runner, [m for m in items if m["type"] == "probe"], e.max_tokens)
    asked = [m for m in items if m["type"] in ("tool", "fact")]
    rt = evals.run_items(runner, asked, e.suite_max_tokens, list(e.corporate_phrases))
    for r, it in zip(rt, asked):  # what a later generation's recall items are made from
        r["detail"] |= {"kind": it["type"], "messages": it["messages"], "expect": it["expect"]}
        r["detail"] |= {"fact": it["fact"]} if "fact" in it else {}
        r["reference"] = it["reference"]
    return rp + rt


def recall_requests(items: list[dict[str, Any]], cfg: Config) -> list[tuple[list[dict[str, str]], int, bool]]:
    """The questions ``_recall`` asks, for ``probes.ahead``."""
    from loop.evals import probes as evals  # noqa: PLC0415

    e = cfg.eval
    return (evals.probe_requests([m for m in items if m["type"] == "probe"], e.max_tokens)
            + evals.item_requests([m for m in items if m["type"] in ("tool", "fact")], e.suite_max_tokens))


def suite_requests(cfg: Config, split: str = "heldout") -> list[tuple[list[dict[str, str]], int, bool]]:
    """The questions ``run_suites`` asks, for ``probes.ahead``."""
    from loop.evals import probes as evals  # noqa: PLC0415

    return [q for name in cfg.eval.suites
            for q in evals.item_requests(suites.load(cfg, name).split(split), cfg.eval.suite_max_tokens)]


def run_suites(runner, cfg: Config, split: str = "heldout") -> tuple[Results, dict[str, Any]]:
    """Every configured suite's items of one split: the results, and per suite its SHA-256 and categories."""
    from loop.evals import probes as evals  # noqa: PLC0415

    e, out, summary = cfg.eval, [], {}
    for name in e.suites:
        suite = suites.load(cfg, name)
        results = evals.run_items(runner, suite.split(split), e.suite_max_tokens, list(e.corporate_phrases), suite=name)
        for r in results:
            r["detail"]["suite_sha"] = suite.sha  # so `ladder compare` can reuse them on the same items
        out += [(f"suite:{name}", r) for r in results]
        summary[name] = {"sha": suite.sha, "split": split, "categories": readiness.categories(flat(results))}
    return out, summary


def flat(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results as {"category", "passed", "reason"} rows, as the readiness report reads them."""
    return [{"category": r["detail"]["category"], "passed": r["passed"], "reason": r["detail"]["reason"],
             "item_key": r["item_key"]} for r in results]


def suite_report(cfg: Config, gen: int | None, results: Results) -> dict[str, Any]:
    rows = flat([r for name, r in results if name.startswith("suite:")])
    return readiness.report(gen, rows, dict(cfg.data["readiness"]))


def suites_sha(summary: dict[str, Any]) -> str | None:
    """One SHA-256 for the suites a generation was asked (their names and item hashes)."""
    if not summary:
        return None
    from loop.hashing import sha256_records  # noqa: PLC0415

    return sha256_records({"suite": name, "sha": s["sha"]} for name, s in sorted(summary.items()))


def evaluate(cfg: Config, gguf: Path, job_path: Path, parent_gguf: Path | None = None,
             drift_set: list[tuple[list[dict[str, str]], str]] = ()) -> tuple[dict[str, Any], Results]:
    """Recall, generalization, style drift, KL drift and the suites of one GGUF, with every item's answer."""
    from loop.evals import probes as evals  # noqa: PLC0415
    from loop.model.llm import Runner  # noqa: PLC0415

    e = cfg.eval
    holdout, recall = read_jsonl(job_path / "holdout.jsonl"), read_jsonl(job_path / "recall.jsonl")
    tools = [it for it in holdout if it["type"] in ("tool", "fact")]  # judged by what the answer says
    refs = [it for it in holdout if it["type"] not in ("tool", "fact")]  # by how likely the reference is
    with Runner(gguf, threads=e.threads, context=e.context, seed=0, batch=e.batch) as runner:
        # Every question at once: one tail of short batches at the end instead of one per eval.
        evals.ahead(runner, evals.item_requests(tools, e.suite_max_tokens) + recall_requests(recall, cfg)
                    + evals.style_requests(list(e.tone_probes), e.max_tokens) + suite_requests(cfg))
        gen_tools = evals.run_items(runner, tools, e.suite_max_tokens, list(e.corporate_phrases))
        recall_results = _recall(runner, recall, cfg)
        style_results, drift = evals.run_style(runner, list(e.tone_probes), list(e.corporate_phrases), e.max_tokens)
        suite_results, summary = run_suites(runner, cfg)
    for r, it in zip(gen_tools, tools):
        r["detail"] |= {"kind": it["type"], "messages": it["messages"], "expect": it["expect"]}
        r["detail"] |= {"fact": it["fact"]} if "fact" in it else {}
        r["reference"] = it["reference"]
    gen_refs, kls = likelihoods(cfg, gguf, parent_gguf, refs, drift_set)
    out: Results = [("generalization", r) for r in gen_tools + gen_refs] + [("recall", r) for r in recall_results]
    out += [("style", r) for r in style_results] + [("drift", r) for r in kls] + suite_results
    gen_all = gen_tools + gen_refs
    metrics = {
        "eval_recall": _share(recall_results), "eval_generalization": _share(gen_all) if gen_all else None,
        "eval_style_drift": int(drift), "eval_kl": round(sum(r["score"] for r in kls) / len(kls), 6) if kls else None,
        "recall_items": len(recall_results), "holdout_items": len(gen_all), "suites": summary,
        "suite_sha": suites_sha(summary),
    }
    metrics["readiness"] = suite_report(cfg, None, out)
    return metrics, out


def _share(results: list[dict[str, Any]]) -> float | None:
    return round(sum(bool(r["passed"]) for r in results) / len(results), 4) if results else None


def likelihoods(cfg: Config, gguf: Path, parent_gguf: Path | None, refs: list[dict[str, Any]],
                drift_set) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Held-out answers scored by the child's log-likelihood against the parent's; KL drift on the drift set."""
    if parent_gguf is None or not (refs or drift_set):
        return [], []
    from loop.model.likelihood import Scorer, kl, mean  # noqa: PLC0415
    from loop.model.threads import pick  # noqa: PLC0415

    e = cfg.eval
    gen, drifts = [], []
    threads = pick(e.threads)  # once for both: the idle cores are sampled over a fifth of a second
    with Scorer(gguf, threads, e.scoring_context) as child, Scorer(parent_gguf, threads, e.scoring_context) as parent:
        for k, it in enumerate(refs):
            lc, lp = mean(child.logprobs(it["messages"], it["reference"])), mean(parent.logprobs(it["messages"], it["reference"]))
            # The same answer after the next item's conversation: what the child gained there is style, not an answer.
            other = refs[(k + 1) % len(refs)]["messages"] if len(refs) > 1 else None
            oc = op = None
            if other is not None:
                oc, op = mean(child.logprobs(other, it["reference"])), mean(parent.logprobs(other, it["reference"]))
            v = likelier(lc, lp, oc, op, e.generalization_margin, e.relevance_tolerance)
            gen.append({"item_key": it["key"], "prompt": _last_user(it["messages"]), "reference": it["reference"],
                        "answer": "", "score": v["gain"], "passed": v["passed"],
                        "detail": {"kind": "likelihood", "child": lc, "parent": lp, "child_elsewhere": oc,
                                   "parent_elsewhere": op, "tied": v["tied"], "messages": it["messages"],
                                   "reason": v["reason"]}})
        for n, (messages, answer) in enumerate(drift_set, 1):
            value = kl(parent.distributions(messages, answer), child.distributions(messages, answer))
            drifts.append({"item_key": f"drift{n:02d}", "prompt": _last_user(messages), "reference": answer,
                           "answer": "", "score": round(value, 6), "passed": True, "detail": {"kind": "kl"}})
    return gen, drifts


def likelier(child: float | None, parent: float | None, child_elsewhere: float | None, parent_elsewhere: float | None,
             margin: float, tolerance: float) -> dict[str, Any]:
    """Did the child learn to give this held-out answer to its conversation? Mean log-probabilities per token.

    gain: how much likelier the child finds the answer than the parent did, after its own
    conversation. tied: that gain less the gain after another held-out conversation. A child
    trained on answers paired with the wrong requests gains as much, or more, when the request
    is wrong: it learned what the answers sound like, not what they answer. It passes when the
    gain reaches ``margin`` and the gain after the other conversation is no more than
    ``tolerance`` above it (without another conversation, on the gain alone).
    """
    if child is None:
        return {"gain": 0.0, "tied": None, "passed": False, "reason": "no answer tokens to score"}
    gain = child - (parent or 0.0)
    tied = None if child_elsewhere is None else gain - (child_elsewhere - (parent_elsewhere or 0.0))
    if gain < margin:
        reason = "no more likely than under the parent"
    elif tied is not None and tied < -tolerance:
        reason = "as much likelier after another conversation: learned how the answers sound, not what they answer"
    else:
        reason = "ok"
    return {"gain": round(gain, 6), "tied": None if tied is None else round(tied, 6), "passed": reason == "ok",
            "reason": reason}


def _last_user(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def drift_set(cfg: Config, parent: Generation) -> list[tuple[list[dict[str, str]], str]]:
    """The fixed prompts drift is measured on: the tone probes, with the parent's own stored answers."""
    from sqlmodel import select  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        rows = s.exec(select(EvalResult).where(EvalResult.gen_id == parent.id, EvalResult.eval == "style")
                      .order_by(EvalResult.item_key)).all()
    return [([{"role": "user", "content": r.prompt}], r.answer) for r in rows if r.answer.strip()]


def detail_of(r: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An eval result's detail as a dict: the eval's note plus what later stages need."""
    d = r.get("detail")
    base = d if isinstance(d, dict) else ({"note": d} if d else {})
    keep = {k: r[k] for k in ("expected", "stated") if k in r}
    return {**base, **keep, **extra}


def store_results(s, gen_id: int, results: Results) -> None:
    for name, r in results:
        s.add(EvalResult(gen_id=gen_id, eval=name, item_key=r["item_key"], prompt=r["prompt"],
                         reference=r.get("reference", ""), answer=r["answer"], score=float(r["score"]),
                         passed=bool(r["passed"]), detail=json.dumps(detail_of(r), ensure_ascii=False)))

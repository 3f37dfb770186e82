"""A practice round: the active generation attempts the practice split, a verifier judges each attempt, and its
own failures, paired with a better answer, become the next generation's training data.

The attempts are the model's own (on-policy): a pair whose rejected answer another model wrote
barely moves this one. The better answer is Claude's when a key is set and Claude's answer
passes the item's own check, else the item's reference answer; an item with neither is
reported, never trained on. Only the practice split is asked: the held-out split stays the
gates' measure. Difficulty is progressive: a round asks the items up to the current level,
and the level rises once enough of them pass.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlmodel import col, select

from loop import artifacts
from loop.data import facts
from loop.config import Config
from loop.errors import UserError
from loop.evals import agentic, readiness, suites
from loop.evals.generation import flat
from loop.inbox.feedback import write_many
from store.db import active_gen, get_meta, reading, session, set_meta
from store.tables import EvalResult, Generation

STATE = "practice"  # meta key: {"level", "rounds": [summaries]}
TEACH_SYSTEM = ("You are the teacher of a small assistant model. Answer the conversation below exactly as the "
                "assistant should: follow its system prompt to the letter (for an ops request, one JSON tool call "
                "and nothing else). Reply with the answer only.")


def items_for(cfg: Config) -> list[tuple[str, dict[str, Any]]]:
    """(suite name, item) for every practice item of the configured suites."""
    out = [(name, it) for name in cfg.eval.suites for it in suites.load(cfg, name).split("practice")]
    if not out:
        raise UserError(f"the suites {', '.join(cfg.eval.suites)} have no practice items: give some items "
                        "\"split\": \"practice\" (in evals/NAME.jsonl) or add a suite with 'ladder synth tasks'")
    return out


def missed_facts(cfg: Config, gen: int) -> list[tuple[str, dict[str, Any]]]:
    """The facts the generation was asked back and got wrong, as practice items in a drill phrasing; and those its
    children that were not promoted got wrong (it was never asked them: their records wait to be trained again,
    and a wrong answer of its own to the drill question becomes a correction beside them)."""
    with reading(cfg.db_url) as s:
        children = s.exec(select(Generation.id).where(Generation.parent_id == gen,
                                                      col(Generation.status).in_(["rejected", "failed", "cancelled"]))).all()
        rows = s.exec(select(EvalResult).where(col(EvalResult.gen_id).in_([gen, *children]),
                                               EvalResult.passed == False,  # noqa: E712
                                               col(EvalResult.eval).in_(["generalization", "recall"]))
                      .order_by(col(EvalResult.gen_id) != gen, EvalResult.id)).all()
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        detail = json.loads(r.detail)
        if detail.get("kind") == "fact" and "fact" in detail:
            out.setdefault(r.item_key, facts.practice_item(detail["fact"], r.item_key))
    return [("facts", it) for it in list(out.values())[: cfg.eval.fact_items]]


def draw(items: list[tuple[str, dict[str, Any]]], level: int, limit: int) -> list[tuple[str, dict[str, Any]]]:
    """Items up to the current difficulty, hardest first (the newest level is what is being learned)."""
    pick = [x for x in items if x[1]["difficulty"] <= level]
    pick.sort(key=lambda x: (-x[1]["difficulty"], x[0], x[1]["id"]))
    return pick[:limit] if limit else pick


def level_after(results: list[dict[str, Any]], level: int, up_at: float, top: int) -> int:
    at = [r for r in results if r["detail"].get("difficulty") == level]
    rate = sum(r["passed"] for r in at) / len(at) if at else 1.0
    return min(level + 1, top) if rate >= up_at else level


def run(cfg: Config, teacher=None, say: Callable[[str], None] = lambda _: None, limit: int | None = None,
        ingest: bool = True) -> dict[str, Any]:
    """One round on the active generation; the records land in the inbox (and are ingested unless told not to)."""
    from loop.evals import probes  # noqa: PLC0415 - llama.cpp, loaded for the round only
    from loop.model.llm import Runner  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        gen = active_gen(s)
        g = s.get(Generation, gen) if gen is not None else None
        state = get_meta(s, STATE) or {}
    if g is None:
        raise UserError("no generation yet: run 'ladder init' first")
    every = items_for(cfg)
    levels = sorted({it["difficulty"] for _, it in every})
    level = max(min(int(state.get("level", levels[0])), levels[-1]), levels[0])
    chosen = draw(every, level, cfg.practice.items if limit is None else limit)
    chosen = missed_facts(cfg, g.id) + chosen  # what it was taught and did not answer back: retrained first
    say(f"practice: G{g.id} attempts {len(chosen)} practice item(s) up to difficulty {level}")
    e = cfg.eval
    results: list[dict[str, Any]] = []
    with Runner(artifacts.verified_gguf(cfg, g), threads=e.threads, context=e.context, seed=0,
                batch=e.batch) as runner:
        for name in dict.fromkeys(n for n, _ in chosen):
            batch = [it for n, it in chosen if n == name]
            for r, it in zip(probes.run_items(runner, batch, e.suite_max_tokens, list(e.corporate_phrases),
                                              suite=name), batch):
                r["item"] = it
                results.append(r)
    records, skipped, cost = _records(cfg, g.id, results, teacher, say)
    path = write_many(cfg.inbox_dir, records, f"practice-G{g.id}-{{stamp}}") if records else None
    rows = flat(results)
    summary = {"gen": g.id, "level": level, "n": len(results), "passed": sum(r["passed"] for r in results),
               "categories": readiness.categories(rows), "patterns": readiness.patterns(rows),
               "corrections": sum(1 for r in records if "chosen" in r),
               "examples": sum(1 for r in records if "messages" in r), "without_better_answer": skipped,
               "teacher": teacher.model if teacher else "reference answers", "cost_usd": round(cost, 6),
               "file": str(path.relative_to(cfg.root)) if path else None,
               "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    summary["next_level"] = level_after([r for r in results if r["detail"]["suite"] != "facts"], level,
                                        cfg.practice.level_up_at, levels[-1])
    with session(cfg.db_url) as s:
        state = get_meta(s, STATE) or {}
        set_meta(s, STATE, {"level": summary["next_level"],
                            "rounds": (state.get("rounds", []) + [_brief(summary)])[-50:]})
    if path is not None and ingest:
        from loop.inbox import ingest as inbox  # noqa: PLC0415

        report = inbox.ingest(cfg, [path])
        summary |= {"karma": report["karma"], "karma_threshold": report["karma_threshold"]}
    return summary


def _brief(summary: dict[str, Any]) -> dict[str, Any]:
    # The most frequent failure patterns are kept for `ladder synth tasks --target-failures`.
    return {k: summary[k] for k in ("gen", "level", "n", "passed", "corrections", "at")} | {
        "categories": {c: v["rate"] for c, v in summary["categories"].items()}, "patterns": summary["patterns"][:5]}


def _records(cfg: Config, gen: int, results: list[dict[str, Any]], teacher, say) -> tuple[list[dict], int, float]:
    records: list[dict[str, Any]] = []
    skipped, cost = 0, 0.0
    phrases = list(cfg.eval.corporate_phrases)
    for r in results:
        it, answer = r["item"], r["answer"]
        conv = suites.conversation(it)
        tags = ["practice", f"G{gen}", it["category"]]
        prov = {"kind": "practice", "gen": gen, "suite": r["detail"]["suite"], "item": it["id"],
                "difficulty": it["difficulty"], "reason": r["detail"]["reason"]} | ({"fact": it["fact"]} if "fact" in it else {})
        if r["passed"]:
            if cfg.practice.keep_passed and answer.strip():
                records.append({"messages": conv + [{"role": "assistant", "content": answer}],
                                "tags": tags + ["passed"], "provenance": prov | {"teacher": None}})
            continue
        better, source, paid = _better(cfg, it, conv, teacher, phrases, say)
        cost += paid
        if better is None:
            skipped += 1
            continue
        if not answer.strip() or answer.strip() == better.strip():  # nothing to prefer against: a plain example
            records.append({"messages": conv + [{"role": "assistant", "content": better}], "tags": tags,
                            "provenance": prov | {"teacher": source}})
            continue
        records.append({"prompt": conv, "chosen": better, "rejected": answer, "tags": tags,
                        "provenance": prov | {"teacher": source}})
    return records, skipped, cost


def _better(cfg: Config, it: dict[str, Any], conv: list[dict[str, str]], teacher, phrases: list[str],
            say) -> tuple[str | None, str, float]:
    """The better answer and who wrote it: the teacher's if it passes the item's check, else the reference."""
    if teacher is not None and cfg.practice.use_teacher:
        system = TEACH_SYSTEM + ("\n\nThe assistant's system prompt:\n" + conv[0]["content"]
                                 if conv[0]["role"] == "system" else "")
        turns = [m for m in conv if m["role"] != "system"]
        reply = teacher.ask(system, turns, max_tokens=min(cfg.teacher.max_tokens, 512))
        ok, reason = agentic.score(it, reply.text, phrases)
        if ok:
            return reply.text.strip(), teacher.model, reply.cost
        say(f"practice: the teacher's answer to {it['id']} fails its check ({reason}); "
            + ("using the reference" if it.get("reference") else "no better answer"))
        if it.get("reference"):
            return it["reference"], "reference", reply.cost
        return None, "", reply.cost
    if it.get("reference"):
        return it["reference"], "reference", 0.0
    return None, "", 0.0


def last_failures(cfg: Config) -> tuple[int | None, list[dict[str, Any]]]:
    """The failure patterns of the latest practice round that had failures: (its generation, the patterns)."""
    for r in reversed(history(cfg)):
        if r.get("patterns"):
            return r["gen"], r["patterns"]
    return None, []


def history(cfg: Config) -> list[dict[str, Any]]:
    with reading(cfg.db_url) as s:
        return (get_meta(s, STATE) or {}).get("rounds", [])


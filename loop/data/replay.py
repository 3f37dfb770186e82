"""Self-replay: the parent's own answers to general prompts, mixed into the child's dataset.

Replay of earlier generations' data cannot protect general ability when that data was as
narrow as the new data (FACTS.md, "Forgetting, measured"); a few dozen of the parent's own
answers to general prompts can. The pool ships with the product and never holds a recall
probe, so the recall eval is not trained on.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop import faults
from loop.data.jobfiles import read_jsonl, write_rows
from loop.inbox import quality
from loop.config import Config
from loop.evals.scoring import normalize

SENTENCE_END = re.compile(r"[.!?](?=\s|$)")
ASK_FACTOR = 2  # ask at most twice the planned number
# Answers with these findings would teach the child something the parent should not pass on.
DROP = {"empty turn", "refusal", "corporate filler", "looks truncated", "answer too short", "broken tool call"}


def pool(cfg: Config) -> list[str]:
    """The shipped prompts plus the user's files, without duplicates and without any recall probe."""
    from loop.evals import probes as evals  # noqa: PLC0415

    prompts = list(evals.self_replay_prompts())
    for name in cfg.dataset.self_replay_pool:
        path = cfg.resolve(name)
        try:
            prompts += [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as e:
            from loop.errors import UserError  # noqa: PLC0415

            raise UserError(f"dataset.self_replay_pool: cannot read {path} ({e.strerror}); fix the path") from None
    probes = {normalize(p["prompt"]) for p in evals.probe_items()}
    seen: set[str] = set()
    out = []
    for p in prompts:
        key = normalize(p)
        if key and key not in seen and key not in probes:
            seen.add(key)
            out.append(p)
    return out


def planned(share: float, cap: int, rows: int, available: int) -> int:
    """How many self-replay rows make up `share` of the training rows, within the cap and the pool."""
    if share <= 0 or rows <= 0:
        return 0
    wanted = math.ceil(round(rows * share / (1 - share), 9))  # round: 70 * 0.3 / 0.7 is 30.000000000000004
    return max(0, min(wanted, cap, available))


def choose(prompts: list[str], n: int, seed: int) -> list[str]:
    return random.Random(seed).sample(prompts, min(n, len(prompts)))


def trim(answer: str, min_chars: int = 20) -> str:
    """An answer cut off by the token limit, back to its last full sentence.

    Most of the parent's answers run past `self_replay_max_tokens`; dropping them all threw
    away half the pool, and teaching the cut-off text would teach stopping mid-sentence.
    What is left must still say something (`min_chars`), or the answer stays as it was.
    """
    text = answer.strip()
    if not text or text[-1] in ".!?)\"'`*" or text.count("```") % 2:
        return text
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    return text[: ends[-1]].rstrip() if ends and ends[-1] >= min_chars else text


def keep(prompt: str, answer: str, phrases: list[str], min_quality: float) -> tuple[bool, list[str]]:
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer.strip()}]
    score, reasons = quality.score(messages, phrases)
    return score >= min_quality and not DROP & set(reasons), reasons


def collect(ask: Callable[[str], str], prompts: list[str], n: int, phrases: list[str],
            min_quality: float, ahead: Callable[[list[str]], None] | None = None,
            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ask down `prompts` until `n` answers are kept (or ASK_FACTOR * n were asked): kept, dropped.

    Asking on past a dropped answer keeps the share the config asks for; the cap bounds the
    time when the parent answers most prompts badly. ``ahead`` (when given) is handed the
    prompts about to be asked, as many as could still be needed, to decode side by side.
    """
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    fetched = 0
    for i, prompt in enumerate(prompts):
        if len(kept) >= n or len(kept) + len(dropped) >= ASK_FACTOR * n:
            break
        if ahead is not None and i >= fetched:
            want = min(n - len(kept), ASK_FACTOR * n - len(kept) - len(dropped))
            ahead(prompts[i: i + want])
            fetched = i + want
        raw = ask(prompt)
        answer = trim(raw)
        ok, reasons = keep(prompt, answer, phrases, min_quality)
        record = {"prompt": prompt, "answer": answer, "reasons": reasons, "trimmed": answer != raw.strip()}
        (kept if ok else dropped).append(record)
    return kept, dropped


def interleave(rows: list[dict[str, Any]], extra: list[dict[str, Any]], stage: str) -> list[dict[str, Any]]:
    """Spread `extra` evenly through the rows of `stage` (appended after the rest if it has none).

    Training is not shuffled, so where replay sits matters: spread out, every stretch of
    the run sees some of it, and the last steps are not all new data.
    """
    if not extra:
        return rows
    idx = [i for i, r in enumerate(rows) if r["_stage"] == stage]
    if not idx:
        return rows + extra
    span = rows[idx[0]: idx[-1] + 1]
    merged = sorted([((i + 0.5) / len(span), 0, r) for i, r in enumerate(span)] +
                    [((j + 0.5) / len(extra), 1, r) for j, r in enumerate(extra)], key=lambda t: (t[0], t[1]))
    return rows[: idx[0]] + [r for _, _, r in merged] + rows[idx[-1] + 1:]


def run(cfg: Config, parent_gguf: Path, job_dir: Path, gen_id: int) -> dict[str, Any]:
    """Ask the parent, keep the good answers, and weave them into the job's dataset files."""
    from loop.model.llm import Runner  # noqa: PLC0415

    rows = [r | s for r, s in zip(read_jsonl(job_dir / "dataset.jsonl"), read_jsonl(job_dir / "dataset_sources.jsonl"))]
    rows = [{**{k: v for k, v in r.items() if k not in ("source", "stage")}, "_source": r["source"], "_stage": r["stage"]}
            for r in rows]
    prompts = pool(cfg)
    n = planned(cfg.dataset.self_replay_share, cfg.dataset.self_replay_max, len(rows), len(prompts))
    order = choose(prompts, len(prompts), cfg.dataset.seed + gen_id)
    kept: list[dict[str, Any]] = []
    dropped: list[dict[str, Any]] = []
    if n:
        with Runner(parent_gguf, threads=cfg.eval.threads, context=cfg.eval.context, seed=0,
                    batch=cfg.eval.batch) as runner:
            limit = cfg.dataset.self_replay_max_tokens
            kept, dropped = collect(lambda q: runner.chat([{"role": "user", "content": q}], limit),
                                    order, n, list(cfg.eval.corporate_phrases), cfg.karma.min_quality,
                                    ahead=lambda qs: runner.prefetch([([{"role": "user", "content": q}], limit, False)
                                                                      for q in qs]))
    extra = [{"messages": [{"role": "user", "content": k["prompt"]}, {"role": "assistant", "content": k["answer"].strip()}],
              "_source": "self_replay", "_stage": "conversations"} for k in kept]
    stages = list(cfg.dataset.curriculum)
    target = "conversations" if "conversations" in stages or not stages else stages[-1]
    faults.point("replay.answered")
    write_rows(job_dir, interleave(rows, [e | {"_stage": target} for e in extra], target))
    with (job_dir / "self_replay.jsonl").open("w", encoding="utf-8") as f:
        for r in kept + dropped:
            f.write(json.dumps(r | {"kept": r in kept}, ensure_ascii=False) + "\n")
    return {"self_replay": len(kept), "self_replay_planned": n, "self_replay_asked": len(kept) + len(dropped),
            "self_replay_dropped": len(dropped), "self_replay_trimmed": sum(r["trimmed"] for r in kept)}

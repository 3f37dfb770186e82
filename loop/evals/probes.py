"""The evals a generation must pass: probes (recall), reference answers, style drift, confidence.

Every eval asks its items one at a time through a ``loop.llm.Runner`` (greedy,
empty KV cache per call, so the same GGUF and items give the same results) and
returns one result per item:

    {"item_key", "prompt", "reference", "answer", "score", "passed", "detail"}

plus an aggregate. A share over no items is ``None`` (nothing was measured),
never a made-up 0 or 1; the caller decides what an empty eval means for a gate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop.errors import OperationFailed, UserError
from loop.evals.scoring import Answered, corporate_hits, keyword_pass, matched_keyword, rouge_l_f1, stated_confidences

ASSETS = Path(__file__).resolve().parents[1] / "assets"
PROBES_FILE = ASSETS / "probes.jsonl"
SELF_REPLAY_FILE = ASSETS / "self_replay_prompts.txt"

Result = dict[str, Any]
OnResult = Callable[[Result], None] | None


def probe_items(path: Path = PROBES_FILE) -> list[dict[str, Any]]:
    """The general-knowledge probes: one JSON object per line, ``{"key", "prompt", "answers"}``."""
    items, keys = [], set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            ok = (isinstance(item["key"], str) and isinstance(item["prompt"], str)
                  and item["answers"] and all(isinstance(a, str) for a in item["answers"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok or item["key"] in keys:
            raise UserError(f"{path}:{number}: expected a unique key, a prompt and a list of answers")
        keys.add(item["key"])
        items.append(item)
    return items


def self_replay_prompts(path: Path = SELF_REPLAY_FILE) -> list[str]:
    """General prompts, one per line, that the parent answers to make self-replay data."""
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def ahead(runner, requests: list[tuple[list[dict[str, str]], int, bool]]) -> None:
    """Let a runner that decodes side by side answer these (messages, max_tokens, raw) questions first.

    The questions are then asked one by one as before and come back at once; a runner
    without ``prefetch`` (a test's fake) just answers them one by one.
    """
    prefetch = getattr(runner, "prefetch", None)
    if prefetch is not None and requests:
        prefetch(requests)


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def share_passed(results: list[Result]) -> float | None:
    """Passed items / all items, or None for no items."""
    return sum(r["passed"] for r in results) / len(results) if results else None


def run_probes(runner, items: list[dict[str, Any]], max_tokens: int, *, raw: bool = False,
               on_result: OnResult = None) -> tuple[list[Result], float | None]:
    """Ask each probe as one user message; keyword scoring.

    Rule: an item passes when ``scoring.keyword_pass(answer, item["answers"])``:
    some accepted answer appears in the normalized reply as a whole word or
    phrase (case, punctuation and markup ignored). score is 1.0 or 0.0; detail
    names the accepted answer found. Aggregate: share of items passed. An answer
    ends as soon as an accepted answer is in it for good (``scoring.settled``):
    nothing after it could change the verdict, and about half of what the
    probes decoded came after it.
    """
    asked = probe_requests(items, max_tokens, raw)  # the same questions, so the ones handed ahead are reused
    ahead(runner, asked)
    results = []
    for item, (messages, _, _, until) in zip(items, asked):
        answer = runner.chat(messages, max_tokens, raw=raw, until=until)
        found = matched_keyword(answer, item["answers"])
        detail = f"found {found!r}" if found is not None else "no accepted answer found"
        results.append(_emit(on_result, item["key"], item["prompt"], " | ".join(item["answers"]),
                             answer, 1.0 if found is not None else 0.0, found is not None, detail))
    return results, share_passed(results)


# The same question asked two more ways: a base model that answers right only in one
# wording does not know the answer steadily.
REPHRASINGS = ("Question: {q}", "{q} Answer in one sentence.")


def steady_keys(runner, items: list[dict[str, Any]], results: list[Result], max_tokens: int) -> set[str]:
    """The probes answered right as asked and in every rephrasing too (all greedy).

    A child that loses an item the base got right by luck has hardly forgotten anything:
    counting such items made the recall gate reject children for noise.
    """
    by_key = {it["key"]: it for it in items}
    left = [by_key[r["item_key"]] for r in results if r["passed"]]
    for form in REPHRASINGS:  # each wording asked only of the items that passed the ones before it
        asked = probe_requests([item | {"prompt": form.format(q=item["prompt"])} for item in left], max_tokens)
        ahead(runner, asked)
        left = [item for item, (messages, _, _, until) in zip(left, asked)
                if keyword_pass(runner.chat(messages, max_tokens, until=until), item["answers"])]
    return {item["key"] for item in left}


def run_reference(runner, items: list[dict[str, Any]], max_tokens: int, threshold: float, *,
                  raw: bool = False, on_result: OnResult = None) -> tuple[list[Result], float | None]:
    """Answer each conversation and compare the reply with the reference assistant turn.

    Items are ``{"key", "messages", "reference"}``: ``messages`` is the
    conversation up to the held-out assistant turn, ``reference`` that turn.
    Rule: score = ``scoring.rouge_l_f1(answer, reference)`` (word-level LCS F1
    after normalization); an item passes when score >= threshold. Aggregate:
    share of items passed.
    """
    ahead(runner, [(item["messages"], max_tokens, raw) for item in items])
    results = []
    for item in items:
        answer = runner.chat(item["messages"], max_tokens, raw=raw)
        score = rouge_l_f1(answer, item["reference"])
        results.append(_emit(on_result, item["key"], _last_user(item["messages"]), item["reference"],
                             answer, score, score >= threshold,
                             f"ROUGE-L F1 {score:.2f} (pass at {threshold:.2f})"))
    return results, share_passed(results)


def run_style(runner, probes: list[str], phrases: list[str], max_tokens: int, *,
              raw: bool = False, on_result: OnResult = None) -> tuple[list[Result], int]:
    """Ask each tone probe and count the replies that use corporate phrasing.

    Rule: a reply is corporate when ``scoring.corporate_hits(answer, phrases)``
    is not empty: a phrase occurs case-insensitively, not inside a longer word.
    Per item, score is 1.0 for corporate and 0.0 otherwise, passed means not
    corporate, and detail lists the phrases hit. Aggregate: the number of
    corporate replies, an int in 0..len(probes) (style drift; lower is better).
    """
    ahead(runner, style_requests(probes, max_tokens, raw))
    results = []
    for number, probe in enumerate(probes, 1):
        answer = runner.chat(_user(probe), max_tokens, raw=raw)
        hits = corporate_hits(answer, phrases)
        detail = "corporate: " + ", ".join(hits) if hits else "no corporate phrase"
        results.append(_emit(on_result, f"tone{number:02d}", probe, "", answer,
                             1.0 if hits else 0.0, not hits, detail))
    return results, sum(not r["passed"] for r in results)


def trajectory_score(expected: list[int], stated: list[int], tolerance: int = 10) -> float:
    """Share of positions where the stated confidence is within ``tolerance`` points of the expected one.

    Positions run over the longer of the two lists, so a missing or extra
    statement counts as a miss. Two empty lists score 1.0.
    """
    length = max(len(expected), len(stated))
    if length == 0:
        return 1.0
    hits = sum(abs(e - s) <= tolerance for e, s in zip(expected, stated))
    return hits / length


def run_confidence(runner, items: list[dict[str, Any]], max_tokens: int, tolerance: int = 10, *,
                   raw: bool = False, on_result: OnResult = None) -> tuple[list[Result], float | None]:
    """Answer reasoning scenarios and compare the stated confidence trajectory with the expected one.

    Items are ``{"key", "messages", "trajectory"}`` with ``trajectory`` the
    confidences (percents) the reference states, in order. Rule: ``stated`` =
    ``scoring.stated_confidences(answer)``; score = ``trajectory_score(expected,
    stated, tolerance)``; an item passes when score is 1.0 (as many statements
    as expected, each within ``tolerance`` points). Each result also carries
    ``expected`` and ``stated`` lists. Aggregate: mean score.
    """
    ahead(runner, [(item["messages"], max_tokens, raw) for item in items])
    results = []
    for item in items:
        answer = runner.chat(item["messages"], max_tokens, raw=raw)
        expected, stated = [int(v) for v in item["trajectory"]], stated_confidences(answer)
        score = trajectory_score(expected, stated, tolerance)
        result = _result(item["key"], _last_user(item["messages"]), _trajectory(expected), answer,
                         score, score == 1.0, f"expected {_trajectory(expected)}; stated {_trajectory(stated)}")
        result.update(expected=expected, stated=stated)
        if on_result:
            on_result(result)
        results.append(result)
    mean = sum(r["score"] for r in results) / len(results) if results else None
    return results, mean


def _trajectory(values: list[int]) -> str:
    return " -> ".join(f"{v}%" for v in values) if values else "none"


def _last_user(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")


def _result(key: str, prompt: str, reference: str, answer: str, score: float, passed: bool,
            detail: str) -> Result:
    return {"item_key": key, "prompt": prompt, "reference": reference, "answer": answer,
            "score": score, "passed": bool(passed), "detail": detail}


def _emit(on_result: OnResult, *fields: Any) -> Result:
    result = _result(*fields)
    if on_result:
        on_result(result)
    return result


def item_requests(items: list[dict[str, Any]], max_tokens: int) -> list[tuple[list[dict[str, str]], int, bool]]:
    """The questions ``run_items`` asks, for ``ahead``."""
    from loop.evals.suites import conversation  # noqa: PLC0415

    return [(conversation(item) if "category" in item else item["messages"], max_tokens, False) for item in items]


def probe_requests(items: list[dict[str, Any]], max_tokens: int,
                   raw: bool = False) -> list[tuple[list[dict[str, str]], int, bool]]:
    """The questions ``run_probes`` asks, for ``ahead``."""
    return [(_user(item["prompt"]), max_tokens, raw, Answered(item["answers"])) for item in items]


def style_requests(probes: list[str], max_tokens: int, raw: bool = False) -> list[tuple[list[dict[str, str]], int, bool]]:
    """The questions ``run_style`` asks, for ``ahead``."""
    return [(_user(probe), max_tokens, raw) for probe in probes]


def run_items(runner, items: list[dict[str, Any]], max_tokens: int, phrases: list[str], *, suite: str = "",
              on_result: OnResult = None) -> list[Result]:
    """Ask each agent item (a suite item, or a held-out tool call) and judge it by its expectation.

    Rule: ``agentic.score(item, answer)`` (see loop.evals.agentic); score is 1.0 or 0.0 and detail
    carries the category, the reason ("ok" or what was wrong), the split and the difficulty.
    """
    from loop.evals import agentic  # noqa: PLC0415
    from loop.evals.suites import conversation  # noqa: PLC0415

    ahead(runner, item_requests(items, max_tokens))
    results = []
    for item in items:
        messages = conversation(item) if "category" in item else item["messages"]
        scored = item if "category" in item else {"category": "fact" if item.get("type") == "fact" else "task",
                                                  "expect": item["expect"]}
        try:
            answer = runner.chat(messages, max_tokens)
            passed, reason = agentic.score(scored, answer, phrases)
        except OperationFailed as e:  # the item does not fit eval.context: a failure of the item, not of the eval
            answer, passed, reason = "", False, f"not asked: {e}"
        result = _result(item.get("id", item.get("key")), _last_user(messages), json.dumps(item["expect"]), answer,
                         1.0 if passed else 0.0, passed, "")
        result["detail"] = {"category": scored["category"], "reason": reason, "split": item.get("split"),
                            "difficulty": item.get("difficulty"), "suite": suite}
        if on_result:
            on_result(result)
        results.append(result)
    return results

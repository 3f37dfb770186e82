"""Is a generation ready for work? Per-category pass rates on the held-out suite items against minimums.

The report names each blocker in words, with the failure that blocks it most ("tool_call 0.62 <
0.80: 9 of 24 answers used \"action\" instead of \"tool\""), and groups every failure by its
pattern across categories, so the next round of data can target it (the seed's pattern detection).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from loop.evals.stats import wilson

CATEGORY_ORDER = ("tool_call", "task", "context", "persona", "fact")
# Reasons that name a value become one pattern each: "wrong name: 'x' instead of 'y'" -> "wrong name".
_PATTERNS = [
    (re.compile(r"^called \S+ instead of \S+$"), "called the wrong tool"),
    (re.compile(r"^wrong (\w+):.*"), r"wrong \1"),
    (re.compile(r"^missing argument (\w+)$"), r"missing argument \1"),
    (re.compile(r"^missing '.*'$"), "left out a value from earlier turns"),
    (re.compile(r"^too long for an? .*"), "too long for the user"),
    (re.compile(r"^corporate phrasing .*"), "corporate phrasing"),
    (re.compile(r"^\d+ tool calls where one was wanted$"), "several tool calls where one was wanted"),
    (re.compile(r"^\d+ emojis .*"), "more than one emoji"),
    (re.compile(r"^emoji for .*"), "an emoji for a user who is not casual"),
]


def pattern_of(reason: str) -> str:
    for rx, name in _PATTERNS:
        if rx.match(reason):
            return rx.sub(name, reason) if "\\" in name else name
    return reason


def categories(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per category: passed, total, rate and its 95 % Wilson interval."""
    counts: dict[str, list[int]] = {}
    for r in results:
        c = counts.setdefault(r["category"], [0, 0])
        c[0] += bool(r["passed"])
        c[1] += 1
    ordered = sorted(counts, key=lambda c: (CATEGORY_ORDER.index(c) if c in CATEGORY_ORDER else 99, c))
    return {c: {"passed": counts[c][0], "total": counts[c][1], "rate": round(counts[c][0] / counts[c][1], 4),
                "ci95": wilson(*counts[c])} for c in ordered}


def patterns(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Failures grouped by pattern, most frequent first: {"pattern", "count", "share", "categories"}."""
    failed = [r for r in results if not r["passed"]]
    by: dict[str, Counter] = {}
    for r in failed:
        by.setdefault(pattern_of(r["reason"]), Counter())[r["category"]] += 1
    total = len(failed)
    out = [{"pattern": p, "count": sum(c.values()), "share": round(sum(c.values()) / total, 4),
            "categories": dict(c)} for p, c in by.items()]
    return sorted(out, key=lambda x: (-x["count"], x["pattern"]))


def report(gen: int | None, results: list[Mapping[str, Any]], minimums: Mapping[str, float]) -> dict[str, Any]:
    """{"gen", "ready", "categories": {NAME: {passed, total, rate, min, ci95}}, "overall", "blockers", "patterns"}.

    `minimums` maps a category to its minimum pass rate, and "overall" to the minimum over all items;
    a category with a minimum and no items is a blocker too (nothing was measured).
    """
    cats = categories(results)
    for name, c in cats.items():
        c["min"] = minimums.get(name)
    blockers = []
    for name, floor in minimums.items():
        if name == "overall":
            continue
        c = cats.get(name)
        if c is None:
            blockers.append(f"{name}: no held-out items were asked (minimum {floor:.2f})")
        elif c["rate"] < floor:
            blockers.append(f"{name} {c['rate']:.2f} < {floor:.2f}" + _worst(name, results))
    passed, total = sum(bool(r["passed"]) for r in results), len(results)
    overall = {"passed": passed, "total": total, "rate": round(passed / total, 4) if total else None,
               "min": minimums.get("overall"), "ci95": wilson(passed, total)}
    if overall["min"] is not None and (overall["rate"] is None or overall["rate"] < overall["min"]):
        shown = "no items" if overall["rate"] is None else f"{overall['rate']:.2f}"
        blockers.append(f"overall {shown} < {overall['min']:.2f}")
    return {"gen": gen, "ready": not blockers, "categories": cats, "overall": overall, "blockers": blockers,
            "patterns": patterns(results)}


def _worst(category: str, results: list[Mapping[str, Any]]) -> str:
    mine = [r for r in results if r["category"] == category]
    failed = Counter(pattern_of(r["reason"]) for r in mine if not r["passed"])
    if not failed:
        return ""
    pattern, n = failed.most_common(1)[0]
    return f": {n} of {len(mine)} answers: {pattern}"

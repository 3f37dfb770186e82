"""Scorers for what an agent does: its tool calls, their arguments, what it kept from earlier turns, its tone.

Every scorer is a pure function of the answer and what the item expects, and returns
(passed, reason): the reason says what was wrong, in words a pattern can be counted by
("used \"action\" instead of \"tool\""), or "ok". The rules are in the README.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any

from loop.evals.scoring import corporate_hits

OK = "ok"
NONE = "none"
FENCE = re.compile(r"```[a-zA-Z0-9_-]*\n?|```")
EMOJI = re.compile("[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F000-\U0001F02F\U0001F1E6-\U0001F1FF]")
ACKNOWLEDGE = ("got it", "on it", "checking", "looking", "understood", "right away", "okay", "ok,", "ok.", "i'm on",
               "i am on", "let's", "first,", "first:", "step 1", "1.", "don't panic", "stay calm", "hang tight")
# Words an answer may have for each persona: an executive wants it short, a learner wants it explained.
WORDS = {"casual": (1, 80), "senior_engineer": (1, 100), "stressed_oncall": (1, 60), "curious_learner": (20, 250),
         "executive": (1, 60)}
PERSONAS = tuple(WORDS)


def find_objects(text: str) -> list[tuple[int, int, str]]:
    """Every top-level {...} span in the text (braces counted, strings respected): (start, end, text)."""
    out, depth, start, in_string, escaped, quote = [], 0, -1, False, False, ""
    for i, c in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                in_string = False
        elif c in "\"'" and depth > 0:
            in_string, quote = True, c
        elif c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append((start, i + 1, text[start:i + 1]))
    return out


def parse_call(span: str) -> tuple[dict[str, Any] | None, str]:
    """One {...} span as a dict: (value, "json"), (value, "python") for dict syntax, or (None, "")."""
    try:
        value = json.loads(span)
        return (value, "json") if isinstance(value, dict) else (None, "")
    except ValueError:
        pass
    try:
        value = ast.literal_eval(span)
        return (value, "python") if isinstance(value, dict) else (None, "")
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None, ""


def calls(answer: str) -> list[tuple[dict[str, Any], str, tuple[int, int]]]:
    """The tool-call-like objects in an answer: (object, "json" or "python", span); other braces are ignored."""
    out = []
    for start, end, span in find_objects(answer):
        value, syntax = parse_call(span)
        if value is not None and ({"tool", "action", "function", "name"} & value.keys() or "args" in value):
            out.append((value, syntax, (start, end)))
    return out


def tool_call_format(answer: str, want_tool: bool) -> tuple[bool, str]:
    """Rule: a wanted call is exactly one JSON object with "tool" and an "args" object and nothing else around
    it (a code fence is allowed); when no tool is wanted, a plain answer or {"tool": "none"} is right."""
    found = calls(answer)
    if not want_tool:
        named = [c for c, _, _ in found if str(c.get("tool", c.get("action", ""))).lower() != NONE]
        return (True, OK) if not named else (False, "called a tool when none was wanted")
    if not found:
        return False, "no tool call"
    if len(found) > 1:
        return False, f"{len(found)} tool calls where one was wanted"
    call, syntax, (start, end) = found[0]
    if syntax == "python":
        return False, "Python-dict syntax instead of JSON"
    if "tool" not in call:
        return False, 'used "action" instead of "tool"' if "action" in call else 'no "tool" key'
    if not isinstance(call.get("args"), dict):
        return False, '"args" missing or not an object'
    around = FENCE.sub("", answer[:start] + answer[end:]).strip()
    if around:
        return False, "prose around the tool call"
    return True, OK


def called_tool(answer: str) -> str | None:
    found = calls(answer)
    return str(found[0][0].get("tool")) if len(found) == 1 and "tool" in found[0][0] else None


def tool_choice(answer: str, tool: str) -> tuple[bool, str]:
    """Category tool_call: the format is right and it is the expected tool (or no tool, for "none")."""
    ok, reason = tool_call_format(answer, tool != NONE)
    if not ok or tool == NONE:
        return ok, reason
    got = called_tool(answer)
    return (True, OK) if got == tool else (False, f"called {got} instead of {tool}")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    if isinstance(a, (int, float)) and isinstance(b, str) or isinstance(a, str) and isinstance(b, (int, float)):
        return str(a).strip() == str(b).strip()  # 40 and "40" mean the same to a tool
    return a == b


def task_success(answer: str, tool: str, args: dict[str, Any], exact: bool = False) -> tuple[bool, str]:
    """Category task: the right tool with the right arguments (the expected keys with equal values, or exactly
    those keys with `exact`); strings compare without case or surrounding space, 40 equals "40"."""
    ok, reason = tool_choice(answer, tool)
    if not ok or tool == NONE:
        return ok, reason
    got = calls(answer)[0][0].get("args") or {}
    missing = [k for k in args if k not in got]
    if missing:
        return False, f"missing argument {missing[0]}"
    wrong = [k for k in args if not _same(got[k], args[k])]
    if wrong:
        return False, f"wrong {wrong[0]}: {got[wrong[0]]!r} instead of {args[wrong[0]]!r}"
    extra = sorted(set(got) - set(args))
    if exact and extra:
        return False, f"unexpected argument {extra[0]}"
    return True, OK


def contains(answer: str, needles: Sequence[str]) -> tuple[bool, str]:
    """Every expected value appears in the answer, whole: not inside a longer word or number ("7301" is not in
    "17301", "/mnt/cold" is in "/mnt/cold/wiki"); case is ignored."""
    text = answer.casefold()
    for needle in needles:
        n = needle.strip().casefold()
        if not n or not re.search(rf"(?<![0-9a-z]){re.escape(n)}(?![0-9a-z])", text):
            return False, f"missing {needle!r}"
    return True, OK


def regex(answer: str, pattern: str) -> tuple[bool, str]:
    try:
        return (True, OK) if re.search(pattern, answer, re.IGNORECASE | re.DOTALL) else (False, "no match for the pattern")
    except re.error as e:
        return False, f"bad pattern ({e})"


def persona(answer: str, who: str, corporate_phrases: Sequence[str]) -> tuple[bool, str]:
    """The seed's five personas as rules: length bounds, at most one emoji and only for casual, a TL;DR first
    line for an executive, an acknowledgement first for a stressed on-call, no corporate phrasing for anyone."""
    text = answer.strip()
    if not text:
        return False, "empty answer"
    hits = corporate_hits(text, corporate_phrases)
    if hits:
        return False, f"corporate phrasing ({hits[0]})"
    emojis = len(EMOJI.findall(text))
    if emojis and who != "casual":
        return False, f"emoji for a {who.replace('_', ' ')} user"
    if emojis > 1:
        return False, f"{emojis} emojis (one at most)"
    lo, hi = WORDS[who]
    n = len(text.split())
    if n > hi:
        return False, f"too long for a {who.replace('_', ' ')} user ({n} words, at most {hi})"
    if n < lo:
        return False, f"too short to explain ({n} words, at least {lo})"
    first = text.splitlines()[0].strip().casefold().lstrip("*#> -")
    if who == "executive" and not first.startswith(("tl;dr", "tldr", "tl dr")):
        return False, "no TL;DR first line"
    if who == "stressed_oncall" and not first.startswith(ACKNOWLEDGE):
        return False, "no acknowledgement first"
    return True, OK


def score(item: dict[str, Any], answer: str, corporate_phrases: Sequence[str] = ()) -> tuple[bool, str]:
    """An item's verdict by its expectation: tool (and args), persona, contains, not_contains, regex."""
    expect = item["expect"]
    if "tool" in expect:
        if "args" in expect or item.get("category") == "task":
            return task_success(answer, expect["tool"], expect.get("args") or {}, bool(expect.get("exact")))
        return tool_choice(answer, expect["tool"])
    if "persona" in expect:
        return persona(answer, expect["persona"], corporate_phrases)
    checks: list[tuple[bool, str]] = []
    if "contains" in expect:
        checks.append(contains(answer, expect["contains"]))
    if "not_contains" in expect:
        bad = [n for n in expect["not_contains"] if contains(answer, [n])[0]]
        checks.append((False, f"contains {bad[0]!r}") if bad else (True, OK))
    if "regex" in expect:
        checks.append(regex(answer, expect["regex"]))
    failed = [c for c in checks if not c[0]]
    return failed[0] if failed else (True, OK)

"""Quality score and karma of one record: pure rules, documented in the README."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

# Each finding lowers the score from 1.0 by its penalty; the score is clamped to [0, 1].
PENALTIES = {
    "empty turn": 0.5,
    "repetitive": 0.6,
    "broken tool call": 0.5,
    "refusal": 0.4,
    "corporate filler": 0.3,
    "answer too short": 0.3,
    "looks truncated": 0.2,
    "very long": 0.1,
}
REFUSALS = re.compile(
    r"\b(i can(?:no|')t (?:help|assist|do that|comply|provide|answer)"
    r"|i(?: am|'m) (?:not able|unable) to (?:help|assist|provide|answer)"
    r"|i won'?t be able to help|i must decline|i(?: am|'m) not comfortable (?:helping|providing))\b",
    re.IGNORECASE,
)
FENCED_JSON = re.compile(r"```(?:json)?\s*\n(\{.*?\})\s*\n```", re.DOTALL)
LONG_CHARS = 4000


def score(messages: Sequence[Mapping[str, Any]], corporate_phrases: Sequence[str], kind: str = "chat") -> tuple[float, list[str]]:
    """Return (quality in 0..1, reasons) for a record's turns."""
    found: list[str] = []
    if kind == "document":
        text = " ".join(m.get("content", "") for m in messages)
        if len(text.strip()) < 20:
            found.append("answer too short")
        return _total(found)
    # One pass over the turns: ingest scores every record, and a pass per check cost more than the checks.
    answers: list[Mapping[str, Any]] = []
    said: list[str] = []
    systems: list[str] = []
    empty = calls = False
    for m in messages:
        role, content, tool_calls = m.get("role"), str(m.get("content", "")), m.get("tool_calls")
        if role == "assistant":
            answers.append(m)
            said.append(content)
        if role == "system":
            systems.append(content)
        elif not tool_calls and not content.strip():
            empty = True
        calls = calls or bool(tool_calls)
    if empty:
        found.append("empty turn")
    text = "\n".join(said)
    low = text.lower()
    if REFUSALS.search(text):
        found.append("refusal")
    if _phrases(tuple(corporate_phrases)).search(low):
        found.append("corporate filler")
    meant = calls or any(TOOL_WORDS.search(s) for s in systems)  # tools_expected, from what the pass saw
    # Without a brace or a tool call in any answer there is no tool call to be broken.
    if (calls or "{" in text) and any(_broken_tool_call(content, meant) or _broken_tool_calls(m.get("tool_calls"))
                                      for m, content in zip(answers, said)):
        found.append("broken tool call")
    if repetitive(text):
        found.append("repetitive")
    last = str(answers[-1].get("content", "")).strip() if answers else ""
    if answers and len(last) < 2 and not answers[-1].get("tool_calls"):
        found.append("answer too short")
    elif (len(last) > 120 and last[-1].isalnum() and not last.endswith("}")) or last.count("```") % 2:
        found.append("looks truncated")  # mid-sentence, or a code block that never closes
    if len(text) > LONG_CHARS:
        found.append("very long")
    return _total(found)


@functools.lru_cache(maxsize=8)
def _phrases(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """Any of the phrases, lower-cased, anywhere in a lower-cased text: one scan of the text instead of one per
    phrase. A pattern that never matches when there are none."""
    words = sorted({p.lower() for p in phrases if p})
    return re.compile("|".join(map(re.escape, words)) if words else "(?!)")


def _total(found: list[str]) -> tuple[float, list[str]]:
    if not found:
        return 1.0, found
    value = 1.0 - sum(PENALTIES[f] for f in found)
    return round(min(1.0, max(0.0, value)), 4), found


TOOL_WORDS = re.compile(r"\btool(s| call|_call)?\b|\bfunction call", re.IGNORECASE)
SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")


def tools_expected(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether answers of this record are meant to be tool calls: its system prompt speaks of tools, or a turn
    is one. A JSON config or a code block in an ordinary answer is not a tool call, broken or not."""
    if any(m.get("tool_calls") for m in messages):
        return True
    return any(m.get("role") == "system" and TOOL_WORDS.search(str(m.get("content", ""))) for m in messages)


def _broken_tool_call(content: str, meant: bool) -> bool:
    """A reply meant as a JSON tool call, whole or in a fenced block, must parse and name its tool under "tool"."""
    body = content.strip()
    if not (body.startswith("{") and body.endswith("}")):
        return "```" in content and any(_broken_tool_call(block, meant) for block in FENCED_JSON.findall(content))
    try:
        call = json.loads(body)
    except ValueError:
        return meant
    if not isinstance(call, dict):
        return meant
    if "tool" in call:
        return not isinstance(call.get("args", {}), dict)
    # A whole answer that is one object naming an "action" is a tool call written the wrong way round.
    return (meant and ("function" in call or "args" in call)) or "action" in call


def repetitive(text: str) -> bool:
    """The same sentence or line over and over: a loop the model fell into, not an answer."""
    # Each piece but the first starts after one of these: fewer than five, fewer than six pieces.
    if text.count(".") + text.count("!") + text.count("?") + text.count("\n") < 5:
        return False
    pieces = [s.strip().lower() for s in SENTENCES.split(text) if len(s.strip()) > 3]
    return len(pieces) >= 6 and len(set(pieces)) / len(pieces) < 0.3


def _broken_tool_calls(calls: Any) -> bool:
    """OpenAI-style tool calls need a function name and arguments that are a JSON object."""
    if not calls:
        return False
    if not isinstance(calls, list):
        return True
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"].strip():
            return True
        args = fn.get("arguments", "{}")
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except ValueError:
                return True
        if not isinstance(args, dict):
            return True
    return False


def karma(quality: float, kind: str, weights: Mapping[str, float], min_quality: float, source: str | None = None) -> float:
    """Karma a record earns: its quality times its source's weight (else its kind's), nothing below min_quality."""
    if quality < min_quality:
        return 0.0
    if kind == "undesirable":  # its source's weight is for examples to follow; this is one not to
        return round(quality * float(weights.get(kind, 0.0)), 4)
    weight = weights.get(source, weights.get(kind, 1.0)) if source else weights.get(kind, 1.0)
    return round(quality * float(weight), 4)

"""CHAOS scenarios: internal voices, confidence, reality breaks and an outcome, made into training examples.

The three conversions are the seed's (chaos-training.md): "thought" (the thought process as one answer),
"action" (an action sequence) and "multi_turn" (the scenario as a conversation that goes wrong and recovers).
Every stated confidence is written as a "Confidence: N%" line so a model learns to say it, and the whole
trajectory is kept in meta["confidence_trajectory"] for the confidence views.
"""

from __future__ import annotations

import re
from typing import Any

from loop.inbox.formats.base import Record
from loop.inbox.formats.common import BadShape, common_fields, meta_of

PARTS = {"tools_available", "internal_dialogue", "confidence_trajectory", "reality_breaks", "final_outcome"}
VOICE_ORDER = ("optimizer", "skeptic", "creative", "pragmatist")
PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$")


def record(obj: dict[str, Any], pos: int, style: str) -> Record:
    scenario = obj.get("scenario")
    if not isinstance(scenario, str) or not scenario.strip():
        raise BadShape("a CHAOS scenario needs a non-empty 'scenario' text")
    s = _Scenario(obj)
    if not (s.rounds or s.breaks or s.outcome):
        raise BadShape("CHAOS scenario has no internal_dialogue, reality_breaks or final_outcome: "
                       "nothing for the assistant to say")
    if style == "multi_turn":
        messages, kind = s.multi_turn(), "chat"
    else:
        prompt, answer = (s.thought() if style == "thought" else s.action())
        messages, kind = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], "completion"
    meta = meta_of(obj) | {"confidence_trajectory": s.trajectory, "chaos_style": style}
    for key in ("complexity", "difficulty", "week"):
        if obj.get(key) is not None:
            meta[key] = obj[key]
    return Record(kind, messages, pos, meta=meta, source="chaos", **common_fields(obj))


class _Scenario:
    """A scenario with every optional part normalised: missing parts are empty, not errors."""

    def __init__(self, obj: dict[str, Any]):
        self.task = obj["scenario"].strip()
        self.tool_items = _tool_pairs(obj.get("tools_available"))
        self.tools = [name for name, _ in self.tool_items]
        dialogue = obj.get("internal_dialogue") or []
        self.rounds = [r for r in (dialogue if isinstance(dialogue, list) else [dialogue]) if isinstance(r, dict)]
        breaks = obj.get("reality_breaks") or []
        self.breaks = [b for b in (breaks if isinstance(breaks, list) else [breaks]) if isinstance(b, dict)]
        outcome = obj.get("final_outcome")
        self.outcome = outcome if isinstance(outcome, dict) else ({"success_level": outcome} if outcome else {})
        self.trajectory = _trajectory(obj.get("confidence_trajectory"))
        self._said = 0  # how many trajectory values the text has stated so far

    def confidence(self) -> list[str]:
        """The next trajectory value as a line, if any is left."""
        if self._said >= len(self.trajectory):
            return []
        self._said += 1
        return [f"Confidence: {self.trajectory[self._said - 1]}%"]

    def rest_of_confidence(self) -> list[str]:
        lines = []
        while self._said < len(self.trajectory):
            lines += self.confidence()
        return lines

    def voices(self, prefix: str = "- ") -> list[str]:
        lines = []
        for i, r in enumerate(self.rounds):
            if i:
                lines.append("")
            for name, said in _voices(r.get("voices")):
                lines.append(f'{prefix}{name.capitalize()} says: "{said}"')
            if i == 0:
                lines += self.confidence()
            if isinstance(r.get("resolution"), str) and r["resolution"].strip():
                lines.append(f"Decision: {r['resolution'].strip()}")
        return lines

    def ending(self) -> list[str]:
        lines = []
        level = self.outcome.get("success_level")
        if level not in (None, ""):
            lines.append(f"Final outcome: {level}")
        lessons = self.outcome.get("lessons_learned") or []
        lessons = [lessons] if isinstance(lessons, str) else [str(x) for x in lessons if x]
        if len(lessons) == 1:
            lines.append(f"Key lesson: {lessons[0]}")
        elif lessons:
            lines += ["Key lessons:"] + [f"- {x}" for x in lessons]
        return lines + self.rest_of_confidence()

    def task_prompt(self) -> str:
        tools = f"\nAvailable tools: {', '.join(self.tools)}" if self.tools else ""
        return f"Task: {self.task}{tools}"

    def thought(self) -> tuple[str, str]:
        lines = ["I need to think through this carefully.", ""]
        if self.rounds:
            lines += ["Internal analysis:"] + self.voices() + [""]
        else:
            lines += self.confidence()
        lines.append("[Executing approach...]")
        for b in self.breaks:
            lines += ["", f"Unexpected discovery: {_text(b, 'discovery')}",
                      f"This changes things. {_text(b, 'adaptation')}".rstrip()] + self.confidence()
        lines += [""] + self.ending()
        return f"{self.task_prompt()}\nHow do you approach this?", _join(lines)

    def action(self) -> tuple[str, str]:
        lines = []
        resolution = next((r["resolution"] for r in self.rounds if isinstance(r.get("resolution"), str)), "")
        if resolution:
            lines.append(f"Plan: {resolution}")
        lines += self.confidence()
        if self.tools:
            lines += ["Steps:"] + [f"{i}. Use `{name}`" + (f": {what}" if what else "")
                                   for i, (name, what) in enumerate(self.tool_items, start=1)]
        for b in self.breaks:
            lines += [f"Reality break: {_text(b, 'discovery')}", f"Adapting: {_text(b, 'adaptation')}"]
            lines += self.confidence()
        lines += self.ending()
        return self.task_prompt(), _join(lines)

    def multi_turn(self) -> list[dict[str, str]]:
        first = ["Let me analyze this situation.", ""] + self.voices(prefix="- ")
        if not self.rounds:
            first += self.confidence()
        messages = [{"role": "user", "content": self.task_prompt()}, {"role": "assistant", "content": _join(first)}]
        for b in self.breaks:
            trigger = b.get("trigger") or b.get("event") or "Something went wrong!"
            reply = [f"I see. {_text(b, 'discovery')}".rstrip(), _text(b, "adaptation")] + self.confidence()
            messages += [{"role": "user", "content": str(trigger)},
                         {"role": "assistant", "content": _join([x for x in reply if x])}]
        ending = self.ending()
        if ending:
            messages += [{"role": "user", "content": "How did it turn out?"},
                         {"role": "assistant", "content": _join(ending)}]
        return messages


def _tool_pairs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(k), v if isinstance(v, str) else "") for k, v in value.items()]
    if isinstance(value, list):
        out = []
        for t in value:
            if isinstance(t, str):
                out.append((t, ""))
            elif isinstance(t, dict) and t.get("name"):
                out.append((str(t["name"]), str(t.get("description", t.get("purpose", "")))))
        return out
    return []


def _voices(value: Any) -> list[tuple[str, str]]:
    """Voices as (name, words): the seed's four in its order first, then any others; empty ones skipped."""
    if isinstance(value, list):
        value = {str(v.get("voice", v.get("name", ""))): v.get("says", v.get("text", ""))
                 for v in value if isinstance(v, dict)}
    if not isinstance(value, dict):
        return []
    names = [n for n in VOICE_ORDER if n in value] + [n for n in value if n not in VOICE_ORDER]
    return [(n, str(value[n]).strip()) for n in names if n and isinstance(value[n], str) and value[n].strip()]


def _trajectory(value: Any) -> list[int]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else [value]
    out = []
    for i, v in enumerate(items, start=1):
        if isinstance(v, dict):
            v = next((v[k] for k in ("confidence", "value", "level") if k in v), None)
        number = None
        if isinstance(v, bool):
            number = None
        elif isinstance(v, (int, float)):
            number = v * 100 if isinstance(v, float) and 0 <= v <= 1 else v
        elif isinstance(v, str) and (m := PERCENT.match(v)):
            number = float(m.group(1))
        if number is None or not 0 <= number <= 100:
            raise BadShape(f"confidence_trajectory item {i} ({v!r}) is not a percentage from 0 to 100")
        out.append(int(round(number)))
    return out


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    return value.strip() if isinstance(value, str) else ""


def _join(lines: list[str]) -> str:
    return "\n".join(lines).strip()


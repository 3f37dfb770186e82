"""Reasoning chains (chain-of-thought-path.md): an issue, linked subquestions, the chain, an output, a domain."""

from __future__ import annotations

from typing import Any

from loop.inbox.formats.base import Record
from loop.inbox.formats.common import BadShape, common_fields, meta_of

ISSUE_KEYS = ("issue", "input", "question", "scenario")


def record(obj: dict[str, Any], pos: int) -> Record:
    issue = next((obj[k] for k in ISSUE_KEYS if isinstance(obj.get(k), str) and obj[k].strip()), None)
    if issue is None:
        raise BadShape("a reasoning chain needs the real-world 'issue' it reasons from")
    subquestions = _subquestions(obj.get("subquestions", obj.get("subquestion_links")))
    chain = _steps(obj.get("chain", obj.get("steps")), "chain")
    output = obj.get("output")
    if output is not None and not isinstance(output, str):
        raise BadShape("'output' must be text")
    output = (output or "").strip()
    if not chain and not output:
        raise BadShape("a reasoning chain needs a 'chain' of steps or an 'output': nothing for the assistant to say")
    lines: list[str] = []
    if subquestions:
        lines += ["Subquestions:"] + subquestions + [""]
    if chain:
        lines += ["Reasoning:"] + [f"{i}. {step}" for i, step in enumerate(chain, start=1)] + [""]
    if isinstance(obj.get("summary"), str) and obj["summary"].strip():
        lines += [f"Summary: {obj['summary'].strip()}", ""]
    if output:
        lines.append(f"Output: {output}")
    if isinstance(obj.get("next_step"), str) and obj["next_step"].strip():
        lines.append(f"Next step: {obj['next_step'].strip()}")
    messages = [{"role": "user", "content": issue.strip()}, {"role": "assistant", "content": "\n".join(lines).strip()}]
    meta = meta_of(obj) | {"subquestions": len(subquestions), "steps": len(chain)}
    return Record("completion", messages, pos, meta=meta, source="reasoning", **common_fields(obj))


def _subquestions(value: Any) -> list[str]:
    """Each linked subquestion as a line, with why it connects when the record says."""
    out = []
    for i, q in enumerate(_as_list(value, "subquestions"), start=1):
        if isinstance(q, str) and q.strip():
            out.append(f"- {q.strip()}")
        elif isinstance(q, dict) and isinstance(q.get("question"), str):
            why = q.get("why") or q.get("connection") or q.get("link")
            out.append(f"- {q['question'].strip()}" + (f" (why: {str(why).strip()})" if why else ""))
        else:
            raise BadShape(f"subquestion {i} must be text or an object with a 'question'")
    return out


def _steps(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [line.strip(" -*\t") for line in value.splitlines() if line.strip(" -*\t")]
    steps = []
    for i, step in enumerate(_as_list(value, key), start=1):
        if isinstance(step, dict):
            step = step.get("step", step.get("thought", step.get("text")))
        if not isinstance(step, str):
            raise BadShape(f"{key} step {i} must be text")
        if step.strip():
            steps.append(step.strip())
    return steps


def _as_list(value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadShape(f"'{key}' must be a list")
    return value

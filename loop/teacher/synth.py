"""Synthetic data written by Claude: chaos scenarios, agentic persona conversations, correction variants, tasks.

A run is planned first (one request per unit of work, each asked the same way every time, so
the cache makes a resumed run free); the plan and its most expensive case are shown before
anything is spent. Every reply is parsed and checked by the same parsers as the inbox (tasks:
by the suite checker, and the reference must pass its own item's check) before it is written,
atomically, with its provenance: kind, model, the request's SHA-256 and what it cost. An
invalid reply is asked again (teacher.invalid_retries) and then reported, never ingested.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loop.config import Config
from loop.errors import UserError
from loop.evals import agentic, suites
from loop.hashing import sha256_records
from loop.inbox.feedback import write_many
from loop.inbox.formats.base import BadRecord, Options
from loop.inbox.formats.shapes import from_object
from loop.teacher.client import BudgetSpent, Teacher

KINDS = ("chaos", "agentic", "corrections", "tasks")
PERSONAS = agentic.PERSONAS
SCENARIOS = ("service down", "disk filling up", "slow network", "failed backup", "certificate expiry",
             "deploy gone wrong", "dns trouble", "high cpu", "log hunting", "routine status check")
TOOL_FORMAT = ('tool calls are the assistant\'s whole message, one JSON object {"tool": "<name>", "args": {...}}; '
               'a tool\'s result comes back as a message with role "tool"')
FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


@dataclass
class Unit:
    """One request: what it asks for, and how many records it should give."""

    kind: str
    label: str
    system: str
    prompt: str
    extra: dict[str, Any] = field(default_factory=dict)


def plan(cfg: Config, kind: str, count: int, multi_turn: float = 0.3, variations: int = 5,
         tools: list[dict[str, Any]] | None = None, failures: list[dict[str, Any]] | None = None) -> list[Unit]:
    """The requests of one run. ``failures`` (tasks only): practice failure patterns, one targeted per task in turn."""
    if kind not in KINDS:
        raise UserError(f"no synth kind {kind!r}: use one of {', '.join(KINDS)}")
    if count <= 0:
        raise UserError("--count must be a positive whole number")
    if failures is not None and kind != "tasks":
        raise UserError("--target-failures writes tasks: use 'ladder synth tasks --target-failures'")
    tools = tools if tools is not None else _tools(cfg)
    if kind == "corrections":
        return _corrections(cfg, count, variations)
    units = []
    for i in range(count):
        persona, scenario = PERSONAS[i % len(PERSONAS)], SCENARIOS[(i // len(PERSONAS)) % len(SCENARIOS)]
        if kind == "agentic":
            turns = "a multi-turn conversation (3 to 6 messages)" if (i * multi_turn) % 1 + multi_turn >= 1 \
                else "a single exchange (one user message, then the assistant)"
            units.append(Unit(kind, f"{persona} / {scenario} #{i}", SYSTEM_AGENTIC.format(tool_format=TOOL_FORMAT),
                              AGENTIC.format(persona=persona, scenario=scenario, turns=turns, n=i,
                                             tools=json.dumps(tools))))
        elif kind == "chaos":
            units.append(Unit(kind, f"{scenario} #{i}", SYSTEM_JSON, CHAOS.format(scenario=scenario, n=i)))
        elif failures:
            units.append(_targeted(failures[i % len(failures)], scenario, i, tools))
        else:
            category = suites.CATEGORIES[i % 4]
            units.append(Unit(kind, f"{category} / {scenario} #{i}", SYSTEM_JSON,
                              TASKS.format(category=category, scenario=scenario, n=i, tools=json.dumps(tools),
                                           personas=", ".join(PERSONAS)), {"category": category, "n": i}))
    return units


def _targeted(failure: dict[str, Any], scenario: str, i: int, tools: list[dict[str, Any]]) -> Unit:
    """A task that probes one failure pattern of the last practice round, in the category it failed most in."""
    cats = {c: n for c, n in failure.get("categories", {}).items() if c in suites.CATEGORIES}
    category = max(cats, key=lambda c: (cats[c], -suites.CATEGORIES.index(c))) if cats else suites.CATEGORIES[i % 4]
    pattern = str(failure["pattern"])
    prompt = TASKS.format(category=category, scenario=scenario, n=i, tools=json.dumps(tools),
                          personas=", ".join(PERSONAS)) + TARGET.format(pattern=pattern, count=failure.get("count", 1))
    return Unit("tasks", f"{category} / targets: {pattern[:60]} #{i}", SYSTEM_JSON, prompt,
                {"category": category, "n": i, "target": pattern})


def estimate(teacher: Teacher, units: list[Unit]) -> float:
    return sum(teacher.estimate(u.system, [{"role": "user", "content": u.prompt}]) for u in units)


@dataclass
class Outcome:
    written: list[str] = field(default_factory=list)  # files, relative to the workspace
    records: int = 0
    invalid: list[str] = field(default_factory=list)  # "label: why"
    stopped: str = ""  # why the run ended early ("" when it did not)


def run(cfg: Config, teacher: Teacher, units: list[Unit], say: Callable[[str], None] = lambda _: None) -> Outcome:
    out = Outcome()
    batch: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    try:
        for i, u in enumerate(units, 1):
            records, why = _ask(cfg, teacher, u)
            if why:
                out.invalid.append(f"{u.label}: {why}")
                say(f"synth: {u.label}: invalid reply ({why}); not written")
                continue
            (tasks if u.kind == "tasks" else batch).extend(records)
            say(f"synth: {i}/{len(units)} {u.label}: {len(records)} record(s), ${teacher.spent:.4f} spent")
    except BudgetSpent as e:
        out.stopped = str(e)
    except KeyboardInterrupt:
        out.stopped = "stopped (Ctrl-C); run the same command again to resume: replies so far are cached"
    if batch:
        path = write_many(cfg.inbox_dir, batch, f"synth-{units[0].kind}-{{stamp}}")
        out.written.append(str(path.relative_to(cfg.root)))
    if tasks:
        out.written.append(_write_tasks(cfg, tasks))
    out.records = len(batch) + len(tasks)
    return out


def _ask(cfg: Config, teacher: Teacher, u: Unit) -> tuple[list[dict[str, Any]], str]:
    why = ""
    for attempt in range(cfg.teacher.invalid_retries + 1):
        reply = teacher.ask(u.system, [{"role": "user", "content": u.prompt}], attempt=attempt)
        try:
            objs = parse_reply(reply.text)
            records = [_checked(cfg, u, obj) for obj in objs]
        except ValueError as e:
            why = str(e)
            continue
        req_sha = sha256_records([teacher.request(u.system, [{"role": "user", "content": u.prompt}])])
        prov = {"kind": f"synth:{u.kind}", "model": teacher.model, "prompt_sha": req_sha, "cost_usd": round(reply.cost, 6),
                "cached": reply.cached}
        return [r | {"provenance": prov} for r in records], ""
    return [], why


def parse_reply(text: str) -> list[dict[str, Any]]:
    """The JSON a reply holds: an object, or a list of objects (a code fence around it is allowed)."""
    body = FENCE.sub("", text.strip())
    try:
        value = json.loads(body)
    except ValueError as e:
        raise ValueError(f"not JSON ({e.msg} at character {e.pos})") from None
    objs = value if isinstance(value, list) else [value]
    if not objs or not all(isinstance(o, dict) for o in objs):
        raise ValueError("not a JSON object or a list of objects")
    return objs


def _checked(cfg: Config, u: Unit, obj: dict[str, Any]) -> dict[str, Any]:
    if u.kind == "tasks":
        item = {**obj, "id": f"synth-{u.extra['n']:04d}-{obj.get('id', 'x')}", "split": obj.get("split", "heldout")}
        if u.extra.get("target"):
            item["targets"] = u.extra["target"]  # the practice failure it was written to probe
        try:
            checked = suites.check_item(item, {})
        except ValueError as e:
            raise ValueError(f"not a suite item: {e}") from None
        if not checked.get("reference"):
            raise ValueError("a task needs a 'reference' answer")
        ok, reason = agentic.score(checked, checked["reference"], list(cfg.eval.corporate_phrases))
        if not ok:
            raise ValueError(f"its reference fails its own check ({reason})")
        return item
    record = from_object(obj, 1, json.dumps(obj), Options(chaos_style=cfg.inbox.chaos_style))
    if isinstance(record, BadRecord) or record is None:
        raise ValueError(f"the inbox would refuse it ({getattr(record, 'reason', 'no record')})")
    return obj


def _write_tasks(cfg: Config, items: list[dict[str, Any]]) -> str:
    """Tasks join evals/synth.jsonl (held out unless an item says practice); ids already there are kept."""
    folder = suites.folder(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "synth.jsonl"
    old = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [
        json.dumps({"suite": {"name": "synth", "description": "tasks written by the teacher (ladder synth tasks)",
                              "system": SUITE_SYSTEM.format(tool_format=TOOL_FORMAT), "tools": _tools(cfg)}})]
    seen = {json.loads(line).get("id") for line in old if line.strip()}
    lines = old + [json.dumps(it, ensure_ascii=False) for it in items if it["id"] not in seen]
    tmp = folder / ".synth.jsonl.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    suites.read(path)  # the whole file must still read as a suite
    return str(path.relative_to(cfg.root))


def _tools(cfg: Config) -> list[dict[str, Any]]:
    """The tools of the first configured suite that has some (the product's own format)."""
    for name in cfg.eval.suites:
        items = suites.load(cfg, name).items
        if items and items[0].get("tools"):
            return items[0]["tools"]
    return []


def _corrections(cfg: Config, count: int, variations: int) -> list[Unit]:
    from sqlmodel import select  # noqa: PLC0415

    from store.db import reading  # noqa: PLC0415
    from store.tables import Conversation  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        rows = s.exec(select(Conversation).where(Conversation.kind == "correction").order_by(Conversation.id)
                      .limit(count)).all()
    if not rows:
        raise UserError("no corrections in the store to vary: correct an answer in the chat (ctrl+o) or drop "
                        "prompt/chosen/rejected records into the inbox first")
    units = []
    for r in rows:
        messages = json.loads(r.messages)
        prompt = "\n".join(f"{m['role']}: {m['content']}" for m in messages[:-1])
        units.append(Unit("corrections", f"correction {r.id}", SYSTEM_JSON,
                          CORRECTIONS.format(n=variations, prompt=prompt, chosen=messages[-1]["content"],
                                             rejected=r.rejected or "")))
    return units


SYSTEM_JSON = "You write training data for a small assistant model. Reply with JSON only: no prose, no code fence."
SYSTEM_AGENTIC = SYSTEM_JSON + " In conversations, {tool_format}."
SUITE_SYSTEM = ("You are a home lab ops assistant. For an ops request, reply with exactly one JSON tool call and "
                "nothing else; {tool_format}. Answer plain questions in plain words.")
AGENTIC = """Write {turns} between a user and a home lab ops assistant, as one JSON object
{{"messages": [{{"role": "user"|"assistant"|"tool", "content": "..."}}], "persona": "{persona}"}}.
The user is a {persona} user; the situation: {scenario}. The assistant matches the user's tone (at most one emoji,
only for a casual user; a TL;DR first for an executive; an acknowledgement first for a stressed on-call), uses the
tools when the request is an ops action, and ends with its own message. Tools: {tools}. Variant {n}."""
CHAOS = """Write one CHAOS training scenario about "{scenario}" as a JSON object with the fields
"scenario" (the task), "tools_available" (name -> what it does), "internal_dialogue" (a list of rounds, each
{{"voices": {{"optimizer", "skeptic", "creative", "pragmatist"}}, "resolution"}}), "confidence_trajectory" (3 to 5
percentages), "reality_breaks" (a list of {{"discovery", "adaptation"}}), "final_outcome" ({{"success_level",
"lessons_learned": [...]}}), "complexity" ("simple"|"moderate"|"complex"). Variant {n}."""
TASKS = """Write one eval task for a home lab ops assistant as a JSON object: {{"id": "<short id>", "category":
"{category}", "messages": [...ending with the user's message...], "expect": {{...}}, "reference": "<a good answer>",
"difficulty": 1-5, "failure_modes": ["..."]}}. Situation: {scenario}. Tools: {tools}. "expect" is one of
{{"tool": NAME}}, {{"tool": NAME, "args": {{...}}}} (task), {{"contains": ["..."]}} (context: a fact stated in an
earlier turn), {{"persona": one of {personas}}}. A tool call answer is exactly {{"tool": NAME, "args": {{...}}}}.
The reference must pass the expectation. Variant {n}."""
TARGET = """
The assistant being trained failed practice items this way ({count} time(s)): "{pattern}". Write a task that
a model with exactly this weakness would fail, and list that weakness first in "failure_modes"."""
CORRECTIONS = """Here is a correction: a prompt, the answer a small model gave (rejected) and the one it should have
given (chosen). Write {n} variations that teach the same lesson with other wording and other details, as a JSON
list of {{"prompt": "...", "chosen": "...", "rejected": "..."}} (rejected makes the same mistake as the original).

Prompt:
{prompt}

Rejected:
{rejected}

Chosen:
{chosen}"""

"""Eval suites: JSONL files of agent tasks, the shipped default and the workspace's own in evals/.

A suite file may open with a header line `{"suite": {"name", "description", "system", "tools"}}`
whose system prompt and tools every item uses unless it names its own. Then one item per line:

    {"id", "category", "messages": [...], "expect": {...}, "split": "practice" | "heldout",
     "difficulty": 1-5, "system"?, "tools"?, "failure_modes"?, "reference"?}

`expect` holds one of: {"tool": NAME} (the right call, or "none" for no call), {"tool", "args"}
(the right call with those arguments; "exact": true for no others), {"persona": NAME},
{"contains": [...]}, {"not_contains": [...]}, {"regex": "..."}. Every file is checked whole and
every problem is reported with its line number. The gates and readiness use the heldout split;
practice rounds may train on the practice split, never on heldout. `reference` is a good answer
(it must pass the item's own expectation): a practice round trains on it when no teacher is set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loop.errors import UserError
from loop.evals.agentic import PERSONAS
from loop.hashing import sha256_records

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "evals"
CATEGORIES = ("tool_call", "task", "context", "persona", "fact")
SPLITS = ("practice", "heldout")
EXPECT_KEYS = {"tool", "args", "exact", "persona", "contains", "not_contains", "regex"}
ROLES = ("system", "user", "assistant")


@dataclass
class Suite:
    name: str
    path: Path
    items: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""

    @property
    def sha(self) -> str:
        """SHA-256 of the items as they are asked (canonical JSON): two generations compare only on equal suites."""
        return sha256_records(self.items)

    def split(self, which: str) -> list[dict[str, Any]]:
        return [it for it in self.items if it["split"] == which]


def folder(cfg) -> Path:
    return cfg.root / "evals"


def available(cfg) -> dict[str, Path]:
    """Suite name -> file: the shipped ones, then the workspace's evals/*.jsonl (which win on a name)."""
    found = {p.stem: p for p in sorted(SHIPPED.glob("*.jsonl"))}
    if folder(cfg).is_dir():
        found |= {p.stem: p for p in sorted(folder(cfg).glob("*.jsonl"))}
    return found


def load(cfg, name: str) -> Suite:
    files = available(cfg)
    if name not in files:
        raise UserError(f"no eval suite named {name!r}: the suites are {', '.join(sorted(files))} "
                        f"(add your own as {folder(cfg) / (name + '.jsonl')})")
    return read(files[name])


def read(path: Path) -> Suite:
    """Read and check a suite file; every problem, with its line, in one UserError (the first few)."""
    suite = Suite(name=path.stem, path=path)
    defaults: dict[str, Any] = {}
    problems: list[str] = []
    seen: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the suite ({e})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            problems.append(f"line {n}: not JSON ({e.msg})")
            continue
        if isinstance(obj, dict) and "suite" in obj and n == _first(lines):
            head = obj["suite"] if isinstance(obj["suite"], dict) else {}
            suite.name, suite.description = str(head.get("name") or suite.name), str(head.get("description", ""))
            defaults = {k: head[k] for k in ("system", "tools") if k in head}
            continue
        try:
            item = check_item(obj, defaults)
        except ValueError as e:
            problems.append(f"line {n}: {e}")
            continue
        if item["id"] in seen:
            problems.append(f"line {n}: the id {item['id']!r} is used twice")
            continue
        seen.add(item["id"])
        suite.items.append(item)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise UserError(f"{path}: " + "; ".join(problems[:3]) + more)
    if not suite.items:
        raise UserError(f"{path}: the suite has no items")
    return suite


def _first(lines: list[str]) -> int:
    return next(i for i, line in enumerate(lines, 1) if line.strip())


def check_item(obj: Any, defaults: dict[str, Any]) -> dict[str, Any]:
    """One item, checked and completed with the suite's defaults; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError("an item must be a JSON object")
    for key in ("id", "category", "messages", "expect"):
        if key not in obj:
            raise ValueError(f"an item needs {key!r}")
    if not isinstance(obj["id"], str) or not obj["id"].strip():
        raise ValueError("'id' must be a non-empty string")
    if obj["category"] not in CATEGORIES:
        raise ValueError(f"'category' is {obj['category']!r}; use one of {', '.join(CATEGORIES)}")
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in messages):
        raise ValueError("'messages' must be a list of {role, content} with roles system, user, assistant")
    if messages[-1]["role"] != "user":
        raise ValueError("the last message must be the user's: the model answers it")
    expect = obj["expect"]
    if not isinstance(expect, dict) or not expect or set(expect) - EXPECT_KEYS:
        raise ValueError(f"'expect' must be an object with some of {', '.join(sorted(EXPECT_KEYS))}")
    if "persona" in expect and expect["persona"] not in PERSONAS:
        raise ValueError(f"'expect.persona' is {expect['persona']!r}; use one of {', '.join(PERSONAS)}")
    if "args" in expect and ("tool" not in expect or not isinstance(expect["args"], dict)):
        raise ValueError("'expect.args' must be an object, beside 'expect.tool'")
    for key in ("contains", "not_contains"):
        if key in expect and (not isinstance(expect[key], list) or not all(isinstance(x, str) for x in expect[key])):
            raise ValueError(f"'expect.{key}' must be a list of strings")
    if "reference" in obj and (not isinstance(obj["reference"], str) or not obj["reference"].strip()):
        raise ValueError("'reference' (a good answer, the teacher's stand-in in practice) must be a non-empty string")
    split = obj.get("split", "heldout")
    if split not in SPLITS:
        raise ValueError(f"'split' is {split!r}; use practice or heldout")
    difficulty = obj.get("difficulty", 1)
    if not isinstance(difficulty, int) or isinstance(difficulty, bool) or not 1 <= difficulty <= 5:
        raise ValueError("'difficulty' must be a whole number from 1 to 5")
    item = {**obj, "split": split, "difficulty": difficulty}
    for key, value in defaults.items():
        item.setdefault(key, value)
    return item


def conversation(item: dict[str, Any]) -> list[dict[str, str]]:
    """The messages the model is asked: the item's (or the suite's) system prompt first, unless it has its own."""
    messages = [dict(m) for m in item["messages"]]
    system = item.get("system")
    if system and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system})
    return messages

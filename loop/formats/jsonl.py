"""JSON Lines: chat records, prompt/completion records and correction pairs, one per line, streamed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loop.formats import BadFile, BadRecord, Record, register

ROLES = {"system", "user", "assistant", "tool"}


class JsonLines:
    name = "jsonl"

    def sniff(self, head: bytes, path: Path) -> bool:
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        if not text.startswith(b"{"):
            return False
        first = text.split(b"\n", 1)[0].strip()
        # A JSON document spread over lines is not JSONL; one object per line is.
        try:
            json.loads(first)
            return True
        except ValueError:
            return path.suffix.lower() in {".jsonl", ".ndjson"}

    def parse(self, path: Path) -> Iterator[Record | BadRecord]:
        with path.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    yield BadRecord(number, f"line {number}: not UTF-8 text; re-save the file as UTF-8", _show(raw))
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as e:
                    yield BadRecord(number, f"line {number}: invalid JSON ({e.msg} at column {e.colno})", line)
                    continue
                yield from_object(obj, number, line)


def from_object(obj: Any, pos: int, raw: str) -> Record | BadRecord:
    """Turn one JSON object into a Record, or a BadRecord saying what is wrong with it."""
    where = f"item {pos}"
    if not isinstance(obj, dict):
        return BadRecord(pos, f"{where}: expected a JSON object, got {type(obj).__name__}", raw)
    common = {k: obj[k] for k in ("domain", "stage", "persona") if isinstance(obj.get(k), str) and obj[k]}
    meta = {k: obj[k] for k in ("title", "created_at", "confidence_trajectory", "tags") if k in obj}
    try:
        if "messages" in obj:
            return Record("chat", check_messages(obj["messages"], where), pos, meta=meta, **common)
        if {"prompt", "chosen", "rejected"} <= obj.keys():
            prompt, chosen, rejected = (_text(obj, k, where) for k in ("prompt", "chosen", "rejected"))
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}]
            return Record("correction", msgs, pos, rejected=rejected, meta=meta, **common)
        if {"prompt", "completion"} <= obj.keys():
            prompt, completion = _text(obj, "prompt", where), _text(obj, "completion", where)
            if not completion.strip():
                raise BadFile(f"{where}: empty completion")
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
            return Record("completion", msgs, pos, meta=meta, **common)
    except BadFile as e:
        return BadRecord(pos, str(e), raw)
    keys = ", ".join(sorted(obj)[:6]) or "none"
    return BadRecord(pos, f"{where}: unknown record shape (keys: {keys}); expected 'messages' or 'prompt'+'completion'", raw)


def check_messages(messages: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise BadFile(f"{where}: 'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages, start=1):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadFile(f"{where}: message {i} needs a role of system, user, assistant or tool")
        content = m.get("content")
        if content is None and m.get("tool_calls"):
            content = ""
        if not isinstance(content, str):
            raise BadFile(f"{where}: message {i} content must be text")
        kept = {"role": m["role"], "content": content}
        for extra in ("tool_calls", "tool_call_id", "name"):
            if extra in m:
                kept[extra] = m[extra]
        out.append(kept)
    if not any(m["role"] == "assistant" and (m["content"].strip() or m.get("tool_calls")) for m in out):
        raise BadFile(f"{where}: no assistant turn, so there is nothing to learn from")
    return out


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadFile(f"{where}: '{key}' must be text")
    return value


def _show(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


register(JsonLines())

"""ShareGPT conversations ({"conversations": [{"from", "value"}]}) and Alpaca instruction records."""

from __future__ import annotations

import json
from typing import Any

from loop.inbox.formats.base import Record
from loop.inbox.formats.common import (
    BadShape, common_fields, meta_of, need_text, refuse_images, require_answer, tool_call,
)

# The speaker names seen in ShareGPT-style datasets, and the role each one plays.
ROLE_OF = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant",
    "model": "assistant", "claude": "assistant",
    "system": "system",
    "observation": "tool", "tool": "tool", "function_response": "tool", "ipython": "tool",
}


def record(obj: dict[str, Any], pos: int) -> Record:
    messages = turns(obj)
    require_answer(messages)
    meta = meta_of(obj)
    if obj.get("tools"):
        meta["tools"] = obj["tools"]
    return Record("chat", messages, pos, meta=meta, source="sharegpt", **common_fields(obj))


def turns(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's turns in the OpenAI shape (its system prompt first)."""
    turns = obj.get("conversations", obj.get("conversation"))
    if not turns:
        raise BadShape("'conversations' is empty")
    messages: list[dict[str, Any]] = []
    if isinstance(obj.get("system"), str) and obj["system"].strip():
        messages.append({"role": "system", "content": obj["system"]})
    for i, turn in enumerate(turns, start=1):
        if not isinstance(turn, dict):
            raise BadShape(f"turn {i} must be an object with 'from' and 'value'")
        speaker = str(turn.get("from", turn.get("role", ""))).strip().lower()
        value = turn.get("value", turn.get("content"))
        if not isinstance(value, str):
            raise BadShape(f"turn {i} ('{speaker}') has no text 'value'")
        if speaker == "function_call":  # a tool call written as JSON text: {"name": ..., "arguments": ...}
            messages.append({"role": "assistant", "content": "", "tool_calls": [_call(value, i)]})
            continue
        role = ROLE_OF.get(speaker)
        if role is None:
            raise BadShape(f"turn {i}: unknown speaker '{speaker}' (expected human, gpt, system, "
                           "function_call or observation)")
        refuse_images(value, f"turn {i}")
        messages.append({"role": role, "content": value})
    return messages


def _call(value: str, i: int) -> dict[str, Any]:
    try:
        call = json.loads(value)
    except ValueError:
        raise BadShape(f"turn {i}: function_call is not JSON") from None
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        raise BadShape(f"turn {i}: function_call needs a 'name'")
    return tool_call(call["name"], call.get("arguments", call.get("parameters", {})))


def alpaca(obj: dict[str, Any], pos: int) -> Record:
    """instruction (+ input) asked by the user, output answered by the assistant."""
    instruction, output = need_text(obj, "instruction"), need_text(obj, "output")
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        raise BadShape("'input' must be text")
    if not instruction.strip():
        raise BadShape("empty 'instruction'")
    if not output.strip():
        raise BadShape("empty 'output': no assistant turn, so there is nothing to learn from")
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    if isinstance(obj.get("system"), str) and obj["system"].strip():
        messages.insert(0, {"role": "system", "content": obj["system"]})
    return Record("completion", messages, pos, meta=meta_of(obj), source="alpaca", **common_fields(obj))

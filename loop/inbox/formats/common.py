"""Checks every record shape shares: message lists, text fields, and the reason a record is unusable."""

from __future__ import annotations

import json
import re
from typing import Any

ROLES = {"system", "user", "assistant", "tool"}
# Keys a record may carry that curation and the confidence views read back from Conversation.meta.
META_KEYS = ("title", "created_at", "updated_at", "id", "tags", "category", "pattern", "provenance")


class BadShape(Exception):
    """One record cannot be used; the message is the reason, without the position."""


def check_messages(messages: Any) -> list[dict[str, Any]]:
    """Validate chat turns in the OpenAI shape, keeping tool calls, tool results and names."""
    if not isinstance(messages, list) or not messages:
        raise BadShape("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(messages, start=1):
        if type(m) is dict and len(m) == 2 and type(m.get("content")) is str and m.get("role") in ROLES:
            # The common turn, a role and its text: the same checks as below, with none of the optional keys to look at.
            refuse_images(m["content"], f"message {i}")
            out.append({"role": m["role"], "content": m["content"]})
            continue
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadShape(f"message {i} needs a role of system, user, assistant or tool")
        content = m.get("content")
        if content is None and (m.get("tool_calls") or m["role"] == "tool"):
            content = ""
        if isinstance(content, list):  # content parts (OpenAI, LLaMA-Factory v1): text, tool calls, reasoning
            content, calls, thought = parts(content, i)
            if calls:
                m = {**m, "tool_calls": (m.get("tool_calls") or []) + calls}
            if thought:
                m = {**m, "reasoning": thought}
        if not isinstance(content, str):
            raise BadShape(f"message {i} content must be text")
        refuse_images(content, f"message {i}")
        kept: dict[str, Any] = {"role": m["role"], "content": content}
        for extra in ("tool_calls", "tool_call_id", "name", "reasoning"):
            if m.get(extra) is not None:
                kept[extra] = m[extra]
        if "function_call" in m and "tool_calls" not in kept:  # the older OpenAI single-call shape
            kept["tool_calls"] = [{"type": "function", "function": m["function_call"]}]
        out.append(kept)
    require_answer(out)
    return out


IMAGE_PARTS = {"image", "image_url", "input_image", "image_file", "video", "audio", "input_audio"}
IMAGE_MARK = re.compile(r"<(image|video|audio)>")


def parts(content: list[Any], i: int) -> tuple[str, list[dict[str, Any]], str]:
    """Content parts as (text, tool calls, reasoning). A part's text may be under "text" or "value" (LLaMA-Factory's
    v1 format); an image, audio or video part means the record is not text, and is refused with that reason."""
    texts, calls, thoughts = [], [], []
    for p in content:
        if not isinstance(p, dict):
            if isinstance(p, str):
                texts.append(p)
            continue
        kind = p.get("type", "text")
        value = p.get("text", p.get("value"))
        if kind in IMAGE_PARTS:
            raise BadShape(f"message {i} holds {'an' if kind[0] in 'aeiou' else 'a'} {kind.replace('_', ' ')} part: "
                           "Ladder trains on text only, so the record is set aside")
        if kind == "text" and isinstance(value, str):
            texts.append(value)
        elif kind == "tool_call":
            calls.append(_part_call(value, i))
        elif kind in ("reasoning", "thinking") and isinstance(value, str):
            thoughts.append(value)
    return "\n".join(t for t in texts if t), calls, "\n".join(thoughts)


def _part_call(value: Any, i: int) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise BadShape(f"message {i}: a tool_call part is not JSON") from None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise BadShape(f"message {i}: a tool_call part needs a 'name'")
    return tool_call(value["name"], value.get("arguments", value.get("args", {})))


def refuse_images(text: str, where: str) -> None:
    """A turn that points at an image (an `<image>` placeholder) cannot be learned from its text alone."""
    found = IMAGE_MARK.search(text) if text and "<" in text else None
    if found:
        raise BadShape(f"{where} refers to {'an' if found.group(1)[0] in 'aeiou' else 'a'} {found.group(1)} "
                       f"({found.group(0)}): Ladder trains on text only, so the record is set aside")


def require_answer(messages: list[dict[str, Any]]) -> None:
    if not any(m["role"] == "assistant" and (m["content"].strip() or m.get("tool_calls")) for m in messages):
        raise BadShape("no assistant turn, so there is nothing to learn from")


def need_text(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadShape(f"'{key}' must be text")
    return value


def tool_call(name: str, arguments: Any, call_id: str | None = None) -> dict[str, Any]:
    """One OpenAI-style tool call; arguments are kept as the JSON text a model would write."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": args}}
    if call_id:
        call["id"] = call_id
    return call


def common_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """domain, stage and persona when the record names them itself."""
    return {k: obj[k] for k in ("domain", "stage", "persona") if isinstance(obj.get(k), str) and obj[k].strip()}


def meta_of(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: obj[k] for k in META_KEYS if obj.get(k) not in (None, "", [])}

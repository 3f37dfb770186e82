"""One conversation of a ChatGPT data export (conversations.json): the path the user kept through the tree.

The export stores every branch (an edited question, a regenerated answer) as a tree of nodes in `mapping`;
`current_node` is the leaf the user last saw, so walking its parents back to the root gives the kept path.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from loop.inbox.formats.base import Record
from loop.inbox.formats.common import BadShape, require_answer, tool_call

# Content types that are the model's private reasoning, memory or UI state, not turns of the conversation.
SKIPPED = {"thoughts", "reasoning_recap", "user_editable_context", "model_editable_context", "app_pairing_content"}
TOOL_OUTPUT = {"execution_output", "tether_browsing_display", "tether_quote", "system_error"}


def record(obj: dict[str, Any], pos: int) -> Record:
    mapping = obj["mapping"]
    path = kept_path(mapping, obj.get("current_node"))
    messages = joined([(m, _cut(mapping[n].get("message"))) for n in path
                       if (m := _message(mapping[n].get("message"))) is not None])
    if not messages:
        raise BadShape("conversation has no messages with text")
    require_answer(messages)
    meta: dict[str, Any] = {"branches": sum(1 for n in mapping.values()
                                            if isinstance(n, dict) and len(n.get("children") or []) > 1)}
    for key, value in (("title", obj.get("title")), ("id", obj.get("conversation_id") or obj.get("id")),
                       ("model", obj.get("default_model_slug")), ("created_at", _when(obj.get("create_time"))),
                       ("updated_at", _when(obj.get("update_time")))):
        if value:
            meta[key] = value
    return Record("chat", messages, pos, meta=meta, source="chatgpt")


def _cut(msg: Any) -> bool:
    """An answer stopped at the token limit, that "Continue generating" carried on in the next message."""
    meta = (msg or {}).get("metadata") or {} if isinstance(msg, dict) else {}
    finish = meta.get("finish_details") or {}
    return isinstance(finish, dict) and finish.get("type") == "max_tokens"


def joined(turns: list[tuple[dict[str, Any], bool]]) -> list[dict[str, Any]]:
    """Consecutive assistant answers where the first was cut at the token limit become one answer."""
    out: list[dict[str, Any]] = []
    cut_before = False
    for m, cut in turns:
        prev = out[-1] if out else None
        if (cut_before and prev is not None and prev["role"] == m["role"] == "assistant"
                and not prev.get("tool_calls") and not m.get("tool_calls")):
            out[-1] = {**prev, "content": prev["content"] + m["content"]}
        else:
            out.append(m)
        cut_before = cut
    return out


def kept_path(mapping: dict[str, Any], current: Any) -> list[str]:
    """Node ids from the root to the kept leaf; without current_node, the newest branch is followed."""
    if not mapping:
        raise BadShape("'mapping' is empty")
    leaf = current if isinstance(current, str) and current in mapping else _newest_leaf(mapping)
    path: list[str] = []
    seen: set[str] = set()
    node: Any = leaf
    while isinstance(node, str) and node in mapping and node not in seen:
        seen.add(node)
        path.append(node)
        entry = mapping[node]
        node = entry.get("parent") if isinstance(entry, dict) else None
    return path[::-1]


def _newest_leaf(mapping: dict[str, Any]) -> str:
    roots = [k for k, n in mapping.items() if isinstance(n, dict) and n.get("parent") not in mapping]
    if not roots:
        raise BadShape("'mapping' has no root node (every node names a parent)")
    node, seen = roots[0], set()
    while node not in seen:
        seen.add(node)
        children = [c for c in (mapping[node].get("children") or []) if c in mapping]
        if not children:
            break
        node = children[-1]
    return node


def _message(msg: Any) -> dict[str, Any] | None:
    """One node's message in the OpenAI shape, or None for nodes that are not turns."""
    if not isinstance(msg, dict):
        return None  # the root and some placeholders carry "message": null
    author = msg.get("author") or {}
    role = author.get("role")
    content = msg.get("content") or {}
    kind = content.get("content_type", "text")
    meta = msg.get("metadata") or {}
    if kind in SKIPPED or meta.get("is_visually_hidden_from_conversation"):
        return None
    text = _text(content)
    recipient = msg.get("recipient") or "all"
    if role == "assistant" and recipient != "all":
        # Addressed to a tool (python, browser, an image generator): that is a tool call.
        return {"role": "assistant", "content": "", "tool_calls": [tool_call(recipient, _arguments(text))]}
    if role == "tool" or kind in TOOL_OUTPUT:
        out: dict[str, Any] = {"role": "tool", "content": text}
        if author.get("name"):
            out["name"] = author["name"]
        return out
    if role not in ("system", "user", "assistant"):
        return None
    if not text.strip() and role != "user":
        return None  # empty system prompts and answers that never arrived
    return {"role": role, "content": text}


IMAGE_TYPES = {"image_asset_pointer", "real_time_user_audio_video_asset_pointer", "video_container_asset_pointer"}


def _text(content: dict[str, Any]) -> str:
    """The text of a content block; a message that shows an image cannot be learned from its text alone."""
    if isinstance(content.get("parts"), list):
        texts = []
        for part in content["parts"]:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and part.get("content_type") == "audio_transcription":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("content_type") in IMAGE_TYPES:
                raise BadShape("a message holds an image: Ladder trains on text only, so the conversation is set aside")
        return "\n".join(t for t in texts if t)
    for key in ("text", "result"):
        if isinstance(content.get(key), str):
            return content[key]
    return ""


def _arguments(text: str) -> dict[str, Any]:
    """What the model sent a tool: a JSON object as is (image prompts), other text (code, searches) wrapped."""
    try:
        value = json.loads(text)
    except ValueError:
        return {"input": text}
    return value if isinstance(value, dict) else {"input": text}


def _when(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc).isoformat()
    return value if isinstance(value, str) else None

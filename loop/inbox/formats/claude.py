"""One conversation of a Claude data export (conversations.json): human/assistant messages, text and blocks."""

from __future__ import annotations

import json
from typing import Any

from loop.inbox.formats.base import Record
from loop.inbox.formats.common import BadShape, require_answer, tool_call

ROLE_OF = {"human": "user", "user": "user", "assistant": "assistant"}


def record(obj: dict[str, Any], pos: int) -> Record:
    chat = obj.get("chat_messages")
    if not isinstance(chat, list):
        raise BadShape("'chat_messages' must be a list")
    if not chat:
        raise BadShape("conversation has no messages (the export keeps chats that were opened and left empty)")
    chat = kept_branch(chat)
    messages: list[dict[str, Any]] = []
    files: list[str] = []
    for i, m in enumerate(chat, start=1):
        if not isinstance(m, dict):
            raise BadShape(f"message {i} must be an object")
        role = ROLE_OF.get(str(m.get("sender", "")).lower())
        if role is None:
            raise BadShape(f"message {i}: unknown sender {m.get('sender')!r} (expected human or assistant)")
        blocks = m.get("content")
        if isinstance(blocks, list) and any(isinstance(b, dict) and b.get("type") for b in blocks):
            turns = _from_blocks(role, blocks)
        else:
            turns = [{"role": role, "content": m.get("text") if isinstance(m.get("text"), str) else ""}]
        if role == "user":
            turns = _with_attachments(turns, m.get("attachments") or [])
        files += [str(f.get("file_name")) for f in m.get("files") or [] if isinstance(f, dict) and f.get("file_name")]
        # An answer that never arrived (a stopped or failed generation) is left out, not kept empty.
        messages += [t for t in turns if t["role"] != "assistant" or t["content"].strip() or t.get("tool_calls")]
    require_answer(messages)
    meta: dict[str, Any] = {}
    for key, value in (("title", obj.get("name")), ("id", obj.get("uuid")), ("created_at", obj.get("created_at")),
                       ("updated_at", obj.get("updated_at")), ("summary", obj.get("summary"))):
        if value:
            meta[key] = value
    if files:
        meta["files"] = files
    return Record("chat", messages, pos, meta=meta, source="claude")


def kept_branch(chat: list[Any]) -> list[Any]:
    """The messages on the path the user kept. A regenerated answer (or an edited question) is a second message
    with the same `parent_message_uuid`; the path runs back from the newest message to the root."""
    by_id = {m.get("uuid"): m for m in chat if isinstance(m, dict) and m.get("uuid")}
    if not by_id or not any(isinstance(m, dict) and m.get("parent_message_uuid") in by_id for m in chat):
        return chat  # an export without the tree: every message, in order
    path, node, seen = [], chat[-1], set()
    while isinstance(node, dict) and node.get("uuid") not in seen:
        seen.add(node.get("uuid"))
        path.append(node)
        node = by_id.get(node.get("parent_message_uuid"))
    return path[::-1]


def _from_blocks(role: str, blocks: list[Any]) -> list[dict[str, Any]]:
    """Content blocks as turns: text and tool calls in one assistant turn, each tool result its own turn."""
    out: list[dict[str, Any]] = []
    text: list[str] = []
    calls: list[dict[str, Any]] = []

    def flush() -> None:
        if text or calls:
            turn: dict[str, Any] = {"role": role, "content": "\n\n".join(t for t in text if t)}
            if calls:
                turn["tool_calls"] = list(calls)
            out.append(turn)
        text.clear()
        calls.clear()

    for b in blocks:
        if not isinstance(b, dict):
            continue
        kind = b.get("type")
        if kind == "text" and isinstance(b.get("text"), str):
            if calls:  # text after a call belongs to the next turn
                flush()
            text.append(b["text"])
        elif kind == "tool_use":
            calls.append(tool_call(str(b.get("name", "tool")), b.get("input", {}), b.get("id")))
        elif kind == "tool_result":
            flush()
            result: dict[str, Any] = {"role": "tool", "content": _result_text(b.get("content"))}
            if b.get("name"):
                result["name"] = b["name"]
            if b.get("tool_use_id"):
                result["tool_call_id"] = b["tool_use_id"]
            out.append(result)
        elif kind in ("image", "document") and role == "user":
            raise BadShape(f"a message holds {'an' if kind == 'image' else 'a'} {kind}: Ladder trains on text only, "
                           "so the conversation is set aside")
        # Other blocks (thinking) are private reasoning: not turns to learn.
    flush()
    return out or [{"role": role, "content": ""}]


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(c.get("text", "")) for c in content if isinstance(c, dict) and c.get("type") == "text")
    return json.dumps(content, ensure_ascii=False) if content is not None else ""


def _with_attachments(turns: list[dict[str, Any]], attachments: list[Any]) -> list[dict[str, Any]]:
    """Pasted files the answer depends on: their extracted text follows the question."""
    extra = [f"[attachment: {a.get('file_name', 'file')}]\n{a['extracted_content']}"
             for a in attachments if isinstance(a, dict) and isinstance(a.get("extracted_content"), str)
             and a["extracted_content"].strip()]
    if not extra:
        return turns
    last = dict(turns[-1])
    last["content"] = "\n\n".join([last["content"]] + extra).strip() if last["content"] else "\n\n".join(extra)
    return turns[:-1] + [last]

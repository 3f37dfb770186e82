"""Recognise one JSON object's shape (chat, export conversation, scenario, pair...) and make it a Record."""

from __future__ import annotations

from typing import Any

from loop.inbox.formats.base import BadRecord, Options, Record
from loop.inbox.formats import chatgpt, chaos, claude, reasoning, sharegpt
from loop.inbox.formats.common import BadShape, check_messages, common_fields, meta_of, need_text

EXPECTED = ("'messages', 'conversations', 'instruction'+'output', 'prompt'+'completion', "
            "'prompt'+'chosen'+'rejected', a CHAOS 'scenario', a reasoning 'issue'+'chain', "
            "a ChatGPT or Claude export conversation, or 'text'")


def from_object(obj: Any, pos: int, raw: str, opts: Options, where: str | None = None) -> Record | BadRecord:
    """Turn one JSON value into a Record, or a BadRecord saying where and what is wrong with it."""
    where = where or f"item {pos}"
    if not isinstance(obj, dict):
        return BadRecord(pos, f"{where}: expected a JSON object, got {_kind(obj)}", raw)
    try:
        record = _convert(obj, pos, opts)
    except BadShape as e:
        return BadRecord(pos, f"{where}: {e}", raw)
    if record is None:
        keys = ", ".join(sorted(obj)[:6]) or "none"
        return BadRecord(pos, f"{where}: unknown record shape (keys: {keys}); expected {EXPECTED}", raw)
    return record


def _convert(obj: dict[str, Any], pos: int, opts: Options) -> Record | None:
    keys = obj.keys()
    if isinstance(obj.get("mapping"), dict):
        return chatgpt.record(obj, pos)
    if "chat_messages" in keys:
        return claude.record(obj, pos)
    if "scenario" in keys and keys & chaos.PARTS:
        return chaos.record(obj, pos, opts.chaos_style)
    if "chain" in keys or {"issue", "output"} <= keys:
        return reasoning.record(obj, pos)
    if {"chosen", "rejected"} <= keys:
        return correction(obj, pos)
    if "messages" in keys:
        return Record("chat", check_messages(obj["messages"]), pos, meta=meta_of(obj), source="openai",
                      **common_fields(obj))
    if isinstance(obj.get("conversations"), list) or isinstance(obj.get("conversation"), list):
        return sharegpt.record(obj, pos)
    if {"instruction", "output"} <= keys:
        return sharegpt.alpaca(obj, pos)
    if {"prompt", "completion"} <= keys or {"question", "answer"} <= keys:
        return completion(obj, pos)
    if isinstance(obj.get("text"), str) and not keys - {"text", "domain", "stage", "title", "id", "meta"}:
        text = obj["text"]
        if not text.strip():
            raise BadShape("empty 'text'")
        return Record("document", [{"role": "assistant", "content": text}], pos, meta=meta_of(obj),
                      source="document", **common_fields(obj))
    return None


def completion(obj: dict[str, Any], pos: int) -> Record:
    p_key, c_key = ("prompt", "completion") if "prompt" in obj else ("question", "answer")
    prompt, answer = need_text(obj, p_key), need_text(obj, c_key)
    if not prompt.strip():
        raise BadShape(f"empty '{p_key}'")
    if not answer.strip():
        raise BadShape(f"empty '{c_key}': no assistant turn, so there is nothing to learn from")
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return Record("completion", msgs, pos, meta=meta_of(obj), source="completion", **common_fields(obj))


def correction(obj: dict[str, Any], pos: int) -> Record:
    """A preference pair: trained on the chosen answer, the rejected one kept for the DPO stage."""
    prompt = obj.get("prompt", obj.get("messages"))
    if isinstance(prompt, str):
        if not prompt.strip():
            raise BadShape("empty 'prompt'")
        turns = [{"role": "user", "content": prompt}]
    elif isinstance(prompt, list) and prompt:  # TRL's conversational pairs: the prompt is a list of turns
        turns = [{"role": t.get("role"), "content": t.get("content")} for t in prompt if isinstance(t, dict)]
        if any(t["role"] not in ("system", "user", "assistant", "tool") or not isinstance(t["content"], str)
               for t in turns) or len(turns) != len(prompt):
            raise BadShape("'prompt' turns need a role and text content")
    else:
        raise BadShape("a correction needs a 'prompt': text, or a list of turns")
    chosen, rejected = _answer(obj, "chosen"), _answer(obj, "rejected")
    if not chosen.strip():
        raise BadShape("empty 'chosen' answer: no assistant turn, so there is nothing to learn from")
    if chosen.strip() == rejected.strip():
        raise BadShape("'chosen' and 'rejected' are the same answer: nothing to prefer")
    meta = meta_of(obj) | {k: obj[k] for k in ("error", "fix", "explanation") if isinstance(obj.get(k), str)}
    return Record("correction", turns + [{"role": "assistant", "content": chosen}], pos, rejected=rejected,
                  meta=meta, source="correction", **common_fields(obj))


def _answer(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if isinstance(value, list):  # a list of turns: the assistant's text
        texts = [t.get("content") for t in value if isinstance(t, dict) and t.get("role") == "assistant"]
        if texts and all(isinstance(t, str) for t in texts):
            return "\n".join(texts)
        raise BadShape(f"'{key}' must be text or a list holding an assistant turn")
    if not isinstance(value, str):
        raise BadShape(f"'{key}' must be text")
    return value


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), "null" if value is None else type(value).__name__)

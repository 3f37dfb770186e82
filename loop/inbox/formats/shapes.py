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
        if obj.get("images") or obj.get("videos") or obj.get("audios"):
            kind = next(k for k in ("images", "videos", "audios") if obj.get(k))
            raise BadShape(f"the record has {kind} ('{kind}'): Ladder trains on text only, so it is set aside")
        record = _convert(obj, pos, opts)
        if record is not None:
            labelled(record, obj)
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
    if {"chosen_messages", "rejected_messages"} <= keys:
        return pair_of_conversations(obj, pos)
    if {"chosen", "rejected"} <= keys:
        return correction(obj, pos)
    if "messages" in keys:
        if len(keys) == 1:  # nothing beside the turns: no meta or labels to look for
            return Record("chat", check_messages(obj["messages"]), pos, source="openai")
        meta = meta_of(obj) | ({"tools": obj["tools"]} if obj.get("tools") else {})
        return Record("chat", check_messages(obj["messages"]), pos, meta=meta, source="openai", **common_fields(obj))
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


KTO_KEYS = ("label", "kto_tag")


def labelled(record: Record, obj: dict[str, Any]) -> None:
    """An unpaired preference label (TRL's KTO "label", LLaMA-Factory's "kto_tag"): a false one marks the answer
    as one not to give. It is stored as such and never trained as a good example."""
    for key in KTO_KEYS:
        if isinstance(obj.get(key), bool):
            record.meta["label"] = obj[key]
            if not obj[key]:
                if record.kind not in ("chat", "completion"):
                    raise BadShape(f"'{key}': false belongs to a conversation or a prompt/completion, not a {record.kind}")
                record.kind = "undesirable"
            return


def pair_of_conversations(obj: dict[str, Any], pos: int) -> Record:
    """A preference pair as two whole conversations (LLaMA-Factory v1): the shared turns, then each answer."""
    chosen, rejected = check_messages(obj["chosen_messages"]), check_messages(obj["rejected_messages"])
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    if chosen[-1]["role"] != "assistant" or rejected[-1]["role"] != "assistant":
        raise BadShape("'chosen_messages' and 'rejected_messages' must each end with the assistant's answer")
    if chosen[:-1] != rejected[:-1]:
        raise BadShape("'chosen_messages' and 'rejected_messages' must share every turn before the answer")
    return correction({"prompt": chosen[:-1], "chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"],
                       **{k: v for k, v in obj.items() if k not in ("chosen_messages", "rejected_messages")}}, pos)


# OpenAI's legacy fine-tuning format ended each prompt with a separator and each completion with a stop
# sequence; they are markers for that old trainer, not text a model should learn to write.
PROMPT_SEPARATORS = ("\n\n###\n\n", "\n\n###", "\n###\n", "###", " ->", "->")
STOP_SEQUENCES = (" END", "\nEND", "\n###", " ###", "###")


def legacy(prompt: str, answer: str) -> tuple[str, str]:
    for sep in PROMPT_SEPARATORS:
        if prompt.endswith(sep) and prompt[: -len(sep)].strip():
            prompt = prompt[: -len(sep)]
            break
    stripped = answer.rstrip()
    for stop in STOP_SEQUENCES:
        if stripped.endswith(stop) and stripped[: -len(stop)].strip():
            answer = stripped[: -len(stop)]
            break
    return prompt.rstrip(), answer.strip()


def completion(obj: dict[str, Any], pos: int) -> Record:
    p_key, c_key = ("prompt", "completion") if "prompt" in obj else ("question", "answer")
    prompt, answer = need_text(obj, p_key), need_text(obj, c_key)
    if p_key == "prompt":
        prompt, answer = legacy(prompt, answer)
    if not prompt.strip():
        raise BadShape(f"empty '{p_key}'")
    if not answer.strip():
        raise BadShape(f"empty '{c_key}': no assistant turn, so there is nothing to learn from")
    msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    return Record("completion", msgs, pos, meta=meta_of(obj), source="completion", **common_fields(obj))


def correction(obj: dict[str, Any], pos: int) -> Record:
    """A preference pair: trained on the chosen answer, the rejected one kept for the DPO stage."""
    prompt = obj.get("prompt", obj.get("messages"))
    if prompt is None and isinstance(obj.get("conversations"), list):  # ShareGPT pairwise (LLaMA-Factory)
        prompt = [{"role": m["role"], "content": m["content"]} for m in sharegpt.turns(obj)]
    elif prompt is None and isinstance(obj.get("instruction"), str):  # Alpaca pairwise
        prompt = obj["instruction"] + (f"\n\n{obj['input']}" if isinstance(obj.get("input"), str) and obj["input"].strip() else "")
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
    if isinstance(value, dict):  # ShareGPT pairwise: {"from": "gpt", "value": ...}
        value = value.get("value", value.get("content"))
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

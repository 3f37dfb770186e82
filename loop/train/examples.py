"""A generation's training rows as token ids and labels: loss on the assistant turns only, in curriculum order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loop.errors import UserError
from loop.model.tokens import shared_start

# Rows with this source in dataset_sources.jsonl are the parent's own answers (loop/data/replay.py).
DISTILL_SOURCE = "self_replay"


def json_lines(path: Path):
    """(line number, object) for each non-empty line of a JSONL file; a bad line is a UserError naming it."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: not JSON ({e.msg})") from None


def read_rows(dataset_path: Path) -> list[dict]:
    """The JSONL rows in file order; each is a chat ({"messages": [...]}) or a document ({"text": str})."""
    rows = []
    for n, row in json_lines(dataset_path):
        if not isinstance(row, dict) or not (
            isinstance(row.get("messages"), list) or isinstance(row.get("text"), str)
        ):
            raise UserError(f"{dataset_path}:{n}: a row needs a 'messages' list or a 'text' string")
        rows.append(row)
    return rows


def tokenize_row(tokenizer, row: dict, max_length: int) -> dict[str, list[int]]:
    """input_ids and labels (-100 where no loss) for one row, truncated to max_length from the end.

    Chats train on assistant turns only. TRL's assistant_only_loss needs {% generation %} markers, which plain
    ChatML (SmolLM2 and most small models) lacks, and TRL patches only templates it knows; so the labels are built
    here from the template itself: an assistant turn spans the tokens between rendering the chat up to it with a
    generation prompt and rendering it through that turn. That works for any prefix-preserving template and includes
    the end-of-turn token, so the model learns to stop.
    """
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    if "messages" in row:
        messages = row["messages"]
        full = ids(tokenizer.apply_chat_template(messages, tokenize=False))
        labels = [-100] * len(full)
        for i, message in enumerate(messages):
            if message.get("role") != "assistant":
                continue
            before = ids(tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True))
            through = ids(tokenizer.apply_chat_template(messages[: i + 1], tokenize=False))
            start, end = shared_start(before, full), shared_start(through, full)
            labels[start:end] = full[start:end]
        input_ids = full
    else:
        # Documents as TRL treats them: the tokenizer's own special tokens, then EOS so the model learns to end.
        input_ids = tokenizer(row["text"])["input_ids"]
        if tokenizer.eos_token_id is not None and (not input_ids or input_ids[-1] != tokenizer.eos_token_id):
            input_ids = input_ids + [tokenizer.eos_token_id]
        labels = list(input_ids)
    return {"input_ids": input_ids[:max_length], "labels": labels[:max_length]}


def distill_flags(sources_path: Path | None, rows: int) -> list[int]:
    """1 for each row the parent wrote (self-replay), 0 for the rest, from the job's dataset_sources.jsonl."""
    if sources_path is None or not Path(sources_path).is_file():
        return [0] * rows
    flags = [int(s.get("source") == DISTILL_SOURCE) for _, s in json_lines(Path(sources_path))]
    if len(flags) != rows:
        raise UserError(f"{sources_path} has {len(flags)} rows for {rows} in the dataset; rebuild the job's dataset")
    return flags


def prepare_examples(tokenizer, dataset_path: Path, max_length: int,
                     sources_path: Path | None = None) -> list[dict[str, Any]]:
    """Tokenized rows in curriculum order; rows left with nothing to learn after truncation are dropped.

    Each example carries `distill`: 1 when the row is the parent's own answer (self-replay).
    """
    rows = read_rows(dataset_path)
    if not rows:
        raise UserError(f"no training examples in {dataset_path}")
    flags = distill_flags(sources_path, len(rows))
    examples = [tokenize_row(tokenizer, row, max_length) | {"distill": flag} for row, flag in zip(rows, flags)]
    examples = [e for e in examples if any(label != -100 for label in e["labels"])]
    if not examples:
        raise UserError(f"no training examples in {dataset_path} with an assistant turn within max_length={max_length}")
    return examples

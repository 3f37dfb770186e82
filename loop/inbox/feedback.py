"""Chat feedback into the inbox: a good exchange as a chat record, a corrected one as a correction pair.

Files are written under a hidden temporary name and renamed into place, so a watcher never reads half a record.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from loop.errors import UserError

DOMAIN = "chat-feedback"
ROLES = ("system", "user", "assistant")


def good(inbox: Path, messages: list[dict[str, Any]], gen_id: int | None = None, raw: bool = False) -> Path:
    """A conversation whose last answer the user marked good: it trains later generations as is."""
    turns = [{"role": m["role"], "content": str(m["content"])} for m in messages if m.get("role") in ROLES]
    if not turns or turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
        raise UserError("there is no answer to mark yet: ask something first")
    return write(inbox, {"messages": turns, "domain": DOMAIN, **_meta("good", gen_id, raw)}, "good")


def undesirable(inbox: Path, messages: list[dict[str, Any]], gen_id: int | None = None, raw: bool = False) -> Path:
    """An answer the user marked bad without writing a better one: kept as an example not to follow (a KTO
    label false), never trained as a good one."""
    turns = [{"role": m["role"], "content": str(m["content"])} for m in messages if m.get("role") in ROLES]
    if not turns or turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
        raise UserError("there is no answer to mark yet: ask something first")
    return write(inbox, {"messages": turns, "label": False, "domain": DOMAIN, **_meta("bad", gen_id, raw)}, "bad")


def correction(inbox: Path, prompt: str, chosen: str, rejected: str, gen_id: int | None = None,
               raw: bool = False, label: str = "correction") -> Path:
    """A prompt with the answer the model gave (rejected) and the one it should have given (chosen)."""
    if not prompt.strip():
        raise UserError("there is no question to correct the answer to")
    if not chosen.strip():
        raise UserError("a correction needs the answer it should have given")
    if chosen.strip() == rejected.strip():
        raise UserError("the better answer is the same as the model's; change it or mark the answer good instead")
    record = {"prompt": prompt, "chosen": chosen, "rejected": rejected, "domain": DOMAIN, **_meta(label, gen_id, raw)}
    return write(inbox, record, label)


def _meta(label: str, gen_id: int | None, raw: bool) -> dict[str, Any]:
    tags = [label] + ([f"G{gen_id}"] if gen_id is not None else []) + (["raw-prompt"] if raw else [])
    return {"tags": tags, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write(inbox: Path, record: dict[str, Any], label: str) -> Path:
    """Write one JSONL record into the inbox atomically; return the file's final path."""
    return write_many(inbox, [record], f"chat-feedback-{{stamp}}-{label}")


def write_many(inbox: Path, records: list[dict[str, Any]], name: str) -> Path:
    """Write JSONL records into the inbox as one file, atomically: under a hidden name, synced, then renamed.
    `name` may hold {stamp} (UTC time); a random suffix keeps two writers apart."""
    inbox.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    name = f"{name.format(stamp=stamp)}-{secrets.token_hex(3)}.jsonl"
    final, tmp = inbox / name, inbox / f".{name}.tmp"
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final

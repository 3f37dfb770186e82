"""The chat's conversations, kept per generation in the workspace (models/chats/gen-NNNN.jsonl) across restarts.

Each line is one record: a finished exchange ``{"prompt", "answer", "raw", "history"}``, a mark
``{"mark": kind, "index": i}`` (good, bad, corrected), or ``{"new": true}`` where the user started
a new chat (ctrl+l). Loading gives the exchanges since the last "new", with their marks. A line
cut short by a crash, or one that is not a record, is skipped. Appends are small and whole lines.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KEEP = 50  # exchanges shown again, the newest


def path(folder: Path, gen_id: int) -> Path:
    return folder / f"gen-{gen_id:04d}.jsonl"


def append(folder: Path | None, gen_id: int, record: dict[str, Any]) -> None:
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with path(folder, gen_id).open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    except OSError:
        pass  # a chat that cannot be kept is still a chat


def load(folder: Path | None, gen_id: int) -> list[dict[str, Any]]:
    """The exchanges of the conversation with ``gen_id`` since the last new chat: dicts with their "mark"."""
    if folder is None:
        return []
    try:
        lines = path(folder, gen_id).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if not isinstance(rec, dict):
            continue
        if rec.get("new"):
            out = []
        elif isinstance(rec.get("mark"), str) and isinstance(rec.get("index"), int):
            if 0 <= rec["index"] < len(out):
                out[rec["index"]]["mark"] = rec["mark"]
        elif isinstance(rec.get("prompt"), str) and isinstance(rec.get("answer"), str):
            history = rec.get("history") if isinstance(rec.get("history"), list) else []
            out.append({"prompt": rec["prompt"], "answer": rec["answer"], "raw": bool(rec.get("raw")),
                        "history": [m for m in history if isinstance(m, dict)], "mark": None})
    return out[-KEEP:]

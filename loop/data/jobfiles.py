"""The job folder's JSON Lines files: written in order, read back whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loop.hashing import sha256_file


def write_rows(job_dir: Path, rows: list[dict[str, Any]]) -> str:
    """The training rows in order, and beside them where each came from; return the dataset's SHA-256."""
    write_jsonl(job_dir / "dataset.jsonl", [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    write_jsonl(job_dir / "dataset_sources.jsonl", [{"source": r["_source"], "stage": r["_stage"]} for r in rows])
    return sha256_file(job_dir / "dataset.jsonl")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]

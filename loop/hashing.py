"""SHA-256 of files and of records in a canonical serialization."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# One encoder for every call: json.dumps with options builds a new one each time (ingest hashes every record).
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode


def canonical(record: Any) -> bytes:
    """One record as compact JSON with sorted keys: the same data always gives the same bytes."""
    return _CANONICAL(record).encode("utf-8")


def sha256_records(records: Iterable[Any]) -> str:
    h = hashlib.sha256()
    for r in records:
        h.update(canonical(r))
        h.update(b"\n")
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

"""The parser registry: each inbox format says whether it can read a file and streams its records."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SNIFF_BYTES = 64 * 1024


@dataclass
class Record:
    """One training record in the common shape every format produces."""

    kind: str  # chat | completion | correction | document
    messages: list[dict[str, Any]]
    pos: int  # 1-based line or item number in the source
    rejected: str | None = None  # corrections: the answer that should not be given
    domain: str | None = None
    stage: str | None = None
    persona: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class BadRecord:
    """A part of a file that could not be used, kept with the reason so nothing is silently dropped."""

    pos: int
    reason: str
    raw: str


class BadFile(Exception):
    """The whole file cannot be read; the message is the one-line reason."""


class Format(Protocol):
    name: str

    def sniff(self, head: bytes, path: Path) -> bool: ...

    def parse(self, path: Path) -> Iterator[Record | BadRecord]: ...


REGISTRY: list[Format] = []


def register(fmt: Format) -> Format:
    REGISTRY.append(fmt)
    return fmt


def detect(path: Path) -> Format:
    """The first registered format that recognises the file's content; BadFile when none does."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise BadFile("empty file: nothing to ingest")
    for fmt in REGISTRY:
        if fmt.sniff(head, path):
            return fmt
    raise BadFile("unknown format: expected JSONL chat records ({\"messages\": [...]}) or prompt/completion records")


# Importing the format modules registers them, in order of precedence.
from loop.formats import jsonl  # noqa: E402,F401

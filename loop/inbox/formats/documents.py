"""Plain text and Markdown: a corpus for continued pretraining, cut at paragraph breaks into records.

A document's curriculum stage (fundamentals, manual, logs_specs...) comes from its front matter
(`stage: manual` between `---` lines at the top) or its folder; ingest falls back to "manual".
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loop.inbox.formats.base import BadFile, BadRecord, Options, Record, register

SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".text", ".log", ""}
FRONT_KEYS = ("stage", "domain", "title", "persona")


class Document:
    name = "text"
    strict_utf8 = True

    def sniff(self, head: bytes, path: Path) -> bool:
        text = head.lstrip(b"\xef\xbb\xbf")
        return path.suffix.lower() in SUFFIXES or text.startswith((b"---\n", b"---\r\n", b"# "))

    def parse(self, path: Path, opts: Options) -> Iterator[Record | BadRecord]:
        with path.open(encoding="utf-8-sig", newline=None) as f:
            lines = _lines(f, opts.document_chars)
            front, first = _front_matter(lines)
            common = {k: front[k] for k in ("stage", "domain", "persona") if front.get(k)}
            title = front.get("title")
            made = 0
            try:
                for start, text in _chunks(first, lines, opts.document_chars):
                    if title is None:
                        title = _heading(text) or path.stem
                    made += 1
                    meta: dict[str, Any] = {"title": title, "part": made}
                    yield Record("document", [{"role": "assistant", "content": text}], start, meta=meta,
                                 source="document", **common)
            except UnicodeDecodeError:
                at = made + 1
                if made == 0:
                    raise BadFile("wrong encoding: not UTF-8 text; re-save the file as UTF-8") from None
                yield BadRecord(at, f"part {at} onwards: not UTF-8 text; re-save the file as UTF-8", "")
                return
            if made == 0:
                raise BadFile("a document with no text after its front matter: nothing to ingest")


SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]]*)\s+")


def _lines(f, limit: int) -> Iterator[tuple[int, str]]:
    """(line number, line), an overlong line in pieces cut after a sentence (or at a space), never inside a word,
    so a file with no newline is still streamed and still reads as text."""
    number, carry = 0, ""
    while True:
        piece = f.readline(max(limit, 1))
        if not piece:
            if carry:
                yield number, carry
            return
        line = carry + piece
        if line.endswith("\n"):
            number += 1
            carry = ""
            yield number, line
            continue
        cut = _boundary(line)
        if cut is None:  # no sentence end or space in a whole piece: a cut anywhere is as good
            cut = len(line)
        head, carry = line[:cut], line[cut:]
        if head:
            yield number + 1, head


def _boundary(text: str) -> int | None:
    """Where to cut an unbroken run of text: after its last sentence, else after its last space."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    if ends and ends[-1] > len(text) // 3:
        return ends[-1]
    space = text.rfind(" ")
    return space + 1 if space > 0 else None


def _front_matter(lines: Iterator[tuple[int, str]]) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """Simple `key: value` front matter; the lines read ahead are handed back when there is none."""
    first = next(lines, None)
    if first is None:
        return {}, []
    if first[1].strip() != "---":
        return {}, [first]
    seen, front = [first], {}
    for number, line in lines:
        seen.append((number, line))
        if line.strip() in ("---", "..."):
            return front, []
        key, sep, value = line.partition(":")
        if not sep or len(seen) > 50:
            return {}, seen  # not front matter after all: keep the lines as text
        if key.strip().lower() in FRONT_KEYS:
            front[key.strip().lower()] = value.strip().strip("\"'")
    return {}, seen


def _chunks(first: list[tuple[int, str]], rest: Iterator[tuple[int, str]], size: int) -> Iterator[tuple[int, str]]:
    """Paragraph-aligned pieces of about `size` characters; never inside a code fence unless it is huge."""
    buf: list[str] = []
    length, start, in_fence = 0, 0, False

    def lines() -> Iterator[tuple[int, str]]:
        yield from first
        yield from rest

    for number, line in lines():
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        # A break: a blank line or a heading, or the sentence end where an overlong line was cut.
        at_break = not in_fence and (not stripped or stripped.startswith("#") or (buf and not buf[-1].endswith("\n")))
        if buf and ((at_break and length >= size) or length >= 2 * size):
            text = "".join(buf).strip()
            if text:
                yield start, text
            buf, length = [], 0
        if not buf:
            if not stripped:
                continue
            start = number
        buf.append(line)
        length += len(line)
    text = "".join(buf).strip()
    if text:
        yield start, text


def _heading(text: str) -> str | None:
    for line in text.splitlines()[:5]:
        if line.startswith("#"):
            return line.lstrip("#").strip() or None
    return None


register(Document())

"""One JSON document (a list of records, or objects one after another), read incrementally.

Exports such as ChatGPT's conversations.json are a single list that can run to gigabytes; json.load would
hold it whole. This reads the list one item at a time, so memory is bounded by the largest item.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loop.inbox.formats.base import MB, BadFile, BadRecord, Options, Record, register
from loop.inbox.formats import shapes

CHUNK = 1 << 18  # characters read at a time
TEXT_SUFFIXES = {".md", ".markdown", ".txt", ".rst", ".log", ".text"}
JSON_SUFFIXES = {".json", ".jsonl", ".ndjson"}
WS = " \t\r\n"


class Invalid(Exception):
    """Invalid JSON at a known place in the file."""

    def __init__(self, message: str, line: int, column: int | None):
        where = f"line {line}" + (f", column {column}" if column else "")
        super().__init__(f"invalid JSON at {where} ({message.removesuffix(' at').removesuffix(' starting')})")


class TooDeep(Exception):
    """A value nested deeper than the decoder can go; it was stepped over and is carried as text."""

    def __init__(self, raw: str):
        super().__init__("nested too deeply to read")
        self.raw = raw


class Reader:
    """A sliding window over a text file, decoding one JSON value at a time."""

    def __init__(self, f, max_item: int):
        self.f, self.max_item = f, max_item
        self.buf, self.pos, self.eof = "", 0, False
        self.lines_before, self.column_before = 0, 0  # for the text already dropped from the window
        self.decoder = json.JSONDecoder()

    def more(self, want: int = CHUNK) -> bool:
        if self.eof:
            return False
        if self.pos > CHUNK:
            dropped = self.buf[: self.pos]
            newlines = dropped.count("\n")
            self.lines_before += newlines
            self.column_before = len(dropped) - dropped.rfind("\n") - 1 if newlines else self.column_before + len(dropped)
            self.buf, self.pos = self.buf[self.pos:], 0
        try:
            text = self.f.read(max(want, CHUNK))
        except UnicodeDecodeError:
            raise BadFile(f"wrong encoding: not UTF-8 text after line {self.where(len(self.buf))[0]}; "
                          "re-save the file as UTF-8") from None
        if not text:
            self.eof = True
            return False
        self.buf += text
        return True

    def where(self, at: int) -> tuple[int, int]:
        line = self.lines_before + self.buf.count("\n", 0, at) + 1
        start = self.buf.rfind("\n", 0, at)
        column = at - start if start >= 0 else self.column_before + at + 1
        return line, column

    def peek(self) -> str:
        """The next non-blank character ("" at the end of the file), without consuming it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in WS:
                self.pos += 1
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos: self.pos + 1]

    def take(self, expected: str, context: str) -> None:
        c = self.peek()
        if c not in expected:
            raise Invalid(f"expected {context}, found {c!r}" if c else f"the file ends where {context} was expected",
                          *self.where(self.pos))
        self.pos += 1

    def value(self) -> Any:
        self.peek()  # raw_decode does not skip blanks itself
        while True:
            try:
                obj, end = self.decoder.raw_decode(self.buf, self.pos)
            except RecursionError:
                raise TooDeep(self.skip()) from None
            except json.JSONDecodeError as e:
                near_end = e.pos >= len(self.buf) - 64 or e.msg.startswith("Unterminated string")
                if self.eof or not near_end:
                    raise Invalid(e.msg, *self.where(e.pos)) from None
                self._grow()
                continue
            if end >= len(self.buf) and not self.eof:  # a number may go on past the window
                self._grow()
                continue
            if end - self.pos > self.max_item:
                raise BadFile(f"one JSON value at line {self.where(self.pos)[0]} is larger than "
                              f"{self.max_item // MB} MB (inbox.max_record_mb); split the file or raise the limit")
            self.pos = end
            return obj

    def skip(self) -> str:
        """Step over one JSON value without decoding it (brackets counted, strings respected); return its text."""
        start, i, depth, in_string, escaped = self.pos, self.pos, 0, False, False
        while True:
            if i >= len(self.buf):
                if not self.more():
                    raise Invalid("unexpected end of the file inside a value", *self.where(start))
                continue
            c = self.buf[i]
            i += 1
            if in_string:
                escaped, in_string = (False, True) if escaped else (c == "\\", c != '"')
            elif c == '"':
                in_string = True
            elif c in "[{":
                depth += 1
            elif c in "]}":
                depth -= 1
                if depth == 0:
                    break
            elif depth == 0 and c in ",]" + WS:
                i -= 1
                break
            if i - start > self.max_item:
                raise BadFile(f"one JSON value at line {self.where(start)[0]} is larger than "
                              f"{self.max_item // MB} MB (inbox.max_record_mb); split the file or raise the limit")
        self.pos = i
        return self.buf[start:i]

    def rest(self) -> str:
        """What is left of the file from the current position, at most one record's size (for the bad-records file)."""
        while len(self.buf) - self.pos < self.max_item and self.more():
            pass
        return self.buf[self.pos:self.pos + self.max_item]

    def _grow(self) -> None:
        pending = len(self.buf) - self.pos
        if pending > self.max_item:
            raise BadFile(f"one JSON value at line {self.where(self.pos)[0]} is larger than "
                          f"{self.max_item // MB} MB (inbox.max_record_mb); split the file or raise the limit")
        if not self.more(pending):  # doubling the window keeps re-parsing a long item linear overall
            return


def values(path: Path, max_item: int) -> Iterator[tuple[int, Any] | BadRecord]:
    """(item number, value) for each item of a top-level list, or each top-level value in turn.

    Invalid JSON before the first item is a BadFile; after it, one BadRecord says where reading stopped.
    """
    n = 0
    with path.open(encoding="utf-8-sig", newline="") as f:
        r = Reader(f, max_item)
        try:
            in_list = r.peek() == "["
            if in_list:
                r.take("[", "'['")
                if r.peek() == "]":
                    raise BadFile("an empty JSON list: nothing to ingest")
            while True:
                if not in_list and r.peek() == "":
                    return
                try:
                    value = r.value()
                except TooDeep as e:
                    n += 1
                    yield BadRecord(n, f"item {n}: JSON nested too deeply to read; flatten the record", e.raw)
                else:
                    n += 1
                    yield n, value
                if in_list:
                    r.take(",]", "',' or ']' after an item")
                    if r.buf[r.pos - 1] == "]":
                        if r.peek():
                            raise Invalid("extra data after the closing ']'", *r.where(r.pos))
                        return
        except Invalid as e:
            if n == 0:
                raise BadFile(str(e)) from None
            yield BadRecord(n + 1, f"item {n + 1} onwards: {e}; the items before it were read", r.rest())


class JsonDocument:
    name = "json"
    strict_utf8 = True

    def sniff(self, head: bytes, path: Path) -> bool:
        # A file named .json that is not JSON gets the parser's precise reason, not a guess at another format.
        if path.suffix.lower() in JSON_SUFFIXES:
            return True
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        return text[:1] in (b"[", b"{") and path.suffix.lower() not in TEXT_SUFFIXES

    def parse(self, path: Path, opts: Options) -> Iterator[Record | BadRecord]:
        for item in values(path, opts.max_record_bytes):
            if isinstance(item, BadRecord):
                yield item
                continue
            n, obj = item
            out = shapes.from_object(obj, n, "", opts)
            if isinstance(out, BadRecord):  # the item as JSON text for the bad-records file, so nothing is lost
                out.raw = json.dumps(obj, ensure_ascii=False)
            yield out


register(JsonDocument())

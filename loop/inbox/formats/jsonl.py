"""JSON Lines: one record of any known shape per line, streamed; a bad line is set aside, not the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loop.inbox.formats.base import MB, BadRecord, Options, Record, register
from loop.inbox.formats import shapes


class JsonLines:
    name = "jsonl"
    line_by_line = True

    def sniff(self, head: bytes, path: Path) -> bool:
        if head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")):
            return False  # UTF-16/32: the text check names the encoding
        if path.suffix.lower() in {".jsonl", ".ndjson"}:
            return True  # even with a bad first line: each line is judged on its own
        text = head.lstrip(b"\xef\xbb\xbf").lstrip()
        if not text.startswith(b"{"):
            return False
        first = text.split(b"\n", 1)[0].strip()
        # A JSON document spread over lines is not JSONL; one object per line is.
        try:
            return isinstance(json.loads(first), dict)
        except ValueError:
            return False

    def parse(self, path: Path, opts: Options) -> Iterator[Record | BadRecord]:
        limit = opts.max_record_bytes
        with path.open("rb") as f:
            number = 0
            while raw := f.readline(limit + 1):
                number += 1
                if len(raw) > limit and not raw.endswith(b"\n"):
                    # Skip the rest of an overlong line without holding it: memory stays bounded.
                    while (more := f.readline(MB)) and not more.endswith(b"\n"):
                        pass
                    yield BadRecord(number, f"line {number}: longer than {limit // MB} MB "
                                            "(inbox.max_record_mb); split it or raise the limit", "")
                    continue
                if not raw.strip():
                    continue
                if b"\x00" in raw:
                    yield BadRecord(number, f"line {number}: holds a NUL byte (binary data, not text)", _show(raw))
                    continue
                try:
                    line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    yield BadRecord(number, f"line {number}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                                            f"{e.start + 1}); re-save the file as UTF-8", _show(raw))
                    continue
                try:
                    obj = json.loads(line.rstrip("\r\n"))
                except json.JSONDecodeError as e:
                    what = e.msg.removesuffix(" at").removesuffix(" starting")
                    yield BadRecord(number, f"line {number}: invalid JSON ({what} at column {e.colno})", line)
                    continue
                except RecursionError:
                    yield BadRecord(number, f"line {number}: JSON nested too deeply to read; flatten the record", line)
                    continue
                try:
                    yield shapes.from_object(obj, number, line, opts, where=f"line {number}")
                except RecursionError:
                    yield BadRecord(number, f"line {number}: a record nested too deeply to read; flatten it", line)


def _show(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


register(JsonLines())

"""The parser registry's shared types: records, bad records, options, and format detection."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

SNIFF_BYTES = 64 * 1024
MB = 1024 * 1024
CHAOS_STYLES = ("thought", "action", "multi_turn")


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
    source: str | None = None  # the record's own shape (chatgpt, sharegpt, chaos...); None: the file's format


@dataclass
class BadRecord:
    """A part of a file that could not be used, kept with the reason so nothing is silently dropped."""

    pos: int
    reason: str
    raw: str


class BadFile(Exception):
    """The whole file cannot be read; the message is the one-line reason."""


@dataclass(frozen=True)
class Options:
    """What parsing may depend on, taken from the config so the formats never read it themselves."""

    chaos_style: str = "thought"
    max_record_bytes: int = 64 * MB  # one JSON value read whole: a conversation, a single-object file
    document_chars: int = 2000  # documents are cut at paragraph breaks into records of about this size
    max_unpacked_bytes: int = 4096 * MB  # a zip's members, all together, once unpacked
    max_zip_ratio: float = 200.0  # unpacked size / packed size of any one zip member
    unpack_dir: Path | None = None  # where zip members are unpacked; None: the system's temp folder
    zip_depth: int = 0  # how many zips this file is inside


class Format(Protocol):
    """A format may also set `binary = True` (read as bytes, before any text check) or `strict_utf8 = True`
    (the whole file must be UTF-8, so a bad byte is the file's reason rather than one record's)."""

    name: str

    def sniff(self, head: bytes, path: Path) -> bool: ...

    def parse(self, path: Path, opts: Options) -> Iterator[Record | BadRecord]: ...


REGISTRY: list[Format] = []


def register(fmt: Format) -> Format:
    REGISTRY.append(fmt)
    return fmt


def detect(path: Path, allow_zip: bool = True) -> Format:
    """The first registered format that recognises the file's content; BadFile when none does."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if not head.strip():
        raise BadFile("empty file: nothing to ingest")
    text_checked = utf8_checked = False
    for fmt in REGISTRY:
        binary = getattr(fmt, "binary", False)
        if binary and not allow_zip:
            continue
        # JSON Lines is judged line by line: a NUL byte or a bad byte spoils only its own line.
        lenient = getattr(fmt, "line_by_line", False)
        if not binary and not text_checked and not lenient:
            check_text(head, strict=False)
            text_checked = True
        # The other text formats need the whole file to be UTF-8.
        if getattr(fmt, "strict_utf8", False) and not utf8_checked:
            check_text(head, strict=True)
            utf8_checked = True
        if fmt.sniff(head, path):
            return fmt
    raise BadFile("unknown format: expected chat JSONL, a JSON export (ChatGPT, Claude, ShareGPT, Alpaca, CHAOS), "
                  "a zip of one, or plain text / Markdown")


def check_text(head: bytes, strict: bool = True) -> None:
    """Say precisely why bytes are not UTF-8 text, the one encoding every text format reads."""
    for bom, name in ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"),
                      (b"\xff\xfe", "UTF-16"), (b"\xfe\xff", "UTF-16")):
        if head.startswith(bom):
            raise BadFile(f"wrong encoding: {name} text; re-save the file as UTF-8")
    nul = head.find(b"\x00")
    if nul >= 0:
        raise BadFile(f"binary file (a NUL byte at offset {nul}), not text or a zip: nothing to ingest")
    if not strict:
        return
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 3 and e.reason == "unexpected end of data":
            return  # the sniff window cut a character in two
        line = head.count(b"\n", 0, e.start) + 1
        raise BadFile(f"wrong encoding: not UTF-8 (byte 0x{head[e.start]:02x} on line {line}); "
                      "re-save the file as UTF-8") from None

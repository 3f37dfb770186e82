"""Show text from conversations and models as text: never markup, never a control sequence."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.text import Text

from tui.output import clean


def text(value: object, style: str = "") -> Text:
    """A rich Text built without parsing markup, so '[bold]' stays '[bold]'."""
    return Text(clean(value), style=style)


def one_line(value: object, width: int = 60, style: str = "") -> Text:
    """A single-line cell: newlines shown as ⏎, cut to `width` with an ellipsis."""
    flat = clean(value).replace("\r\n", "\n").replace("\n", " ⏎ ").replace("\t", " ")
    if len(flat) > width:
        flat = flat[: max(1, width - 1)] + "…"
    return Text(flat, style=style)


def num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def utc(dt: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; the store writes UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def age(dt: datetime | None, now: datetime) -> str:
    if dt is None:
        return "–"
    seconds = max(0.0, (utc(now) - utc(dt)).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "now"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"

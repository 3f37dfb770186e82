"""The first ladder page read straight from SQLite with the standard library.

Importing the database stack (SQLAlchemy, SQLModel, pydantic) takes about half a second; the first screen
should not wait for it. This read is read-only and best-effort: on any surprise it returns None and the
normal reads (tui.screens.reads, through the store) fill the screen a moment later.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from urllib.parse import quote

from tui.screens.model import GenRow, Ladder, readiness_of

COLUMNS = ("id, parent_id, status, stage, created_at, steps, loss_start, loss_end, eval_recall, eval_generalization, "
           "eval_style_drift, reason, override, gguf_path, n_recall, n_generalization, readiness")


def _row(r: tuple) -> GenRow:
    created = datetime.fromisoformat(r[4])
    return GenRow(r[0], r[1], r[2], r[3], created if created.tzinfo else created.replace(tzinfo=timezone.utc),
                  *r[5:12], bool(r[12]), r[13], r[14], r[15], *readiness_of(r[16]))


def _meta(con: sqlite3.Connection, key: str):
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def ladder(db_url: str, offset: int, limit: int) -> Ladder | None:
    prefix = "sqlite:///"
    if not db_url.startswith(prefix) or db_url.endswith(":memory:"):
        return None
    try:
        con = sqlite3.connect(f"file:{quote(db_url[len(prefix):])}?mode=ro", uri=True, timeout=2)
        try:
            rows = con.execute(f"SELECT {COLUMNS} FROM generation ORDER BY id DESC LIMIT ? OFFSET ?",
                               (limit, offset)).fetchall()
            total = con.execute("SELECT count(*) FROM generation").fetchone()[0]
            active_id, stopped = _meta(con, "active_gen"), _meta(con, "stopped")
            active = con.execute(f"SELECT {COLUMNS} FROM generation WHERE id = ?", (active_id,)).fetchone()
        finally:
            con.close()
        return Ladder(tuple(_row(r) for r in rows), int(total), offset, _row(active) if active else None, stopped)
    except (sqlite3.Error, ValueError, TypeError, IndexError):
        return None

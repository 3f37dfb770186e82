"""Ordered schema upgrade steps; the schema version is the number of steps applied.

Step 1 creates the tables as they are now, so on a new database every later step finds
nothing left to do: each step checks the shape it finds before it changes anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

GEN_FOLDER = re.compile(r"^gen-\d{4,}$")
PATH_COLUMNS = ("gguf_path", "weights_path", "job_dir")


def _v1(conn: Connection, url: str) -> None:
    SQLModel.metadata.create_all(conn)


def _v2(conn: Connection, url: str) -> None:
    """Membership as its own table, records tied to their inbox file, and paths relative to the workspace."""
    SQLModel.metadata.create_all(conn)  # the membership table
    columns = {c["name"] for c in inspect(conn).get_columns("conversation")}
    if "gen_id" in columns:
        conn.execute(text("INSERT INTO membership (gen_id, conversation_id, split) "
                          "SELECT gen_id, id, split FROM conversation WHERE gen_id IS NOT NULL"))
        for index in inspect(conn).get_indexes("conversation"):
            if index["column_names"] == ["gen_id"]:
                conn.execute(text(f'DROP INDEX "{index["name"]}"'))
        conn.execute(text("ALTER TABLE conversation DROP COLUMN gen_id"))
        conn.execute(text("ALTER TABLE conversation DROP COLUMN split"))
    if "inbox_file_id" not in columns:
        conn.execute(text("ALTER TABLE conversation ADD COLUMN inbox_file_id INTEGER"))
        conn.execute(text("CREATE INDEX ix_conversation_inbox_file_id ON conversation (inbox_file_id)"))
    root = sqlite_folder(url)
    rows = conn.execute(text(f"SELECT id, {', '.join(PATH_COLUMNS)} FROM generation")).all()
    for row in rows:
        values = {c: relative_to(v, root) for c, v in zip(PATH_COLUMNS, row[1:])}
        if values != dict(zip(PATH_COLUMNS, row[1:])):
            sets = ", ".join(f"{c} = :{c}" for c in PATH_COLUMNS)
            conn.execute(text(f"UPDATE generation SET {sets} WHERE id = :id"), {**values, "id": row[0]})


def sqlite_folder(url: str) -> str | None:
    """The folder of a SQLite database file: the workspace, for the stores Ladder made before paths were relative."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.endswith(":memory:"):
        return None
    return str(PurePosixPath(url[len(prefix):]).parent)


def relative_to(value: Any, root: str | None) -> Any:
    """An absolute path as a path inside the workspace.

    Under `root`: relative to it. Elsewhere (a workspace copied from another folder still
    names the original's files): from the models folder on, the one holding `gen-NNNN`.
    Anything else stays as it was.
    """
    if not isinstance(value, str) or not value:
        return value
    path = PurePosixPath(value) if value.startswith("/") else PureWindowsPath(value)
    if not path.is_absolute():
        return value
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    parts = path.parts
    for i in range(len(parts) - 1, 0, -1):
        if GEN_FOLDER.match(parts[i]) and i >= 2:
            return PurePosixPath(*parts[i - 1:]).as_posix()
    return value


def _v3(conn: Connection, url: str) -> None:
    """Agent evals: KL drift, each score's n, the suites' SHA-256 and the readiness report."""
    have = {c["name"] for c in inspect(conn).get_columns("generation")}
    for name, kind in (("eval_kl", "FLOAT"), ("n_recall", "INTEGER"), ("n_generalization", "INTEGER"),
                       ("suite_sha", "VARCHAR"), ("readiness", "VARCHAR NOT NULL DEFAULT '{}'")):
        if name not in have:
            conn.execute(text(f"ALTER TABLE generation ADD COLUMN {name} {kind}"))


UPGRADES: list[Callable[[Connection, str], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(UPGRADES)

"""The whole suite on PostgreSQL. With LADDER_TEST_PG set, every Python process of the test run (pytest, and each
`ladder` command, job, loop or app it starts) imports this module at startup (tests/conftest.py installs a .pth
file that does so), and a workspace whose config names a SQLite file gets a PostgreSQL database of its own on that
server instead: one per SQLite path, so every process that opens the workspace opens the same database, as they
would the same file. The config still names the file (its checks are the same); only the store's engine moves.
A test that reads the SQLite file itself is about SQLite and is skipped on PostgreSQL (pgdb.sqlite_only)."""

from __future__ import annotations

import hashlib
import os

BASE = os.environ.get("LADDER_TEST_PG", "").strip()
_made: set[str] = set()


def database_for(sqlite_path: str) -> str:
    """The URL of the database that stands in for this SQLite file, made on first use."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    name = "ladder_f" + hashlib.sha256(os.path.abspath(sqlite_path).encode()).hexdigest()[:20]
    if name not in _made:
        admin = create_engine(BASE, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                def exists() -> bool:
                    return c.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is not None

                if not exists():
                    try:
                        c.execute(text(f"CREATE DATABASE {name}"))
                    except DBAPIError:  # another process of the run made it first (a duplicate name or key)
                        if not exists():
                            raise
        finally:
            admin.dispose()
        _made.add(name)
    return BASE.rsplit("/", 1)[0] + "/" + name


def install() -> None:
    from store import db

    opened = db.engine_for
    if getattr(opened, "redirected", False):
        return

    def engine_for(url: str):
        prefix = "sqlite:///"
        if url.startswith(prefix) and url != prefix + ":memory:":
            url = database_for(url[len(prefix):])
        return opened(url)

    engine_for.redirected = True
    db.engine_for = engine_for


if BASE:
    install()

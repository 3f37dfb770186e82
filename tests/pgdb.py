"""The suite on PostgreSQL: with LADDER_TEST_PG set to a server's URL (bin/pg-test-server prints one), every
workspace the job tests make gets a database of its own there, and a copied workspace a copy of its database."""

from __future__ import annotations

import os
import secrets

BASE = os.environ.get("LADDER_TEST_PG", "").strip()


def enabled() -> bool:
    return bool(BASE)


def env() -> dict[str, str]:
    """What a test that starts a process with an environment of its own passes on, so that process opens the
    same stores as the test (tests/pgsite)."""
    return {"LADDER_TEST_PG": BASE} if BASE else {}


def sqlite_only(reason: str):
    """Skips a test of SQLite itself (its file, its WAL) in the run on PostgreSQL."""
    import pytest

    return pytest.mark.skipif(enabled(), reason=f"SQLite itself: {reason}")


def _admin():
    from sqlalchemy import create_engine

    return create_engine(BASE, isolation_level="AUTOCOMMIT")


def new_database(template_url: str | None = None) -> str:
    """A fresh, empty database (or a copy of the one at template_url); its URL."""
    from sqlalchemy import text

    name = "ladder_" + secrets.token_hex(6)
    source = ""
    if template_url:
        from store import db

        engine = db._engines.pop(template_url, None)  # CREATE DATABASE ... TEMPLATE wants no open connections
        if engine is not None:
            engine.dispose()
        source = f" TEMPLATE {template_url.rsplit('/', 1)[1]}"
    engine = _admin()
    try:
        with engine.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}{source}"))
    finally:
        engine.dispose()
    return BASE.rsplit("/", 1)[0] + "/" + name

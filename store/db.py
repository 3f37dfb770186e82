"""Engine and session setup: SQLite in WAL mode with a busy timeout, and versioned schema upgrades."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine, select

from store import tables
from store.tables import Meta

BUSY_TIMEOUT_MS = 30_000


def _v1(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)


# Ordered upgrade steps; the schema version is the number of steps applied.
UPGRADES: list[Callable[[Engine], None]] = [_v1]
SCHEMA_VERSION = len(UPGRADES)

_engines: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """One engine per URL per process, upgraded to the current schema on first use."""
    if url in _engines:
        return _engines[url]
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}} if is_sqlite else {}
    engine = create_engine(url, **kwargs)
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
    upgrade(engine)
    _engines[url] = engine
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def upgrade(engine: Engine) -> int:
    """Apply the upgrade steps this database has not had yet; return the version now."""
    assert tables  # the import registers the tables on SQLModel.metadata
    Meta.__table__.create(engine, checkfirst=True)
    with Session(engine) as s:
        row = s.get(Meta, "schema_version")
        current = int(row.value) if row else 0
    if current > SCHEMA_VERSION:
        from loop.errors import UserError  # noqa: PLC0415 - only on this rare path

        raise UserError(f"the database has schema version {current}, newer than this Ladder ({SCHEMA_VERSION}); upgrade Ladder")
    for step in UPGRADES[current:]:
        step(engine)
    if current < SCHEMA_VERSION:
        with Session(engine) as s:
            s.merge(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
            s.commit()
    return SCHEMA_VERSION


@contextmanager
def session(url: str) -> Iterator[Session]:
    """One short session per unit of work; commits on success, rolls back on error."""
    with Session(engine_for(url), expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise


def get_meta(s: Session, key: str, default: Any = None) -> Any:
    row = s.get(Meta, key)
    return json.loads(row.value) if row else default


def set_meta(s: Session, key: str, value: Any) -> None:
    s.merge(Meta(key=key, value=json.dumps(value)))


def active_gen(s: Session) -> int | None:
    return get_meta(s, "active_gen")


def dispose_all() -> None:
    for e in _engines.values():
        e.dispose()
    _engines.clear()


__all__ = ["engine_for", "session", "get_meta", "set_meta", "active_gen", "select", "upgrade", "SCHEMA_VERSION"]

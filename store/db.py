"""Engine and session setup: SQLite in WAL mode with a busy timeout, and versioned schema upgrades.

Every unit of work that writes takes the database's write lock when it begins (SQLite's
BEGIN IMMEDIATE), so a read followed by a write in one session can never lose an update
or fail half-way with "database is locked": a second writer waits its turn instead. Reads
that write nothing (the app's polling, `ladder status`) use `reading()`, which takes no lock.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine, select

from store import tables
from store.tables import Meta
from store.upgrades import SCHEMA_VERSION, UPGRADES

BUSY_TIMEOUT_MS = 60_000
# Advisory lock keys on PostgreSQL: the lineage of a database shared by several machines, the schema
# upgrade, and the one-writer-at-a-time lock that gives every write session SQLite's BEGIN IMMEDIATE.
LINEAGE_LOCK_KEY = 0x1ADDE5
UPGRADE_LOCK_KEY = LINEAGE_LOCK_KEY + 1
WRITER_LOCK_KEY = LINEAGE_LOCK_KEY + 2


class StoreError(Exception):
    """The database cannot be used as configured; the message says what to do."""

    exit_code = 2


_engines: dict[str, Engine] = {}
_writing = threading.local()  # url -> a write session is open in this thread


def engine_for(url: str) -> Engine:
    """One engine per URL per process, upgraded to the current schema on first use."""
    if url in _engines:
        return _engines[url]
    is_sqlite = url.startswith("sqlite")
    kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}} \
        if is_sqlite else {"pool_pre_ping": True}
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as e:
        raise StoreError(f"'workspace.database' needs the Python package {e.name!r} for {url.split(':')[0]}, "
                         "which is not installed: install it, or use the default sqlite:///ladder.db") from None
    if is_sqlite:
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "before_cursor_execute", _no_nul, retval=True)
    upgrade(engine, url)
    _engines[url] = engine
    return engine


def _fix(value: Any) -> Any:
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _no_nul(conn, cursor, statement, parameters, context, executemany):
    """PostgreSQL's text cannot hold NUL, which a model's answer may: it is stored as U+FFFD, as SQLite would show it."""
    if isinstance(parameters, dict):
        return statement, {k: _fix(v) for k, v in parameters.items()}
    if isinstance(parameters, (list, tuple)):
        return statement, type(parameters)(
            {k: _fix(v) for k, v in p.items()} if isinstance(p, dict) else
            (type(p)(_fix(v) for v in p) if isinstance(p, (list, tuple)) else _fix(p)) for p in parameters)
    return statement, parameters


def _sqlite_connect(dbapi_conn, _record) -> None:
    # The driver's own transaction handling begins late and never for a read; we begin ourselves.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    _into_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _into_wal(cur) -> None:
    """WAL mode, waiting as the busy timeout would: SQLite does not call its busy handler when the journal
    mode changes, so a store that is not in WAL yet, opened by two processes at once, said "database is
    locked" to one of them at once. Once one has switched it, WAL stays (it is kept in the file)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("ladder_read") else "BEGIN IMMEDIATE")


def upgrade(engine: Engine, url: str = "") -> int:
    """Apply the upgrade steps this database has not had yet, in one transaction; return the version now.

    The transaction holds the write lock from its start (and, on PostgreSQL, an advisory lock), so two
    processes opening an old store at once upgrade it once: the second finds the version already current.
    """
    assert tables  # the import registers the tables on SQLModel.metadata
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=UPGRADE_LOCK_KEY))
        Meta.__table__.create(conn, checkfirst=True)
        row = conn.execute(select(Meta.value).where(Meta.key == "schema_version")).first()
        current = int(row[0]) if row else 0
        if current > SCHEMA_VERSION:
            raise StoreError(f"the database has schema version {current}, newer than this Ladder ({SCHEMA_VERSION}); "
                             "upgrade Ladder")
        for step in UPGRADES[current:]:
            step(conn, url)
        if current < SCHEMA_VERSION:
            conn.execute(Meta.__table__.delete().where(Meta.key == "schema_version"))
            conn.execute(Meta.__table__.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
    return SCHEMA_VERSION


@contextmanager
def session(url: str, lineage: bool = False) -> Iterator[Session]:
    """One short unit of work that may write; commits on success, rolls back on error.

    It holds the database's write lock from its first statement: SQLite's BEGIN IMMEDIATE, or on
    PostgreSQL a transaction-scoped advisory lock every writer takes first, so a read followed by a
    write in one session never loses an update there either. With `lineage`, it also takes the
    lineage's lock (PostgreSQL: a database shared across machines, where a file lock cannot reach).
    """
    engine = engine_for(url)
    if getattr(_writing, url, False):
        # The outer session holds the write lock this one would wait for: fail now, not after the busy timeout
        # (SQLite) or never (PostgreSQL's advisory lock, held by another connection of this very thread).
        raise RuntimeError("a write session inside another on the same database in one thread would wait for "
                           "itself; read with store.db.reading() or finish the outer session first")
    setattr(_writing, url, True)
    with Session(engine, expire_on_commit=False) as s:
        try:
            if engine.dialect.name == "postgresql":
                if lineage:  # always before the writer lock, so two lineage changes cannot deadlock
                    s.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=LINEAGE_LOCK_KEY))
                s.exec(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=WRITER_LOCK_KEY))
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            setattr(_writing, url, False)


@contextmanager
def reading(url: str) -> Iterator[Session]:
    """A unit of work that only reads: it takes no write lock, and nothing it changes is kept."""
    # Closing ends the transaction without expiring what was read (a rollback would), so the rows stay usable.
    with Session(engine_for(url).execution_options(ladder_read=True), expire_on_commit=False) as s:
        yield s


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


__all__ = ["engine_for", "session", "reading", "get_meta", "set_meta", "active_gen", "select", "upgrade",
           "SCHEMA_VERSION", "StoreError", "SQLModel"]

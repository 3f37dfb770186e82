"""One writer of the lineage at a time: every change of which generation exists, or which is active, goes through here.

A change holds the workspace's lineage lock (a file lock, for the processes of this machine)
and the database's write lock (SQLite's BEGIN IMMEDIATE; PostgreSQL's advisory lock, for
several machines), so two processes deciding at once are put one after the other instead
of one losing the other's update. Files follow the store: the ledger CSV is rewritten from
what was committed, and folders the store no longer names are deleted, only after the commit.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlmodel import Session

from loop import faults
from loop.config import Config
from loop.locks import FileLock
from store import ledger
from store.db import reading, session


class Change:
    """The session of one lineage change, and what to do once it is committed."""

    def __init__(self, s: Session):
        self.s = s
        self.committed = False
        self._after: list[Callable[[], None]] = []

    def after(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)


def lock(cfg: Config, timeout: float = 300.0) -> FileLock:
    return FileLock(cfg.models_dir / ".lineage.lock", "the lineage of this workspace", timeout)


@contextmanager
def lineage(cfg: Config, timeout: float = 300.0, fault: str = "") -> Iterator[Change]:
    with lock(cfg, timeout) as held:
        held.note(f"pid {os.getpid()}")
        with session(cfg.db_url, lineage=True) as s:
            change = Change(s)
            yield change
        change.committed = True
        faults.point(f"{fault}.committed")
        write_ledger(cfg)
        faults.point(f"{fault}.ledger")
        for fn in change._after:
            fn()


def write_ledger(cfg: Config) -> None:
    """The ledger CSV as the store has it now (call with the lineage lock held, so no older copy lands last)."""
    with reading(cfg.db_url) as s:
        ledger.export(s, cfg.ledger_csv)

"""The store: WAL mode, schema version, and two processes sharing one database file."""

import sqlite3
import subprocess
import sys

from sqlmodel import select

from store.db import SCHEMA_VERSION, get_meta, session, set_meta
from store.tables import Meta
from tests.helpers import make_workspace


def test_database_is_wal_with_a_schema_version(tmp_path):
    cfg = make_workspace(tmp_path)
    with session(cfg.db_url) as s:
        set_meta(s, "active_gen", 3)
    con = sqlite3.connect(tmp_path / "ladder.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    version = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert int(version) == SCHEMA_VERSION
    con.close()


def test_a_second_process_sees_committed_state(tmp_path):
    cfg = make_workspace(tmp_path)
    with session(cfg.db_url) as s:
        set_meta(s, "active_gen", 7)
    code = f"from store.db import session, get_meta\nwith session({cfg.db_url!r}) as s: print(get_meta(s, 'active_gen'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "7"


def test_failed_unit_of_work_is_rolled_back(tmp_path):
    cfg = make_workspace(tmp_path)
    try:
        with session(cfg.db_url) as s:
            set_meta(s, "x", 1)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with session(cfg.db_url) as s:
        assert get_meta(s, "x") is None
        assert s.exec(select(Meta).where(Meta.key == "x")).first() is None

"""The store: WAL mode, schema version, and two processes sharing one database file."""

import sqlite3
import subprocess
import sys

from sqlmodel import select

from store.db import SCHEMA_VERSION, get_meta, session, set_meta
from store.tables import Meta
from tests.helpers import make_workspace
from tests.pgdb import sqlite_only


@sqlite_only("the store file's journal mode")
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


@sqlite_only("an older Ladder's store file (tests/store/test_postgres.py upgrades one on the server)")
def test_a_store_from_before_membership_and_relative_paths_is_upgraded(tmp_path):
    """A v1 store (made by the landed code: gen_id/split on each record, absolute paths, here of a
    workspace that lived elsewhere) opens as the current schema with nothing lost."""
    from pathlib import Path

    from store.db import SCHEMA_VERSION, reading
    from store.tables import Conversation, Generation, Membership

    dump = (Path(__file__).resolve().parents[1] / "fixtures" / "store" / "v1.sql").read_text(encoding="utf-8")
    con = sqlite3.connect(tmp_path / "ladder.db")
    con.executescript(dump)
    con.close()
    url = f"sqlite:///{tmp_path / 'ladder.db'}"
    with reading(url) as s:
        splits = sorted((m.gen_id, m.conversation_id, m.split) for m in s.exec(select(Membership)).all())
        gens = {g.id: g for g in s.exec(select(Generation)).all()}
        assert len(s.exec(select(Conversation)).all()) == 6
        assert get_meta(s, "schema_version") == SCHEMA_VERSION
    assert splits == [(1, 1, "train"), (1, 2, "train"), (1, 3, "holdout"), (2, 4, "train")]
    assert gens[1].gguf_path == "models/gen-0001/model.f16.gguf" and gens[1].job_dir == "models/gen-0001/job"
    assert gens[2].weights_path is None and gens[0].job_dir is None
    columns = [r[1] for r in sqlite3.connect(tmp_path / "ladder.db").execute("PRAGMA table_info(conversation)")]
    assert "gen_id" not in columns and "split" not in columns and "inbox_file_id" in columns


def test_two_processes_opening_an_old_store_at_once_upgrade_it_once(tmp_path):
    from pathlib import Path

    dump = (Path(__file__).resolve().parents[1] / "fixtures" / "store" / "v1.sql").read_text(encoding="utf-8")
    con = sqlite3.connect(tmp_path / "ladder.db")
    con.executescript(dump)
    con.close()
    go = tmp_path / "go"
    code = ("import os, sys, time\nfrom sqlmodel import select\nfrom store.db import reading\nfrom store.tables import "
            "Membership\nwhile not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
            "with reading(sys.argv[1]) as s: print(len(s.exec(select(Membership)).all()))")
    root = str(Path(__file__).resolve().parents[2])
    procs = [subprocess.Popen([sys.executable, "-c", code, f"sqlite:///{tmp_path / 'ladder.db'}", str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root,
                              env={"PYTHONPATH": root, "PATH": ""}) for _ in range(2)]
    go.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-1500:] for _, err in outs]
    assert [out.strip() for out, _ in outs] == ["4", "4"]


def test_a_store_switching_into_wal_waits_for_a_reader_instead_of_failing(tmp_path, monkeypatch):
    """SQLite does not call its busy handler when the journal mode changes: two processes opening a store not in
    WAL yet saw "database is locked" (8 of 120 in a race of three). The switch waits as the busy timeout would."""
    from store import db

    path = tmp_path / "x.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN")
    holder.execute("SELECT * FROM t").fetchall()  # a reader's lock on a rollback-journal file
    waited = []

    def release(seconds):
        waited.append(seconds)
        holder.execute("COMMIT")

    monkeypatch.setattr(db.time, "sleep", release)
    con = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    db._into_wal(con.cursor())
    assert waited  # it was refused once, waited, and switched when the reader was done
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    holder.close()

"""The store on a real PostgreSQL server (LADDER_TEST_PG, started by .ci/run): schema upgrades and write locks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests import pgdb
from tests.jobkit import ROOT

pytestmark = pytest.mark.skipif(not pgdb.enabled(), reason="LADDER_TEST_PG is not set (bin/pg-test-server)")

COUNT = """
import sys
from store.db import get_meta, session, set_meta
url, n = sys.argv[1], int(sys.argv[2])
for _ in range(n):
    with session(url) as s:  # a read, then a write: it must never lose the other process's update
        set_meta(s, "counter", (get_meta(s, "counter") or 0) + 1)
"""


def _run_together(code: str, *args: str, n: int = 2) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=ROOT) for _ in range(n)]
    assert [p.wait(timeout=300) for p in procs] == [0] * n


def test_two_processes_upgrade_a_new_database_once_and_read_then_write_without_losing_updates():
    from store.db import get_meta, reading
    from store.upgrades import SCHEMA_VERSION

    url = pgdb.new_database()
    _run_together(COUNT, url, "40")
    with reading(url) as s:
        assert get_meta(s, "counter") == 80 and int(get_meta(s, "schema_version")) == SCHEMA_VERSION


def test_a_write_inside_another_in_one_thread_fails_at_once_instead_of_waiting_forever():
    from store.db import session

    url = pgdb.new_database()
    with session(url):
        with pytest.raises(RuntimeError, match="would wait for itself"):
            with session(url):
                pass


def test_text_with_nul_from_a_model_is_stored_not_refused():
    from store.db import reading, session
    from store.tables import Meta

    url = pgdb.new_database()
    with session(url) as s:
        s.add(Meta(key="answer", value='"R the\\u0000"'))
        s.add(Meta(key="raw", value="a\x00b"))
    with reading(url) as s:
        assert s.get(Meta, "raw").value == "a\ufffdb"

"""Shared test setup: the repo on sys.path, and no model hub ever."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


import pytest  # noqa: E402

from tests import pgdb, workers  # noqa: E402

PG_HOOK = "ladder_test_pg.pth"


def pytest_configure(config):
    """With LADDER_TEST_PG, every workspace store of the run is on that PostgreSQL server (tests/pgsite): in this
    process now, and in every process the tests start through a .pth file of the interpreter's, which does
    nothing in a process without LADDER_TEST_PG."""
    if not pgdb.enabled():
        return
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    hook = f'import os, sys; os.environ.get("LADDER_TEST_PG") and (sys.path.insert(0, {str(ROOT / "tests" / "pgsite")!r}) or __import__("pg_redirect"))\n'
    if not _worker(config):  # the run's first process writes it, and removes it once every worker is done
        (site / PG_HOOK).write_text(hook, encoding="utf-8")
    sys.path.insert(0, str(ROOT / "tests" / "pgsite"))
    __import__("pg_redirect").install()


def pytest_unconfigure(config):
    if not pgdb.enabled() or _worker(config):
        return
    import sysconfig

    (Path(sysconfig.get_paths()["purelib"]) / PG_HOOK).unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config, items):
    """For README's test command (pytest-xdist, --dist loadgroup): the tests of a module that share a module-scoped
    fixture run in one worker, so it is made once; the other tests go to whichever worker is free; the heaviest
    modules are handed out first, so they do not trail the run."""
    for item in items:
        if workers.uses_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))
    items.sort(key=workers.order_key)


def _worker(config) -> bool:
    """A pytest-xdist worker (README's test command spreads the files over several processes)."""
    return hasattr(config, "workerinput")


@pytest.fixture(autouse=True)
def _close_server_connections():
    """On PostgreSQL, each workspace's engine keeps its idle connections open for the life of the process: closed
    after each test, or a run of hundreds of workspaces fills the server's max_connections."""
    yield
    if pgdb.enabled():
        from store.db import dispose_all

        dispose_all()


@pytest.fixture(scope="session", autouse=True)
def _own_user_folders(tmp_path_factory):
    """The tests' G0 answers and app settings are kept in folders of this run's, never in the user's ~/.cache
    and ~/.config."""
    # One cache for all of the run's workers: G0's answers are asked once per base model, as on a user's machine
    # where several workspaces (and processes) share ~/.cache.
    cache = workers.run_dir(tmp_path_factory) / "xdg-cache"
    cache.mkdir(exist_ok=True)
    os.environ["XDG_CACHE_HOME"] = str(cache)
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))


@pytest.fixture(scope="session")
def tiny_template(tmp_path_factory):
    """A workspace whose G0 is a tiny random Llama, made once; tests take copies of it (tiny_ws)."""
    from tests import jobkit
    from tests.helpers import add_probe

    cfg = jobkit.make_template(tmp_path_factory.mktemp("tiny-template"))
    add_probe(cfg, "known", True, steady=True)  # one recall item, so a child's recall is measured
    return cfg.root


@pytest.fixture
def tiny_ws(tiny_template, tmp_path):
    """A fresh copy of the tiny workspace, with a batch of conversations ingested."""
    from tests import jobkit

    cfg = jobkit.copy_workspace(tiny_template, tmp_path / "ws")
    jobkit.feed(cfg)
    return cfg

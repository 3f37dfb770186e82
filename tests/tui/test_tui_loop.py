"""The loop runs in an engine process: the app starts `ladder run` or follows the one running, and leaves it running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from loop.config import load
from loop.inbox.watch import watcher
from store.db import reading
from store.tables import InboxFile
from tuikit import SIZE, make_app, noted, ready, screen_text, wait_for

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def quiet_ws(ws):
    """The populated workspace, with a threshold no file here reaches (so the loop ingests but never trains)."""
    ws.path.write_text(ws.path.read_text(encoding="utf-8").replace("threshold = 20.0", "threshold = 100000.0"),
                       encoding="utf-8")
    cfg = load(ws.path)
    yield cfg
    pid = watcher(cfg)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while watcher(cfg) is not None and time.monotonic() < deadline:
            time.sleep(0.05)


def files(cfg) -> int:
    with reading(cfg.db_url) as s:
        return s.exec(select(func.count()).select_from(InboxFile)).one()


def wait(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def test_the_app_starts_the_loop_which_ingests_and_outlives_the_app(quiet_ws):
    cfg = quiet_ws
    before = files(cfg)
    app = make_app(cfg, watch=True)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: app.loop_pid is not None, timeout=60)
        await wait_for(pilot, lambda: watcher(cfg) == app.loop_pid, timeout=60)  # `ladder run` holds the watch
        assert noted(app, f"Started the loop (ladder run, pid {app.loop_pid})")
        await wait_for(pilot, lambda: f"loop pid {app.loop_pid}" in screen_text(app))
        (cfg.inbox_dir / "new.jsonl").write_text(json.dumps({"messages": [
            {"role": "user", "content": "is it up?"}, {"role": "assistant", "content": "It is up."}]}) + "\n")
        await wait_for(pilot, lambda: files(cfg) == before + 1, timeout=60)  # ingested by the loop process
        pid = app.loop_pid
    assert watcher(cfg) == pid, "quitting the app leaves the loop running"


async def test_a_second_window_follows_the_loop_already_running(quiet_ws):
    cfg = quiet_ws
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    loop = subprocess.Popen([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "run"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait(lambda: watcher(cfg) == loop.pid)
        app = make_app(cfg, watch=True)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await wait_for(pilot, lambda: noted(app, f"This window follows the loop run by pid {loop.pid}",
                                                "information"), timeout=60)
            assert app.loop_pid == loop.pid and not noted(app, "Started the loop")
            await pilot.press("Q")  # quit and stop the loop
        assert loop.wait(timeout=60) is not None and watcher(cfg) is None
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()

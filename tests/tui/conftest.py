"""Fixtures for the app tests: a populated workspace, and one with a generation training in a live process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loop.config import Config
from store.db import session
from store.tables import Event, Generation
from tuikit import at, build_workspace


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ws(tmp_path: Path) -> Config:
    return build_workspace(tmp_path / "workspace")


# A stand-in job: takes the lock as a job does, says so, and lives until killed (or two minutes pass).
HOLD_LOCK = ("import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); print('locked', "
             "flush=True); time.sleep(120)")


@pytest.fixture
def running_job(ws: Config) -> Iterator[Config]:
    """G6 training from G4 in a 'job' that is a live process holding its job folder's lock, 20 of 60 steps reported."""
    folder = ws.models_dir / "gen-0006" / "job"
    folder.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder / "job.lock")], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    try:
        with session(ws.db_url) as s:
            s.add(Generation(id=6, parent_id=4, status="training", stage="train", created_at=at(0.2), steps=60,
                             lr=2e-4, job_pid=proc.pid, job_dir="models/gen-0006/job", config_json="{}"))
            s.add(Event(gen_id=6, kind="stage", message="G6: training from G4 (60 steps)", data='{"stage": "train"}'))
            for step in range(1, 21):
                s.add(Event(gen_id=6, kind="progress", data=json.dumps(
                    {"step": step, "total": 60, "loss": round(2.5 - step * 0.08, 3), "tokens_per_s": 130.0,
                     "elapsed_s": step * 0.9, "lr": 2e-4, "stage": "train"})))
        yield ws
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
        proc.wait()

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


@pytest.fixture
def running_job(ws: Config) -> Iterator[Config]:
    """G6 training from G4 in a 'job' that is a live process (sleep), with 20 of 60 steps reported."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    try:
        with session(ws.db_url) as s:
            s.add(Generation(id=6, parent_id=4, status="training", stage="train", created_at=at(0.2), steps=60,
                             lr=2e-4, job_pid=proc.pid, config_json="{}"))
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

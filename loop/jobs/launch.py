"""Start a job's child process and tell whether a job lives: by the lock on its folder, never by its PID.

The parent takes the job's lock before the generation's row is committed, so no reader
ever sees a "training" row whose lock is free while the job starts; the child inherits
the locked file and holds it for its whole life. When the child ends, however it ends,
the kernel drops the lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loop.artifacts import local
from loop.config import Config
from loop.locks import FileLock, has_open, is_held
from store.tables import Generation

LOCK_NAME = "job.lock"
LOCK_FD_ENV = "LADDER_JOB_LOCK_FD"
ROOT = Path(__file__).resolve().parents[2]

_children: dict[int, subprocess.Popen] = {}


def lock_for(folder: Path) -> FileLock:
    """The lock of a job folder, taken at once or not at all."""
    return FileLock(Path(folder) / LOCK_NAME, f"the job in {Path(folder).name}", timeout=0)


def job_alive(folder: Path | None) -> bool:
    return folder is not None and is_held(Path(folder) / LOCK_NAME)


def alive(cfg: Config, g: Generation) -> bool:
    return g.status == "training" and job_alive(local(cfg, g.job_dir))


def holder(cfg: Config, g: Generation) -> int | None:
    """The PID of the live process that runs this generation's job, or None (so nothing else is ever signalled)."""
    folder = local(cfg, g.job_dir)
    if folder is None or not job_alive(folder) or not has_open(g.job_pid, folder / LOCK_NAME):
        return None
    return g.job_pid


def launch(folder: Path, held: FileLock) -> int:
    """Start `python -m loop.jobs.child FOLDER` in its own session, handing it the held lock; return its PID.

    Its own session: closing a terminal or the app does not stop it.
    """
    log = (Path(folder) / "log.txt").open("ab")
    env = os.environ | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                        LOCK_FD_ENV: str(held.fd)}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "loop.jobs.child", str(folder)], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env,
                                pass_fds=(held.fd,))
    finally:
        log.close()
        held.release()  # the child holds it now (or, if it did not start, nobody does)
    _children[proc.pid] = proc
    return proc.pid


def reap() -> None:
    """Collect the exit status of children that ended, so none lingers as a zombie."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]

"""File locks: one writer of the lineage at a time, one watcher and one ingest per workspace, and job liveness.

They are flock(2) locks: the kernel drops them when the holder's process ends however it
ends (a kill, a crash, a reboot), so a lock that is held means a live holder and a stale
lock file means nothing. A PID says nothing after a reboot or once it is reused.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from loop.errors import OperationFailed

POLL_SECONDS = 0.02


class FileLock:
    """An exclusive lock on a file, waited for up to `timeout` seconds (0: not at all)."""

    def __init__(self, path: Path, what: str, timeout: float = 120.0):
        self.path, self.what, self.timeout = Path(path), what, timeout
        self.fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = read_holder(self.path)
                    os.close(fd)
                    raise OperationFailed(f"{self.what} is busy ({holder or 'another process'} holds it); "
                                          "try again in a moment") from None
                time.sleep(POLL_SECONDS)
        self.fd = fd
        return self

    def note(self, text: str) -> None:
        """Say in the file who holds it (for messages); the lock itself is the truth."""
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, text.encode("utf-8"), 0)

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing drops the lock

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """Whether some process (this one included, through another open file) holds the lock on `path`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # releases the shared lock if it was taken
    return False


def read_holder(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def has_open(pid: int | None, path: Path) -> bool:
    """Whether process `pid` has `path` open: the check that a lock's holder is that process, not a reused PID."""
    if not pid:
        return False
    target = os.path.realpath(path)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.path.realpath(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False

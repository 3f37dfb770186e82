"""One watcher per workspace: a second loop on the same inbox is refused with the holder named."""

import os
import threading

import pytest

from loop.errors import OperationFailed
from loop.inbox.watch import WatchLock, run_loop
from tests.helpers import make_workspace


def test_a_second_watcher_is_refused_and_the_lock_is_released(tmp_path):
    cfg = make_workspace(tmp_path)
    with WatchLock(cfg):
        with pytest.raises(OperationFailed, match=f"already watched by pid {os.getpid()}"):
            run_loop(cfg, print, threading.Event(), train=False)
    with WatchLock(cfg):  # released on exit
        pass

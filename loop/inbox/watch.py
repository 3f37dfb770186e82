"""The headless loop: watch the inbox, ingest complete files, train when karma reaches the threshold."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from loop.inbox import ingest
from loop.inbox.files import UNPACKING, claim_inbox, inbox_files
from loop.jobs import recovery, runner as jobs
from loop.locks import FileLock, has_open, is_held, read_holder
from loop.config import Config
from loop.errors import OperationFailed, UserError
from loop.data import waiting
from store.db import get_meta, reading

RESCAN_SECONDS = 5.0
HOLD_SECONDS = 60.0  # the longest a file with a write but no close yet is waited for
RETRY_SECONDS = 60.0  # a file that could not be ingested is tried again after this, or at once when it changes


class Settled:
    """Files that are complete, safe to read: size and mtime unchanged for `settle` seconds, and no writer
    still holding them open (where the platform reports closes), and not just tried without success."""

    def __init__(self, settle: float, clock: Callable[[], float] = time.monotonic):
        self.settle, self.clock = settle, clock
        self.seen: dict[Path, tuple[tuple[int, int], float]] = {}
        self.writing: dict[Path, float] = {}  # written to, no close seen since
        self.failed: dict[Path, tuple[tuple[int, int], float]] = {}
        self.lock = threading.Lock()

    def wrote(self, path: Path) -> None:
        with self.lock:
            self.writing[path] = self.clock()

    def closed(self, path: Path) -> None:
        with self.lock:
            self.writing.pop(path, None)

    def ready(self, paths: list[Path]) -> list[Path]:
        now, out, current = self.clock(), [], {}
        for p in paths:
            sig = _signature(p)
            if sig is None:
                continue
            prev = self.seen.get(p)
            since = prev[1] if prev and prev[0] == sig else now
            current[p] = (sig, since)
            with self.lock:
                busy = now - self.writing.get(p, -HOLD_SECONDS) < HOLD_SECONDS
            failed = self.failed.get(p)
            if failed and failed[0] == sig and now - failed[1] < RETRY_SECONDS:
                continue
            if now - since >= self.settle and not busy:
                out.append(p)
        self.seen = current
        with self.lock:  # forget writes long past and failures of files that have gone
            self.writing = {p: t for p, t in self.writing.items() if now - t < HOLD_SECONDS}
        self.failed = {p: f for p, f in self.failed.items() if p in current}
        return out

    def tried(self, paths: list[Path]) -> None:
        """Remember files still in the inbox after an ingest, so a failure is not retried in a tight loop."""
        now = self.clock()
        for p in paths:
            sig = _signature(p)
            if sig is not None:
                self.failed[p] = (sig, now)
            else:
                self.failed.pop(p, None)

    @property
    def pending(self) -> bool:
        return any(p not in self.failed for p in self.seen)


def _signature(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        try:  # a link to nowhere: still a file to report
            st = p.lstat()
        except OSError:
            return None
    return st.st_size, st.st_mtime_ns


def _empty(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return st.st_size == 0 and not path.is_symlink()


def _observer(folder: Path, wake: threading.Event, settled: Settled):
    from watchdog.events import (  # noqa: PLC0415
        FileClosedEvent, FileClosedNoWriteEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent,
        FileOpenedEvent, FileSystemEventHandler,
    )
    from watchdog.observers import Observer  # noqa: PLC0415

    # Only inotify reports closes; elsewhere a write is not tracked and the settle time alone decides.
    track = sys.platform.startswith("linux")

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            if track and not event.is_directory:
                path = Path(os.fsdecode(event.src_path))
                if isinstance(event, FileModifiedEvent) or (isinstance(event, FileCreatedEvent) and _empty(path)):
                    # A write, or a file just opened for one. Files found in a new folder also come as
                    # "created", with their content in and their close perhaps missed: those are not held.
                    settled.wrote(path)
                elif isinstance(event, FileClosedEvent):
                    settled.closed(path)
                elif isinstance(event, FileMovedEvent):  # a rename into place finishes a write
                    settled.closed(path)
                    settled.closed(Path(os.fsdecode(event.dest_path)))
            if not isinstance(event, (FileOpenedEvent, FileClosedNoWriteEvent)):  # reads (ours too) change nothing
                wake.set()

    obs = Observer()
    obs.schedule(Handler(), str(folder), recursive=True)
    obs.daemon = True
    obs.start()
    return obs


def run_loop(cfg: Config, say: Callable[[str], None], stop: threading.Event, train: bool = True) -> list[int]:
    """Until `stop` is set: ingest what settles in the inbox and start a generation when karma allows.

    Returns the generations it started, so the caller can cancel one still running. No file in the inbox
    and no failure of one step can end the loop: each is reported and the loop goes on.
    """
    ingest.context(cfg)  # a config mistake is the user's to fix before watching starts
    claim_inbox(cfg)
    with WatchLock(cfg):
        return _watch(cfg, say, stop, train)


class WatchLock:
    """One watcher per workspace: a second `ladder run` or app window would ingest the same files twice."""

    def __init__(self, cfg: Config):
        self.lock = FileLock(watch_lock_path(cfg), "the inbox watcher", timeout=0)

    def __enter__(self) -> WatchLock:
        try:
            self.lock.acquire()
        except OperationFailed:
            holder = read_holder(self.lock.path) or "another process"
            raise OperationFailed(f"the inbox is already watched by {holder}; stop it or leave the watching to it") \
                from None
        self.lock.note(f"pid {os.getpid()}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def watch_lock_path(cfg: Config) -> Path:
    return cfg.models_dir / ".watch.lock"


def watcher(cfg: Config) -> int | None:
    """The PID of the process watching this workspace's inbox (`ladder run`), or None when none is."""
    path = watch_lock_path(cfg)
    if not is_held(path):
        return None
    text = read_holder(path)
    pid = int(text.split()[-1]) if text.split() and text.split()[-1].isdigit() else None
    return pid if has_open(pid, path) else None


def _watch(cfg: Config, say: Callable[[str], None], stop: threading.Event, train: bool) -> list[int]:
    wake = threading.Event()
    settled = Settled(cfg.watch.settle_seconds)
    obs = _observer(cfg.inbox_dir, wake, settled)
    for note in recovery.recover(cfg):
        say(f"note: {note}")
    _clean_unpacking(cfg)
    last_scan, warned_stop, started, last_error = 0.0, None, [], ""
    last_event = _last_event_id(cfg)
    try:
        while not stop.is_set():
            if not cfg.path.exists():  # the workspace was deleted or moved away: nothing left to watch
                say(f"stopping: {cfg.path} is gone")
                break
            try:
                last_scan, warned_stop = _step(cfg, say, settled, wake, last_scan, warned_stop, started, train)
                last_event = _tell_events(cfg, last_event, say)
                last_error = ""
            except Exception as e:  # noqa: BLE001 - say it (once while it lasts) and keep watching
                if f"{type(e).__name__}: {e}" != last_error:
                    last_error = f"{type(e).__name__}: {e}"
                    say(f"error: {last_error}; still watching")
                stop.wait(1.0)
            wake.wait(0.5)
    finally:
        obs.stop()
        obs.join(timeout=5)
    return started


def _step(cfg: Config, say: Callable[[str], None], settled: Settled, wake: threading.Event, last_scan: float,
          warned_stop: str | None, started: list[int], train: bool) -> tuple[float, str | None]:
    now = time.monotonic()
    if wake.is_set() or now - last_scan >= RESCAN_SECONDS or settled.pending:
        wake.clear()
        last_scan = now
        ready = settled.ready(inbox_files(cfg))
        if ready:
            report = ingest.ingest(cfg, ready)
            settled.tried([p for p in ready if p.exists() or p.is_symlink()])
            say(f"ingested {report['ingested']} record(s), {report['duplicates']} duplicate(s) from "
                f"{len(ready)} file(s); karma {report['karma']:.1f}/{report['karma_threshold']:.1f}")
            for q in report["quarantined"]:
                say(f"quarantined {q['path']}: {q['reason']}")
            for q in report["retry"]:
                say(f"could not ingest {q['path']} now ({q['reason']}); will try again")
    if last_scan == now and recovery.any_dead(cfg):  # a job that died is settled here, in the engine
        for note in recovery.recover(cfg):
            say(f"note: {note}")
    if train and jobs.running(cfg) is None:
        with reading(cfg.db_url) as s:
            due, stopped = waiting.wait(s, cfg), get_meta(s, "stopped")
        karma = due.karma
        if stopped:
            if stopped != warned_stop:
                say(f"not training: {stopped}. Run 'ladder train' or approve/roll back to go on.")
                warned_stop = stopped
        elif not due.ready and due.message.startswith("G"):
            if due.message.split(":")[0] != (warned_stop or "").split(":")[0]:  # said once per attempt
                say(f"not training: {due.message}")
                warned_stop = due.message
        elif due.ready:
            try:
                gen_id, pid = jobs.start(cfg)
            except (UserError, OperationFailed) as e:
                if str(e) != warned_stop:  # said once, not every half second
                    say(f"not training: {e}")
                    warned_stop = str(e)
            else:
                say(f"karma {karma:.1f} reached {cfg.karma.threshold:.1f}: training G{gen_id} (pid {pid})")
                started.append(gen_id)
    return last_scan, warned_stop


def _clean_unpacking(cfg: Config, older_than: float = 3600.0) -> None:
    """Zip members left half-unpacked by a loop that was killed: nobody is reading them any more."""
    folder = cfg.inbox_dir / UNPACKING
    for entry in folder.glob("*") if folder.is_dir() else []:
        try:
            if time.time() - entry.stat().st_mtime > older_than:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink()
        except OSError:
            pass


def _last_event_id(cfg: Config) -> int:
    from sqlalchemy import func  # noqa: PLC0415
    from sqlmodel import select  # noqa: PLC0415

    from store.tables import Event  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        return s.exec(select(func.coalesce(func.max(Event.id), 0))).one()


def _tell_events(cfg: Config, after: int, say: Callable[[str], None]) -> int:
    """Say what jobs report: stages, results, errors, and every tenth training step."""
    import json  # noqa: PLC0415

    from sqlmodel import select  # noqa: PLC0415

    from store.tables import Event  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        rows = s.exec(select(Event).where(Event.id > after, Event.gen_id != None).order_by(Event.id)).all()  # noqa: E711
    for ev in rows:
        after = ev.id
        if ev.kind == "progress":
            d = json.loads(ev.data)
            if d.get("step") == 1 or d.get("step", 0) % 10 == 0 or d.get("step") == d.get("total"):
                say(f"G{ev.gen_id}: step {d['step']}/{d['total']} loss {d['loss']:.3f} {d.get('tokens_per_s', 0):.0f} tok/s")
        elif ev.kind in ("stage", "done", "error", "warning") and ev.message:
            say(ev.message)
    return after

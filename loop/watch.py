"""The headless loop: watch the inbox, ingest complete files, train when karma reaches the threshold."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from loop import ingest, jobs
from loop.config import Config
from loop.errors import UserError
from loop.lineage import pending_karma
from store.db import get_meta, session

RESCAN_SECONDS = 5.0


class Settled:
    """Files whose size and mtime have not changed for `settle` seconds: complete, safe to read."""

    def __init__(self, settle: float, clock: Callable[[], float] = time.monotonic):
        self.settle, self.clock = settle, clock
        self.seen: dict[Path, tuple[tuple[int, int], float]] = {}

    def ready(self, paths: list[Path]) -> list[Path]:
        now, out, current = self.clock(), [], {}
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                continue
            sig = (st.st_size, st.st_mtime_ns)
            prev = self.seen.get(p)
            since = prev[1] if prev and prev[0] == sig else now
            current[p] = (sig, since)
            if now - since >= self.settle:
                out.append(p)
        self.seen = current
        return out


def _observer(folder: Path, wake: threading.Event):
    from watchdog.events import FileSystemEventHandler  # noqa: PLC0415
    from watchdog.observers import Observer  # noqa: PLC0415

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            wake.set()

    obs = Observer()
    obs.schedule(Handler(), str(folder), recursive=True)
    obs.daemon = True
    obs.start()
    return obs


def run_loop(cfg: Config, say: Callable[[str], None], stop: threading.Event, train: bool = True) -> list[int]:
    """Until `stop` is set: ingest what settles in the inbox and start a generation when karma allows.

    Returns the generations it started, so the caller can cancel one still running.
    """
    wake = threading.Event()
    obs = _observer(cfg.inbox_dir, wake)
    settled = Settled(cfg.watch.settle_seconds)
    for note in jobs.recover(cfg):
        say(f"note: {note}")
    last_scan, warned_stop, started = 0.0, None, []
    last_event = _last_event_id(cfg)
    try:
        while not stop.is_set():
            now = time.monotonic()
            if wake.is_set() or now - last_scan >= RESCAN_SECONDS or settled.seen:
                wake.clear()
                last_scan = now
                ready = settled.ready(ingest.inbox_files(cfg))
                if ready:
                    report = ingest.ingest(cfg, ready)
                    say(f"ingested {report['ingested']} record(s), {report['duplicates']} duplicate(s) from "
                        f"{len(ready)} file(s); karma {report['karma']:.1f}/{report['karma_threshold']:.1f}")
                    for q in report["quarantined"]:
                        say(f"quarantined {q['path']}: {q['reason']}")
            if train and jobs.running(cfg) is None:
                with session(cfg.db_url) as s:
                    karma, stopped = pending_karma(s), get_meta(s, "stopped")
                if stopped:
                    if stopped != warned_stop:
                        say(f"not training: {stopped}. Run 'ladder train' or approve/roll back to go on.")
                        warned_stop = stopped
                elif karma >= cfg.karma.threshold:
                    try:
                        gen_id, pid = jobs.start(cfg)
                    except UserError as e:
                        say(f"not training: {e}")
                    else:
                        say(f"karma {karma:.1f} reached {cfg.karma.threshold:.1f}: training G{gen_id} (pid {pid})")
                        started.append(gen_id)
            last_event = _tell_events(cfg, last_event, say)
            wake.wait(0.5)
    finally:
        obs.stop()
        obs.join(timeout=5)
    return started


def _last_event_id(cfg: Config) -> int:
    from sqlalchemy import func  # noqa: PLC0415
    from sqlmodel import select  # noqa: PLC0415

    from store.tables import Event  # noqa: PLC0415

    with session(cfg.db_url) as s:
        return s.exec(select(func.coalesce(func.max(Event.id), 0))).one()


def _tell_events(cfg: Config, after: int, say: Callable[[str], None]) -> int:
    """Say what jobs report: stages, results, errors, and every tenth training step."""
    import json  # noqa: PLC0415

    from sqlmodel import select  # noqa: PLC0415

    from store.tables import Event  # noqa: PLC0415

    with session(cfg.db_url) as s:
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

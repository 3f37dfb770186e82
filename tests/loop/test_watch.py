"""The live inbox: `ladder run` ingests what settles, never reads a file half-way, and survives any input."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlmodel import select

from loop import config, workspace
from loop.data.lineage import pending_karma
from loop.inbox.watch import HOLD_SECONDS, RETRY_SECONDS, Settled
from store.db import reading
from store.tables import Conversation

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_file_is_ready_once_its_size_and_time_hold_still(tmp_path):
    clock, f = Clock(), tmp_path / "a.jsonl"
    settled = Settled(1.0, clock)
    f.write_text("{}\n")
    assert settled.ready([f]) == []
    clock.now += 0.6
    with f.open("a") as out:
        out.write("{}\n")
    assert settled.ready([f]) == []  # it changed: the wait starts again
    clock.now += 0.6
    assert settled.ready([f]) == []
    clock.now += 0.5
    assert settled.ready([f]) == [f]


def test_a_file_still_open_for_writing_waits_for_its_close(tmp_path):
    clock, f = Clock(), tmp_path / "a.jsonl"
    settled = Settled(1.0, clock)
    f.write_text("{}\n")
    settled.wrote(f)
    settled.ready([f])
    clock.now += 5
    assert settled.ready([f]) == []  # stable, but the writer has not closed it
    settled.closed(f)
    assert settled.ready([f]) == [f]
    settled.wrote(f)
    clock.now += HOLD_SECONDS + 1  # a close that never comes is not waited for forever
    assert settled.ready([f]) == [f]


def test_a_file_that_failed_is_retried_when_it_changes_or_later(tmp_path):
    clock, f = Clock(), tmp_path / "a.jsonl"
    settled = Settled(0.0, clock)
    f.write_text("{}\n")
    assert settled.ready([f]) == [f]
    settled.tried([f])
    assert settled.ready([f]) == [] and not settled.pending
    clock.now += RETRY_SECONDS + 1
    assert settled.ready([f]) == [f]
    settled.tried([f])
    f.write_text("{}\n{}\n")
    assert settled.ready([f]) == [f]


def chat(n: int) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"How many disks does node-{n} have?"},
                                    {"role": "assistant", "content": f"node-{n} has {n % 7 + 1} disks."}]})


class Ladder:
    """`ladder run` as a user starts it, its output collected as it comes."""

    def __init__(self, cfg: config.Config):
        self.cfg = cfg
        # faulthandler: a process that will not stop is sent SIGABRT and prints where each thread was.
        env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"}
        # Ctrl-C as at a terminal: a suite started in the background (`cmd &` in a script) ignores SIGINT,
        # the child would inherit that, and Python then never raises KeyboardInterrupt in it.
        self.proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "run"], cwd=ROOT,
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()

    def said(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(timeout=10)
            time.sleep(0.5)  # let the reader thread take the last lines
            raise AssertionError("ladder run did not stop within 30 s of Ctrl-C; its last output:\n"
                                 + "".join(self.lines[-80:])) from None


def until(check, timeout: float = 20.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def count(cfg: config.Config, name: str | None = None) -> int:
    with reading(cfg.db_url) as s:
        q = select(Conversation)
        if name:
            q = q.where(Conversation.source_file == f"inbox/{name}")
        return len(s.exec(q).all())


@pytest.fixture
def live(tmp_path):
    cfg = workspace.create(tmp_path)
    # No training: the threshold is out of reach, so only the inbox is exercised.
    cfg.path.write_text("[karma]\nthreshold = 1000000.0\n[watch]\nsettle_seconds = 0.5\n", encoding="utf-8")
    cfg = config.load(cfg.path)
    (cfg.inbox_dir / "early.jsonl").write_text("\n".join(chat(n) for n in range(5)) + "\n", encoding="utf-8")
    ladder = Ladder(cfg)
    yield cfg, ladder
    if ladder.proc.poll() is None:
        ladder.proc.kill()


def test_ladder_run_ingests_moves_and_counts_what_arrives(live):
    cfg, ladder = live
    inbox, processed = cfg.inbox_dir, cfg.inbox_dir / "processed"
    # a file that was there before the loop started
    until(lambda: (processed / "early.jsonl").exists(), what="the file dropped before the start")
    assert count(cfg, "early.jsonl") == 5

    # written to a temporary name, then renamed into place
    tmp = inbox / "batch.jsonl.part"
    tmp.write_text("\n".join(chat(n) for n in range(10, 20)) + "\n", encoding="utf-8")
    time.sleep(1.2)
    assert tmp.exists() and count(cfg) == 5  # a temporary name is never read
    tmp.rename(inbox / "batch.jsonl")
    until(lambda: (processed / "batch.jsonl").exists(), what="the renamed file")
    assert count(cfg, "batch.jsonl") == 10

    # a file still being written, with a pause longer than the settle time, is not read half-way
    slow = inbox / "slow.jsonl"
    body = "\n".join(chat(n) for n in range(100, 140)) + "\n"
    with slow.open("w", encoding="utf-8") as f:
        f.write(body[: len(body) // 2])
        f.flush()
        time.sleep(2.5)
        assert slow.exists() and count(cfg, "slow.jsonl") == 0
        f.write(body[len(body) // 2:])
    until(lambda: (processed / "slow.jsonl").exists(), what="the slowly written file")
    assert count(cfg, "slow.jsonl") == 40 and not list((inbox / "quarantine").glob("slow*"))

    # the same content again, under its name and another: nothing counted twice
    with reading(cfg.db_url) as s:
        karma = pending_karma(s)
    assert karma == pytest.approx(55.0)
    (inbox / "slow.jsonl").write_text(body, encoding="utf-8")
    (inbox / "slow-copy.jsonl").write_text(body, encoding="utf-8")
    until(lambda: not (inbox / "slow-copy.jsonl").exists() and not (inbox / "slow.jsonl").exists(),
          what="the duplicates to be moved")
    with reading(cfg.db_url) as s:
        assert pending_karma(s) == pytest.approx(karma) and count(cfg) == 55

    # bad input is quarantined with its reason and the loop goes on
    (inbox / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (inbox / "broken.json").write_text('[{"messages": [}]', encoding="utf-8")
    until(lambda: (inbox / "quarantine" / "broken.json.reason").exists(), what="the quarantine")
    assert (inbox / "quarantine" / "photo.png.reason").read_text().startswith("binary file")
    (inbox / "ops").mkdir()
    (inbox / "ops" / "late.jsonl").write_text(chat(999) + "\n", encoding="utf-8")
    until(lambda: (processed / "ops" / "late.jsonl").exists(), what="a good file after the bad ones")
    until(lambda: ladder.said("karma 56.0/1000000.0"), what="the karma line", timeout=5)
    assert ladder.said("quarantined inbox/broken.json: invalid JSON at line 1, column 16 (Expecting value)")

    assert ladder.stop() == 0
    assert ladder.said("stopped") and not ladder.said("Traceback")

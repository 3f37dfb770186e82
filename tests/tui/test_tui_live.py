"""The app follows the store: a running job is reattached, engine events become notifications, and a change made
elsewhere (another window, the CLI) shows up without a restart."""

from __future__ import annotations

import json
import os
import signal

import pytest

from loop.jobs import promotion, recovery
from store.db import session
from store.tables import Event
from tuikit import SIZE, make_app, noted, ready, screen_text, store, wait_for

pytestmark = pytest.mark.anyio


def progress(cfg, step: int) -> None:
    with session(cfg.db_url) as s:
        s.add(Event(gen_id=6, kind="progress", data=json.dumps(
            {"step": step, "total": 60, "loss": 1.0, "tokens_per_s": 140.0, "elapsed_s": step * 0.9, "lr": 2e-4})))


async def test_opening_the_app_reattaches_to_a_running_job_and_follows_it(running_job):
    app = make_app(running_job)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: app.main.training is not None and app.main.training.step == 20)
        assert app.main.job.gen_id == 6 and app.main.job.alive
        await wait_for(pilot, lambda: "G6 train 20/60 ETA 0:36" in screen_text(app))  # the status line, on every tab
        await pilot.press("5")
        await wait_for(pilot, lambda: "step 20/60" in screen_text(app))
        progress(running_job, 30)
        await wait_for(pilot, lambda: "step 30/60" in screen_text(app))
        assert [s for s, _ in app.main.training.loss][-2:] == [20, 30]


async def test_a_job_that_dies_is_seen_by_the_app_and_settled_by_the_engine_not_the_app(running_job):
    app = make_app(running_job)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: app.main.job is not None and app.main.job.alive)
        os.kill(store(running_job)[0][6].job_pid, signal.SIGKILL)
        await wait_for(pilot, lambda: not app.main.job.alive)  # the app has read the job as gone...
        assert store(running_job)[0][6].status == "training"  # ...and, being a reader, changed nothing
        assert recovery.recover(running_job)  # what the loop (an engine process) does on its next scan
        await wait_for(pilot, lambda: noted(app, "G6 was interrupted during train", "warning"))
        await wait_for(pilot, lambda: app.main.job.status == "failed")


async def test_engine_errors_and_quarantines_become_notifications_with_the_reason(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        with session(ws.db_url) as s:
            s.add(Event(gen_id=7, kind="error", message="G7 failed: CUDA [bold]out[/bold] of memory"))
            s.add(Event(kind="warning", message="inbox/x.json: quarantined: not valid JSON"))
            s.add(Event(kind="progress", gen_id=7, data="{}"))
        await wait_for(pilot, lambda: noted(app, "G7 failed: CUDA [bold]out[/bold] of memory", "error"))
        await wait_for(pilot, lambda: noted(app, "inbox/x.json: quarantined: not valid JSON", "warning"))
        assert app.is_running


async def test_a_decision_made_elsewhere_shows_without_a_restart(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        promotion.approve(ws, 5)  # as another window or 'ladder approve 5' would
        await wait_for(pilot, lambda: app.main.ladder.active_id == 5)
        await wait_for(pilot, lambda: "active G5" in screen_text(app))


async def test_notices_that_arrive_together_are_one_toast(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        before = len(app.notes)
        with session(ws.db_url) as s:  # one commit, as one ingest of a dropped folder writes them
            for n in range(5):
                s.add(Event(kind="warning", message=f"inbox/bad-{n}.json: quarantined: not valid JSON"))
        await wait_for(pilot, lambda: noted(app, "… and 2 more (the Inbox tab lists them)", "warning"))
        toasts = [msg for msg, _ in app.notes[before:] if "quarantined" in msg]
        assert len(toasts) == 1 and toasts[0].count("\n") == 3
        assert "bad-0.json" in toasts[0] and "bad-2.json" in toasts[0] and "bad-4.json" not in toasts[0]

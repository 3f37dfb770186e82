"""Keys approve, reject, roll back and undo, and the store shows the result; engine errors become notifications."""

from __future__ import annotations

import pytest

import loop.jobs.runner
from loop.locks import is_held
import tui.screens.main as main_screen
from tuikit import settle, SIZE, make_app, noted, ready, select_gen, store, wait_for

pytestmark = pytest.mark.anyio


async def test_approve_key_makes_the_selected_candidate_active(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 5)
        await pilot.press("a")
        await wait_for(pilot, lambda: store(ws)[1] == 5)
        await wait_for(pilot, lambda: app.main.ladder.active_id == 5)
        gens, _ = store(ws)
        assert gens[5].status == "promoted" and gens[5].reason == "approved by the user"
        assert noted(app, "G5 approved")
        assert app.main.query_one("#chat").target.gen_id == 5  # the chat follows the active generation


async def test_reject_key_rejects_the_candidate_and_keeps_the_active_one(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 5)
        await pilot.press("r")
        await wait_for(pilot, lambda: store(ws)[0][5].status == "rejected")
        assert store(ws)[1] == 4
        await wait_for(pilot, lambda: any(g.id == 5 and g.status == "rejected" for g in app.main.ladder.rows))


async def test_rollback_is_one_key_and_undo_puts_it_back(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert "undo" not in {b.binding.id for b in app.screen.active_bindings.values()}  # hidden until a rollback
        await pilot.press("b")
        await wait_for(pilot, lambda: store(ws)[1] == 1)
        assert store(ws)[0][4].status == "rolled_back"
        await wait_for(pilot, lambda: app.main.undo == (4, 1))
        assert noted(app, "Rolled back from G4 to G1. Press u")
        assert "undo" in {b.binding.id for b in app.screen.active_bindings.values()}
        await pilot.press("u")
        await wait_for(pilot, lambda: store(ws)[1] == 4)
        assert store(ws)[0][4].status == "promoted"
        assert app.main.undo is None


async def test_undo_is_offered_only_for_a_short_while(ws, monkeypatch):
    monkeypatch.setattr(main_screen, "UNDO_SECONDS", 0.5)
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("b")
        await wait_for(pilot, lambda: noted(app, "Rolled back from G4 to G1"))
        await wait_for(pilot, lambda: app.main.undo is None)
        await pilot.press("u")
        await settle(pilot)  # had the key still worked, its request would be on record by now
        assert "undo_rollback" not in app.asked and store(ws)[1] == 1


async def test_an_engine_refusal_is_a_notification_not_a_crash(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 0)
        await pilot.press("r")
        await wait_for(pilot, lambda: noted(app, "G0 is the base model and cannot be rejected", "error"))
        assert app.is_running and store(ws)[0][0].status == "promoted"


async def test_train_key_starts_a_job_through_the_engine(ws, monkeypatch):
    started = []
    monkeypatch.setattr(loop.jobs.runner, "start", lambda cfg, steps=None: started.append(cfg.path) or (6, 4242))
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("t")
        await wait_for(pilot, lambda: noted(app, "G6: training started (pid 4242)"))
        assert started == [ws.path]


async def test_cancel_needs_a_second_press_and_stops_the_job(running_job):
    app = make_app(running_job)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await wait_for(pilot, lambda: app.main.job is not None and app.main.job.alive)
        lock = running_job.models_dir / "gen-0006" / "job" / "job.lock"
        await pilot.press("x")
        await wait_for(pilot, lambda: noted(app, "Press the key again"))
        assert is_held(lock), "one press only warns"
        await pilot.press("x")
        await wait_for(pilot, lambda: not is_held(lock))
        await wait_for(pilot, lambda: noted(app, "asked G6 to stop"))

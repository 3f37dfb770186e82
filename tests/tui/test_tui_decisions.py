"""Keys approve, reject, roll back and undo, and the store shows the result; engine errors become notifications."""

from __future__ import annotations

import pytest

import loop.jobs.runner
from loop.locks import is_held
import tui.screens.decisions as decisions
from textual.widgets import Static
from tui.screens.override import OverrideScreen
from tuikit import settle, SIZE, make_app, noted, ready, screen_text, select_gen, store, wait_for

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
    monkeypatch.setattr(decisions, "UNDO_SECONDS", 0.5)
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


async def ask_to_approve_g2(pilot, app) -> None:
    """Select G2 (rejected for forgetting), wait for its detail (the gates), press approve: the dialog opens."""
    await ready(pilot)
    await select_gen(pilot, 2)
    await wait_for(pilot, lambda: app.main.detail is not None and app.main.detail.gen.id == 2)
    await pilot.press("a")
    await wait_for(pilot, lambda: "Approve G2 over its gates?" in screen_text(app))


async def test_approving_a_rejected_generation_asks_first_naming_the_failed_gates(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ask_to_approve_g2(pilot, app)
        assert isinstance(app.screen, OverrideScreen)
        shown = [str(w.render()) for w in app.screen.query(Static)]
        assert any(line.strip().startswith("✗ recall 0.71") for line in shown), shown  # the failed gate, by name
        await pilot.press("escape")
        await wait_for(pilot, lambda: "Approve G2 over its gates?" not in screen_text(app))
        await settle(pilot)  # had escape approved it, the request would be on record by now
        assert "approve" not in app.asked and store(ws)[1] == 4


async def test_an_override_is_offered_an_undo_that_puts_everything_back(ws):
    before = store(ws)[0][2]
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ask_to_approve_g2(pilot, app)
        await pilot.press("y")
        await wait_for(pilot, lambda: store(ws)[1] == 2)
        assert store(ws)[0][2].override
        await wait_for(pilot, lambda: noted(app, "G2 approved over its gates (G4 was active). Press u"))
        await pilot.press("u")
        await wait_for(pilot, lambda: store(ws)[1] == 4)
        after = store(ws)[0][2]
        assert (after.status, after.reason, after.override) == (before.status, before.reason, before.override)
        await wait_for(pilot, lambda: noted(app, "undone: G4 is active again"))


def test_the_override_dialog_follows_the_gates_verdict_even_before_the_detail_loads():
    import json

    from loop.jobs.promotion import GATES_HAD, USER_REJECTED
    from store.tables import Generation

    failed = json.dumps([{"name": "recall", "passed": False}])
    by_gates = Generation(id=3, status="rejected", reason="rejected for forgetting: recall 0.7", gates=failed)
    again = Generation(id=3, status="rejected", gates=failed,
                       reason=f"{USER_REJECTED}{GATES_HAD}rejected for forgetting: recall 0.7)")
    by_user = Generation(id=3, status="rejected", reason=USER_REJECTED, gates=json.dumps([{"name": "recall", "passed": True}]))
    assert decisions.asks_first(by_gates, ()) and decisions.asks_first(again, ())
    assert not decisions.asks_first(by_user, ())
    assert not decisions.asks_first(Generation(id=3, status="promoted", reason="passed every gate"), ())

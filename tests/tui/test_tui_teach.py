"""The practice / synth dialog: the plan, who teaches, and a real practice round run from the app."""

from __future__ import annotations

import pytest

from tuikit import SIZE, make_app, ready, screen_text, wait_for

pytestmark = pytest.mark.anyio


def logged(app) -> str:
    return "\n".join(str(line) for line in app.screen.query_one("#teach-log").lines)


async def test_the_dialog_shows_the_plan_and_a_practice_round_lands_in_the_inbox(tiny_ws, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    app = make_app(tiny_ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: "practice (p): 2 of 3 practice item(s)" in screen_text(app), timeout=60)
        shown = screen_text(app)
        assert "reference answers" in shown and "synth needs ANTHROPIC_API_KEY" in shown
        await pilot.press("p")
        await wait_for(pilot, lambda: "landed:" in logged(app), timeout=300)
        assert "correction(s)" in logged(app) and "practice-G0-" in logged(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main)
    assert list((tiny_ws.inbox_dir / "processed").rglob("practice-G0-*.jsonl")), "ingested by the round"


async def test_with_a_key_the_plan_prices_each_synth_kind(tiny_ws, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    app = make_app(tiny_ws, watch=False)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("p")
        await wait_for(pilot, lambda: "2 agentic: 10 request(s), at most $" in screen_text(app), timeout=60)
        assert "synth costs money" in screen_text(app)

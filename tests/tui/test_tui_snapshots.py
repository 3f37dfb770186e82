"""Snapshots of the main screens on a populated workspace, at a fixed terminal size and a fixed clock.

Regenerate after a deliberate change with: pytest tests/tui/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import re

from tuikit import SIZE, make_app, ready, select_gen, wait_for


async def stable(pilot) -> None:
    """Wait until two looks at the screen, a moment apart, show the same thing, styles included (a table's cursor
    row can be restyled after its text is final, and the snapshot compares styles too)."""
    before = None
    for _ in range(40):
        await pilot.pause(0.15)
        now = re.sub(r"terminal-\d+", "terminal", pilot.app.export_screenshot())
        if now == before:
            return
        before = now
    raise AssertionError("the screen kept changing")


def settled(*keys: str, gen: int | None = None, until=None):
    """A run_before that waits for the first screen, selects a generation, presses keys and waits for the data."""

    async def run_before(pilot) -> None:
        await ready(pilot)
        if gen is not None:
            await select_gen(pilot, gen)
        for key in keys:
            await pilot.press(key)
        if until is not None:
            await wait_for(pilot, lambda: until(pilot.app))
        await pilot.pause(0.3)
        # A table measures its rows when the app is next idle; a busy machine can delay that past a short pause.
        await wait_for(pilot, lambda: all(t.virtual_size.height >= t.row_count
                                          for t in pilot.app.screen.query("DataTable") if t.display))
        for widget in pilot.app.screen.query("Input"):
            widget.cursor_blink = False
        pilot.app.clear_notifications()
        await stable(pilot)

    return run_before


def test_ladder_screen(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=SIZE, run_before=settled(gen=5))


def test_metrics_screen(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=SIZE,
                        run_before=settled("2", until=lambda app: app.main.metrics is not None))


def test_confidence_screen(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=SIZE, run_before=settled(
        "3", gen=5, until=lambda app: app.main.confidence is not None and app.main.confidence.gen_id == 5))


def test_inbox_screen(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=SIZE, run_before=settled("4"))


def test_training_screen_while_a_job_runs(running_job, snap_compare):
    assert snap_compare(make_app(running_job), terminal_size=SIZE, run_before=settled(
        "5", until=lambda app: app.main.training is not None and app.main.training.step == 20))


def test_chat_after_an_answer(ws, snap_compare):
    def answered(app) -> bool:
        chat = app.main.query_one("#chat")
        return bool(chat.exchanges) and chat.exchanges[-1].done

    async def ask(pilot) -> None:
        await ready(pilot)
        await pilot.press("c")
        pilot.app.focused.insert_text_at_cursor("how do I restart app?")
        await pilot.press("enter")
        await settled(until=answered)(pilot)

    assert snap_compare(make_app(ws), terminal_size=SIZE, run_before=ask)


SMALL, LARGE = (80, 24), (200, 50)


def test_ladder_screen_at_80x24(ws, snap_compare):
    """The chat starts hidden, the ladder shows its deciding columns, the detail and the footer's Help and Quit."""
    assert snap_compare(make_app(ws), terminal_size=SMALL, run_before=settled(gen=4))


def test_metrics_screen_at_80x24(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=SMALL, run_before=settled(
        "2", until=lambda app: app.main.metrics is not None))


def test_ladder_with_the_chat_shown_at_80x24(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=SMALL, run_before=settled("h", gen=4))


def test_ladder_screen_at_200x50(ws, snap_compare):
    assert snap_compare(make_app(ws), terminal_size=LARGE, run_before=settled(gen=5))

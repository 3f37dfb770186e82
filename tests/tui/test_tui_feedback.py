"""loop.feedback: chat feedback becomes inbox files the ingester reads as chat records or correction pairs."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

from loop.inbox import feedback, ingest
from loop.errors import UserError
from store.db import session
from store.tables import Conversation

EXCHANGE = [{"role": "user", "content": "How do I restart [b]x[/b]?"}, {"role": "assistant", "content": "Like so."}]


def test_a_good_exchange_is_a_chat_record_written_atomically(ws):
    path = feedback.good(ws.inbox_dir, EXCHANGE, gen_id=4)
    assert path.parent == ws.inbox_dir and path.suffix == ".jsonl" and not path.name.startswith(".")
    assert [p.name for p in ws.inbox_dir.iterdir() if p.name.startswith(".")] == []
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["messages"] == EXCHANGE and record["domain"] == "chat-feedback" and record["tags"] == ["good", "G4"]
    report = ingest.ingest(ws, [path])
    assert report["ingested"] == 1
    with session(ws.db_url) as s:
        row = s.exec(select(Conversation).where(Conversation.domain == "chat-feedback")).one()
    assert row.kind == "chat" and json.loads(row.messages) == EXCHANGE


def test_a_correction_is_a_chosen_rejected_pair(ws):
    path = feedback.correction(ws.inbox_dir, "How?", "The right way.", "The wrong way.", gen_id=5, raw=True)
    assert json.loads(path.read_text(encoding="utf-8"))["tags"] == ["correction", "G5", "raw-prompt"]
    ingest.ingest(ws, [path])
    with session(ws.db_url) as s:
        row = s.exec(select(Conversation).where(Conversation.kind == "correction")).one()
    assert row.rejected == "The wrong way." and json.loads(row.messages)[-1]["content"] == "The right way."
    assert row.karma > 0


@pytest.mark.parametrize("call", [
    lambda inbox: feedback.good(inbox, [{"role": "user", "content": "q"}]),
    lambda inbox: feedback.correction(inbox, "q", "  ", "bad"),
    lambda inbox: feedback.correction(inbox, "q", "same", "same"),
    lambda inbox: feedback.correction(inbox, "", "good", "bad"),
])
def test_feedback_that_would_teach_nothing_is_refused_and_writes_nothing(ws, call):
    with pytest.raises(UserError):
        call(ws.inbox_dir)
    assert [p for p in ws.inbox_dir.iterdir() if p.is_file()] == []

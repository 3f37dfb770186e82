"""ChatGPT's conversations.json: the kept path through the tree, tools, multimodal parts, hidden nodes."""

import json
import shutil
from pathlib import Path

from loop.inbox.formats import BadRecord, Options, Record, detect

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "inbox" / "chatgpt" / "conversations.json"


def conversations(path: Path = EXPORT) -> tuple[dict[str, Record], list[BadRecord]]:
    items = list(detect(path).parse(path, Options()))
    records = {i.meta["title"]: i for i in items if isinstance(i, Record)}
    return records, [i for i in items if isinstance(i, BadRecord)]


def test_follows_current_node_back_to_the_root_past_a_regenerated_answer():
    records, _ = conversations()
    disk = records["Disk filling up on build box"]
    assert disk.source == "chatgpt" and disk.kind == "chat" and disk.meta["branches"] == 1
    # the hidden system node and the custom-instructions node are not turns
    assert [m["role"] for m in disk.messages] == ["user", "assistant", "user", "assistant"]
    answer = disk.messages[1]["content"]
    assert answer.startswith("Start with `du -xh") and "I'd be happy to help" not in json.dumps(disk.messages)
    assert disk.meta["created_at"].startswith("2024-04-29T") and disk.meta["id"].startswith("6630a1f2-0001")
    assert disk.meta["model"] == "gpt-4o"


def test_an_edited_question_keeps_the_branch_the_user_went_back_to():
    records, _ = conversations()
    cron = records["cron vs systemd timers"]
    assert cron.messages[0]["content"] == "should I use cron or systemd timers for backups?"
    assert "Timers." not in [m["content"] for m in cron.messages]


def test_without_current_node_the_newest_branch_is_taken():
    records, _ = conversations()
    assert records["Python venv"].messages[-1]["content"].startswith("`python3.11 -m venv .venv`")


def test_a_conversation_about_an_image_is_set_aside_and_tools_become_calls_and_results():
    records, bad = conversations()
    assert "Latency chart from CSV" not in records  # "here's a screenshot": its text alone cannot be learned
    chart = next(b for b in bad if b.pos == 2)
    assert chart.reason == "item 2: a message holds an image: Ladder trains on text only, so the conversation is set aside"
    assert json.loads(chart.raw)["title"] == "Latency chart from CSV"  # kept whole in the bad-records file
    browse = records["Latest Postgres version"]
    assert browse.messages[1]["tool_calls"][0]["function"]["name"] == "browser"
    assert "PostgreSQL 17 Released" in browse.messages[2]["content"]


def test_a_conversation_with_no_answer_is_reported_not_dropped():
    records, bad = conversations()
    assert len(records) == 4
    no_answer = [(b.pos, b.reason) for b in bad if b.pos == 4]
    assert no_answer == [(4, "item 4: no assistant turn, so there is nothing to learn from")]
    assert json.loads(bad[1].raw)["title"] == "New chat"  # the item is kept whole in the bad-records file


def test_detected_from_content_whatever_the_name(tmp_path):
    renamed = tmp_path / "my-export"
    shutil.copyfile(EXPORT, renamed)
    records, _ = conversations(renamed)
    assert {r.source for r in records.values()} == {"chatgpt"}


def test_a_single_conversation_object_and_null_messages(tmp_path):
    one = {"title": "Single", "current_node": "b", "mapping": {
        "r": {"id": "r", "message": None, "parent": None, "children": ["a"]},
        "a": {"id": "a", "parent": "r", "children": ["b"], "message": {
            "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["ping"]}}},
        "b": {"id": "b", "parent": "a", "children": [], "message": {
            "author": {"role": "assistant"}, "content": {"content_type": "text", "parts": ["pong"]}}}}}
    path = tmp_path / "one.json"
    path.write_text(json.dumps(one, indent=2), encoding="utf-8")
    records, bad = conversations(path)
    (r,) = records.values()
    assert r.messages == [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}] and not bad

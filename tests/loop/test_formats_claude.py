"""Claude's conversations.json: human/assistant messages, content blocks, tools, attachments, empty chats."""

import json
from pathlib import Path

from loop.inbox.formats import BadRecord, Options, Record, detect

EXPORT = Path(__file__).resolve().parents[1] / "fixtures" / "inbox" / "claude" / "conversations.json"


def conversations() -> tuple[dict[str, Record], list[BadRecord]]:
    items = list(detect(EXPORT).parse(EXPORT, Options()))
    return ({i.meta["title"]: i for i in items if isinstance(i, Record)},
            [i for i in items if isinstance(i, BadRecord)])


def test_text_messages_with_title_times_and_attachments():
    records, _ = conversations()
    nginx = records["Nginx reverse proxy for two apps"]
    assert (nginx.source, nginx.kind) == ("claude", "chat")
    assert nginx.meta["id"] == "c1a0e8f2-1111-4d0c-8f7a-000000000001"
    assert nginx.meta["created_at"] == "2024-05-02T09:14:03.118213Z"
    question, answer = nginx.messages
    assert question["role"] == "user" and question["content"].startswith("I have two apps on ports 3000 and 8080")
    # the pasted file the answer refers to comes with the question
    assert "[attachment: default.conf]\nserver {" in question["content"]
    assert answer["content"].startswith("Add one server block per hostname")


def test_tool_use_and_results_become_calls_and_tool_turns_and_thinking_is_left_out():
    records, _ = conversations()
    cve = records["Is the CVE fixed in our version"]
    assert [m["role"] for m in cve.messages] == ["user", "assistant", "tool", "assistant"]
    call = cve.messages[1]
    assert call["content"] == "Let me check the Ubuntu advisory."
    fn = call["tool_calls"][0]["function"]
    assert fn["name"] == "web_search" and json.loads(fn["arguments"]) == {"query": "CVE-2024-6387 ubuntu openssh 9.6p1"}
    assert cve.messages[2]["tool_call_id"] == "toolu_01" and "USN-6859-1" in cve.messages[2]["content"]
    assert cve.messages[3]["content"].startswith("Yes, if you have the patched package")
    assert "regreSSHion" not in json.dumps(cve.messages)


def test_an_answer_that_never_arrived_is_dropped_and_files_noted():
    records, _ = conversations()
    regex = records["Regex for ISO dates"]
    assert [m["role"] for m in regex.messages] == ["user", "user", "assistant"]
    assert regex.meta["files"] == ["screenshot.png"]


def test_empty_chats_and_unanswered_questions_are_reported():
    records, bad = conversations()
    assert len(records) == 3
    assert [b.reason for b in bad] == [
        "item 3: conversation has no messages (the export keeps chats that were opened and left empty)",
        "item 5: no assistant turn, so there is nothing to learn from",
    ]

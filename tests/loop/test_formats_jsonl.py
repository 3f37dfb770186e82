"""JSON Lines: OpenAI-style chats with tools, prompt/completion, correction pairs, and bad lines set aside."""

import json
import shutil
from pathlib import Path

from loop.inbox.formats import BadRecord, Options, Record, detect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"


def parse(path: Path, **opts) -> tuple[list[Record], list[BadRecord]]:
    fmt = detect(path)
    items = list(fmt.parse(path, Options(**opts)))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def test_openai_chat_keeps_system_tool_calls_and_tool_results():
    records, bad = parse(FIXTURES / "openai_chat.jsonl")
    assert detect(FIXTURES / "openai_chat.jsonl").name == "jsonl"
    first = records[0]
    assert (first.kind, first.source, first.domain, first.pos) == ("chat", "openai", "ops", 1)
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "tool", "assistant"]
    call = first.messages[2]["tool_calls"][0]
    assert call["function"]["name"] == "run_command" and json.loads(call["function"]["arguments"])["host"] == "web-02"
    assert first.messages[3]["tool_call_id"] == "call_1" and first.messages[3]["name"] == "run_command"
    # a question about an image cannot be learned from its text alone: set aside with the reason
    assert len(records) == 3
    assert [b.reason for b in bad] == [
        "line 3: message 1 holds an image url part: Ladder trains on text only, so the record is set aside",
        "line 5: no assistant turn, so there is nothing to learn from"]
    assert json.loads(bad[1].raw)["messages"][1]["content"].startswith("Is it safe")


def test_prompt_completion_and_question_answer(tmp_path):
    records, bad = parse(FIXTURES / "prompts.jsonl")
    assert [r.kind for r in records] == ["completion"] * 3 and records[1].messages[1]["content"] == "5432."
    assert bad[0].pos == 4 and "empty 'completion'" in bad[0].reason
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "Default SSH port?", "answer": "22."}\n', encoding="utf-8")
    (r,), _ = parse(qa)
    assert r.messages == [{"role": "user", "content": "Default SSH port?"}, {"role": "assistant", "content": "22."}]


def test_corrections_train_on_chosen_and_keep_rejected():
    records, bad = parse(FIXTURES / "corrections.jsonl")
    assert {r.kind for r in records} == {"correction"} and {r.source for r in records} == {"correction"}
    first = records[0]
    assert json.loads(first.messages[-1]["content"])["tool"] == "run_command"
    assert json.loads(first.rejected)["action"] == "run_command"
    assert first.meta["pattern"] == "action_instead_of_tool"
    # TRL's conversational pair: the prompt is a list of turns, chosen/rejected lists of assistant turns
    trl = records[4]
    assert [m["role"] for m in trl.messages] == ["system", "user", "assistant"]
    assert json.loads(trl.rejected) == {"function": "docker_ps", "host": "db-1"}
    assert bad[0].reason == "line 6: 'chosen' and 'rejected' are the same answer: nothing to prefer"


def test_bad_lines_are_reported_one_by_one_with_their_line_number(tmp_path):
    good = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello."}]})
    path = tmp_path / "mixed.jsonl"
    path.write_bytes("\n".join([
        good,
        '{"messages": [{"role": "user", "content": "unterminated}',
        "[1, 2, 3]",
        '{"instructions": "typo in the key", "output": "x"}',
        '{"messages": [{"role": "robot", "content": "beep"}]}',
        "",  # a blank line 6 is skipped, not reported
        "",
    ]).encode() + b'{"prompt": "caf\xe9", "completion": "latin-1 byte"}\n' + good.replace("hi", "hey").encode() + b"\n")
    records, bad = parse(path)
    assert len(records) == 2
    reasons = [b.reason for b in bad]
    assert reasons[0].startswith("line 2: invalid JSON (Unterminated string")
    assert reasons[1] == "line 3: expected a JSON object, got a list"
    assert reasons[2].startswith("line 4: unknown record shape (keys: instructions, output)")
    assert reasons[3] == "line 5: message 1 needs a role of system, user, assistant or tool"
    assert reasons[4] == "line 7: not UTF-8 text (byte 0xe9 at column 16); re-save the file as UTF-8"
    assert records[1].pos == 8


def test_a_line_longer_than_the_record_limit_is_skipped_without_being_held(tmp_path):
    path = tmp_path / "long.jsonl"
    line = json.dumps({"prompt": "x" * 3_000_000, "completion": "y"})
    ok = json.dumps({"prompt": "short", "completion": "fine"})
    path.write_text(f"{line}\n{ok}\n", encoding="utf-8")
    records, bad = parse(path, max_record_bytes=1024 * 1024)
    assert [r.pos for r in records] == [2]
    assert bad[0].reason.startswith("line 1: longer than 1 MB (inbox.max_record_mb)")


def test_detected_from_content_not_the_name(tmp_path):
    renamed = tmp_path / "chats.log"
    shutil.copyfile(FIXTURES / "openai_chat.jsonl", renamed)
    assert detect(renamed).name == "jsonl"
    records, _ = parse(renamed)
    assert len(records) == 3


def test_text_records_are_documents(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "The fleet runs on systemd.", "stage": "fundamentals"}\n', encoding="utf-8")
    (r,), _ = parse(path)
    assert (r.kind, r.stage, r.messages) == ("document", "fundamentals",
                                             [{"role": "assistant", "content": "The fleet runs on systemd."}])

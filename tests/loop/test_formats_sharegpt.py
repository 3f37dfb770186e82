"""ShareGPT conversations and Alpaca instructions, as JSON lists or one per line."""

import json
from pathlib import Path

from loop.inbox.formats import BadRecord, Options, Record, detect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"


def parse(path: Path) -> tuple[list[Record], list[BadRecord]]:
    items = list(detect(path).parse(path, Options()))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def test_sharegpt_speakers_become_roles_with_system_and_function_calls():
    records, bad = parse(FIXTURES / "sharegpt.json")
    assert detect(FIXTURES / "sharegpt.json").name == "json"
    first, weather, _ = records
    assert {r.source for r in records} == {"sharegpt"}
    assert [m["role"] for m in first.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert first.meta["id"] == "sg-1"
    assert [m["role"] for m in weather.messages] == ["user", "assistant", "tool", "assistant"]
    fn = weather.messages[1]["tool_calls"][0]["function"]
    assert fn["name"] == "get_weather" and json.loads(fn["arguments"]) == {"city": "Oslo"}
    assert weather.meta["tools"].startswith("[{")
    assert [b.reason for b in bad] == [
        "item 4: no assistant turn, so there is nothing to learn from",
        "item 5: turn 1: unknown speaker 'narrator' (expected human, gpt, system, function_call or observation)",
    ]


def test_alpaca_instruction_and_input_make_the_question():
    records, bad = parse(FIXTURES / "alpaca.json")
    rewrite, command, translate = records
    assert {r.source for r in records} == {"alpaca"} and {r.kind for r in records} == {"completion"}
    assert rewrite.messages[0]["content"] == ("Rewrite the sentence in plain English.\n\n"
                                              "We are leveraging synergies to operationalize our deliverables.")
    assert command.messages[0]["content"].endswith("under the current folder.")  # empty input adds nothing
    assert translate.messages[1]["content"] == "God morgen."
    assert bad[0].reason == "item 4: empty 'output': no assistant turn, so there is nothing to learn from"


def test_the_same_shapes_one_per_line(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [json.loads((FIXTURES / "sharegpt.json").read_text())[2], json.loads((FIXTURES / "alpaca.json").read_text())[0]]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    records, bad = parse(path)
    assert [r.source for r in records] == ["sharegpt", "alpaca"] and not bad

"""Reasoning chains: issue, linked subquestions, the chain, the output, the domain."""

import json
from pathlib import Path

from loop.inbox.formats import BadRecord, Options, Record, detect

CHAINS = Path(__file__).resolve().parents[1] / "fixtures" / "inbox" / "reasoning.jsonl"


def parse(path: Path = CHAINS) -> tuple[list[Record], list[BadRecord]]:
    items = list(detect(path).parse(path, Options()))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def test_a_chain_reads_from_issue_through_subquestions_to_output():
    records, _ = parse()
    civ = records[0]
    assert (civ.source, civ.kind, civ.domain) == ("reasoning", "completion", "society")
    assert civ.messages[0] == {"role": "user", "content": "Rebuilding a civilization with only child-level knowledge"}
    assert civ.messages[1]["content"] == (
        "Subquestions:\n"
        "- What is fundamental knowledge? (why: it decides what survives)\n"
        "- How do societies organize around simplicity? (why: children would run the institutions)\n\n"
        "Reasoning:\n"
        "1. Language, shelter, food and basic tools come first.\n"
        "2. Social roles and stories are kept alive through play and imitation.\n\n"
        "Output: Most such civilizations would put hands-on survival knowledge and oral custom first.")
    assert civ.meta == {"subquestions": 2, "steps": 2}


def test_a_chain_written_as_text_and_a_summary():
    backup = parse()[0][1]
    answer = backup.messages[1]["content"]
    assert "3. The new target is throttled to 50 MB/s." in answer
    assert "Summary: The slowdown follows the storage move, not the data." in answer
    assert backup.domain == "ops"


def test_output_alone_is_enough_but_an_issue_is_required():
    records, bad = parse()
    assert records[2].messages[1]["content"].startswith("Output: Not yet")
    assert bad[0].reason == "line 4: a reasoning chain needs the real-world 'issue' it reasons from"


def test_a_chain_with_bad_steps_says_which(tmp_path):
    path = tmp_path / "chains.json"
    path.write_text(json.dumps([{"issue": "x", "chain": ["fine", 42]}]), encoding="utf-8")
    _, bad = parse(path)
    assert bad[0].reason == "item 1: chain step 2 must be text"

"""CHAOS scenarios become training examples in the seed's three ways, with confidence stated and kept."""

import json
import re
import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from loop.inbox import ingest
from loop.inbox.formats import BadRecord, Options, Record, detect
from store.db import session
from store.tables import Conversation
from tests.helpers import make_workspace

SCENARIOS = Path(__file__).resolve().parents[1] / "fixtures" / "inbox" / "chaos_scenarios.json"
CONFIDENCE = re.compile(r"^Confidence: (\d+)%$", re.M)


def parse(style: str) -> tuple[list[Record], list[BadRecord]]:
    items = list(detect(SCENARIOS).parse(SCENARIOS, Options(chaos_style=style)))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def stated(record: Record) -> list[int]:
    text = "\n".join(m["content"] for m in record.messages if m["role"] == "assistant")
    return [int(n) for n in CONFIDENCE.findall(text)]


@pytest.mark.parametrize("style", ["thought", "action", "multi_turn"])
def test_every_style_states_the_whole_confidence_trajectory_and_keeps_it(style):
    records, _ = parse(style)
    assert [r.meta["confidence_trajectory"] for r in records] == [[70, 50, 85], [90, 95], [80, 30, 75]]
    for r in records:
        assert stated(r) == r.meta["confidence_trajectory"] and r.source == "chaos" and r.meta["chaos_style"] == style


def test_thought_process_names_the_voices_decision_discovery_and_lesson():
    deploy = parse("thought")[0][0]
    assert deploy.kind == "completion" and deploy.domain == "ops"
    prompt, answer = (m["content"] for m in deploy.messages)
    assert prompt == ("Task: Deploy the payments service to production during peak traffic while the CEO watches the "
                      "launch\nAvailable tools: deploy_pipeline, canary_controller, metrics_dashboard\n"
                      "How do you approach this?")
    for line in ['- Optimizer says: "Use the fast pipeline, it\'s a one-line change."',
                 '- Creative says: "A canary at 5% shows problems without betting everything."',
                 "Decision: Ship as a 5% canary with extra monitoring, widen in steps.",
                 "Unexpected discovery: The canary's error rate doubled: the new build expects a config key prod lacks.",
                 "Final outcome: success after one rollback", "- Canaries turn a bad deploy into a small one."]:
        assert line in answer.splitlines()
    # confidence drops at the discovery and recovers by the end, in that order
    assert answer.index("Confidence: 70%") < answer.index("Unexpected discovery") < answer.index("Confidence: 50%") \
        < answer.index("Final outcome") < answer.index("Confidence: 85%")


def test_missing_reality_breaks_and_creative_voice_still_convert():
    simple = parse("thought")[0][1]
    answer = simple.messages[1]["content"]
    assert "Creative" not in answer and "Unexpected discovery" not in answer
    assert "Key lesson: Simple tasks deserve simple answers." in answer


def test_action_based_lists_the_tools_as_steps():
    api = parse("action")[0][2]
    answer = api.messages[1]["content"]
    assert api.messages[0]["content"] == "Task: An API that should return JSON suddenly returns XML\n" \
                                         "Available tools: http_client, xml_parser"
    assert "1. Use `http_client`: make HTTP requests" in answer and answer.startswith("Plan: Check the Accept header")


def test_multi_turn_goes_wrong_and_recovers():
    api = parse("multi_turn")[0][2]
    assert api.kind == "chat"
    assert [m["role"] for m in api.messages] == ["user", "assistant"] * 3
    assert api.messages[2]["content"] == "The parser fails on half the responses!"
    assert api.messages[3]["content"].startswith("I see. The API sends XML only when the Accept header is missing.")
    simple = parse("multi_turn")[0][1]  # no reality break: no "something went wrong" turn
    assert [m["role"] for m in simple.messages] == ["user", "assistant", "user", "assistant"]


def test_unusable_scenarios_say_why():
    _, bad = parse("thought")
    assert [b.reason for b in bad] == [
        "item 4: a CHAOS scenario needs a non-empty 'scenario' text",
        "item 5: confidence_trajectory item 2 ('very sure') is not a percentage from 0 to 100",
    ]


def test_the_config_chooses_the_style(tmp_path):
    cfg = make_workspace(tmp_path, inbox={"chaos_style": "multi_turn"})
    shutil.copyfile(SCENARIOS, cfg.inbox_dir / SCENARIOS.name)
    ingest.ingest(cfg)
    with session(cfg.db_url) as s:
        rows = s.exec(select(Conversation).where(Conversation.source_format == "chaos")).all()
    assert {r.kind for r in rows} == {"chat"} and len(rows) == 3
    assert sorted(json.loads(r.meta)["confidence_trajectory"] for r in rows)[0] == [70, 50, 85]


def test_an_unknown_style_is_a_config_error(tmp_path):
    from loop.errors import UserError

    with pytest.raises(UserError, match="'inbox.chaos_style' is 'freeform'; use one of thought, action, multi_turn"):
        make_workspace(tmp_path, inbox={"chaos_style": "freeform"})

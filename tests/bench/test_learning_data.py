"""The learning benchmark's generated curriculum (bench/learning_data.py): fast, no model."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import learning_data as ld  # noqa: E402


@pytest.fixture(scope="module")
def data() -> dict:
    return ld.build(seed=0, stages=3)


def test_same_seed_same_bytes(data, tmp_path):
    again = ld.build(seed=0, stages=3)
    assert json.dumps(again, sort_keys=True) == json.dumps(data, sort_keys=True)
    a = ld.write_stage(data["stages"][0], tmp_path / "a.jsonl").read_bytes()
    b = ld.write_stage(again["stages"][0], tmp_path / "b.jsonl").read_bytes()
    assert a == b
    assert json.dumps(ld.build(seed=1), sort_keys=True) != json.dumps(data, sort_keys=True)


def test_fewer_stages_are_a_prefix(data):
    one = ld.build(seed=0, stages=1)
    assert one["stages"][0] == data["stages"][0]


def test_stages_hold_100_distinct_records_each(data):
    assert [len(s) for s in data["stages"]] == [100, 100, 100]
    users = [r["messages"][1]["content"] for s in data["stages"] for r in s]
    assert len(set(users)) == len(users)  # the product deduplicates by content: none may collapse
    for stage in data["stages"]:
        assert {json.loads(r["messages"][2]["content"])["tool"] for r in stage} == set(ld.TOOLS)


def test_every_training_answer_is_one_valid_tool_call(data):
    for stage in data["stages"]:
        for r in stage:
            roles = [m["role"] for m in r["messages"]]
            assert roles == ["system", "user", "assistant"]
            assert r["messages"][0]["content"] == ld.SYSTEM
            answer = r["messages"][2]["content"]
            call = json.loads(answer)
            assert set(call) == {"tool", "args"} and call["tool"] in ld.TOOLS and isinstance(call["args"], dict)
            assert ld.skill_pass(answer, call["tool"], call["args"])


def test_skill_probes_are_held_out(data):
    probes = data["skill_probes"]
    assert len(probes) == 30
    train_users = {ld._norm(r["messages"][1]["content"]) for s in data["stages"] for r in s}
    train_values = {json.dumps(v) for s in data["stages"] for r in s
                    for v in json.loads(r["messages"][2]["content"])["args"].values()}
    for p in probes:
        assert p["messages"][0]["content"] == ld.SYSTEM
        assert ld._norm(p["messages"][1]["content"]) not in train_users
        # unseen inputs: no service name, path, host, port, count or destination from training
        assert not ({json.dumps(v) for k, v in p["args"].items() if k != "sort_by"} & train_values), p
    all_train_templates = {t for groups in ld.TRAIN_TEMPLATES.values() for g in groups for t in g}
    assert not all_train_templates & {t for ts in ld.PROBE_TEMPLATES.values() for t in ts}


def test_general_probes_do_not_overlap_the_shipped_sets(data):
    probes, pool = ld.shipped_prompts()
    general = data["general_probes"]
    assert len(general) == 20 and len({g["key"] for g in general}) == 20
    for g in general:
        assert ld._norm(g["prompt"]) not in probes | pool
        assert g["answers"] and all(isinstance(a, str) and a for a in g["answers"])
    ld.check_general_probes(general)
    with pytest.raises(AssertionError):
        ld.check_general_probes([{"key": "x", "prompt": "What is the capital of France?", "answers": ["paris"]}])


def test_skill_pass_is_strict():
    args = {"name": "caddy"}
    good = '{"tool": "restart_service", "args": {"name": "caddy"}}'
    assert ld.skill_pass(good, "restart_service", args)
    assert ld.skill_pass(f"```json\n{good}\n```", "restart_service", args)
    assert not ld.skill_pass(good + " done", "restart_service", args)
    assert not ld.skill_pass('{"tool": "restart_service", "args": {"name": "Caddy"}}', "restart_service", args)
    assert not ld.skill_pass('{"action": "restart_service", "args": {"name": "caddy"}}', "restart_service", args)
    assert not ld.skill_pass("Sure! Restarting caddy.", "restart_service", args)

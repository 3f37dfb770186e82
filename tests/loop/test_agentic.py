"""The agent scorers, the suite files, the readiness report and the statistics: every pass and fail reason."""

from __future__ import annotations

import json

import pytest

from loop.errors import UserError
from loop.evals import agentic, readiness, stats, suites

CALL = '{"tool": "restart_service", "args": {"name": "nginx"}}'
PHRASES = ["i'd be happy to", "great question"]


@pytest.mark.parametrize("answer, ok, reason", [
    (CALL, True, "ok"),
    ("```json\n" + CALL + "\n```", True, "ok"),  # a fenced call is still one call and nothing else
    ('{"action": "restart_service", "args": {"name": "nginx"}}', False, 'used "action" instead of "tool"'),
    ("{'tool': 'restart_service', 'args': {'name': 'nginx'}}", False, "Python-dict syntax instead of JSON"),
    (CALL + "\n" + CALL, False, "2 tool calls where one was wanted"),
    ("Sure! " + CALL, False, "prose around the tool call"),
    (CALL + " Done.", False, "prose around the tool call"),
    ('{"tool": "restart_service"}', False, '"args" missing or not an object'),
    ('{"tool": "restart_service", "args": "nginx"}', False, '"args" missing or not an object'),
    ('{"name": "restart_service", "args": {}}', False, 'no "tool" key'),
    ("I would restart nginx for you.", False, "no tool call"),
    ('{"tool": "restart_service", "args": {"name": "ngi', False, "no tool call"),  # cut off: not a call
])
def test_tool_call_format_when_a_call_is_wanted(answer, ok, reason):
    assert agentic.tool_call_format(answer, True) == (ok, reason)


@pytest.mark.parametrize("answer, ok", [
    ("You're welcome!", True),
    ('{"tool": "none"}', True),
    ('{"tool": "none", "args": {}}', True),
    ("Here is a config: {\"port\": 8080}", True),  # braces that are no call are not a call
    (CALL, False),
])
def test_no_tool_wanted_accepts_a_plain_answer_or_tool_none(answer, ok):
    assert agentic.tool_call_format(answer, False)[0] is ok
    assert agentic.tool_choice(answer, "none")[0] is ok


def test_the_right_tool_and_the_right_arguments():
    assert agentic.tool_choice(CALL, "restart_service") == (True, "ok")
    assert agentic.tool_choice(CALL, "disk_usage") == (False, "called restart_service instead of disk_usage")
    args = {"name": "nginx"}
    assert agentic.task_success(CALL, "restart_service", args) == (True, "ok")
    assert agentic.task_success(CALL.replace("nginx", "NGINX "), "restart_service", args) == (True, "ok")
    assert agentic.task_success(CALL, "restart_service", {"name": "caddy"}) == \
        (False, "wrong name: 'nginx' instead of 'caddy'")
    assert agentic.task_success(CALL, "restart_service", {"name": "nginx", "host": "a"}) == (False, "missing argument host")
    tail = '{"tool": "tail_log", "args": {"name": "caddy", "lines": "40"}}'
    assert agentic.task_success(tail, "tail_log", {"name": "caddy", "lines": 40}) == (True, "ok")  # 40 is "40"
    extra = '{"tool": "tail_log", "args": {"name": "caddy", "lines": 40, "follow": true}}'
    assert agentic.task_success(extra, "tail_log", {"name": "caddy", "lines": 40}) == (True, "ok")
    assert agentic.task_success(extra, "tail_log", {"name": "caddy", "lines": 40}, exact=True) == \
        (False, "unexpected argument follow")


def test_contains_and_regex_and_not_contains():
    assert agentic.contains("Open port 7301 for it.", ["7301"]) == (True, "ok")
    assert agentic.contains("Open port 17301.", ["7301"]) == (False, "missing '7301'")
    assert agentic.contains('{"tool": "check_port", "args": {"host": "stg-04"}}', ["stg-04"]) == (True, "ok")
    assert agentic.contains("Back it up to /mnt/cold/wiki", ["/mnt/cold"]) == (True, "ok")
    assert agentic.score({"expect": {"regex": r"\bport\s+\d+"}}, "use port 22")[0]
    assert agentic.score({"expect": {"not_contains": ["rm -rf"]}}, "run rm -rf /") == (False, "contains 'rm -rf'")


@pytest.mark.parametrize("who, answer, ok, reason", [
    ("executive", "TL;DR: 3 healthy, 1 needs a disk.\nDetails on request.", True, "ok"),
    ("executive", "Everything is fine, three are healthy.", False, "no TL;DR first line"),
    ("executive", "TL;DR: fine 🙂", False, "emoji for a executive user"),
    ("stressed_oncall", "Got it - checking the core switch now. Hang tight.", True, "ok"),
    ("stressed_oncall", "The network has many parts that can fail.", False, "no acknowledgement first"),
    ("casual", "On it! 👍 Prune them weekly with `docker image prune`.", True, "ok"),
    ("casual", "On it! 👍🎉 prune them", False, "2 emojis (one at most)"),
    ("curious_learner", "It reads the Host header.", False, "too short to explain (5 words, at least 20)"),
    ("senior_engineer", "I'd be happy to help: a process still holds the deleted file open.", False,
     "corporate phrasing (i'd be happy to)"),
    ("senior_engineer", " ".join(["word"] * 101), False, "too long for a senior engineer user (101 words, at most 100)"),
    ("casual", "", False, "empty answer"),
])
def test_persona_rules(who, answer, ok, reason):
    assert agentic.persona(answer, who, PHRASES) == (ok, reason)


def test_the_shipped_suite_is_valid_and_covers_every_category_in_both_splits():
    suite = suites.read(suites.SHIPPED / "default.jsonl")
    assert len(suite.items) >= 60
    for split in suites.SPLITS:
        cats = {it["category"] for it in suite.split(split)}
        assert {"tool_call", "task", "context", "persona"} <= cats
    assert all(it["system"] and it["tools"] for it in suite.items)  # from the header line
    first = suites.conversation(suite.items[0])
    assert first[0]["role"] == "system" and first[-1]["role"] == "user"
    assert len(suite.sha) == 64 and suite.sha == suites.read(suites.SHIPPED / "default.jsonl").sha


def test_every_practice_item_has_a_reference_that_passes_its_own_check():
    from loop.config import defaults

    phrases = defaults()["eval"]["corporate_phrases"]
    for it in suites.read(suites.SHIPPED / "default.jsonl").split("practice"):
        assert it.get("reference"), it["id"]
        passed, reason = agentic.score(it, it["reference"], phrases)
        assert passed, f"{it['id']}: {reason}"


def test_a_bad_suite_file_is_reported_with_line_numbers(tmp_path):
    good = {"id": "a", "category": "context", "messages": [{"role": "user", "content": "x"}], "expect": {"contains": ["y"]}}
    lines = [json.dumps(good), "not json", json.dumps(good | {"category": "vibes"}),
             json.dumps(good | {"id": "b", "messages": [{"role": "assistant", "content": "x"}]}), json.dumps(good)]
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        suites.read(path)
    message = str(e.value)
    assert "line 2: not JSON" in message and "line 3: 'category' is 'vibes'" in message
    assert "line 4: the last message must be the user's" in message and "(and 1 more)" in message
    assert "\n" not in message


def test_workspace_suites_are_found_by_name_and_a_missing_one_says_where_to_put_it(tmp_path):
    from tests.helpers import make_workspace

    cfg = make_workspace(tmp_path)
    (cfg.root / "evals").mkdir()
    (cfg.root / "evals" / "mine.jsonl").write_text(json.dumps(
        {"id": "m1", "category": "fact", "messages": [{"role": "user", "content": "port?"}], "expect": {"contains": ["7301"]}}) + "\n")
    assert set(suites.available(cfg)) == {"default", "mine"}
    assert suites.load(cfg, "mine").items[0]["split"] == "heldout"
    with pytest.raises(UserError, match=r"no eval suite named 'other'.*evals/other.jsonl"):
        suites.load(cfg, "other")


def test_the_readiness_report_names_its_blockers_and_the_failure_patterns():
    rows = ([{"category": "tool_call", "passed": False, "reason": 'used "action" instead of "tool"'}] * 9
            + [{"category": "tool_call", "passed": True, "reason": "ok"}] * 15
            + [{"category": "task", "passed": False, "reason": "wrong name: 'a' instead of 'b'"},
               {"category": "task", "passed": False, "reason": "wrong name: 'c' instead of 'd'"},
               {"category": "task", "passed": True, "reason": "ok"}])
    r = readiness.report(3, rows, {"tool_call": 0.8, "task": 0.5, "context": 0.5, "overall": 0.8})
    assert r["ready"] is False and r["gen"] == 3
    assert r["categories"]["tool_call"] | {"ci95": None} == {"passed": 15, "total": 24, "rate": 0.625, "min": 0.8,
                                                               "ci95": None}
    assert r["blockers"] == ['tool_call 0.62 < 0.80: 9 of 24 answers: used "action" instead of "tool"',
                             "task 0.33 < 0.50: 2 of 3 answers: wrong name",
                             "context: no held-out items were asked (minimum 0.50)", "overall 0.59 < 0.80"]
    assert r["patterns"][0] == {"pattern": 'used "action" instead of "tool"', "count": 9, "share": 0.8182,
                                "categories": {"tool_call": 9}}
    assert readiness.report(1, rows[9:24], {"tool_call": 0.8})["ready"] is True


def test_wilson_intervals_and_the_paired_comparison():
    assert stats.wilson(0, 0) is None
    lo, hi = stats.wilson(15, 24)
    assert 0.42 < lo < 0.43 and 0.78 < hi < 0.79
    assert stats.wilson(10, 10)[1] == 1.0 and stats.wilson(0, 10)[0] == 0.0
    a = [False] * 10 + [True] * 10
    b = [True] * 8 + [False] * 2 + [True] * 10
    out = stats.paired(a, b)
    assert out["diff"] == 0.4 and out["won"] == 8 and out["lost"] == 0 and out["same"] == 12
    assert 0.15 < out["ci95"][0] < out["ci95"][1] < 0.65
    assert out["p_mcnemar"] == pytest.approx(2 / 2 ** 8, abs=1e-6)
    assert stats.paired(a, a)["ci95"] == [0.0, 0.0] and stats.mcnemar_exact(0, 0) == 1.0

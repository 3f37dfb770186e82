"""Claude as teacher, through the real `anthropic` client pointed at a local Messages API server on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loop import config, workspace
from loop.errors import OperationFailed, UserError
from loop.teacher import client, synth
from tests.fake_claude import FakeClaude
from tests.jobkit import ROOT, wait_until

KEY = "sk-ant-test-" + "k3y" * 8


@pytest.fixture
def claude(monkeypatch):
    """The fake server, with the client's own variables pointing at it."""
    with FakeClaude() as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        yield fake


@pytest.fixture
def ws(tmp_path):
    (tmp_path / "config.toml").write_text('[teacher]\nbackoff_seconds = 0.01\n', encoding="utf-8")
    return workspace.create(tmp_path)


def agentic_reply(req) -> str:
    ask = req["messages"][0]["content"]
    persona = ask.split("The user is a ")[1].split(" user")[0]
    return json.dumps({"messages": [{"role": "user", "content": "restart plex please"},
                                    {"role": "assistant", "content": '{"tool": "restart_service", "args": {"name": "plex"}}'},
                                    {"role": "tool", "content": "plex restarted"},
                                    {"role": "assistant", "content": "Done: plex is back up."}],
                       "persona": persona})


def lines(ws) -> list[dict]:
    return [json.loads(x) for p in sorted(ws.inbox_dir.glob("synth-*.jsonl")) for x in p.read_text().splitlines()]


def test_a_reply_is_paid_once_and_cached_with_its_cost(claude, ws):
    claude.answer = lambda req: "hello"
    t = client.Teacher(ws)
    first = t.ask("sys", [{"role": "user", "content": "hi"}])
    again = client.Teacher(ws).ask("sys", [{"role": "user", "content": "hi"}])
    assert first.text == again.text == "hello" and not first.cached and again.cached
    assert first.cost > 0 and again.cost == 0.0 and len(claude.answered()) == 1
    assert claude.keys == {KEY}, "the key reached the server in the client's own header"


@pytest.mark.parametrize("status", [429, 529, 500])
def test_rate_limits_overload_and_server_errors_are_retried(claude, ws, status):
    claude.fail(status, {"retry-after": "0"} if status == 429 else {})
    claude.fail(status, {"retry-after": "0"} if status == 429 else {})
    said: list[str] = []
    reply = client.Teacher(ws, say=said.append).ask("sys", [{"role": "user", "content": "hi"}])
    assert reply.text == "ok" and [r["status"] for r in claude.log] == [status, status, 200]
    assert len(said) == 2 and str(status) in said[0] and "retrying" in said[0]


def test_retry_after_is_honoured(claude, ws):
    claude.fail(429, {"retry-after": "3"})
    waited: list[float] = []
    client.Teacher(ws, sleep=waited.append).ask("sys", [{"role": "user", "content": "hi"}])
    assert waited == [3.0]


def test_retries_run_out_with_one_line_and_a_refused_key_says_what_to_check(claude, ws):
    for _ in range(10):
        claude.fail(529)
    with pytest.raises(OperationFailed, match="failed 5 time"):
        client.Teacher(ws).ask("sys", [{"role": "user", "content": "hi"}])
    claude.script.clear()
    claude.fail(401)
    with pytest.raises(UserError, match="refused the key.*ANTHROPIC_API_KEY"):
        client.Teacher(ws).ask("sys", [{"role": "user", "content": "hi"}])


def test_without_a_key_one_line_says_how_to_set_it(ws, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(UserError, match="export ANTHROPIC_API_KEY"):
        client.Teacher(ws)


def test_synth_agentic_writes_checked_records_with_provenance(claude, ws):
    claude.answer = agentic_reply
    units = synth.plan(ws, "agentic", 5)
    out = synth.run(ws, client.Teacher(ws), units)
    rows = lines(ws)
    assert out.records == 5 and not out.invalid and len(rows) == 5
    assert {r["persona"] for r in rows} == set(synth.PERSONAS)
    prov = rows[0]["provenance"]
    assert prov["kind"] == "synth:agentic" and prov["model"] == ws.teacher.model and len(prov["prompt_sha"]) == 64
    assert sum(1 for u in units if "multi-turn" in u.prompt) in (1, 2)  # the configured share, 0.3 of 5


def test_malformed_and_invalid_replies_are_asked_again_then_reported_never_written(claude, ws):
    replies = iter(["not json {", '{"messages": []}', json.dumps({"scenario": "x"}), "```json\n{\"oops\": 1}\n```"])
    claude.answer = lambda req: next(replies)
    out = synth.run(ws, client.Teacher(ws), synth.plan(ws, "chaos", 2))
    assert out.records == 0 and not lines(ws) and len(out.invalid) == 2
    assert "inbox would refuse" in out.invalid[0] or "not JSON" in out.invalid[0]
    assert len(claude.answered()) == 4  # each asked twice (teacher.invalid_retries = 1)


def test_tasks_join_the_workspace_suite_only_when_their_reference_passes(claude, ws):
    good = {"id": "a", "category": "task", "messages": [{"role": "user", "content": "restart plex"}],
            "expect": {"tool": "restart_service", "args": {"name": "plex"}},
            "reference": '{"tool": "restart_service", "args": {"name": "plex"}}', "difficulty": 2}
    bad = good | {"reference": '{"tool": "disk_usage", "args": {"path": "/"}}'}
    replies = iter([json.dumps(good), json.dumps(bad), json.dumps(bad)])
    claude.answer = lambda req: next(replies)
    out = synth.run(ws, client.Teacher(ws), synth.plan(ws, "tasks", 2))
    assert out.written == ["evals/synth.jsonl"] and len(out.invalid) == 1 and "fails its own check" in out.invalid[0]
    from loop.evals import suites

    suite = suites.load(ws, "synth")
    assert [it["split"] for it in suite.items] == ["heldout"]  # held out from training unless marked practice


def test_the_budget_stops_a_run_and_says_so(claude, ws):
    claude.answer = agentic_reply
    units = synth.plan(ws, "agentic", 10)
    budget = synth.estimate(client.Teacher(ws), units[:1]) * 1.05  # room for the first request only
    t = client.Teacher(ws, budget_usd=budget)
    out = synth.run(ws, t, units)
    assert out.stopped.startswith("the teacher budget of $") and "is spent" in out.stopped and out.records == 1
    assert t.spent <= budget and len(lines(ws)) == 1 and len(claude.answered()) == 1


SYNTH = """
import sys
from loop import config
from loop.teacher import client, synth
cfg = config.load(sys.argv[1])
t = client.Teacher(cfg)
synth.run(cfg, t, synth.plan(cfg, "agentic", 6))
"""


def test_a_killed_run_resumes_without_paying_for_any_reply_twice(claude, ws):
    import itertools
    import threading

    count, held, killed = itertools.count(), threading.Event(), threading.Event()

    def answer(req):  # the fourth request waits until the run is killed, then gets no reply
        if next(count) >= 3 and not killed.is_set():
            held.set()
            killed.wait(120)
            raise ConnectionAbortedError
        return agentic_reply(req)

    claude.answer = answer
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SYNTH, str(ws.path)], env=env, cwd=ROOT, start_new_session=True)
    cache = Path(ws.root) / "teacher" / "cache"
    wait_until(lambda: held.is_set() and len(list(cache.glob("*.json"))) == 3, timeout=120,
               what="three cached replies and the fourth request in flight")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed.set()
    wait_until(lambda: any(r["status"] == "dropped" for r in claude.log), timeout=60, what="the held request dropped")
    subprocess.run([sys.executable, "-c", SYNTH, str(ws.path)], env=env, cwd=ROOT, check=True, timeout=120)
    paid = claude.answered()
    assert len(paid) == len(set(paid)) == 6, "every request answered (paid) exactly once over both runs"
    assert len(lines(ws)) == 6


def test_the_key_is_nowhere_in_the_workspace(claude, ws):
    claude.answer = agentic_reply
    synth.run(ws, client.Teacher(ws), synth.plan(ws, "agentic", 2))
    found = [p for p in Path(ws.root).rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()]
    assert not found and list((Path(ws.root) / "teacher" / "cache").glob("*.json"))


def test_ladder_synth_shows_the_plan_and_needs_a_key(ws, monkeypatch, capsys):
    from tui.cli import main

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    assert main(["--config", str(ws.path), "synth", "agentic", "--dry-run"]) != 0
    assert "export ANTHROPIC_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert main(["--config", str(ws.path), "synth", "agentic", "--count", "4", "--dry-run"]) == 0
    said = capsys.readouterr().out
    assert "4 request(s)" in said and "at most $" in said


def test_config_refuses_a_model_without_a_price(ws, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    ws.path.write_text('[teacher]\nmodel = "claude-unknown"\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"\[teacher.prices\]"):
        client.Teacher(config.load(ws.path))


def _practised(ws, patterns):
    from loop.practice.round import STATE
    from store.db import session, set_meta

    rounds = [{"gen": 0, "level": 1, "n": 20, "passed": 12, "corrections": 8, "at": "x", "categories": {},
               "patterns": patterns}, {"gen": 1, "level": 1, "n": 20, "passed": 20, "corrections": 0, "at": "y",
                                       "categories": {}, "patterns": []}]
    with session(ws.db_url) as s:
        set_meta(s, STATE, {"level": 1, "rounds": rounds})


def test_tasks_can_target_the_failure_patterns_of_the_last_practice_round(claude, ws):
    from loop.practice.round import last_failures

    assert last_failures(ws) == (None, [])
    patterns = [{"pattern": 'used "action" instead of "tool"', "count": 9, "share": 0.75,
                 "categories": {"task": 2, "tool_call": 7}},
                {"pattern": "no TL;DR first line", "count": 3, "share": 0.25, "categories": {"persona": 3}}]
    _practised(ws, patterns)
    gen, failures = last_failures(ws)  # the latest round had none: the one before it is targeted
    assert gen == 0 and failures == patterns
    units = synth.plan(ws, "tasks", 3, failures=failures)
    assert [u.extra["category"] for u in units] == ["tool_call", "persona", "tool_call"]
    assert 'failed practice items this way (9 time(s)): "used \\"action\\" instead of \\"tool\\""' not in units[0].prompt
    assert 'this way (9 time(s)): "used "action" instead of "tool""' in units[0].prompt
    assert "no TL;DR first line" in units[1].prompt and "targets: no TL;DR" in units[1].label
    task = {"id": "a", "category": "tool_call", "messages": [{"role": "user", "content": "restart plex"}],
            "expect": {"tool": "restart_service"}, "reference": '{"tool": "restart_service", "args": {"name": "plex"}}',
            "difficulty": 2, "failure_modes": ['uses "action"']}
    claude.answer = lambda req: json.dumps(task)
    out = synth.run(ws, client.Teacher(ws), units[:1])
    assert out.written == ["evals/synth.jsonl"] and not out.invalid
    from loop.evals import suites

    (item,) = suites.load(ws, "synth").items
    assert item["targets"] == 'used "action" instead of "tool"'
    assert len(claude.answered()) == 1
    with pytest.raises(UserError, match="--target-failures writes tasks"):
        synth.plan(ws, "agentic", 2, failures=failures)


def test_the_cli_says_what_to_do_when_there_is_no_failure_to_target(claude, ws, capsys):
    from tui.cli import main

    assert main(["--config", str(ws.path), "synth", "tasks", "--target-failures", "--dry-run"]) != 0
    assert capsys.readouterr().err.strip() == ("error: no practice round has failed items to target yet: "
                                               "run 'ladder practice' first")
    _practised(ws, [{"pattern": "no tool call", "count": 2, "share": 1.0, "categories": {"tool_call": 2}}])
    assert main(["--config", str(ws.path), "synth", "tasks", "--target-failures", "--dry-run", "--count", "2"]) == 0
    out = capsys.readouterr().out
    assert "each targets one of 1 failure pattern(s) of G0's last practice round: no tool call (2)" in out
    assert "2 request(s)" in out and not claude.answered()

"""Practice rounds: the active generation's own failures on the practice split become corrections in the inbox,
are ingested, and the next generation trains on them."""

from __future__ import annotations

import json

from sqlmodel import select

from loop import artifacts
from loop.model.llm import Runner
from loop.practice import round as practice
from loop.teacher import client
from store.db import active_gen, reading
from store.tables import Conversation, Generation
from tests import jobkit
from tests.fake_claude import FakeClaude


def _records(cfg, rep) -> list[dict]:
    path = cfg.root / rep["file"]
    path = path if path.exists() else next((cfg.inbox_dir / "processed").rglob(path.name))
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_failures_become_corrections_whose_rejected_answer_is_the_models_own(tiny_ws):
    cfg = tiny_ws
    rep = practice.run(cfg)
    assert rep["gen"] == 0 and rep["level"] == 1 and rep["n"] == 2  # t3 and t5: difficulty 1; t6 waits for level 2
    assert set(rep["categories"]) == {"context", "task"} and rep["teacher"] == "reference answers"
    rows = _records(cfg, rep)
    corrections = [r for r in rows if "chosen" in r]
    assert corrections and len(corrections) == rep["corrections"]
    with reading(cfg.db_url) as s:
        g0 = s.get(Generation, active_gen(s))
    from loop.evals import suites

    items = {it["id"]: it for it in suites.load(cfg, "tiny").items}
    e = cfg.eval
    with Runner(artifacts.verified_gguf(cfg, g0), threads=e.threads, context=e.context, seed=0) as runner:
        for r in corrections:
            item = items[r["provenance"]["item"]]
            assert r["rejected"] == runner.chat(suites.conversation(item), e.suite_max_tokens), "on-policy"
            assert r["chosen"] == item["reference"] and r["provenance"]["teacher"] == "reference"
            assert r["prompt"][0]["role"] == "system"  # asked as in the eval, with the suite's system prompt
    with reading(cfg.db_url) as s:
        stored = s.exec(select(Conversation).where(Conversation.kind == "correction")).all()
    assert sum("practice" in (c.meta or "") for c in stored) == len(corrections), "ingested as corrections"
    assert rep["patterns"] and rep["patterns"][0]["count"] >= 1


def test_the_next_generation_trains_on_the_practice_corrections(tiny_ws):
    cfg = tiny_ws
    rep = practice.run(cfg)
    chosen = {r["chosen"] for r in _records(cfg, rep) if "chosen" in r}
    r = jobkit.ladder(cfg, "train")
    assert r.returncode == 0, r.stderr
    data = (artifacts.job_dir(cfg, 1) / "dataset.jsonl").read_text(encoding="utf-8")
    assert all(json.dumps(c)[1:-1] in data for c in chosen)


def test_difficulty_rises_when_enough_pass_and_items_without_a_better_answer_are_reported(tiny_ws):
    cfg = tiny_ws
    cfg.path.write_text(cfg.path.read_text(encoding="utf-8") + "\n[practice]\nlevel_up_at = 0.0\n")
    from loop import config

    cfg = config.load(cfg.path)
    first = practice.run(cfg, ingest=False)
    assert first["next_level"] == 2
    second = practice.run(cfg, ingest=False)
    assert second["level"] == 2 and second["n"] == 3 and second["without_better_answer"] == 1  # t6: no reference
    assert [r["level"] for r in practice.history(cfg)] == [1, 2]


def test_the_teachers_answer_is_used_only_when_it_passes_the_items_check(tiny_ws, monkeypatch):
    cfg = tiny_ws

    def answer(req):
        last = req["messages"][-1]["content"]
        return '{"tool": "restart_service", "args": {"name": "fox"}}' if "fox" in last else "no idea"

    with FakeClaude(answer) as fake:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        rep = practice.run(cfg, client.Teacher(cfg))
    by_item = {r["provenance"]["item"]: r for r in _records(cfg, rep)}
    assert by_item["t5"]["provenance"]["teacher"] == cfg.teacher.model
    assert by_item["t3"]["provenance"]["teacher"] == "reference"  # "no idea" lacks the port: the reference instead
    assert rep["cost_usd"] > 0 and rep["teacher"] == cfg.teacher.model


def test_a_generation_of_practice_alone_is_judged_on_the_suites_held_out_items(tiny_template, tmp_path):
    """Practice holds nothing of its own out: generalization is the child's held-out suite verdicts against its
    parent's, read from the parent's stored answers or, where it has none on these items, asked of its GGUF."""
    from sqlmodel import delete

    from loop.evals import transfer
    from store.db import session
    from store.tables import EvalResult

    cfg = jobkit.copy_workspace(tiny_template, tmp_path / "ws")
    practice.run(cfg)
    r = jobkit.ladder(cfg, "train")
    assert r.returncode == 0, r.stderr
    with reading(cfg.db_url) as s:
        g1 = s.get(Generation, 1)
        rows = s.exec(select(EvalResult).where(EvalResult.eval == "suite:tiny")).all()
    verdicts = {g: {("suite:tiny", x.item_key): x.passed for x in rows if x.gen_id == g} for g in (0, 1)}
    assert set(verdicts[1]) == {("suite:tiny", k) for k in ("t1", "t2", "t4")}, "the held-out split only"
    expect = transfer.score(verdicts[1], verdicts[0])
    assert g1.eval_generalization == expect["value"] and g1.n_generalization == expect["n"]
    check = next(c for c in json.loads(g1.gates) if c["name"] == "generalization")
    assert "the suites' held-out items, which practice never trains on" in check["basis"]
    from store.tables import Event

    with reading(cfg.db_url) as s:  # the corrections carry the suite's system prompt: too long for 64 tokens
        said = [e.message for e in s.exec(select(Event).where(Event.kind == "warning")).all()]
    assert any("DPO skipped: every pair's prompt is longer than train.max_length=64" in m for m in said), said
    with session(cfg.db_url) as s:  # as if the suite had changed since G0 answered it
        s.exec(delete(EvalResult).where(EvalResult.gen_id == 0, EvalResult.eval == "suite:tiny"))
    with reading(cfg.db_url) as s:
        g0 = s.get(Generation, 0)
    results = [("suite:tiny", {"item_key": x.item_key, "passed": x.passed, "detail": json.loads(x.detail)})
               for x in rows if x.gen_id == 1]
    assert transfer.parent_verdicts(cfg, g0, results) == verdicts[0]

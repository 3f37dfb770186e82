"""Unpaired feedback: a bad mark without a better answer is kept as undesirable and trained by TRL's KTO stage."""

from __future__ import annotations

import json

from sqlmodel import select

from loop import config
from loop.data.lineage import pending_clause
from loop.inbox import feedback, ingest
from loop.train.kto import kto_classes
from store.db import reading
from store.tables import Conversation, Event
from tests import jobkit


def test_kto_comes_from_where_the_pinned_trl_has_it():
    trainer, cfg = kto_classes()
    assert trainer.__name__ == "KTOTrainer" and cfg.__name__ == "KTOConfig"


def test_a_bad_mark_without_a_better_answer_is_stored_as_undesirable(tiny_ws):
    path = feedback.undesirable(tiny_ws.inbox_dir, [{"role": "user", "content": "hi"},
                                                    {"role": "assistant", "content": "go away"}], gen_id=0)
    assert json.loads(path.read_text())["label"] is False
    ingest.ingest(tiny_ws, [path])
    with reading(tiny_ws.db_url) as s:
        row = s.exec(select(Conversation).where(Conversation.kind == "undesirable")).one()
    assert row.karma == 0.0 and json.loads(row.messages)[-1]["content"] == "go away"


def test_enough_undesirable_answers_run_a_kto_stage_and_are_never_trained_as_good(tiny_ws):
    cfg = tiny_ws
    cfg.path.write_text(cfg.path.read_text().replace("dpo_steps = 1\n", "dpo_steps = 1\nkto_min = 2\nkto_steps = 1\n"))
    cfg = config.load(cfg.path)
    for i in range(2):
        feedback.undesirable(cfg.inbox_dir, [{"role": "user", "content": f"hello ladder {i}?"},
                                             {"role": "assistant", "content": f"no no no {i}"}], gen_id=0)
    ingest.ingest(cfg)
    r = jobkit.ladder(cfg, "train", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    job = cfg.models_dir / "gen-0001" / "job"
    rows = [json.loads(x) for x in (job / "kto.jsonl").read_text().splitlines()]
    assert sorted(r["label"] for r in rows)[:2] == [False, False] and any(r["label"] for r in rows)
    assert "no no no" not in (job / "dataset.jsonl").read_text(), "an undesirable answer is no example to follow"
    with reading(cfg.db_url) as s:
        stages = [json.loads(e.data).get("stage") for e in s.exec(select(Event).where(Event.gen_id == 1)).all()]
        from loop.data.lineage import ancestors
        from store.db import active_gen

        lineage = ancestors(s, active_gen(s))
        waiting = s.exec(select(Conversation).where(pending_clause(lineage), Conversation.kind == "undesirable")).all()
    assert "kto" in stages
    manifest = json.loads((cfg.models_dir / "gen-0001" / "manifest.json").read_text())
    assert manifest["train"]["kto"]["undesirable"] == 2 and manifest["train"]["kto"]["steps"] == 1
    if json.loads(r.stdout)["status"] == "active":
        assert waiting == [], "taken by the generation that trained on them"

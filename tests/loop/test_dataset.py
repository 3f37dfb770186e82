"""The dataset: new data since the parent, held-out split, replay, curriculum order, hashes."""

import json

from sqlmodel import select

from loop.data import dataset, jobfiles
from store.db import session
from store.tables import Conversation, Membership, EvalResult
from tests.helpers import add_conversation, add_generation, add_probe, make_workspace


def plan(cfg, parent=0):
    with session(cfg.db_url) as s:
        return dataset.plan(s, cfg, parent)


def test_new_data_is_split_and_hashed_deterministically(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    for n in range(20):
        add_conversation(cfg, n)
    a, b = plan(cfg), plan(cfg)
    assert a.data_delta_sha == b.data_delta_sha and a.holdout_ids == b.holdout_ids
    assert len(a.new_train_ids) + len(a.holdout_ids) == 20
    assert 1 <= len(a.holdout_ids) <= 10
    assert not set(a.new_train_ids) & set(a.holdout_ids)


def test_low_quality_records_are_skipped_and_counted(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_conversation(cfg, 1)
    add_conversation(cfg, 2)
    add_conversation(cfg, 3, quality=0.1, karma=0.0)
    p = plan(cfg)
    assert p.skipped_low_quality == 1 and len(p.new_train_ids) + len(p.holdout_ids) == 2


def test_replay_comes_from_the_lineage_only(tmp_path):
    cfg = make_workspace(tmp_path, dataset={"replay_examples": 3})
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "promoted")
    add_generation(cfg, 2, 0, "rejected")
    for n in range(5):
        add_conversation(cfg, n, gen_id=1, split="train")
    for n in range(5, 10):
        add_conversation(cfg, n, gen_id=2, split="train")  # a rejected branch: new again, not replay
    add_conversation(cfg, 10)
    p = plan(cfg, parent=1)
    sources = [r["_source"] for r in p.train_rows]
    assert sources.count("replay") == 3
    with session(cfg.db_url) as s:
        gen_of = {c.id: None for c in s.exec(select(Conversation)).all()}
        gen_of |= {m.conversation_id: m.gen_id for m in s.exec(select(Membership)).all()}
    assert set(p.new_train_ids) | set(p.holdout_ids) == {i for i, g in gen_of.items() if g in (None, 2)}


def test_curriculum_order_keeps_stages_apart(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    for n, stage in enumerate(["conversations", "fundamentals", "manual", "conversations", "fundamentals", "logs_specs"]):
        add_conversation(cfg, n, stage=stage, kind="document" if stage != "conversations" else "chat")
    stages = [r["_stage"] for r in plan(cfg).train_rows]
    order = ["fundamentals", "manual", "logs_specs", "conversations"]
    assert stages == sorted(stages, key=order.index)


def test_recall_items_are_what_the_lineage_knew(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "promoted")
    add_generation(cfg, 2, 0, "rejected")
    add_probe(cfg, "p01", True)  # a store from before the steadiness check: counts
    add_probe(cfg, "p02", False)
    add_probe(cfg, "p03", True, steady=True)
    add_probe(cfg, "p04", True, steady=False)  # right once, wrong when rephrased: not known
    with session(cfg.db_url) as s:
        for gen in (1, 2):  # held-out tool calls each generation got right; G2's branch was rejected
            s.add(EvalResult(gen_id=gen, eval="generalization", item_key=f"c{gen}", prompt="q", reference="r",
                             passed=True, detail=json.dumps({"messages": [{"role": "user", "content": "q"}],
                                                             "kind": "tool", "expect": {"tool": "t", "args": {}}})))
        s.add(EvalResult(gen_id=1, eval="generalization", item_key="c9", prompt="q", reference="r", passed=True,
                         detail=json.dumps({"messages": [], "kind": "likelihood"})))  # more likely is not knowledge
    add_conversation(cfg, 1)
    keys = [it["key"] for it in plan(cfg, parent=1).recall_items]
    assert keys == ["c1", "p01", "p03"]


def test_recall_items_keep_every_known_probe_of_g0_before_later_items(tmp_path):
    cfg = make_workspace(tmp_path, eval={"recall_items": 5})
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "promoted")
    for n in range(4):
        add_probe(cfg, f"p{n}", True, steady=True)
    with session(cfg.db_url) as s:
        for n in range(6):
            s.add(EvalResult(gen_id=1, eval="generalization", item_key=f"c{n}", prompt="q", reference="r", passed=True,
                             detail=json.dumps({"messages": [], "kind": "tool", "expect": {"tool": "t", "args": {}}})))
    add_conversation(cfg, 1)
    keys = [it["key"] for it in plan(cfg, parent=1).recall_items]
    assert [k for k in keys if k.startswith("p")] == ["p0", "p1", "p2", "p3"] and len(keys) == 5


def test_written_files_and_their_hash(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    for n in range(6):
        add_conversation(cfg, n)
    p = plan(cfg)
    sha = dataset.write(p, tmp_path / "job")
    rows = jobfiles.read_jsonl(tmp_path / "job" / "dataset.jsonl")
    assert len(rows) == len(p.new_train_ids) and all("messages" in r and "_source" not in r for r in rows)
    held = jobfiles.read_jsonl(tmp_path / "job" / "holdout.jsonl")
    assert all(h["messages"][-1]["role"] == "user" and h["reference"].startswith("Answer") for h in held)
    assert len(sha) == 64

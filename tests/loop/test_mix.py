"""The data mix: shares and counts per source, over-sampling, a cap per domain, and the dry run of a dataset."""

import json
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from loop import config, workspace
from loop.data import dataset, mix
from loop.errors import UserError
from loop.data.lineage import pending_count
from store.db import session
from tests.helpers import add_conversation, add_generation

N = 0


@dataclass(eq=False)
class Rec:
    source_format: str
    domain: str = "general"
    quality: float = 1.0
    stage: str = "conversations"
    id: int = 0
    content_sha: str = ""

    def __post_init__(self):
        global N
        N += 1
        self.id, self.content_sha = N, f"sha{N}"


def recs(n: int, source: str, **kw) -> list[Rec]:
    return [Rec(source, **kw) for _ in range(n)]


def test_shares_and_counts_per_source_with_over_sampling():
    records = recs(100, "openai") + recs(20, "chatgpt") + recs(8, "correction")
    choice = mix.choose(records, mix.Mix(sources={"openai": 0.3, "correction": 80.0}, max_repeat=10))
    rows = Counter(r.source_format for r in choice.rows)
    assert rows == {"openai": 38, "chatgpt": 20, "correction": 80}  # 30% of 128; all; 8 records x 10
    assert Counter(id(r) for r in choice.rows if r.source_format == "correction") == {id(r): 10 for r in records[-8:]}
    assert len(choice.deferred) == 62 and {r.source_format for r in choice.deferred} == {"openai"}
    capped = mix.choose(records, mix.Mix(sources={"correction": 80.0}, max_repeat=3))
    assert Counter(r.source_format for r in capped.rows)["correction"] == 24


def test_a_share_prefers_the_best_records():
    records = [Rec("openai", quality=q / 10) for q in range(1, 11)]
    choice = mix.choose(records, mix.Mix(sources={"openai": 0.3}))
    assert sorted(r.quality for r in choice.rows) == [0.8, 0.9, 1.0]


def test_a_total_trims_every_source_in_proportion():
    records = recs(60, "openai") + recs(30, "sharegpt") + recs(10, "alpaca")
    choice = mix.choose(records, mix.Mix(total=50))
    assert Counter(r.source_format for r in choice.rows) == {"openai": 30, "sharegpt": 15, "alpaca": 5}
    shares = mix.choose(records, mix.Mix(total=40, sources={"alpaca": 0.25}))  # a share of the total: 10 of 40
    assert Counter(r.source_format for r in shares.rows)["alpaca"] == 10 and len(shares.rows) == 40


def test_the_domain_cap_keeps_any_domain_from_saturating():
    records = recs(70, "openai", domain="ops") + recs(20, "openai", domain="code") + recs(10, "openai", domain="data")
    choice = mix.choose(records, mix.Mix(domain_cap=0.5))
    by_domain = Counter(r.domain for r in choice.rows)
    assert by_domain == {"ops": 30, "code": 20, "data": 10}
    assert by_domain["ops"] / len(choice.rows) <= 0.5
    assert Counter(r.domain for r in choice.deferred) == {"ops": 40}
    # one domain alone is not capped; a cap no mix could meet becomes an even split
    assert len(mix.choose(recs(30, "openai", domain="ops"), mix.Mix(domain_cap=0.2)).rows) == 30
    even = mix.choose(recs(30, "openai", domain="a") + recs(10, "openai", domain="b"), mix.Mix(domain_cap=0.2))
    assert Counter(r.domain for r in even.rows) == {"a": 10, "b": 10}


def test_the_domain_cap_balances_by_repeating_the_smaller_domains_before_it_defers_anything():
    records = recs(50, "openai", domain="ops") + recs(11, "openai", domain="general")
    choice = mix.choose(records, mix.Mix(domain_cap=0.5, max_repeat=10))
    assert not choice.deferred  # the batch mostly about one thing trains on all of it
    rows = Counter(r.domain for r in choice.rows)
    assert rows == {"ops": 50, "general": 50} and max(Counter(id(r) for r in choice.rows).values()) <= 10
    assert "general repeated to 50 rows from 11 records" in choice.note()
    # what repetition cannot balance waits, and the note says which and how many
    few = mix.choose(recs(70, "openai", domain="ops") + recs(10, "openai", domain="data"),
                     mix.Mix(domain_cap=0.5, max_repeat=3))
    assert Counter(r.domain for r in few.rows) == {"ops": 30, "data": 30}
    assert Counter(r.domain for r in few.deferred) == {"ops": 40}
    assert "40 ops record(s) wait for a later generation" in few.note()
    assert mix.choose(recs(30, "openai", domain="a") + recs(10, "openai", domain="b"),
                      mix.Mix(domain_cap=0.2, max_repeat=10)).deferred == []  # the even split, by repetition


def test_the_same_data_always_mixes_the_same_way():
    records = recs(50, "openai", domain="ops") + recs(10, "claude", domain="code")
    first = mix.choose(records, mix.Mix(domain_cap=0.6, sources={"openai": 0.5}), seed=3)
    shuffled = records[:]
    random.Random(1).shuffle(shuffled)
    again = mix.choose(shuffled, mix.Mix(domain_cap=0.6, sources={"openai": 0.5}), seed=3)
    assert {r.id for r in first.rows} == {r.id for r in again.rows}
    assert {r.id for r in mix.choose(records, mix.Mix(sources={"openai": 0.5}), seed=4).rows} != \
        {r.id for r in mix.choose(records, mix.Mix(sources={"openai": 0.5}), seed=5).rows}


def workspace_with(tmp_path, toml: str = "") -> config.Config:
    cfg = workspace.create(tmp_path)
    cfg.path.write_text(toml, encoding="utf-8")
    return config.load(cfg.path)


@pytest.mark.parametrize("toml, message", [
    ("[mix]\ndomain_cap = 0.0\n", "'mix.domain_cap' must lie between 0 and 1 (0 excluded)"),
    ("[mix.sources]\nchatgpt = 2.5\n", "'mix.sources.chatgpt' is 2.5; use a share up to 1.0 or a whole count above 1"),
    ("[mix]\nmax_repeat = 0\n", "'mix.max_repeat' must be at least 1"),
])
def test_mix_settings_are_checked(tmp_path, toml, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        mix.settings(workspace_with(tmp_path, toml))


def _stocked(tmp_path):
    """G0 with 20 trained records (for replay), and 40 new ones: 30 ops, 8 code, 2 documents in manual."""
    cfg = workspace_with(tmp_path, "[mix]\ndomain_cap = 0.5\n[mix.sources]\ncorrection = 4\n"
                                   "[dataset]\nreplay_examples = 5\nholdout_ratio = 0.2\n")
    add_generation(cfg, 0, None, "promoted")
    for n in range(20):
        add_conversation(cfg, n, gen_id=0, split="train")
    for n in range(100, 130):
        add_conversation(cfg, n, domain="ops", source_format="openai")
    for n in range(200, 206):
        add_conversation(cfg, n, domain="code", source_format="claude")
    for n in range(300, 302):
        add_conversation(cfg, n, domain="code", source_format="correction", kind="correction")
    for n in range(400, 402):
        add_conversation(cfg, n, kind="document", stage="manual", source_format="document", domain="code",
                         messages=json.dumps([{"role": "assistant", "content": f"Doctrine page {n}."}]))
    return cfg


def test_the_plan_takes_the_mix_defers_the_rest_and_keeps_replay_holdout_and_curriculum(tmp_path):
    cfg = _stocked(tmp_path)
    with session(cfg.db_url) as s:
        plan = dataset.plan(s, cfg, 0)
    m = plan.summary["mix"]
    held = set(plan.holdout_ids)
    assert held and plan.summary["replay"] == 5
    assert m["rows_by_domain"]["ops"] <= m["rows"] / 2 and m["deferred"] == 0  # code repeated (max_repeat 10)
    assert m["rows_by_domain"]["code"] > m["records_by_domain"]["code"] and "code repeated" in m["domain_note"]
    assert m["rows_by_source"]["correction"] == 4 - 2 * sum(1 for i in held if 57 <= i <= 58)  # 2 records x 2
    assert not {c for c in range(21, 61)} - held - set(plan.new_train_ids)  # nothing waits
    stages = [r["_stage"] for r in plan.train_rows]
    assert stages == sorted(stages, key=["manual", "conversations"].index)  # manual first, never shuffled in
    sources = [r["_source"] for r in plan.train_rows if r["_stage"] == "conversations"]
    at = [i for i, src in enumerate(sources) if src == "replay"]
    assert len(at) == 5 and at[0] < len(sources) / 5 and at[-1] > len(sources) * 3 / 5  # spread, not one block


def test_ladder_dataset_dry_run_shows_the_mix_per_source_domain_and_stage(tmp_path, capsys):
    from tui.cli import main

    cfg = _stocked(tmp_path)
    assert main(["--config", str(cfg.path), "dataset", "--dry-run", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parent"] == 0 and out["replay"] == 5 and out["curriculum"][0] == "fundamentals"
    assert set(out["by_source"]) == {"openai", "claude", "correction", "document"}
    assert out["by_domain"]["ops"]["deferred"] == 0 and out["by_domain"]["code"]["rows"] > out["by_domain"]["code"]["records"]
    assert "code repeated" in out["domain_note"]
    assert list(out["by_stage"]) == ["manual", "conversations"] and out["by_stage"]["conversations"]["replay"] == 5
    assert main(["--config", str(cfg.path), "dataset"]) == 0
    text = capsys.readouterr().out
    assert "deferred to a later generation" in text and "by stage (in order)" in text and "code repeated" in text
    with session(cfg.db_url) as s:  # a dry run takes nothing
        assert pending_count(s) == 40

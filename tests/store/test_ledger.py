"""The lineage ledger: the seed's columns in order, measured values, atomic rewrite."""

import csv

from store import ledger
from store.db import session
from tests.helpers import sha_of, add_generation, make_workspace


def test_columns_start_with_the_seed_columns_in_order(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "rejected", eval_recall=0.4)
    add_generation(cfg, 2, 0, "training")  # not finished: no row
    with session(cfg.db_url) as s:
        ledger.export(s, cfg.ledger_csv)
    with cfg.ledger_csv.open() as f:
        rows = list(csv.reader(f))
    assert rows[0][:12] == ["GEN_ID", "parent_sha", "child_sha", "data_delta_sha", "steps", "lr", "walltime_min",
                            "loss_start", "loss_end", "eval_recall", "eval_generalization", "eval_style_drift"]
    assert [r[0] for r in rows[1:]] == ["0", "1"]
    g1 = dict(zip(rows[0], rows[2]))
    assert g1["parent_sha"] == sha_of(0) and g1["child_sha"] == sha_of(1) and g1["eval_recall"] == "0.4"
    assert g1["status"] == "rejected" and g1["active"] == "0"
    assert dict(zip(rows[0], rows[1]))["active"] == "1"


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "models" / "lineage_ledger.csv"
    ledger.write_atomic(target, "a\n")
    ledger.write_atomic(target, "b\n")
    assert target.read_text() == "b\n"
    assert [p.name for p in target.parent.iterdir()] == ["lineage_ledger.csv"]

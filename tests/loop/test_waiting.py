"""The loop does not spin: a rejected batch is not retrained until new data arrives, the user trains by hand, or
the config changes; `ladder status` and the loop say why it waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

from sqlmodel import select

from loop.data import waiting
from store.db import reading
from store.tables import Generation
from tests import jobkit
from tests.jobkit import ROOT, wait_until


def _rejecting(cfg, threshold: float = 1.0):
    """Karma past a low threshold, and a gate no child can pass."""
    text = cfg.path.read_text(encoding="utf-8").replace("threshold = 1000.0", f"threshold = {threshold}")
    cfg.path.write_text(text.replace("recall_min = 0.0", "recall_min = 0.0\nrequire_ready = true"), encoding="utf-8")
    from loop import config

    return config.load(cfg.path)


def _gens(cfg) -> dict[int, str]:
    with reading(cfg.db_url) as s:
        return {g.id: g.status for g in s.exec(select(Generation)).all()}


def test_a_rejected_batch_waits_for_new_data_and_a_hand_train_or_config_change_lifts_the_wait(tiny_ws):
    cfg = _rejecting(tiny_ws)
    r = jobkit.ladder(cfg, "train")
    assert r.returncode == 0, r.stderr
    assert _gens(cfg)[1] == "rejected"
    with reading(cfg.db_url) as s:
        due = waiting.wait(s, cfg)
    assert not due.ready and due.message.startswith("G1 was rejected")
    status = json.loads(jobkit.ladder(cfg, "status", "--json").stdout)
    assert status["karma"] >= 1.0 and status["waiting"]["ready"] is False
    assert "G1 was rejected" in jobkit.ladder(cfg, "status").stdout

    jobkit.feed(cfg, n=2, start=100)  # new records: their karma alone passes the threshold
    with reading(cfg.db_url) as s:
        assert waiting.wait(s, cfg).ready

    cfg.path.write_text(cfg.path.read_text(encoding="utf-8").replace("threshold = 1.0", "threshold = 500.0"))
    from loop import config

    changed = config.load(cfg.path)
    with reading(changed.db_url) as s:
        due = waiting.wait(s, changed)
    assert due.message.startswith("waiting for karma"), "a new config counts all pending karma again"


def test_ladder_run_does_not_retrain_a_rejected_batch_and_trains_when_new_data_arrives(tiny_ws):
    cfg = _rejecting(tiny_ws)
    env = os.environ | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    loop = subprocess.Popen([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "run"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(loop.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("not training: G1 was rejected" in x for x in lines), timeout=600,
                   what="the loop to say why it does not retrain G1's batch")
        assert set(_gens(cfg)) == {0, 1}, "the rejected batch was not trained again"
        said = sum("not training: G1" in x for x in lines)
        (cfg.inbox_dir / "more.jsonl").write_text("".join(json.dumps(r) + "\n" for r in jobkit.chats(3, 200)))
        wait_until(lambda: 2 in _gens(cfg), timeout=600, what="new data to start G2")
        assert said == 1, "the wait is said once, not on every scan"
    finally:
        loop.terminate()
        loop.wait(timeout=120)

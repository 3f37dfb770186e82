"""The command line: one JSON object with --json, one 'error:' line and the right exit code otherwise."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import sha_of, add_generation, make_workspace

ROOT = Path(__file__).resolve().parent.parent


def ladder(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "tui.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}, timeout=120)


def one_error_line(proc, code, *words):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0]


@pytest.fixture
def ws(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted", gguf_path=str(tmp_path / "models" / "gone.gguf"))
    add_generation(cfg, 1, 0, "rejected")
    return cfg


def test_status_json_is_one_object(ws):
    p = ladder("status", "--json", "--config", ws.path)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["active_gen"] == 0 and data["active_sha"] == sha_of(0) and data["job"] is None
    assert {"karma", "karma_threshold", "generations"} <= data.keys()


def test_options_work_before_the_command_too(ws):
    p = ladder("--config", ws.path, "--json", "rollback", "0")
    assert json.loads(p.stdout)["active_gen"] == 0


def test_approve_rejected_generation_is_recorded_as_override(ws):
    p = ladder("approve", "1", "--json", "--config", ws.path)
    assert json.loads(p.stdout) | {"message": ""} == {"active_gen": 1, "active_sha": sha_of(1), "message": "", "override": True}
    ledger = ladder("ledger", "--json", "--config", ws.path)
    rows = {r["GEN_ID"]: r for r in json.loads(ledger.stdout)["rows"]}
    assert rows[1]["override"] == 1 and rows[1]["active"] == 1


def test_unknown_generation(ws):
    one_error_line(ladder("approve", "42", "--config", ws.path), 2, "no generation 42")


def test_missing_model_file_for_chat(ws):
    one_error_line(ladder("chat", "hi", "--config", ws.path), 2, "no GGUF file")


def test_bad_config_value(ws):
    ws.path.write_text("[train]\nlearning_rate = 'fast'\n")
    one_error_line(ladder("status", "--config", ws.path), 2, "train.learning_rate")


def test_missing_config(tmp_path):
    one_error_line(ladder("status", "--config", tmp_path / "none.toml"), 2, "ladder init")


def test_missing_base_model(tmp_path):
    cfg = make_workspace(tmp_path, model={"base": "weights/none.gguf"})
    one_error_line(ladder("init", "--config", cfg.path), 2, "model.base", "does not exist")


def test_bad_usage(ws):
    one_error_line(ladder("approve", "--config", ws.path), 2, "required")
    one_error_line(ladder("frobnicate"), 2, "invalid choice")


def test_nothing_to_train(ws):
    one_error_line(ladder("train", "--config", ws.path), 2, "nothing new to train on")


def test_ingest_missing_path(ws):
    one_error_line(ladder("ingest", ws.root / "nope.jsonl", "--config", ws.path), 2, "no such file")


def test_ingest_reports_quarantine_and_karma(ws):
    good = ws.inbox_dir / "a.jsonl"
    good.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "Hey. What's up?"}]}) + "\n{oops\n")
    (ws.inbox_dir / "b.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    p = ladder("ingest", "--json", "--config", ws.path)
    data = json.loads(p.stdout)
    assert data["ingested"] == 1 and data["karma"] == 1.0 and data["karma_threshold"] == 20.0
    reasons = {q["path"]: q["reason"] for q in data["quarantined"]}
    assert "line 2" in reasons["inbox/a.jsonl"]
    assert "inbox/b.jsonl" in reasons
    assert (ws.inbox_dir / "quarantine" / "b.jsonl.reason").exists()
    assert (ws.inbox_dir / "processed" / "a.jsonl").exists()

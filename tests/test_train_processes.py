"""The training stage in other processes: two DDP ranks on the CPU (gloo), or another interpreter (train.python)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sqlmodel import select

from loop import config
from store.db import reading
from store.tables import Event, Generation
from tests import jobkit


def _with(cfg, **train) -> config.Config:
    """The [train] table with these keys set (replaced where the file has them)."""
    head, _, rest = cfg.path.read_text(encoding="utf-8").partition("[train]\n")
    table, nl, tail = rest.partition("\n[")
    kept = [line for line in table.splitlines() if line.split(" = ")[0] not in train]
    table = "\n".join(kept + [f"{k} = {json.dumps(v)}" for k, v in train.items()])
    cfg.path.write_text(head + "[train]\n" + table + nl + tail, encoding="utf-8")
    return config.load(cfg.path)


def _progress(cfg, gen: int) -> list[dict]:
    with reading(cfg.db_url) as s:
        rows = s.exec(select(Event).where(Event.gen_id == gen, Event.kind == "progress")).all()
    return [json.loads(e.data) for e in rows if json.loads(e.data).get("stage") == "train"]


def test_two_processes_train_one_child_with_each_step_logged_once(tiny_ws):
    cfg = _with(tiny_ws, processes=2, steps=3, threads=2)
    r = jobkit.ladder(cfg, "train", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert out["status"] in ("active", "candidate", "rejected") and out["child_sha"]
    steps = [p["step"] for p in _progress(cfg, 1)]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) == out["metrics"]["steps"], "one line per step"
    weights = list((cfg.models_dir / "gen-0001").glob("hf/*.safetensors"))
    assert len(weights) == 1, "one merged model"
    manifest = json.loads((cfg.models_dir / "gen-0001" / "manifest.json").read_text())
    train = manifest["train"]
    assert train["steps"] == out["metrics"]["steps"] and train["loss_start"] is not None and train["trained_tokens"] > 0
    assert {"walltime_s", "tokens_per_s", "backend", "weight_change"} <= train.keys(), "the one-process shape"
    assert jobkit.problems(cfg) == []


def test_another_interpreter_trains_from_the_job_folder(tiny_ws):
    other = Path(sys.executable).with_name("python3")  # another name for an interpreter of an environment
    assert other.exists() and other.name != Path(sys.executable).name
    cfg = _with(tiny_ws, python=str(other))
    r = jobkit.ladder(cfg, "train", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (cfg.models_dir / "gen-0001" / "job" / "train_request.json").is_file()
    with reading(cfg.db_url) as s:
        assert s.get(Generation, 1).child_sha


def test_a_missing_interpreter_fails_the_generation_with_one_line(tiny_ws):
    cfg = _with(tiny_ws, python=".venv-gpu/bin/python")
    r = jobkit.ladder(cfg, "train", "--json")
    assert r.returncode == 1
    with reading(cfg.db_url) as s:
        g = s.get(Generation, 1)
    assert g.status == "failed" and "bin/setup-gpu" in g.reason

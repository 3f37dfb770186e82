"""End to end on the real embedded model and real llama.cpp: init, ingest, train, ledger, approve, rollback, kill."""

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from loop.hashing import sha256_file

from tests.e2ekit import CONFIG, DEMO, as_json, ladder, ledger_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("workspace")
    (ws / "config.toml").write_text(CONFIG, encoding="utf-8")
    out = as_json(ladder(ws, "init", "--json"))
    assert out["created"] and out["gen"] == 0
    for f in DEMO.glob("*.jsonl"):
        shutil.copyfile(f, ws / "inbox" / f.name)
    (ws / "ingest.json").write_text(ladder(ws, "ingest", "--json").stdout)  # every test below has data to train on
    return ws


def test_generation_zero_is_in_the_ledger_with_its_hashes(ws):
    g0 = ledger_rows(ws)["0"]
    gguf = next((ws / "models" / "gen-0000").glob("*.gguf"))
    assert g0["child_sha"] == sha256_file(gguf)
    from loop.workspace import builtin_base

    assert g0["parent_sha"] == sha256_file(builtin_base())
    assert 0 < float(g0["eval_recall"]) <= 1
    # the copy rounded to q8_0 that checks the right answers are steady is gone, and what it answered wrong is not steady
    assert not list((ws / "models" / "gen-0000").glob("steady-check*"))
    from loop import config
    from store.db import session
    from store.tables import EvalResult
    from sqlmodel import select

    with session(config.load(ws / "config.toml").db_url) as s:
        details = [json.loads(r.detail) for r in s.exec(select(EvalResult).where(EvalResult.gen_id == 0,
                                                                                 EvalResult.eval == "probe"))]
    assert any(d["steady"] for d in details)
    assert all(not d["steady"] for d in details if "wrong_when_rounded" in d)
    assert as_json(ladder(ws, "status", "--json"))["active_sha"] == g0["child_sha"]
    # idempotent
    assert not as_json(ladder(ws, "init", "--json"))["created"]


def test_ingest_train_ledger_approve_rollback(ws):
    got = json.loads((ws / "ingest.json").read_text())
    assert got["ingested"] >= 40 and got["quarantined"] == [] and got["karma"] > 0
    before = as_json(ladder(ws, "status", "--json"))
    parent_sha, parent = before["active_sha"], before["active_gen"]  # G0, unless another test promoted a child

    result = as_json(ladder(ws, "train", "--json", "--steps", "3"))
    assert result["parent"] == parent and result["status"] in ("active", "rejected", "candidate")
    gen_dir = ws / "models" / f"gen-{result['gen']:04d}"
    gguf = next(gen_dir.glob("*.gguf"))
    assert result["child_sha"] == sha256_file(gguf)

    row = ledger_rows(ws)[str(result["gen"])]
    assert row["parent_sha"] == parent_sha and row["child_sha"] == result["child_sha"]
    assert row["steps"] == "3" and float(row["lr"]) == 2e-4
    for col in ("walltime_min", "loss_start", "loss_end", "eval_recall", "eval_generalization", "eval_style_drift"):
        assert row[col] != "", col
    assert 0 <= float(row["eval_recall"]) <= 1 and 0 <= float(row["eval_generalization"]) <= 1
    manifest = json.loads((gen_dir / "manifest.json").read_text())
    assert manifest["files"]["job/dataset.jsonl"] == sha256_file(gen_dir / "job" / "dataset.jsonl")
    assert manifest["data_delta_sha"] == row["data_delta_sha"] and manifest["child_sha"] == row["child_sha"]
    # self-replay: the parent's own answers went into the dataset, spread through it, and are counted
    sources = [json.loads(line)["source"] for line in (gen_dir / "job" / "dataset_sources.jsonl").open()]
    assert 0 < sources.count("self_replay") == manifest["dataset"]["self_replay"] <= 4
    assert sources.index("self_replay") < len(sources) - sources.count("self_replay")  # not a block at the end
    assert manifest["train"]["distilled_rows"] == sources.count("self_replay")  # trained by distillation (default)

    approved = as_json(ladder(ws, "approve", str(result["gen"]), "--json"))
    assert approved["active_gen"] == result["gen"] and approved["active_sha"] == result["child_sha"]
    back = as_json(ladder(ws, "rollback", "--json"))
    assert back["active_gen"] == parent and back["active_sha"] == parent_sha
    assert gguf.exists()  # rollback deletes nothing

    answer = as_json(ladder(ws, "chat", "What is the capital of France?", "--gen", str(result["gen"]), "--json"))
    assert answer["gen"] == result["gen"] and answer["answer"].strip()
    raw = as_json(ladder(ws, "chat", "The capital of France is", "--raw", "--json"))
    assert raw["raw"] and raw["answer"].strip()


def _wait_for(ws: Path, gen: int, stage: str, timeout: float = 600) -> int:
    from loop import config
    from store.db import session
    from store.tables import Generation

    cfg = config.load(ws / "config.toml")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session(cfg.db_url) as s:
            g = s.get(Generation, gen)
            if g is not None and g.stage == stage and g.status == "training" and g.job_pid and g.job_pid != os.getpid():
                return g.job_pid
            if g is not None and g.status != "training":
                raise AssertionError(f"G{gen} ended ({g.status}: {g.reason}) before reaching {stage}")
        time.sleep(0.05)
    raise AssertionError(f"G{gen} never reached {stage}")


@pytest.mark.parametrize("stage", ["train", "export"])
def test_sigkill_mid_stage_leaves_the_active_generation(ws, stage):
    before = as_json(ladder(ws, "status", "--json"))
    started = as_json(ladder(ws, "train", "--detach", "--json", "--steps", "40" if stage == "train" else "2"))
    gen = started["gen"]
    pid = _wait_for(ws, gen, stage)
    if stage == "train":
        time.sleep(3)  # well into the steps
    os.kill(pid, signal.SIGKILL)
    seen = ladder(ws, "status", "--json")  # a read: it says what it sees and changes nothing
    assert f"G{gen} is marked training but its job is gone" in seen.stderr
    assert {g["gen"]: g["status"] for g in as_json(seen)["generations"]}[gen] == "training"
    told = ladder(ws, "ingest", "--json")  # the next engine command settles it, and says so
    assert f"G{gen} was interrupted during {stage}" in told.stderr
    state = as_json(ladder(ws, "status", "--json"))
    assert state["active_gen"] == before["active_gen"] and state["active_sha"] == before["active_sha"]
    assert state["job"] is None
    assert {g["gen"]: g["status"] for g in state["generations"]}[gen] == "failed"
    assert not list((ws / "models" / f"gen-{gen:04d}").glob("*.gguf"))
    assert state["karma"] == before["karma"]  # its data is waiting to be trained again


def test_the_next_run_carries_on_after_a_kill(ws):
    started = as_json(ladder(ws, "train", "--detach", "--json", "--steps", "2"))
    os.kill(_wait_for(ws, started["gen"], "train"), signal.SIGKILL)
    result = as_json(ladder(ws, "train", "--json", "--steps", "2"))  # settles the killed one, then trains
    assert result["status"] in ("active", "rejected", "candidate") and result["child_sha"]
    statuses = {g["gen"]: g["status"] for g in as_json(ladder(ws, "status", "--json"))["generations"]}
    assert statuses[started["gen"]] == "failed" and result["gen"] == started["gen"] + 1
    assert str(result["gen"]) in ledger_rows(ws)


def test_a_practice_round_on_the_embedded_model_trains_the_next_generation_on_its_own_failures(ws, tmp_path):
    env_key = os.environ.pop("ANTHROPIC_API_KEY", None)  # the reference answers teach here
    try:
        out = as_json(ladder(ws, "practice", "--items", "4", "--no-teacher", "--json"))
    finally:
        if env_key is not None:
            os.environ["ANTHROPIC_API_KEY"] = env_key
    assert out["n"] == 4 and out["corrections"] + out["examples"] >= 1
    path = next((ws / "inbox").rglob(Path(out["file"]).name))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    from loop import config
    from loop.evals import suites
    from loop.model.llm import Runner
    from store.db import active_gen, reading
    from store.tables import Generation

    cfg = config.load(ws / "config.toml")
    items = {it["id"]: it for it in suites.load(cfg, "default").items}
    with reading(cfg.db_url) as s:
        g = s.get(Generation, out["gen"])
        assert active_gen(s) is not None
    from loop.artifacts import verified_gguf

    with Runner(verified_gguf(cfg, g), threads=cfg.eval.threads, context=cfg.eval.context, seed=0) as runner:
        for r in (r for r in rows if "chosen" in r):
            item = items[r["provenance"]["item"]]
            assert r["rejected"] == runner.chat(suites.conversation(item), cfg.eval.suite_max_tokens), "on-policy"
            assert r["chosen"] == item["reference"]
    ladder(ws, "dataset", "--out", tmp_path / "next")
    data = (tmp_path / "next" / "dataset.jsonl").read_text(encoding="utf-8")
    for r in rows:
        answer = r["chosen"] if "chosen" in r else r["messages"][-1]["content"]
        assert json.dumps(answer)[1:-1] in data, "every practice record is in the next generation's dataset"

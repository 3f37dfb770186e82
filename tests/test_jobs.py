"""Real jobs on a tiny model: kills at every stage, the user's choice while a job trains, two starts at once, copies.

Each test takes a fresh copy of a workspace whose G0 is a tiny random Llama, so a whole
generation (self-replay, SFT, DPO, merge, export, llama.cpp evals, gates) takes seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loop import faults
from loop.hashing import sha256_file
from loop.jobs import promotion
from store.db import reading
from store.tables import Generation
from tests import jobkit, pgdb

ROOT = Path(__file__).resolve().parent


def rows(cfg) -> dict[int, Generation]:
    with reading(cfg.db_url) as s:
        from sqlmodel import select

        return {g.id: g for g in s.exec(select(Generation)).all()}


def ended(cfg, gen: int) -> bool:
    """The job's process is gone (its lock is free): its decision and the files after it are all written."""
    from loop.locks import is_held

    return not is_held(cfg.models_dir / f"gen-{gen:04d}" / "job" / "job.lock")


def assert_consistent(cfg) -> None:
    assert jobkit.problems(cfg) == []


# At least three points in every stage; the bench (bench/bench_faults.py) draws from all of them, 50 times.
POINTS = [p for p in faults.POINTS] + ["train.step:2"]


@pytest.mark.parametrize("point", POINTS)
def test_a_job_killed_at_any_point_leaves_the_lineage_whole_and_the_next_train_carries_on(tiny_ws, point):
    cfg = tiny_ws
    killed = jobkit.ladder(cfg, "train", "--json", env={faults.ENV: point})
    assert "Traceback" not in killed.stderr
    before = rows(cfg)
    gen = max(before)
    decided = before[gen].status in ("promoted", "rejected", "candidate")
    assert decided == (point in ("gate.committed", "gate.ledger")), (point, before[gen].status)
    jobkit.feed(cfg, start=100)  # new data, so the next generation has something to train on either way
    again = jobkit.ladder(cfg, "train", "--json")  # an engine command: it settles the dead job first, then trains
    assert again.returncode == 0, again.stderr[-2000:]
    if not decided:
        assert "interrupted during" in killed.stderr + again.stderr
        assert rows(cfg)[gen].status == "failed"
    result = json.loads(again.stdout)
    assert result["gen"] == gen + 1 and result["status"] in ("active", "candidate", "rejected")
    assert_consistent(cfg)


def held(cfg, gen: int) -> bool:
    return (cfg.models_dir / f"gen-{gen:04d}" / "job" / "held").exists()


def release(cfg, gen: int) -> None:
    (cfg.models_dir / f"gen-{gen:04d}" / "job" / "release").write_text("go")


def test_rollback_while_a_job_trains_stands_and_the_child_waits_as_a_candidate(tiny_ws):
    cfg = tiny_ws
    first = json.loads(jobkit.ladder(cfg, "train", "--json").stdout)
    assert first["status"] == "active"  # G1, from G0, promoted: the permissive gates of the tiny workspace
    jobkit.feed(cfg, start=100)
    started = json.loads(jobkit.ladder(cfg, "train", "--detach", "--json", env={faults.HOLD_ENV: "train.start"}).stdout)
    gen = started["gen"]
    jobkit.wait_until(lambda: held(cfg, gen), 120, "G2 to reach its training")
    back = promotion.rollback(cfg)  # while G2 trains from G1
    assert back["active_gen"] == 0
    release(cfg, gen)
    jobkit.wait_until(lambda: ended(cfg, gen), 300, "the job to finish")
    child = rows(cfg)[gen]
    assert child.status == "candidate", child.reason
    assert "G0 became active while G2 trained from G1" in child.reason
    with reading(cfg.db_url) as s:
        assert promotion.active_gen(s) == 0, "the user's rollback stands"
    assert_consistent(cfg)


def test_two_starts_at_the_same_instant_run_one_job_and_refuse_the_other(tiny_ws):
    cfg = tiny_ws
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT.parent)}
    go = cfg.root / "go"
    # Both processes import everything, then wait for the same file to appear, then start.
    code = ("import os, sys, time\nfrom tui.cli import main\nwhile not os.path.exists(sys.argv[2]): time.sleep(0.001)\n"
            "sys.exit(main(['--config', sys.argv[1], 'train', '--detach', '--json']))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(cfg.path), str(go)], env=env, cwd=ROOT.parent,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)  # not a wait for a result: it only lets both reach their starting line
    go.write_text("go")
    outs = [p.communicate(timeout=120) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], outs
    refused = next(err for p, (_, err) in zip(procs, outs) if p.returncode == 1)
    assert "a generation is already training: G1" in refused
    job = cfg.models_dir / "gen-0001" / "job"
    assert json.loads((job / "job.json").read_text())["gen"] == 1 and not (cfg.models_dir / "gen-0002").exists()
    jobkit.wait_until(lambda: ended(cfg, 1), 300, "the job to finish")
    assert rows(cfg)[1].status in ("promoted", "candidate", "rejected") and set(rows(cfg)) == {0, 1}


def hashes(folder: Path) -> dict[str, str]:
    """Every file's SHA-256; the database by its content (SQLite folds its WAL file in when it likes)."""
    import sqlite3

    out = {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*"))
           if p.is_file() and not p.name.startswith("ladder.db")}
    con = sqlite3.connect(f"file:{folder / 'ladder.db'}?mode=ro", uri=True)
    out["ladder.db (content)"] = "\n".join(con.iterdump())
    con.close()
    return out


@pytest.mark.skipif(pgdb.enabled(), reason="a copy made with cp -a copies the SQLite file; on PostgreSQL the "
                                           "copy shares the server's database, as machines sharing a ladder do")
def test_a_copied_workspace_is_independent_of_its_original(tiny_ws, tmp_path):
    from loop import config

    original = tiny_ws
    for start in (0, 100):
        if start:
            jobkit.feed(original, start=start)
        assert jobkit.ladder(original, "train", "--json").returncode == 0
    assert len(rows(original)) == 3
    copy_root = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(original.root), str(copy_root)], check=True)
    text = (copy_root / "config.toml").read_text(encoding="utf-8")
    (copy_root / "config.toml").write_text(text.replace("[model]\n", "[model]\nkeep_full_weights = 1\n", 1),
                                           encoding="utf-8")
    copy = config.load(copy_root / "config.toml")
    before = hashes(original.root)

    jobkit.feed(copy, start=200)
    trained = jobkit.ladder(copy, "train", "--json")  # trains, and prunes all weights but the newest and active
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert [g.id for g in rows(copy).values() if g.weights_path is None] != []
    jobkit.feed(copy, start=300)
    started = json.loads(jobkit.ladder(copy, "train", "--detach", "--json", env={faults.HOLD_ENV: "train.start"}).stdout)
    jobkit.wait_until(lambda: held(copy, started["gen"]), 120, "the copy's job to run")
    assert jobkit.ladder(copy, "cancel").returncode == 0
    release(copy, started["gen"])
    jobkit.wait_until(lambda: ended(copy, started["gen"]), 120, "the copy's job to stop")
    assert rows(copy)[started["gen"]].status == "cancelled"
    chat = jobkit.ladder(copy, "chat", "hello", "--json")
    assert chat.returncode == 0, chat.stderr
    assert hashes(original.root) == before, "nothing of the original changed"
    assert all(not Path(g.gguf_path).is_absolute() for g in rows(copy).values() if g.gguf_path)

    # The other way round: a copy made while the original trains cannot cancel the original's job.
    jobkit.feed(original, start=400)
    job = json.loads(jobkit.ladder(original, "train", "--detach", "--json", env={faults.HOLD_ENV: "train.start"}).stdout)
    jobkit.wait_until(lambda: held(original, job["gen"]), 120, "the original's job to run")
    second = tmp_path / "second-copy"
    subprocess.run(["cp", "-a", str(original.root), str(second)], check=True)
    refused = jobkit.ladder(config.load(second / "config.toml"), "cancel")
    assert refused.returncode == 2 and "no generation is training" in refused.stderr
    release(original, job["gen"])
    jobkit.wait_until(lambda: ended(original, job["gen"]), 300, "the original's job to finish")
    assert rows(original)[job["gen"]].status in ("promoted", "candidate", "rejected"), "it was not cancelled"

"""The lineage under concurrency and after crashes: one writer at a time, the user's choice stands, liveness by lock."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from loop.errors import OperationFailed, UserError
from loop.jobs import promotion, recovery, runner
from loop.locks import is_held
from store.db import reading, session
from store.tables import Generation
from tests.helpers import add_conversation, add_generation, make_workspace

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import io, json, random, sys
from contextlib import redirect_stderr, redirect_stdout
sys.path.insert(0, sys.argv[1])
from loop import config
from loop.errors import UserError
from loop.jobs import promotion, writer
from tui.cli import main

cfg = config.load(sys.argv[2])
role, rnd = sys.argv[3], random.Random(int(sys.argv[4]))

def consistent():
    # With the lineage lock held nobody is mid-change: the store, `status --json` and the CSV must agree.
    with writer.lock(cfg):
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):  # its human lines would fill the pipe
            assert main(["--config", str(cfg.path), "status", "--json"]) == 0
        status = json.loads(out.getvalue())
        rows = list(__import__("csv").DictReader(cfg.ledger_csv.open()))
    active = [r for r in rows if r["active"] == "1"]
    assert len(active) == 1, f"{len(active)} active rows"
    assert int(active[0]["GEN_ID"]) == status["active_gen"], (active[0]["GEN_ID"], status["active_gen"])
    assert active[0]["child_sha"] == status["active_sha"]

done = 0
for _ in range(int(sys.argv[5]) if len(sys.argv) > 5 else 200):
    if role == "reader":
        consistent()
        continue
    op, gen = rnd.choice(["approve", "reject", "rollback", "undo"]), rnd.randrange(0, 6)
    try:
        {"approve": lambda: promotion.approve(cfg, gen), "reject": lambda: promotion.reject(cfg, gen),
         "rollback": lambda: promotion.rollback(cfg), "undo": lambda: promotion.undo_rollback(cfg)}[op]()
        done += 1
    except UserError:
        pass  # refused with a reason (reject G0, undo with nothing to undo...): fine
    consistent()
print(json.dumps({"role": role, "done": done}))
"""


def ladder_of_five(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    for gen, parent in ((1, 0), (2, 1), (3, 1), (4, 3), (5, 4)):
        add_generation(cfg, gen, parent, "candidate")
    promotion.approve(cfg, 0)  # writes the ledger CSV
    return cfg


def test_two_deciders_and_a_reader_never_see_a_lock_error_or_a_ledger_that_disagrees(tmp_path):
    cfg = ladder_of_five(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(ROOT), str(cfg.path), role, str(seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for role, seed in (("decider", 1), ("decider", 2), ("reader", 0))]
    results = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err[-3000:]
        assert "database is locked" not in err
    done = [json.loads(out)["done"] for out, _ in results]
    assert done[0] > 20 and done[1] > 20, done  # both really changed the lineage, many times
    with reading(cfg.db_url) as s:
        active = s.get(Generation, promotion.active_gen(s))
    rows = list(csv.DictReader(cfg.ledger_csv.open()))
    assert [r["GEN_ID"] for r in rows if r["active"] == "1"] == [str(active.id)]


def test_rejecting_the_active_generation_skips_ancestors_the_user_turned_away_from(tmp_path):
    cfg = ladder_of_five(tmp_path)
    promotion.approve(cfg, 3)
    promotion.reject(cfg, 1)  # G3's parent
    out = promotion.reject(cfg, 3)
    assert out["active_gen"] == 0, "not G1, which the user rejected"
    assert "skipped G1, rejected" in out["message"]
    rows = {r["GEN_ID"]: r for r in csv.DictReader(cfg.ledger_csv.open())}
    assert rows["1"]["status"] == "rejected" and rows["1"]["active"] == "0" and rows["0"]["active"] == "1"


def test_rejecting_the_active_generation_with_every_ancestor_turned_away_is_refused(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "candidate")
    with session(cfg.db_url) as s:
        g0 = s.get(Generation, 0)
        g0.status = "rolled_back"
        s.add(g0)
    promotion.approve(cfg, 1)
    with pytest.raises(UserError, match="every ancestor of it was rejected or rolled back"):
        promotion.reject(cfg, 1)
    with reading(cfg.db_url) as s:
        assert promotion.active_gen(s) == 1 and s.get(Generation, 1).status == "promoted"  # nothing changed


def test_a_gguf_that_no_longer_matches_the_ledger_is_refused(tmp_path):
    cfg = ladder_of_five(tmp_path)
    gguf = cfg.models_dir / "gen-0002" / "model.f16.gguf"
    gguf.write_bytes(gguf.read_bytes() + b"tampered")
    with pytest.raises(UserError, match="G2's GGUF .* no longer matches the SHA-256 in the ledger"):
        promotion.approve(cfg, 2)
    from loop.jobs import reeval

    with pytest.raises(UserError, match="no longer matches"):
        reeval.start(cfg, 2)
    p = subprocess.run([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "chat", "hi", "--gen", "2"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.startswith("error: G2's GGUF") and "Traceback" not in p.stderr


def test_a_dead_job_whose_pid_now_belongs_to_another_process_is_dead_and_that_process_is_left_alone(tmp_path):
    cfg = ladder_of_five(tmp_path)
    add_conversation(cfg, 1)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job = cfg.models_dir / "gen-0006" / "job"
        job.mkdir(parents=True)
        (job / "job.lock").write_text(f"pid {other.pid}")  # the lock file of a job that died; its PID is reused
        add_generation(cfg, 6, 0, "training", job_pid=other.pid, job_dir="models/gen-0006/job", stage="train")
        assert not is_held(job / "job.lock")
        assert runner.running(cfg) is None
        assert runner.cancel(cfg) is None  # nothing to cancel: the other process is not signalled
        assert recovery.recover(cfg) == ["G6 was interrupted during train; G0 is still active and its data will be "
                                         "trained again"]
        assert other.poll() is None, "the unrelated process is alive"
    finally:
        other.kill()
        other.wait()


def test_a_live_job_is_found_by_its_lock_and_only_its_holder_is_signalled(tmp_path):
    cfg = ladder_of_five(tmp_path)
    job = cfg.models_dir / "gen-0006" / "job"
    job.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                               str(job / "job.lock")], stdout=subprocess.PIPE, text=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert holder.stdout.readline().strip() == "locked"
        add_generation(cfg, 6, 0, "training", job_pid=bystander.pid, job_dir="models/gen-0006/job", stage="train")
        assert runner.running(cfg).id == 6
        with pytest.raises(OperationFailed, match="G6 is starting"):
            runner.cancel(cfg)  # the row names a PID that does not hold the lock: nobody is signalled
        assert bystander.poll() is None and holder.poll() is None
        with pytest.raises(OperationFailed, match="a generation is already training: G6"):
            runner.prepare(cfg)
        with session(cfg.db_url) as s:
            g = s.get(Generation, 6)
            g.job_pid = holder.pid
            s.add(g)
        assert runner.cancel(cfg).id == 6
        assert holder.wait(timeout=30) != 0 and bystander.poll() is None
    finally:
        for p in (holder, bystander):
            p.kill()
            p.wait()


def test_membership_is_kept_per_generation_so_re_approving_keeps_its_data(tmp_path):
    """Roll back G5, train G6 on the same records, re-approve G5: G5's records are not new again, and G5's replay
    still holds them (one column on the record, overwritten by each job, lost both)."""
    from loop.data import dataset
    from loop.data.lineage import pending_count
    from store.tables import Membership

    cfg = make_workspace(tmp_path, dataset={"replay_examples": 10, "self_replay_share": 0.0})
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 5, 0, "promoted")
    records = [add_conversation(cfg, n, gen_id=5, split="train").id for n in range(3)]
    promotion.rollback(cfg)  # G0 active: G5's records are new again
    with reading(cfg.db_url) as s:
        assert pending_count(s) == 3
        plan6 = dataset.plan(s, cfg, 0)
    assert sorted(plan6.new_train_ids + plan6.holdout_ids) == records
    add_generation(cfg, 6, 0, "rejected")
    with session(cfg.db_url) as s:  # G6 took them too, as a job does
        for cid in plan6.new_train_ids:
            s.add(Membership(gen_id=6, conversation_id=cid, split="train"))
    promotion.approve(cfg, 5)
    with reading(cfg.db_url) as s:
        assert pending_count(s) == 0, "G5 is active again and trained on them"
        plan7 = dataset.plan(s, cfg, 5)
    assert sorted(r["messages"][0]["content"] for r in plan7.train_rows) == [f"question {n}?" for n in range(3)]
    assert plan7.replay_ids == records


def test_the_stop_rule_reads_the_active_lineage_not_rejected_siblings():
    from types import SimpleNamespace

    from loop.evals import gate

    rule = SimpleNamespace(generations=2, epsilon=0.05, theta=0.1)
    lineage = [{"eval_generalization": 0.5, "eval_style_drift": 0}, {"eval_generalization": 0.8, "eval_style_drift": 0}]
    with_siblings = lineage + [{"eval_generalization": 0.8, "eval_style_drift": 3}] * 2  # two rejected children
    assert gate.stop_rule(with_siblings, rule) is not None  # what counting every generation would say
    assert gate.stop_rule(lineage, rule) is None


def test_finish_reads_the_stop_rule_over_the_active_lineage(tmp_path):
    from loop.jobs.finish import stop_reason

    cfg = make_workspace(tmp_path, stop_rule={"generations": 2})
    add_generation(cfg, 0, None, "promoted", eval_generalization=0.5, eval_style_drift=0)
    add_generation(cfg, 1, 0, "promoted", eval_generalization=0.8, eval_style_drift=0)
    for gen, parent in ((2, 1), (3, 2)):  # rejected children, drifting and not learning
        add_generation(cfg, gen, parent, "rejected", eval_generalization=0.8, eval_style_drift=5 * (gen - 1))
    with reading(cfg.db_url) as s:
        assert stop_reason(s, cfg, 1) is None, "G1 is active: the rejected ones are not its history"
        assert stop_reason(s, cfg, 3) is not None  # had they been the lineage, the rule would stop

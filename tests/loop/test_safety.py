"""Data safety: the inbox never swallows the workspace, what is stored equals what is reported, bad config is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import select

from loop import config, workspace
from loop.errors import UserError
from loop.inbox import ingest
from store.db import reading
from store.tables import Conversation, InboxFile

ROOT = Path(__file__).resolve().parents[2]
CHAT = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "An answer."}]}


def write_config(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("inbox, words", [
    (".", "'workspace.inbox' is the workspace folder itself"),
    ("..", "'workspace.inbox' is a folder that holds the workspace"),
    ("models", "'workspace.inbox' holds the models folder"),
    ("models/inbox", "'workspace.inbox' is inside the models folder"),
])
def test_an_inbox_that_is_or_holds_the_workspace_is_refused_and_nothing_moves(tmp_path, inbox, words):
    ws = tmp_path / "ws"
    path = write_config(ws, f'[workspace]\ninbox = "{inbox}"\n')
    (ws / "ladder.db").write_bytes(b"precious")
    (ws / "models").mkdir()
    (ws / "models" / "model.gguf").write_bytes(b"weights")
    with pytest.raises(UserError) as e:
        config.load(path)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert (ws / "ladder.db").read_bytes() == b"precious" and (ws / "models" / "model.gguf").exists()
    p = subprocess.run([sys.executable, "-m", "tui.cli", "--config", str(path), "ingest"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.returncode == 2 and p.stderr.startswith("error: config.toml: ") and words in p.stderr
    assert sorted(x.name for x in ws.iterdir()) == ["config.toml", "ladder.db", "models"]


def test_a_database_or_config_inside_the_inbox_is_refused(tmp_path):
    with pytest.raises(UserError, match="'workspace.database' is inside the inbox"):
        config.load(write_config(tmp_path / "a", '[workspace]\ndatabase = "sqlite:///inbox/ladder.db"\n'))


def test_a_folder_of_personal_files_is_not_emptied_without_an_opt_in(tmp_path):
    mine = tmp_path / "Documents"
    mine.mkdir()
    for name in ("taxes.txt", "notes.md"):
        (mine / name).write_text("mine, not training data, and long enough to read as a document.\n")
    cfg = workspace.create(tmp_path / "ws")
    cfg.path.write_text(f'[workspace]\ninbox = "{mine}"\n', encoding="utf-8")
    cfg = config.load(cfg.path)
    with pytest.raises(UserError, match=r"already holds 2 file\(s\) Ladder did not put there.*adopt_inbox = true"):
        ingest.ingest(cfg)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md", "taxes.txt"]
    cfg.path.write_text(f'[workspace]\ninbox = "{mine}"\nadopt_inbox = true\n', encoding="utf-8")
    report = ingest.ingest(config.load(cfg.path))  # asked for: read, and moved to processed/
    assert report["files"] == 2 and (mine / "processed" / "notes.md").exists()


def test_a_deep_line_is_set_aside_and_every_good_line_around_it_is_stored_and_counted(tmp_path):
    cfg = workspace.create(tmp_path)
    lines = [json.dumps({**CHAT, "messages": [{"role": "user", "content": f"q{i}"}, CHAT["messages"][1]]})
             for i in range(1410)]
    lines.insert(1200, "[" * 100_000 + "]" * 100_000)
    (cfg.inbox_dir / "big.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ingest.ingest(cfg)
    with reading(cfg.db_url) as s:
        stored = s.exec(select(func.count()).select_from(Conversation)).one()
    assert report["ingested"] == stored == 1410 and report["bad_records"] == 1
    assert "line 1201: JSON nested too deeply" in report["quarantined"][0]["reason"]
    bad = (cfg.inbox_dir / "quarantine" / "big.jsonl.bad.jsonl").read_text().splitlines()
    assert len(bad) == 1 and json.loads(bad[0])["raw"].startswith("[[[")


def test_a_file_unreadable_half_way_stores_nothing_of_itself(tmp_path):
    cfg = workspace.create(tmp_path)
    good = "".join(json.dumps({**CHAT, "messages": [{"role": "user", "content": f"q{i}"}, CHAT["messages"][1]]})
                   + "\n" for i in range(1200))
    (cfg.inbox_dir / "export.jsonl").write_bytes(good.encode() + b"\xff\xfe" * 10 + b"\n")
    ingest.ingest(cfg)  # a bad line only: the good ones stay, the bad one is set aside
    with reading(cfg.db_url) as s:
        assert s.exec(select(func.count()).select_from(Conversation)).one() == 1200

    other = workspace.create(tmp_path / "other")
    path = other.inbox_dir / "export.json"  # a JSON document whose last part is not JSON at all
    path.write_text("[" + ",".join(json.dumps(CHAT).replace("q", f"q{i}") for i in range(600)) + ', {"messages": [}',
                    encoding="utf-8")
    report = ingest.ingest(other)
    with reading(other.db_url) as s:
        stored = s.exec(select(func.count()).select_from(Conversation)).one()
    assert report["ingested"] == stored == 600
    rest = (other.inbox_dir / "quarantine" / "export.json.bad.jsonl").read_text()
    assert '{\\"messages\\": [}' in rest, "the unreadable tail is kept, not dropped"


def test_an_ingest_killed_half_way_resumes_and_says_so(tmp_path):
    cfg = workspace.create(tmp_path)
    lines = [json.dumps({**CHAT, "messages": [{"role": "user", "content": f"question {i}"}, CHAT["messages"][1]]})
             for i in range(40_000)]
    (cfg.inbox_dir / "huge.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "ingest"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stored() -> int:
        with reading(cfg.db_url) as s:
            return s.exec(select(func.count()).select_from(Conversation)).one()

    deadline = time.monotonic() + 120
    while stored() < 1000:  # the first batches are in
        assert proc.poll() is None, "the ingest ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    part = stored()
    assert 0 < part < 40_000
    with reading(cfg.db_url) as s:
        assert s.exec(select(InboxFile.status)).all() == ["ingesting"]
        from loop.data.lineage import pending_count

        assert pending_count(s) == 0, "records of an unfinished ingest are not trained on"
    p = subprocess.run([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "ingest", "--json"], cwd=ROOT,
                       capture_output=True, text=True)
    out = json.loads(p.stdout)
    assert out["ingested"] == 40_000 and out["resumed"] == part and out["duplicates"] == 0
    assert f"resumed an interrupted ingest: {part}" in p.stderr
    assert stored() == 40_000


@pytest.mark.parametrize("text, words", [
    ("[train]\nlearning_rate = nan\n", "'train.learning_rate' must be a finite number"),
    ("[karma]\nthreshold = inf\n", "'karma.threshold' must be a finite number"),
    ("[train]\nlearning_rate = 1e9\n", "'train.learning_rate' must lie between 0 and 1 (0 excluded)"),
    ("[train]\nbatch_size = 1e8\n", "'train.batch_size' must be a whole number"),
    ("[train]\nbatch_size = 100000000\n", "'train.batch_size' must be at most 4096"),
    ("[dataset]\nself_replay_share = 1.0\n", "'dataset.self_replay_share' must lie between 0 and 1 (1 excluded)"),
    ("[dataset]\nself_replay_share = 5.0\n", "'dataset.self_replay_share' must lie between 0 and 1"),
    ("[karma]\nmin_quality = 1.5\n", "'karma.min_quality' must lie between 0 and 1"),
    ("[mix]\ndomain_cap = 2.0\n", "'mix.domain_cap' must lie between 0 and 1"),
    ("[dataset]\nholdout_ratio = 0.0\n", "'dataset.holdout_ratio' must lie between 0 and 1 (0 and 1 excluded)"),
    ("[karma.weights]\nchat = -1.0\n", "'karma.weights.chat' must be at least 0"),
    ("[train]\nlora_dropout = 5.0\n", "'train.lora_dropout' must lie between 0 and 1 (1 excluded)"),
    ("[gates]\nrecall_min = 5.0\n", "'gates.recall_min' must lie between 0 and 1"),
    ("[workspace]\ndatabase = \"sqlite:///:memory:\"\n", "'workspace.database' is a database in memory"),
    ("[workspace]\ndatabase = \"mysql://u@localhost/ladder\"\n", "'workspace.database' needs the Python package 'MySQLdb'"),
    ("[workspace]\ndatabase = \"nosuchdb://x\"\n", "'workspace.database' names an unknown kind of database"),
    ("[eval]\ncontext = 10\n", "'eval.context' must be at least 64"),
    ("[train]\nsteps = true\n", "'train.steps' must be a whole number"),
    ("[train]\ntarget_modules = []\n", "'train.target_modules'"),
])
def test_config_values_that_cannot_work_are_refused_at_load_in_one_line(tmp_path, text, words):
    with pytest.raises(UserError) as e:
        config.load(write_config(tmp_path, text))
    message = str(e.value)
    assert "\n" not in message and words in message, message


def test_a_context_llama_cpp_cannot_allocate_is_reported_as_that(base_gguf):
    from loop.model.llm import Runner

    with pytest.raises(UserError, match=r"eval.context = 1000000 is more than llama.cpp could allocate"):
        Runner(base_gguf, threads=1, context=1_000_000)

"""Real jobs, fast: a workspace whose generation 0 is a tiny random Llama, so a whole generation
(self-replay, SFT, DPO, merge, export, llama.cpp evals, gates) runs in seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from loop import config, workspace
from loop.inbox import ingest
from tests import pgdb
from tests.tinymodels import tiny_family, tiny_llama

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[model]
base = "{base}"
[train]
steps = 2
batch_size = 2
max_length = 64
threads = 1
dpo = true
dpo_steps = 1
[eval]
threads = 1
context = 256
max_tokens = 6
recall_items = 4
generalization_items = 2
recall_steady = false
tone_probes = ["Can you help me?", "Thanks."]
suites = ["tiny"]
suite_max_tokens = 8
scoring_context = 256
[dataset]
replay_examples = 2
self_replay_max = 2
self_replay_max_tokens = 6
[gates]
recall_min = 0.0
generalization_min = 0.0
recall_margin = 1.0
style_drift_max = 100
[karma]
threshold = 1000.0
"""


def chats(n: int, start: int = 0) -> list[dict]:
    rows = [{"messages": [{"role": "user", "content": f"hello ladder {i}?"},
                          {"role": "assistant", "content": f"the quick brown fox {i}."}]} for i in range(start, start + n)]
    rows += [{"prompt": f"hello world {i}?", "chosen": f"the lazy dog {i}.", "rejected": f"no {i}."}
             for i in range(start, start + 2)]
    return rows


TINY_SUITE = [
    {"suite": {"name": "tiny", "system": "Ops. Reply with one JSON tool call."}},
    {"id": "t1", "category": "tool_call", "messages": [{"role": "user", "content": "hello fox"}],
     "expect": {"tool": "none"}},
    {"id": "t2", "category": "task", "messages": [{"role": "user", "content": "restart the dog"}],
     "expect": {"tool": "restart_service", "args": {"name": "dog"}}},
    {"id": "t3", "category": "context", "messages": [{"role": "user", "content": "the port is 7"},
                                                     {"role": "assistant", "content": "ok"},
                                                     {"role": "user", "content": "the port?"}],
     "expect": {"contains": ["7"]}, "split": "practice", "reference": "The port is 7."},
    {"id": "t5", "category": "task", "messages": [{"role": "user", "content": "restart the fox"}],
     "expect": {"tool": "restart_service", "args": {"name": "fox"}}, "split": "practice",
     "reference": '{"tool": "restart_service", "args": {"name": "fox"}}'},
    {"id": "t6", "category": "persona", "messages": [{"role": "user", "content": "status for the board?"}],
     "expect": {"persona": "executive"}, "split": "practice", "difficulty": 2},
    {"id": "t4", "category": "persona", "messages": [{"role": "user", "content": "Status?"}],
     "expect": {"persona": "executive"}},
]


def make_template(folder: Path, family: str = "llama") -> config.Config:
    """A workspace with G0 made from a tiny model of a family (the model folder sits inside the workspace) and a
    short suite that fits its 256-token context."""
    cfg = lay_out(folder, family)
    workspace.init(cfg)
    return cfg


def lay_out(folder: Path, family: str = "llama") -> config.Config:
    """make_template's workspace before its init: the tiny base, the suite and the config."""
    base = tiny_llama(folder / "base", tied=True) if family == "llama" else tiny_family(folder / "base", family)
    (folder / "evals").mkdir(parents=True)
    (folder / "evals" / "tiny.jsonl").write_text("".join(json.dumps(x) + "\n" for x in TINY_SUITE), encoding="utf-8")
    text = CONFIG.format(base="base")
    if pgdb.enabled():
        text += f'[workspace]\ndatabase = "{pgdb.new_database()}"\n'
    (folder / "config.toml").write_text(text, encoding="utf-8")
    assert base.is_dir()
    return workspace.create(folder)


def copy_workspace(template: Path, folder: Path) -> config.Config:
    shutil.copytree(template, folder, symlinks=True)
    cfg = config.load(folder / "config.toml")
    if cfg.db_url.startswith("postgresql"):  # the copy gets a copy of the database, as a copied file would be
        cfg.path.write_text(cfg.path.read_text(encoding="utf-8").replace(cfg.db_url, pgdb.new_database(cfg.db_url)))
        cfg = config.load(cfg.path)
    return cfg


def feed(cfg: config.Config, n: int = 6, start: int = 0) -> dict:
    """Drop a file of new conversations and corrections into the inbox and ingest it."""
    path = cfg.inbox_dir / f"batch-{start}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in chats(n, start)), encoding="utf-8")
    return ingest.ingest(cfg)


def ladder(cfg: config.Config, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """The real command line on the workspace."""
    full = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)} | (env or {})
    return subprocess.run([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), *args], capture_output=True,
                          text=True, cwd=ROOT, env=full, timeout=timeout)


def wait_until(check, timeout: float = 300.0, what: str = "") -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


OUR_LOCKS = {".lineage.lock", ".watch.lock", ".ingest.lock"}


def problems(cfg: config.Config) -> list[str]:
    """What is wrong with a workspace after a crash: [] when the active generation, its GGUF's SHA-256 and the
    ledger CSV agree, no generation is left "training" without a job, and nothing half-written remains."""
    import csv

    from sqlmodel import select

    from loop.hashing import sha256_file
    from loop.jobs.launch import alive
    from store.db import active_gen, reading
    from store.tables import Generation

    out = []
    with reading(cfg.db_url) as s:
        gens = {g.id: g for g in s.exec(select(Generation)).all()}
        active = gens.get(active_gen(s))
    marked = [r for r in csv.DictReader(cfg.ledger_csv.open()) if r["active"] == "1"]
    if active is None or [int(r["GEN_ID"]) for r in marked] != [active.id]:
        out.append(f"ledger marks {[r['GEN_ID'] for r in marked]} active, the store G{active.id if active else None}")
    elif not (marked[0]["child_sha"] == active.child_sha == sha256_file(cfg.resolve(active.gguf_path))):
        out.append(f"G{active.id}: the ledger's, the store's and the file's SHA-256 differ")
    out += [f"temporary file left: {p.relative_to(cfg.root)}" for p in cfg.models_dir.rglob(".*")
            if p.name not in OUR_LOCKS]
    for g in gens.values():
        folder = cfg.models_dir / f"gen-{g.id:04d}"
        if g.status in ("failed", "cancelled") and (list(folder.glob("*.gguf")) or list(folder.glob("hf*"))):
            out.append(f"G{g.id} ({g.status}) left weights or a GGUF")
        if g.status == "training" and not alive(cfg, g):
            out.append(f"G{g.id} is still marked training with no job")
    return out

"""Time to first screen and memory of the Ladder app on a workspace of 1,000 generations and 1,000,000 conversations.

    .venv/bin/python bench/bench_tui.py [--dir /tmp/ladder-bench] [--generations 1000] [--conversations 1000000]

The workspace is generated once with raw SQL inserts into the real schema and reused by later runs. Each
measurement opens the real app headless in a fresh interpreter, so Python start-up and every import count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
HEAVY = ("torch", "transformers", "trl", "peft", "llama_cpp", "unsloth")

CHILD = r"""
import json, resource, sys, time
from loop.config import load
from tui import messages as m
from tui.app import LadderApp

marks = {}

class Timed(LadderApp):
    def on_ready(self):
        super().on_ready()
        self.call_after_refresh(self._mark, "paint")

    def on_ladder_peek(self, msg):
        super().on_ladder_peek(msg)
        self.call_after_refresh(self._mark, "ladder")

    def on_store_read(self, msg):
        super().on_store_read(msg)
        self.call_after_refresh(self._mark, "ladder")
        self.call_after_refresh(self._mark, "store")

    def on_inbox_read(self, msg):
        super().on_inbox_read(msg)
        self.call_after_refresh(self._mark, "inbox")

    def _mark(self, name):
        marks.setdefault(name, time.time())
        marks.setdefault(name + "_cpu", time.process_time())
        if "store" in marks and "inbox" in marks:
            self.exit()

app = Timed(load(sys.argv[1]))
app.run(headless=True, size=(150, 42))
heavy = sorted(n for n in sys.modules if n.split(".")[0] in json.loads(sys.argv[2]))
rows = len(app.main.ladder.rows) if app.main.ladder else 0
print(json.dumps({**marks, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "heavy": heavy, "ladder_rows": rows, "karma": app.main.inbox.karma if app.main.inbox else None}))
"""


def build(folder: Path, generations: int, conversations: int) -> Path:
    """A workspace with the real schema, filled with raw executemany inserts (about a minute for a million rows)."""
    from loop import workspace
    from store.db import dispose_all, engine_for

    cfg = workspace.create(folder)
    engine_for(cfg.db_url)  # the real schema, through the store's own upgrade steps
    dispose_all()
    db = sqlite3.connect(cfg.db_url.removeprefix("sqlite:///"))
    have = db.execute("SELECT count(*) FROM conversation").fetchone()[0]
    gens = db.execute("SELECT count(*) FROM generation").fetchone()[0]
    if have == conversations and gens == generations:
        return cfg.path
    db.execute("PRAGMA synchronous=OFF")
    for table in ("conversation", "generation", "inboxfile", "evalresult", "event", "meta"):
        db.execute(f"DELETE FROM {table} WHERE 1" + (" AND key != 'schema_version'" if table == "meta" else ""))
    rng, start = random.Random(0), datetime(2026, 1, 1, tzinfo=timezone.utc)
    stamp = lambda dt: dt.strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731 - the store's datetime format
    gen_rows, active = [], 0
    for gid in range(generations):
        status = "promoted" if gid == 0 or rng.random() < 0.6 else rng.choice(["rejected", "rolled_back"])
        parent = None if gid == 0 else active
        active = gid if status == "promoted" else active
        gates = json.dumps([{"name": "recall", "value": 0.93, "op": ">=", "threshold": 0.9, "passed": True}])
        gen_rows.append((gid, parent, status, "done", stamp(start + timedelta(hours=gid)), f"{gid:064x}",
                         f"{gid + 1:064x}", f"{gid:064x}", 60, 2e-4, 1.5, 2.4, 0.3, 0.93, 0.88, 1, 100, 50, 20, gates,
                         "passed every gate", 0, f"/models/gen-{gid:04d}/model.f16.gguf", "{}"))
    db.executemany("INSERT INTO generation (id, parent_id, status, stage, created_at, parent_sha, child_sha, "
                   "data_delta_sha, steps, lr, walltime_min, loss_start, loss_end, eval_recall, eval_generalization, "
                   "eval_style_drift, n_new, n_replay, n_holdout, gates, reason, override, gguf_path, config_json) "
                   "VALUES (" + ",".join("?" * 24) + ")", gen_rows)
    db.execute("INSERT INTO meta (key, value) VALUES ('active_gen', ?)", (json.dumps(active),))
    batch = 50_000
    for first in range(0, conversations, batch):
        rows, taken = [], []
        for i in range(first, min(first + batch, conversations)):
            gen = i * generations // conversations if i % 20 else None  # 5 % not trained on yet
            meta = '{"confidence_trajectory": [70, 50, 85]}' if i % 1000 == 0 else "{}"
            msgs = json.dumps([{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": "answer"}])
            rows.append((f"{i:064x}", "chat", "jsonl", f"inbox/processed/batch-{i // 1000}.jsonl", i % 1000 + 1, msgs,
                         "ops" if i % 3 else "general", "conversations", 0.8, "[]", 0.8, meta,
                         stamp(start + timedelta(seconds=i))))
            if gen is not None:
                taken.append((gen, i + 1, "holdout" if i % 5 == 0 else "train"))
        db.executemany("INSERT INTO conversation (content_sha, kind, source_format, source_file, source_pos, messages, "
                       "domain, stage, quality, quality_reasons, karma, meta, ingested_at) "
                       "VALUES (" + ",".join("?" * 13) + ")", rows)
        db.executemany("INSERT INTO membership (gen_id, conversation_id, split) VALUES (?, ?, ?)", taken)
    db.executemany("INSERT INTO inboxfile (content_sha, name, size, status, records, duplicates, bad, seen_at) "
                   "VALUES (?, ?, 1000, 'ingested', 1000, 0, 0, ?)",
                   [(f"f{n:063x}", f"inbox/batch-{n}.jsonl", stamp(start + timedelta(minutes=n)))
                    for n in range(conversations // 1000)])
    db.commit()
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("ANALYZE")
    db.close()
    return cfg.path


def measure(config: Path) -> dict:
    started = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, str(config), json.dumps(HEAVY)], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"paint_s": r["paint"] - started, "ladder_s": r["ladder"] - started, "store_s": r["store"] - started,
            "inbox_s": r["inbox"] - started, "paint_cpu": r["paint_cpu"], "ladder_cpu": r["ladder_cpu"],
            "store_cpu": r["store_cpu"], "inbox_cpu": r["inbox_cpu"],
            "rss_mb": r["rss_mb"], "heavy": r["heavy"], "ladder_rows": r["ladder_rows"], "karma": r["karma"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", type=Path, default=Path("/tmp/ladder-bench"))
    p.add_argument("--generations", type=int, default=1000)
    p.add_argument("--conversations", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    t = time.perf_counter()
    config = build(args.dir, args.generations, args.conversations)
    size = sum(f.stat().st_size for f in args.dir.glob("ladder.db*")) / 2**20
    print(f"workspace {args.dir}: {args.generations:,} generations, {args.conversations:,} conversations, "
          f"{size:.0f} MiB database (ready in {time.perf_counter() - t:.1f} s)")
    runs = [measure(config) for _ in range(args.runs)]
    keys = ("paint_s", "ladder_s", "store_s", "inbox_s", "rss_mb", "paint_cpu", "ladder_cpu", "store_cpu", "inbox_cpu")
    med = {k: statistics.median(r[k] for r in runs) for k in keys}
    load = os.getloadavg()[0]
    print(f"runs: {args.runs} fresh interpreters, {os.cpu_count()} CPU(s), load average {load:.1f} "
          "(wall time from launch, median and min–max; CPU time of the app process, which load does not inflate)")
    for key, label in (("paint_s", "first paint (layout, no data yet)"),
                       ("ladder_s", f"first screen with the ladder ({runs[0]['ladder_rows']} newest generations)"),
                       ("store_s", "database stack loaded: active job, events, detail follow"),
                       ("inbox_s", "inbox counts and karma over every conversation")):
        lo, hi = min(r[key] for r in runs), max(r[key] for r in runs)
        cpu = med[key.replace("_s", "_cpu")]
        print(f"  {label:<62} {med[key]:6.2f} s   ({lo:.2f}–{hi:.2f})   CPU {cpu:.2f} s")
    print(f"  {'peak memory (RSS)':<62} {med['rss_mb']:6.0f} MiB")
    print(f"  {'heavy modules imported (torch, transformers, trl, peft, llama_cpp)':<62} "
          f"{', '.join(runs[0]['heavy']) or 'none'}")
    print(f"  karma shown: {runs[0]['karma']}")


if __name__ == "__main__":
    main()

"""What the end-to-end tests share: the embedded model on a small but real config, driven through the CLI."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "loop" / "assets" / "demo_inbox"

# Small but real: a few steps, short answers, a handful of eval items.
CONFIG = """
[train]
steps = 3
batch_size = 2
max_length = 128
[eval]
max_tokens = 24
recall_items = 8
generalization_items = 4
[dataset]
replay_examples = 4
self_replay_max = 4
"""


def ladder(ws: Path, *args: object, check: bool = True) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "tui.cli", "--config", str(ws / "config.toml"), *map(str, args)],
                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=2400)  # init on a busy 2-core machine can take many minutes
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def as_json(p: subprocess.CompletedProcess) -> dict:
    return json.loads(p.stdout)


def ledger_rows(ws: Path) -> dict[str, dict[str, str]]:
    with (ws / "models" / "lineage_ledger.csv").open() as f:
        return {r["GEN_ID"]: r for r in csv.DictReader(f)}

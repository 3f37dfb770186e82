"""Opening the app imports none of the training or inference stack (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests import pgdb

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "trl", "peft", "llama_cpp", "unsloth", "datasets", "accelerate")
SCRIPT = """
import asyncio, json, sys
from loop.config import load
from tui.app import LadderApp

async def main():
    app = LadderApp(load(sys.argv[1]), poll_seconds=0.1)
    async with app.run_test(size=(150, 42)) as pilot:
        while app.main.ladder is None or app.main.inbox is None or app.main.detail is None:
            await pilot.pause(0.05)
        first = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
        for key, pane in zip("2345", ("MetricsPane", "ConfidencePane", "InboxPane", "TrainingPane")):
            await pilot.press(key)  # every tab, plots included
            while not app.main.query(pane):
                await pilot.pause(0.05)
        every = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    print(json.dumps({"first": first, "every_tab": every}))

HEAVY = set(json.loads(sys.argv[2]))
asyncio.run(main())
"""


def test_opening_the_app_imports_no_training_or_inference_stack(ws):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ws.path), json.dumps(HEAVY)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""} | pgdb.env())
    assert out.returncode == 0, out.stderr[-2000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found == {"first": [], "every_tab": []}

"""The parts of bench/gpu_check.sh a CPU can run: the script parses, and its summary reads real workspaces."""

from __future__ import annotations

import subprocess
import sys

from tests import jobkit
from tests.jobkit import ROOT


def test_the_gpu_check_script_parses():
    assert subprocess.run(["bash", "-n", str(ROOT / "bench" / "gpu_check.sh")]).returncode == 0


def test_the_summary_prints_stages_speed_memory_and_whether_the_children_agree(tiny_template, tmp_path):
    spaces = []
    for name in ("trl", "other"):
        cfg = jobkit.copy_workspace(tiny_template, tmp_path / name)
        jobkit.feed(cfg)
        r = jobkit.ladder(cfg, "train")
        assert r.returncode == 0, r.stderr[-2000:]
        spaces.append(str(cfg.root))
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_summary.py"), *spaces], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = p.stdout.splitlines()
    assert "train" in lines[0] and "tok/s" in lines[0] and "GPU GiB" in lines[0]
    assert lines[1].startswith("trl ") and "the children's evals agree" in p.stdout  # the same data, the same seed


def test_the_trainer_check_builds_a_trainer_without_training(tiny_template):
    import os

    p = subprocess.run([sys.executable, "-m", "loop.train.worker", "--check", str(tiny_template / "base")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300, env=os.environ | {"PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "the trainer builds under trl" in p.stdout

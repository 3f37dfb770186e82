"""Run the training stage in this process, or hand it to `loop.train.worker` in other processes.

In this process when train.python is empty and train.processes is 1 (the default). Otherwise the
job folder carries a request file, the worker (under train.python, or under torchrun with
train.processes ranks) trains from it, and its progress lines come back here as the same events.
The worker dies with the job (PR_SET_PDEATHSIG): a killed job leaves no trainer writing behind it.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop.errors import OperationFailed, UserError

ROOT = Path(__file__).resolve().parents[2]


def interpreter(cfg) -> str:
    wanted = str(cfg.train.python or "").strip()
    if not wanted:
        return sys.executable
    path = Path(wanted) if Path(wanted).is_absolute() else cfg.root / wanted
    if not path.is_file() or not os.access(path, os.X_OK):
        raise UserError(f"train.python = {wanted!r}: no interpreter there; make the GPU environment with "
                        "bin/setup-gpu, or set train.python to \"\" to train in the engine's own")
    return str(path)


def command(cfg, request: Path) -> list[str]:
    exe, n = interpreter(cfg), int(cfg.train.processes)
    if n <= 1:
        return [exe, "-m", "loop.train.worker", str(request)]
    return [exe, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "loop.train.worker",
            str(request)]


def _die_with_parent() -> None:
    import ctypes  # noqa: PLC0415

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the job's recovery still marks the generation failed
        pass


def train(cfg, job_path: Path, parent_dir: Path, dataset: Path, out_dir: Path, settings: dict[str, Any],
          on_progress: Callable[[dict], None], should_stop: Callable[[], bool], sources: Path | None) -> dict[str, Any]:
    from loop.train.sft import Cancelled, train_lora  # noqa: PLC0415

    from loop.train.backends import choose_backend  # noqa: PLC0415

    processes, other = int(cfg.train.processes), bool(str(cfg.train.python or "").strip())
    # Unsloth must be imported before transformers, trl and peft: this job process has imported them
    # already, so Unsloth always trains in a fresh worker process. Under train.python the worker's own
    # environment decides (the engine's may have no CUDA at all).
    unsloth = not other and choose_backend(settings) == "unsloth"
    if not other and processes <= 1 and not unsloth:
        return train_lora(parent_dir, dataset, out_dir, settings, on_progress, should_stop, sources)
    if unsloth:
        settings = settings | {"backend": "unsloth"}
    if settings.get("threads"):
        settings = settings | {"threads": max(1, settings["threads"] // processes)}
    elif processes > 1:
        settings = settings | {"threads": max(1, (os.cpu_count() or 1) // processes)}
    request, result = job_path / "train_request.json", job_path / "train_result.json"
    result.unlink(missing_ok=True)
    request.write_text(json.dumps({"parent_dir": str(parent_dir), "dataset": str(dataset), "out_dir": str(out_dir),
                                   "settings": settings, "sources": str(sources) if sources else None,
                                   "result": str(result), "job_dir": str(job_path)}), encoding="utf-8")
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        "OMP_NUM_THREADS": str(settings.get("threads") or 1)}
    proc = subprocess.Popen(command(cfg, request), stdout=subprocess.PIPE, text=True, env=env, cwd=job_path,
                            preexec_fn=_die_with_parent)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True).start()
    said: dict[str, Any] = {}
    asked = False
    while True:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            line = ""
        if line is None:
            break
        if should_stop() and not asked:
            proc.send_signal(signal.SIGTERM)  # torchrun passes it on to every rank
            asked = True
        try:
            msg = json.loads(line) if line.strip().startswith("{") else {}
        except ValueError:
            msg = {}
        if "progress" in msg:
            on_progress(msg["progress"])
        said |= {k: v for k, v in msg.items() if k != "progress"}
    rc = proc.wait()
    if said.get("cancelled") or asked:
        raise Cancelled()
    if said.get("error"):
        raise UserError(said["error"])
    if rc != 0 or not result.is_file():
        raise OperationFailed(f"the training process ({' '.join(command(cfg, request)[:3])}…) exited with {rc}; "
                              "its output is in the job's log")
    return json.loads(result.read_text(encoding="utf-8"))

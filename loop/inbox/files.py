"""Files in the inbox: which are waiting, and moving them to processed/ or quarantine/ once read."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import IO

from loop.config import Config
from loop.inbox.formats.base import BadRecord

SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".swp", "~", ".reason")
PROCESSED, QUARANTINE, UNPACKING = "processed", "quarantine", ".unpacking"


def inbox_files(cfg: Config) -> list[Path]:
    """Files waiting in the inbox, oldest first; processed/, quarantine/ and hidden folders are not looked in."""
    inbox = cfg.inbox_dir
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(inbox):
        here = Path(dirpath)
        if here == inbox:
            dirnames[:] = [d for d in dirnames if d not in (PROCESSED, QUARANTINE)]
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and not name.endswith(SKIP_SUFFIXES):
                found.append(here / name)

    def age(p: Path) -> tuple[float, str]:
        try:
            return p.lstat().st_mtime, str(p)
        except OSError:  # gone since the walk: sorts last, and ingest says so
            return float("inf"), str(p)

    return sorted(found, key=age)


class BadLines:
    """Bad records written to quarantine/<file>.bad.jsonl as they come, so none is lost and none is held."""

    def __init__(self, cfg: Config, path: Path):
        self.name = path.name
        self.count, self.first = 0, ""
        self.target: Path = beside(cfg, QUARANTINE, path).with_name(f"{path.name}.bad.jsonl")
        self._f: IO[str] | None = None

    def add(self, b: BadRecord) -> None:
        if self._f is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.target = free_name(self.target)
            self._f = self.target.open("w", encoding="utf-8")
            self.first = b.reason
        self.count += 1
        self._f.write(json.dumps({"pos": b.pos, "reason": b.reason, "raw": b.raw.rstrip("\n")}, ensure_ascii=False) + "\n")

    def __enter__(self) -> BadLines:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._f is None:
            return
        self._f.close()
        if kind is not None:  # the whole file is quarantined as it is: a second copy of its bad part says nothing more
            self.target.unlink(missing_ok=True)
            return
        self.target.with_name(self.target.name + ".reason").write_text(
            f"{self.count} record(s) from {self.name} could not be used; each line says why.\n", encoding="utf-8")


def move(cfg: Config, path: Path, where: str, in_inbox: bool) -> Path | None:
    """Move an inbox file to processed/ or quarantine/, keeping its folder (its domain or stage) under it."""
    if not in_inbox or not (path.exists() or path.is_symlink()):
        return None
    target = free_name(beside(cfg, where, path))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)
    return target


def beside(cfg: Config, where: str, path: Path) -> Path:
    """inbox/ops/a.jsonl -> inbox/processed/ops/a.jsonl, keeping its folder (its domain or stage).

    quarantine/ stays flat: it is a list to read through, and the UI lists its .reason files.
    """
    inbox = cfg.inbox_dir.absolute()
    try:
        rel = path.absolute().relative_to(inbox)
    except ValueError:
        rel = Path(path.name)
    return inbox / where / (rel if where == PROCESSED else rel.name)


def free_name(target: Path) -> Path:
    n = 1
    candidate = target
    while candidate.exists() or candidate.is_symlink():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate


def inside(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
        return True
    except ValueError:
        return False


def display_name(cfg: Config, path: Path) -> str:
    try:
        return str(path.absolute().relative_to(cfg.root))
    except ValueError:
        return str(path)


def claim_inbox(cfg: Config) -> None:
    """Refuse to empty a folder of the user's own files that the config happens to name as the inbox.

    The store remembers the inbox folders Ladder made or was allowed to read. A folder it does
    not know that already holds files is read only with `workspace.adopt_inbox = true`; an
    empty one, or one with Ladder's processed/ or quarantine/ in it (a workspace older than
    this check), is claimed.
    """
    from loop.errors import UserError  # noqa: PLC0415
    from store.db import get_meta, session, set_meta  # noqa: PLC0415

    inbox = cfg.inbox_dir
    name = display_name(cfg, inbox)
    with session(cfg.db_url) as s:
        claimed = get_meta(s, "inbox_claimed", [])
        if name in claimed:
            return
        ours = (inbox / PROCESSED).is_dir() or (inbox / QUARANTINE).is_dir()
        waiting = inbox_files(cfg) if inbox.is_dir() else []
        if waiting and not ours and not cfg.data["workspace"]["adopt_inbox"]:
            raise UserError(f"{inbox} already holds {len(waiting)} file(s) Ladder did not put there, and Ladder "
                            "moves every file it reads out of the inbox: point 'workspace.inbox' at a folder of its "
                            "own, or set workspace.adopt_inbox = true to read them")
        inbox.mkdir(parents=True, exist_ok=True)
        set_meta(s, "inbox_claimed", claimed + [name])

"""Ingest inbox files into the store: detect the format, stream records, score, dedupe, quarantine."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from loop import quality
from loop.config import Config
from loop.formats import BadFile, BadRecord, Record, detect
from loop.hashing import canonical, sha256_file, sha256_text
from loop.lineage import pending_karma
from store.db import session
from store.tables import Conversation, Event, InboxFile

BATCH = 500
SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~", ".reason")
PROCESSED, QUARANTINE = "processed", "quarantine"


@dataclass
class Report:
    ingested: int = 0
    duplicates: int = 0
    bad_records: int = 0
    files: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"ingested": self.ingested, "duplicates": self.duplicates, "bad_records": self.bad_records,
                "files": self.files, "quarantined": self.quarantined}


def inbox_files(cfg: Config) -> list[Path]:
    """Files waiting in the inbox, oldest first; processed/ and quarantine/ are not looked in."""
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
    return sorted(found, key=lambda p: (p.lstat().st_mtime, str(p)))


def ingest(cfg: Config, paths: Iterable[Path] | None = None) -> dict[str, object]:
    """Ingest the given files, or everything waiting in the inbox; return the report with karma."""
    report = Report()
    targets = inbox_files(cfg) if paths is None else [Path(p).absolute() for p in paths]
    for path in targets:
        ingest_file(cfg, path, report)
    with session(cfg.db_url) as s:
        out = report.as_dict() | {"karma": pending_karma(s), "karma_threshold": cfg.karma.threshold}
    return out


def ingest_file(cfg: Config, path: Path, report: Report) -> None:
    in_inbox = _inside(path, cfg.inbox_dir)
    shown = _shown(cfg, path)
    try:
        _check_readable(cfg, path, in_inbox)
        file_sha = sha256_file(path)
        with session(cfg.db_url) as s:
            seen = s.exec(select(InboxFile).where(InboxFile.content_sha == file_sha)).first()
        if seen is not None:
            report.duplicates += seen.records
            report.files += 1
            _note(cfg, "info", f"{shown}: same content as {seen.name}, already ingested")
            _move(path, cfg.inbox_dir / PROCESSED, in_inbox)
            return
        fmt = detect(path)
        added, dupes, bad = _load(cfg, path, fmt.parse(path), _folder_domain(cfg, path, in_inbox))
    except BadFile as e:
        report.quarantined.append({"path": shown, "reason": str(e)})
        _note(cfg, "warning", f"{shown}: quarantined: {e}")
        _quarantine(cfg, path, str(e), in_inbox)
        return
    except OSError as e:
        report.quarantined.append({"path": shown, "reason": f"cannot read the file: {e.strerror}"})
        return
    report.files += 1
    report.ingested += added
    report.duplicates += dupes
    report.bad_records += len(bad)
    status = "partial" if bad else "ingested"
    with session(cfg.db_url) as s:
        s.add(InboxFile(content_sha=file_sha, name=shown, size=path.stat().st_size, status=status,
                        records=added, duplicates=dupes, bad=len(bad)))
    if bad:
        where = _write_bad_lines(cfg, path, bad)
        reason = f"{len(bad)} bad record(s) set aside in {_shown(cfg, where)}; first: {bad[0].reason}"
        report.quarantined.append({"path": shown, "reason": reason})
        _note(cfg, "warning", f"{shown}: {reason}")
    _note(cfg, "info", f"{shown}: {added} new record(s), {dupes} duplicate(s)", added=added, duplicates=dupes)
    _move(path, cfg.inbox_dir / PROCESSED, in_inbox)


def _check_readable(cfg: Config, path: Path, in_inbox: bool) -> None:
    if path.is_symlink() and in_inbox and not _inside(path.resolve(), cfg.inbox_dir.resolve()):
        raise BadFile("symbolic link pointing outside the inbox: copy the file in instead")
    if not path.exists():
        raise BadFile("no such file")
    if path.is_dir():
        raise BadFile("a folder, not a file: pass the files inside it")


def _load(cfg: Config, path: Path, items: Iterator[Record | BadRecord], domain: str | None) -> tuple[int, int, list[BadRecord]]:
    """Stream records into the store in batches; memory stays bounded by the batch size."""
    added = dupes = 0
    bad: list[BadRecord] = []
    batch: list[Conversation] = []
    for item in items:
        if isinstance(item, BadRecord):
            bad.append(item)
            continue
        batch.append(_row(cfg, path, item, domain))
        if len(batch) >= BATCH:
            a, d = _insert(cfg, batch)
            added, dupes, batch = added + a, dupes + d, []
    if batch:
        a, d = _insert(cfg, batch)
        added, dupes = added + a, dupes + d
    if bad and not added and not dupes:
        # Nothing usable at all: quarantine the whole file rather than split it.
        raise BadFile(f"no usable record ({len(bad)} bad); first: {bad[0].reason}")
    return added, dupes, bad


def _row(cfg: Config, path: Path, r: Record, domain: str | None) -> Conversation:
    body = {"kind": r.kind, "messages": r.messages, "rejected": r.rejected}
    q, reasons = quality.score(r.messages, cfg.eval.corporate_phrases, r.kind)
    k = quality.karma(q, r.kind, cfg.data["karma"]["weights"], cfg.karma.min_quality)
    return Conversation(
        content_sha=sha256_text(canonical(body).decode("utf-8")), kind=r.kind, source_format="jsonl",
        source_file=_shown(cfg, path), source_pos=r.pos, messages=json.dumps(r.messages, ensure_ascii=False),
        rejected=r.rejected, domain=r.domain or domain or "general", stage=r.stage or _default_stage(cfg),
        persona=r.persona, quality=q, quality_reasons=json.dumps(reasons), karma=k,
        meta=json.dumps(r.meta, ensure_ascii=False, default=str),
    )


def _insert(cfg: Config, batch: list[Conversation]) -> tuple[int, int]:
    unique: dict[str, Conversation] = {}
    for row in batch:
        unique.setdefault(row.content_sha, row)
    with session(cfg.db_url) as s:
        known = set(s.exec(select(Conversation.content_sha).where(col(Conversation.content_sha).in_(list(unique)))).all())
        fresh = [row for sha, row in unique.items() if sha not in known]
        s.add_all(fresh)
    return len(fresh), len(batch) - len(fresh)


def _default_stage(cfg: Config) -> str:
    stages = cfg.dataset.curriculum
    return "conversations" if "conversations" in stages or not stages else stages[-1]


def _folder_domain(cfg: Config, path: Path, in_inbox: bool) -> str | None:
    if not in_inbox:
        return None
    rel = path.relative_to(cfg.inbox_dir)
    return rel.parts[0] if len(rel.parts) > 1 else None


def _write_bad_lines(cfg: Config, path: Path, bad: list[BadRecord]) -> Path:
    folder = cfg.inbox_dir / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder / f"{path.name}.bad.jsonl")
    with target.open("w", encoding="utf-8") as f:
        for b in bad:
            f.write(json.dumps({"pos": b.pos, "reason": b.reason, "raw": b.raw.rstrip("\n")}, ensure_ascii=False) + "\n")
    target.with_name(target.name + ".reason").write_text(
        f"{len(bad)} record(s) from {path.name} could not be used; each line says why.\n", encoding="utf-8")
    return target


def _quarantine(cfg: Config, path: Path, reason: str, in_inbox: bool) -> None:
    if not in_inbox:
        return  # a file named on the command line stays where the user keeps it
    folder = cfg.inbox_dir / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    target = _free_name(folder / path.name)
    shutil.move(str(path), target)
    target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")


def _move(path: Path, folder: Path, in_inbox: bool) -> None:
    if in_inbox and path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), _free_name(folder / path.name))


def _free_name(target: Path) -> Path:
    n = 1
    candidate = target
    while candidate.exists() or candidate.is_symlink():
        candidate = target.with_name(f"{target.stem}.{n}{target.suffix}")
        n += 1
    return candidate


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
        return True
    except ValueError:
        return False


def _shown(cfg: Config, path: Path) -> str:
    try:
        return str(path.absolute().relative_to(cfg.root))
    except ValueError:
        return str(path)


def _note(cfg: Config, kind: str, message: str, **data: object) -> None:
    with session(cfg.db_url) as s:
        s.add(Event(kind=kind, message=message, data=json.dumps(data)))


def counts(s: Session) -> dict[str, int]:
    from sqlalchemy import func  # noqa: PLC0415

    files = s.exec(select(InboxFile.status, func.count()).group_by(InboxFile.status)).all()
    return {status: n for status, n in files}

"""Ingest inbox files into the store: detect the format, stream records, curate, dedupe, quarantine."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from loop.inbox import curation, quality
from loop.config import Config
from loop.errors import UserError
from loop.inbox.formats import CHAOS_STYLES, MB, BadFile, BadRecord, Options, Record, detect
from loop.hashing import canonical, sha256_file, sha256_text
from loop.data.lineage import pending_karma
from store.db import session
from store.tables import Conversation, Event, InboxFile, now

BATCH = 500
SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".swp", "~", ".reason")
PROCESSED, QUARANTINE, UNPACKING = "processed", "quarantine", ".unpacking"


@dataclass
class Report:
    ingested: int = 0
    duplicates: int = 0
    bad_records: int = 0
    files: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)
    retry: list[dict[str, str]] = field(default_factory=list)  # left in the inbox: the failure was not the file's

    def as_dict(self) -> dict[str, object]:
        return {"ingested": self.ingested, "duplicates": self.duplicates, "bad_records": self.bad_records,
                "files": self.files, "quarantined": self.quarantined, "retry": self.retry}


@dataclass(frozen=True)
class Context:
    """What every record of one ingest run is judged by, read from the config once."""

    cfg: Config
    opts: Options
    rules: curation.Rules
    corporate: tuple[str, ...]
    weights: dict[str, float]
    min_quality: float


def context(cfg: Config) -> Context:
    inbox = cfg.data["inbox"]
    if inbox["chaos_style"] not in CHAOS_STYLES:
        raise UserError(f"{cfg.path.name}: 'inbox.chaos_style' is {inbox['chaos_style']!r}; use one of "
                        + ", ".join(CHAOS_STYLES))
    for key in ("max_file_mb", "max_record_mb", "max_unpacked_mb", "max_zip_ratio", "document_chars"):
        if inbox[key] <= 0:
            raise UserError(f"{cfg.path.name}: 'inbox.{key}' must be greater than 0, got {inbox[key]!r}")
    opts = Options(chaos_style=inbox["chaos_style"], max_record_bytes=inbox["max_record_mb"] * MB,
                   document_chars=inbox["document_chars"], max_unpacked_bytes=inbox["max_unpacked_mb"] * MB,
                   max_zip_ratio=float(inbox["max_zip_ratio"]), unpack_dir=cfg.inbox_dir / UNPACKING)
    return Context(cfg, opts, curation.rules(cfg), tuple(cfg.eval.corporate_phrases), dict(cfg.data["karma"]["weights"]),
                   cfg.karma.min_quality)


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


def ingest(cfg: Config, paths: Iterable[Path] | None = None) -> dict[str, object]:
    """Ingest the given files, or everything waiting in the inbox; return the report with karma."""
    report = Report()
    ctx = context(cfg)
    targets = inbox_files(cfg) if paths is None else [Path(p).absolute() for p in paths]
    for path in targets:
        try:
            ingest_file(ctx, path, report)
        except Exception as e:  # noqa: BLE001 - the store, not the file: leave it for the next try
            report.retry.append({"path": _shown(cfg, path), "reason": f"{type(e).__name__}: {e}"})
    with session(cfg.db_url) as s:
        out = report.as_dict() | {"karma": pending_karma(s), "karma_threshold": cfg.karma.threshold}
    return out


def ingest_file(ctx: Context | Config, path: Path, report: Report) -> None:
    ctx = ctx if isinstance(ctx, Context) else context(ctx)
    cfg = ctx.cfg
    in_inbox = _inside(path, cfg.inbox_dir)
    shown = _shown(cfg, path)
    try:
        size = _check_readable(ctx, path, in_inbox)
        file_sha = sha256_file(path)
        with session(cfg.db_url) as s:
            seen = s.exec(select(InboxFile).where(InboxFile.content_sha == file_sha)).first()
        if seen is not None:
            report.duplicates += seen.records
            report.files += 1
            _note(cfg, "info", f"{shown}: same content as {seen.name}, already ingested")
            _move(cfg, path, PROCESSED, in_inbox)
            return
        fmt = detect(path)
        with BadLines(cfg, path) as bad:
            added, dupes = _load(ctx, path, _guarded(fmt.parse(path, ctx.opts), fmt.name), fmt.name, bad, in_inbox)
    except BadFile as e:
        _quarantined(ctx, path, shown, str(e), in_inbox, report)
        return
    except OSError as e:
        _quarantined(ctx, path, shown, f"cannot read the file: {e.strerror or e}", in_inbox, report)
        return
    report.files += 1
    report.ingested += added
    report.duplicates += dupes
    report.bad_records += bad.count
    with session(cfg.db_url) as s:
        s.add(InboxFile(content_sha=file_sha, name=shown, size=size, status="partial" if bad.count else "ingested",
                        records=added, duplicates=dupes, bad=bad.count))
    if bad.count:
        reason = f"{bad.count} bad record(s) set aside in {_shown(cfg, bad.target)}; first: {bad.first}"
        report.quarantined.append({"path": shown, "reason": reason})
        _note(cfg, "warning", f"{shown}: {reason}")
    _note(cfg, "info", f"{shown}: {added} new record(s), {dupes} duplicate(s)", added=added, duplicates=dupes)
    _move(cfg, path, PROCESSED, in_inbox)


def _check_readable(ctx: Context, path: Path, in_inbox: bool) -> int:
    inbox = ctx.cfg.inbox_dir
    if path.is_symlink() and in_inbox and not _inside(path.resolve(), inbox.resolve()):
        raise BadFile("symbolic link pointing outside the inbox: copy the file in instead")
    if path.is_symlink() and not path.exists():
        raise BadFile("symbolic link to a file that does not exist")
    if not path.exists():
        raise BadFile("no such file")
    if path.is_dir():
        raise BadFile("a folder, not a file: pass the files inside it")
    if not path.is_file():
        raise BadFile("not a regular file (a pipe, socket or device): nothing to ingest")
    size = path.stat().st_size
    limit = ctx.cfg.data["inbox"]["max_file_mb"]
    if size > limit * MB:
        shown = f"{size / MB / 1024:.1f} GB" if size >= 1024 * MB else f"{size / MB:.1f} MB"
        raise BadFile(f"file is {shown}, above inbox.max_file_mb = {limit} MB: "
                      "split it into smaller files or raise the limit")
    return size


def _guarded(items: Iterator[Record | BadRecord], fmt: str) -> Iterator[Record | BadRecord]:
    """A parser that fails in a way nobody foresaw quarantines its file; it never stops the loop."""
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except (BadFile, OSError):
            raise
        except Exception as e:  # noqa: BLE001
            raise BadFile(f"the {fmt} reader failed on this file ({type(e).__name__}: {e})") from e
        yield item


def _load(ctx: Context, path: Path, items: Iterator[Record | BadRecord], fmt: str, bad: BadLines,
          in_inbox: bool) -> tuple[int, int]:
    """Stream records into the store in batches; memory stays bounded by the batch size."""
    added = dupes = 0
    batch: list[dict[str, Any]] = []
    parts = path.absolute().relative_to(ctx.cfg.inbox_dir.absolute()).parts[:-1] if in_inbox else ()
    folder_domain, folder_stage = curation.from_folder(parts, ctx.rules)
    shown = _shown(ctx.cfg, path)
    for item in items:
        if isinstance(item, BadRecord):
            bad.add(item)
            continue
        batch.append(_row(ctx, shown, item, fmt, folder_domain, folder_stage))
        if len(batch) >= BATCH:
            a, d = _insert(ctx.cfg, batch)
            added, dupes, batch = added + a, dupes + d, []
    if batch:
        a, d = _insert(ctx.cfg, batch)
        added, dupes = added + a, dupes + d
    if bad.count and not added and not dupes:
        # Nothing usable at all: quarantine the whole file rather than split it.
        raise BadFile(f"no usable record ({bad.count} bad); first: {bad.first}")
    return added, dupes


def _row(ctx: Context, shown: str, r: Record, fmt: str, folder_domain: str | None,
         folder_stage: str | None) -> dict[str, Any]:
    """One Conversation row as plain values: building ORM objects cost more than all the rest of ingest."""
    body = {"kind": r.kind, "messages": r.messages, "rejected": r.rejected}
    source = r.source or fmt
    q, reasons = quality.score(r.messages, ctx.corporate, r.kind)
    tags = curation.domain_tags(r.messages, ctx.rules)
    meta: dict[str, Any] = dict(r.meta)
    if tags:
        meta["domain_tags"] = tags
    return dict(
        content_sha=sha256_text(canonical(body).decode("utf-8")), kind=r.kind, source_format=source,
        source_file=f"{shown}:{meta['member']}" if meta.get("member") else shown, source_pos=r.pos,
        messages=json.dumps(r.messages, ensure_ascii=False), rejected=r.rejected,
        domain=r.domain or folder_domain or (tags[0] if tags else "general"),
        stage=r.stage or folder_stage or curation.default_stage(r.kind, ctx.rules.stages),
        persona=r.persona or curation.persona(r.messages, source), quality=q, quality_reasons=json.dumps(reasons),
        karma=quality.karma(q, r.kind, ctx.weights, ctx.min_quality, source),
        meta=json.dumps(meta, ensure_ascii=False, default=str), gen_id=None, split=None, ingested_at=now(),
    )


def _insert(cfg: Config, batch: list[dict[str, Any]]) -> tuple[int, int]:
    unique: dict[str, dict[str, Any]] = {}
    for row in batch:
        unique.setdefault(row["content_sha"], row)
    with session(cfg.db_url) as s:
        known = set(s.exec(select(Conversation.content_sha).where(col(Conversation.content_sha).in_(list(unique)))).all())
        fresh = [row for sha, row in unique.items() if sha not in known]
        if fresh:
            s.connection().execute(insert(Conversation.__table__), fresh)
    return len(fresh), len(batch) - len(fresh)


class BadLines:
    """Bad records written to quarantine/<file>.bad.jsonl as they come, so none is lost and none is held."""

    def __init__(self, cfg: Config, path: Path):
        self.name = path.name
        self.count, self.first = 0, ""
        self.target: Path = _beside(cfg, QUARANTINE, path).with_name(f"{path.name}.bad.jsonl")
        self._f: IO[str] | None = None

    def add(self, b: BadRecord) -> None:
        if self._f is None:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.target = _free_name(self.target)
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


def _quarantined(ctx: Context, path: Path, shown: str, reason: str, in_inbox: bool, report: Report) -> None:
    report.quarantined.append({"path": shown, "reason": reason})
    _note(ctx.cfg, "warning", f"{shown}: quarantined: {reason}")
    if not in_inbox:
        return  # a file named on the command line stays where the user keeps it
    target = _move(ctx.cfg, path, QUARANTINE, in_inbox)
    if target is not None:
        target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")


def _move(cfg: Config, path: Path, where: str, in_inbox: bool) -> Path | None:
    """Move an inbox file to processed/ or quarantine/, keeping its folder (its domain or stage) under it."""
    if not in_inbox or not (path.exists() or path.is_symlink()):
        return None
    target = _free_name(_beside(cfg, where, path))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), target)
    return target


def _beside(cfg: Config, where: str, path: Path) -> Path:
    """inbox/ops/a.jsonl -> inbox/processed/ops/a.jsonl, keeping its folder (its domain or stage).

    quarantine/ stays flat: it is a list to read through, and the UI lists its .reason files.
    """
    inbox = cfg.inbox_dir.absolute()
    try:
        rel = path.absolute().relative_to(inbox)
    except ValueError:
        rel = Path(path.name)
    return inbox / where / (rel if where == PROCESSED else rel.name)


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

"""Ingest inbox files into the store: detect the format, stream records, curate, dedupe, quarantine."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, delete, select

from loop.inbox import curation, quality
from loop.config import Config
from loop.inbox.files import PROCESSED, QUARANTINE, UNPACKING, BadLines, claim_inbox, display_name, inbox_files, inside, move
from loop.inbox.formats import MB, BadFile, BadRecord, Options, Record, detect
from loop.hashing import canonical, sha256_file
from loop.data.lineage import pending_karma
from loop.locks import FileLock
from store.db import reading, session
from store.tables import Conversation, Event, InboxFile, now

BATCH = 500
# Encoders made once: json.dumps with options builds a new one for every call, and ingest encodes every record.
_TEXT = json.JSONEncoder(ensure_ascii=False).encode
_META = json.JSONEncoder(ensure_ascii=False, default=str).encode


@dataclass
class Report:
    ingested: int = 0
    duplicates: int = 0
    resumed: int = 0  # of ingested: stored by an earlier run that was interrupted
    bad_records: int = 0
    files: int = 0
    quarantined: list[dict[str, str]] = field(default_factory=list)
    retry: list[dict[str, str]] = field(default_factory=list)  # left in the inbox: the failure was not the file's

    def as_dict(self) -> dict[str, object]:
        return {"ingested": self.ingested, "duplicates": self.duplicates, "resumed": self.resumed,
                "bad_records": self.bad_records,
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
    inbox = cfg.data["inbox"]  # checked with the rest of the config (loop.schema)
    opts = Options(chaos_style=inbox["chaos_style"], max_record_bytes=inbox["max_record_mb"] * MB,
                   document_chars=inbox["document_chars"], max_unpacked_bytes=inbox["max_unpacked_mb"] * MB,
                   max_zip_ratio=float(inbox["max_zip_ratio"]), unpack_dir=cfg.inbox_dir / UNPACKING)
    return Context(cfg, opts, curation.rules(cfg), tuple(cfg.eval.corporate_phrases), dict(cfg.data["karma"]["weights"]),
                   cfg.karma.min_quality)


def ingest(cfg: Config, paths: Iterable[Path] | None = None) -> dict[str, object]:
    """Ingest the given files, or everything waiting in the inbox; return the report with karma.

    One ingest per workspace at a time (the watcher, `ladder ingest` and the app's key may all ask).
    """
    report = Report()
    ctx = context(cfg)
    if paths is None or any(inside(Path(p), cfg.inbox_dir) for p in paths):
        claim_inbox(cfg)
    with FileLock(cfg.models_dir / ".ingest.lock", "the inbox", timeout=600):
        targets = inbox_files(cfg) if paths is None else [Path(p).absolute() for p in paths]
        for path in targets:
            try:
                ingest_file(ctx, path, report)
            except Exception as e:  # noqa: BLE001 - the store, not the file: leave it for the next try
                report.retry.append({"path": display_name(cfg, path), "reason": f"{type(e).__name__}: {e}"})
    with reading(cfg.db_url) as s:
        out = report.as_dict() | {"karma": pending_karma(s), "karma_threshold": cfg.karma.threshold}
    return out


def ingest_file(ctx: Context | Config, path: Path, report: Report) -> None:
    """Store every good record of one file and set its bad ones aside, or store nothing of it.

    The file's row says "ingesting" until its last record is in, and records of a file still
    being ingested are not trained on: a file that turns out unreadable half-way is undone, and
    one whose ingest was killed is picked up where it stopped on the next run.
    """
    ctx = ctx if isinstance(ctx, Context) else context(ctx)
    cfg = ctx.cfg
    in_inbox = inside(path, cfg.inbox_dir)
    shown = display_name(cfg, path)
    file_id = None
    try:
        size = _check_readable(ctx, path, in_inbox)
        file_sha = sha256_file(path)
        file_id, seen = _claim(cfg, file_sha, shown, size)
        if seen is not None:
            report.duplicates += seen.records
            report.files += 1
            _note(cfg, "info", f"{shown}: same content as {seen.name}, already ingested")
            move(cfg, path, PROCESSED, in_inbox)
            return
        fmt = detect(path)
        with BadLines(cfg, path) as bad:
            counted = _load(ctx, path, _guarded(fmt.parse(path, ctx.opts), fmt.name), fmt.name, bad, in_inbox, file_id)
    except BadFile as e:
        _undo(cfg, file_id)
        _quarantined(ctx, path, shown, str(e), in_inbox, report)
        return
    except OSError as e:
        _undo(cfg, file_id)
        _quarantined(ctx, path, shown, f"cannot read the file: {e.strerror or e}", in_inbox, report)
        return
    added, dupes, resumed = counted
    report.files += 1
    report.ingested += added + resumed
    report.duplicates += dupes
    report.resumed += resumed
    report.bad_records += bad.count
    with session(cfg.db_url) as s:
        row = s.get(InboxFile, file_id)
        row.status, row.records, row.duplicates, row.bad = ("partial" if bad.count else "ingested"), added + resumed, \
            dupes, bad.count
        row.seen_at = now()
        s.add(row)
    if bad.count:
        reason = f"{bad.count} bad record(s) set aside in {display_name(cfg, bad.target)}; first: {bad.first}"
        report.quarantined.append({"path": shown, "reason": reason})
        _note(cfg, "warning", f"{shown}: {reason}")
    if resumed:
        _note(cfg, "info", f"{shown}: resumed an interrupted ingest ({resumed} record(s) it had stored)")
    _note(cfg, "info", f"{shown}: {added + resumed} new record(s), {dupes} duplicate(s)", added=added + resumed,
          duplicates=dupes)
    move(cfg, path, PROCESSED, in_inbox)


def _claim(cfg: Config, file_sha: str, shown: str, size: int) -> tuple[int | None, InboxFile | None]:
    """(the file's row id, the finished row when these bytes were ingested before)."""
    with session(cfg.db_url) as s:
        seen = s.exec(select(InboxFile).where(InboxFile.content_sha == file_sha)).first()
        if seen is not None and seen.status != "ingesting":
            return None, seen
        if seen is None:
            seen = InboxFile(content_sha=file_sha, name=shown, size=size, status="ingesting")
            s.add(seen)
            s.flush()
        return seen.id, None


def _undo(cfg: Config, file_id: int | None) -> None:
    """Nothing of a file that cannot be read whole stays stored (no generation took any of it: it was not ready)."""
    if file_id is None:
        return
    with session(cfg.db_url) as s:
        s.exec(delete(Conversation).where(Conversation.inbox_file_id == file_id))
        s.exec(delete(InboxFile).where(InboxFile.id == file_id))


def _check_readable(ctx: Context, path: Path, in_inbox: bool) -> int:
    inbox = ctx.cfg.inbox_dir
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            raise BadFile("symbolic link loop: the link points, through other links, back at itself") from None
        except OSError as e:
            if e.errno == 40:  # ELOOP
                raise BadFile("symbolic link loop: the link points, through other links, back at itself") from None
    if path.is_symlink() and in_inbox and not inside(path.resolve(), inbox.resolve()):
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
          in_inbox: bool, file_id: int) -> tuple[int, int, int]:
    """Stream records into the store in batches; memory stays bounded by the batch size.

    Returns (added, duplicates, resumed): resumed records were stored by an earlier, interrupted run.
    """
    added = dupes = resumed = 0
    batch: list[dict[str, Any]] = []
    parts = path.absolute().relative_to(ctx.cfg.inbox_dir.absolute()).parts[:-1] if in_inbox else ()
    folder_domain, folder_stage = curation.from_folder(parts, ctx.rules)
    shown = display_name(ctx.cfg, path)
    for item in items:
        if isinstance(item, BadRecord):
            bad.add(item)
            continue
        try:
            row = _row(ctx, shown, item, fmt, folder_domain, folder_stage, file_id)
        except (RecursionError, ValueError, TypeError) as e:  # a record too deep or odd to serialize
            bad.add(BadRecord(item.pos, f"record {item.pos}: cannot be stored ({type(e).__name__}: "
                                        f"{str(e)[:120]})", ""))
            continue
        batch.append(row)
        if len(batch) >= BATCH:
            a, d, r = _insert(ctx.cfg, batch, file_id)
            added, dupes, resumed, batch = added + a, dupes + d, resumed + r, []
    if batch:
        a, d, r = _insert(ctx.cfg, batch, file_id)
        added, dupes, resumed = added + a, dupes + d, resumed + r
    if bad.count and not added and not dupes and not resumed:
        # Nothing usable at all: quarantine the whole file rather than split it.
        raise BadFile(f"no usable record ({bad.count} bad); first: {bad.first}")
    return added, dupes, resumed


def _row(ctx: Context, shown: str, r: Record, fmt: str, folder_domain: str | None,
         folder_stage: str | None, file_id: int) -> dict[str, Any]:
    """One Conversation row as plain values: building ORM objects cost more than all the rest of ingest."""
    body = {"kind": r.kind, "messages": r.messages, "rejected": r.rejected}
    if r.meta.get("tools"):  # the same words with other tools shown to the model are another record
        body["tools"] = r.meta["tools"]
    source = r.source or fmt
    q, reasons = quality.score(r.messages, ctx.corporate, r.kind)
    tags = curation.domain_tags(r.messages, ctx.rules)
    meta: dict[str, Any] = dict(r.meta)
    if tags:
        meta["domain_tags"] = tags
    return dict(
        content_sha=hashlib.sha256(canonical(body)).hexdigest(), kind=r.kind, source_format=source,
        source_file=f"{shown}:{meta['member']}" if meta.get("member") else shown, source_pos=r.pos,
        messages=_TEXT(r.messages), rejected=r.rejected,
        domain=r.domain or folder_domain or (tags[0] if tags else "general"),
        stage=r.stage or folder_stage or curation.default_stage(r.kind, ctx.rules.stages),
        persona=r.persona or curation.persona(r.messages, source), quality=q,
        quality_reasons=json.dumps(reasons) if reasons else "[]",
        karma=quality.karma(q, r.kind, ctx.weights, ctx.min_quality, source),
        meta=_META(meta) if meta else "{}", inbox_file_id=file_id, ingested_at=now(),
    )


def _insert(cfg: Config, batch: list[dict[str, Any]], file_id: int) -> tuple[int, int, int]:
    """Insert the batch's new records: (added, duplicates, already stored by this file's interrupted run)."""
    unique: dict[str, dict[str, Any]] = {}
    for row in batch:
        unique.setdefault(row["content_sha"], row)
    with session(cfg.db_url) as s:
        known = dict(s.exec(select(Conversation.content_sha, Conversation.inbox_file_id)
                            .where(col(Conversation.content_sha).in_(list(unique)))).all())
        fresh = [row for sha, row in unique.items() if sha not in known]
        if fresh:
            s.connection().execute(insert(Conversation.__table__), fresh)
    resumed = sum(1 for sha in unique if known.get(sha, -1) == file_id)
    return len(fresh), len(batch) - len(fresh) - resumed, resumed


def _quarantined(ctx: Context, path: Path, shown: str, reason: str, in_inbox: bool, report: Report) -> None:
    report.quarantined.append({"path": shown, "reason": reason})
    _note(ctx.cfg, "warning", f"{shown}: quarantined: {reason}")
    if not in_inbox:
        return  # a file named on the command line stays where the user keeps it
    target = move(ctx.cfg, path, QUARANTINE, in_inbox)
    if target is not None:
        target.with_name(target.name + ".reason").write_text(reason + "\n", encoding="utf-8")


def _note(cfg: Config, kind: str, message: str, **data: object) -> None:
    with session(cfg.db_url) as s:
        s.add(Event(kind=kind, message=message, data=json.dumps(data)))


def counts(s: Session) -> dict[str, int]:
    from sqlalchemy import func  # noqa: PLC0415

    files = s.exec(select(InboxFile.status, func.count()).group_by(InboxFile.status)).all()
    return {status: n for status, n in files}

"""Zip archives as delivered by the ChatGPT and Claude exports, or a zip of any readable files, unpacked safely.

Nothing is unpacked until every member is checked: no path may climb out of the archive's folder, no member
may be a link, and neither the total size nor any member's compression ratio may exceed the config's caps.
Members are then copied one at a time into a hidden folder under the inbox, with the bytes counted as they
come, so a header that lies about its size is caught too.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
import dataclasses
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from loop.inbox.formats.base import MB, BadFile, BadRecord, Options, Record, detect, register

READABLE = {".json", ".jsonl", ".ndjson", ".md", ".markdown", ".txt", ".zip"}
MAX_DEPTH = 2  # a zip inside a zip is opened (one export zipped again); one level deeper is not
EXPORT_FILE = "conversations.json"  # what both the ChatGPT and the Claude export call their conversations
RATIO_FROM = MB  # small members may compress very well; only big ones are judged by their ratio


class Zip:
    name = "zip"
    binary = True

    def sniff(self, head: bytes, path: Path) -> bool:
        return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))

    def parse(self, path: Path, opts: Options) -> Iterator[Record | BadRecord]:
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise BadFile(f"not a readable zip archive ({e})") from None
        with archive:
            infos = archive.infolist()
            check(infos, path.stat().st_size, opts)
            members = chosen(infos)
            if not members:
                raise BadFile(f"the zip holds no {EXPORT_FILE} and no .jsonl, .json, .md, .txt or .zip file: "
                              "nothing to ingest")
            for info in skipped(infos, members):
                yield BadRecord(0, f"{info.filename}: not a format Ladder reads (.jsonl, .json, .md, .txt, .zip): "
                                   "left in the archive", "")
            if opts.unpack_dir is not None:
                opts.unpack_dir.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="zip-", dir=opts.unpack_dir))
            try:
                budget = [opts.max_unpacked_bytes]
                for i, info in enumerate(members, start=1):
                    target = folder / f"{i:04d}{PurePosixPath(info.filename).suffix.lower()}"
                    unpack(archive, info, target, budget)
                    inner = dataclasses.replace(opts, max_unpacked_bytes=max(budget[0], 0), zip_depth=opts.zip_depth + 1)
                    yield from _read_member(info.filename, target, inner)
                    target.unlink()
            finally:
                shutil.rmtree(folder, ignore_errors=True)


def check(infos: list[zipfile.ZipInfo], packed_size: int, opts: Options) -> None:
    """Refuse the whole archive, with the member named, before anything is written."""
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
            raise BadFile(f"zip member '{name}' has a path that climbs out of the archive's folder: refused unread")
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):
            raise BadFile(f"zip member '{name}' is a symbolic link: refused unread")
        if info.flag_bits & 0x1:
            raise BadFile(f"zip member '{name}' is encrypted: unpack it yourself and drop the files in")
        if info.file_size >= RATIO_FROM and info.file_size > opts.max_zip_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise BadFile(f"zip member '{name}' unpacks to {ratio:.0f} times its packed size (inbox.max_zip_ratio = "
                          f"{opts.max_zip_ratio:g}): refused as a likely zip bomb")
        total += info.file_size
    if total > opts.max_unpacked_bytes:
        raise BadFile(f"the zip would unpack to {total / MB:.0f} MB from {packed_size / MB:.1f} MB, more than "
                      f"inbox.max_unpacked_mb = {opts.max_unpacked_bytes // MB}: refused unread")


def skipped(infos: list[zipfile.ZipInfo], members: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """Files of an archive that is not an export that were not read: said, so no record goes missing unseen."""
    files = [i for i in infos if not i.is_dir() and not _hidden(i.filename)]
    if any(PurePosixPath(i.filename).name.lower() == EXPORT_FILE for i in members):
        return []  # an export's other files are account data, not conversations
    return [i for i in files if i not in members]


def chosen(infos: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """An export's conversations.json when there is one (its other files are account data); else every readable file."""
    files = [i for i in infos if not i.is_dir() and not _hidden(i.filename)]
    exports = [i for i in files if PurePosixPath(i.filename).name.lower() == EXPORT_FILE]
    return exports or [i for i in files if PurePosixPath(i.filename).suffix.lower() in READABLE]


def unpack(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: list[int]) -> None:
    """Copy one member out, counting the bytes; a member larger than it declared stops the copy."""
    written = 0
    try:
        with archive.open(info) as src, target.open("wb") as dst:
            while chunk := src.read(MB):
                written += len(chunk)
                budget[0] -= len(chunk)
                if written > info.file_size or budget[0] < 0:
                    raise BadFile(f"zip member '{info.filename}' unpacks to more than its header declares: refused")
                dst.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise BadFile(f"zip member '{info.filename}' cannot be unpacked ({e})") from None


def _read_member(name: str, target: Path, opts: Options) -> Iterator[Record | BadRecord]:
    try:
        with target.open("rb") as f:
            is_zip = f.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
        if is_zip and opts.zip_depth >= MAX_DEPTH:
            raise BadFile("a zip nested more than two deep is not opened: unpack it and drop the files in")
        fmt = detect(target, allow_zip=is_zip)
        for item in fmt.parse(target, opts):
            if isinstance(item, Record):
                item.meta["member"] = name
                item.source = item.source or fmt.name
            else:
                item.reason = f"{name}: {item.reason}"
            yield item
    except BadFile as e:
        yield BadRecord(0, f"{name}: {e}", "")


def _hidden(name: str) -> bool:
    """macOS resource forks and dot-files that archivers add beside the real content."""
    return any(p.startswith(".") or p == "__MACOSX" for p in PurePosixPath(name).parts)


register(Zip())

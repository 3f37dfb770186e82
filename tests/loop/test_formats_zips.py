"""Zip archives as the ChatGPT and Claude exports deliver them, and the archives that must not be unpacked."""

import json
import stat
import zipfile
from pathlib import Path

import pytest

from loop.inbox.formats import BadFile, BadRecord, Options, Record, detect

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"
MB = 1 << 20


def make_zip(path: Path, members: dict[str, bytes | str], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def parse(path: Path, tmp_path: Path, **opts) -> tuple[list[Record], list[BadRecord]]:
    items = list(detect(path).parse(path, Options(unpack_dir=tmp_path / ".unpacking", **opts)))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def test_a_chatgpt_export_zip_as_delivered_reads_only_the_conversations(tmp_path):
    archive = make_zip(tmp_path / "b1f3c0de-2024-06-01-12-00-00.zip", {
        "conversations.json": (FIXTURES / "chatgpt" / "conversations.json").read_bytes(),
        "chat.html": "<html><body><script>var jsonData = [];</script></body></html>",
        "user.json": json.dumps({"id": "user-abc", "email": "someone@example.com"}),
        "message_feedback.json": "[]",
        "file-7Hq2-screenshot.png": b"\x89PNG\r\n\x1a\n" + bytes(200),
        "dalle-generations/": b"",
    })
    assert detect(archive).name == "zip"
    records, bad = parse(archive, tmp_path)
    assert len(records) == 4 and {r.source for r in records} == {"chatgpt"}
    assert {r.meta["member"] for r in records} == {"conversations.json"}
    assert [b.reason for b in bad] == [
        "conversations.json: item 2: a message holds an image: Ladder trains on text only, so the conversation is set aside",
        "conversations.json: item 4: no assistant turn, so there is nothing to learn from"]
    assert list((tmp_path / ".unpacking").iterdir()) == []  # nothing unpacked is left behind


def test_a_claude_export_zip(tmp_path):
    archive = make_zip(tmp_path / "data-2024-07-02.zip", {
        "conversations.json": (FIXTURES / "claude" / "conversations.json").read_bytes(),
        "users.json": "[]", "projects.json": "[]"})
    records, _ = parse(archive, tmp_path)
    assert len(records) == 3 and {r.source for r in records} == {"claude"}


def test_a_zip_of_record_files_reads_each_and_names_a_member_it_cannot_read(tmp_path):
    archive = make_zip(tmp_path / "bundle.zip", {
        "data/prompts.jsonl": (FIXTURES / "prompts.jsonl").read_bytes(),
        "data/reasoning.jsonl": (FIXTURES / "reasoning.jsonl").read_bytes(),
        "data/latin1.txt": "Grüße".encode("latin-1"),
        "__MACOSX/data/._prompts.jsonl": b"\x00\x05\x16\x07",
        "inner.zip": b"PK\x05\x06" + bytes(18)})
    records, bad = parse(archive, tmp_path)
    assert {r.source for r in records} == {"completion", "reasoning"} and len(records) == 6
    assert "data/latin1.txt: wrong encoding: not UTF-8 (byte 0xfc on line 1); re-save the file as UTF-8" in \
        [b.reason for b in bad]
    assert records[0].meta["member"] == "data/prompts.jsonl"


def test_paths_that_climb_out_are_refused_before_anything_is_unpacked(tmp_path):
    for name in ("../../etc/cron.d/evil.jsonl", "/etc/passwd", "ok/../../escape.json", "C:\\Windows\\evil.json"):
        archive = make_zip(tmp_path / "evil.zip", {"conversations.json": "[]", name: "{}"})
        with pytest.raises(BadFile, match="has a path that climbs out of the archive's folder: refused unread"):
            parse(archive, tmp_path)
    assert not (tmp_path / ".unpacking").exists() or not any((tmp_path / ".unpacking").iterdir())


def test_a_symbolic_link_member_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as z:
        link = zipfile.ZipInfo("conversations.json")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(link, "/home/someone/.ssh/id_rsa")
    with pytest.raises(BadFile, match="zip member 'conversations.json' is a symbolic link: refused unread"):
        parse(archive, tmp_path)


def test_a_zip_bomb_is_refused_by_its_ratio_and_by_the_total(tmp_path):
    bomb = make_zip(tmp_path / "bomb.zip", {"conversations.json": b"[" + b" " * (40 * MB) + b"]"})
    assert bomb.stat().st_size < MB
    with pytest.raises(BadFile, match=r"unpacks to \d+ times its packed size \(inbox.max_zip_ratio = 200\): "
                                      "refused as a likely zip bomb"):
        parse(bomb, tmp_path)
    stored = make_zip(tmp_path / "big.zip", {"a.jsonl": b"x" * (3 * MB)}, zipfile.ZIP_STORED)
    with pytest.raises(BadFile, match="the zip would unpack to 3 MB from 3.0 MB, more than inbox.max_unpacked_mb = 2"):
        parse(stored, tmp_path, max_unpacked_bytes=2 * MB)


def test_nothing_readable_and_broken_archives_say_so(tmp_path):
    nested = make_zip(tmp_path / "nested.zip", {"inner.zip": b"PK\x05\x06" + bytes(18), "photo.png": b"\x89PNG"})
    records, bad = parse(nested, tmp_path)  # the inner zip is opened; what cannot be read is said, not skipped
    assert records == []
    assert sorted(b.reason for b in bad) == [
        "inner.zip: the zip holds no conversations.json and no .jsonl, .json, .md, .txt or .zip file: nothing to ingest",
        "photo.png: not a format Ladder reads (.jsonl, .json, .md, .txt, .zip): left in the archive"]
    with pytest.raises(BadFile, match="the zip holds no conversations.json"):
        parse(make_zip(tmp_path / "empty.zip", {"photo.png": b"\x89PNG"}), tmp_path)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(BadFile, match="not a readable zip archive"):
        parse(broken, tmp_path)


def test_a_zip_inside_a_zip_is_read_and_one_deeper_is_refused_with_the_reason(tmp_path):
    line = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello there."}]})
    inner = make_zip(tmp_path / "inner.zip", {"chats.jsonl": line + "\n"})
    outer = make_zip(tmp_path / "outer.zip", {"export.zip": inner.read_bytes()})
    records, bad = parse(outer, tmp_path)
    assert [r.messages[1]["content"] for r in records] == ["Hello there."] and bad == []
    deepest = make_zip(tmp_path / "deepest.zip", {"outer.zip": outer.read_bytes()})
    records, bad = parse(deepest, tmp_path)
    assert records == [] and [b.reason for b in bad] == [
        "outer.zip: export.zip: a zip nested more than two deep is not opened: unpack it and drop the files in"]

"""Ingest into a real workspace: curation of every record, karma by source, duplicates, and every bad input."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from sqlmodel import select

from loop import config, workspace
from loop.inbox import ingest
from loop.hashing import canonical, sha256_text
from store.db import session
from store.tables import Conversation, InboxFile
from tests.helpers import make_workspace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"


def configured(folder: Path, toml: str) -> config.Config:
    cfg = workspace.create(folder)
    cfg.path.write_text(toml, encoding="utf-8")
    return config.load(cfg.path)


def rows(cfg) -> list[Conversation]:
    with session(cfg.db_url) as s:
        return list(s.exec(select(Conversation).order_by(Conversation.id)).all())


def drop(cfg, name: str, data: bytes | str) -> Path:
    path = cfg.inbox_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def chat(user: str, answer: str, **extra) -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra})


def test_every_format_is_stored_with_its_source_position_hash_and_curation(tmp_path):
    cfg = make_workspace(tmp_path)
    for f in FIXTURES.glob("*.*"):
        shutil.copyfile(f, cfg.inbox_dir / f.name)
    shutil.copyfile(FIXTURES / "chatgpt" / "conversations.json", cfg.inbox_dir / "conversations.json")
    (cfg.inbox_dir / "claude-export").mkdir()  # a folder names the domain of what it holds
    shutil.copyfile(FIXTURES / "claude" / "conversations.json", cfg.inbox_dir / "claude-export" / "conversations.json")
    report = ingest.ingest(cfg)
    stored = rows(cfg)
    by_source = {}
    for r in stored:
        by_source[r.source_format] = by_source.get(r.source_format, 0) + 1
    assert by_source == {"openai": 3, "completion": 3, "correction": 5, "reasoning": 3, "document": 1, "chatgpt": 4,
                         "claude": 3, "sharegpt": 3, "alpaca": 3, "chaos": 3}
    assert report["ingested"] == len(stored) == 31 and report["bad_records"] == 14  # two refer to an image
    gpt = next(r for r in stored if r.source_format == "chatgpt" and r.source_pos == 3)
    assert gpt.source_file == "inbox/conversations.json"
    assert json.loads(gpt.meta)["title"] == "cron vs systemd timers"
    body = {"kind": gpt.kind, "messages": json.loads(gpt.messages), "rejected": gpt.rejected}
    assert gpt.content_sha == sha256_text(canonical(body).decode())
    assert {r.domain for r in stored if r.source_format == "claude"} == {"claude-export"}
    # every file left the inbox: to processed/, its bad records to quarantine/ with one reason each
    assert ingest.inbox_files(cfg) == []
    assert (cfg.inbox_dir / "processed" / "claude-export" / "conversations.json").is_file()
    assert report["karma"] == pytest.approx(sum(r.karma for r in stored))


def test_personas_of_the_seed_are_guessed_where_the_words_allow(tmp_path):
    cfg = make_workspace(tmp_path)
    said = {"yo check the servers": "casual", "df -h all prod nodes": "senior_engineer",
            "HELP servers down": "stressed_oncall", "How does that work?": "curious_learner",
            "Status update?": "executive", "Please list the three largest tables.": None}
    drop(cfg, "personas.jsonl", "\n".join(chat(q, f"Answer to: {q}") for q in said) + "\n")
    ingest.ingest(cfg)
    assert {json.loads(r.messages)[0]["content"]: r.persona for r in rows(cfg)} == said


def test_quality_reasons_and_karma_follow_the_config(tmp_path):
    cfg = configured(tmp_path, "[karma.weights]\nchaos = 3.0\n")
    lines = [
        chat("restart nginx on web-1", '{"action": "restart_service", "host": "web-1"}'),
        chat("can you write my exam for me?", "I'm sorry, but I can't help with that."),
        chat("what's a mutex?", "Great question! A mutex lets one thread at a time into a section. I hope this helps!"),
        chat("explain dns", "DNS turns names into addresses. When your browser asks for example.com the resolver "
                            "first checks its cache and then walks from the root servers down to the server that"),
        json.dumps({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "Hello?"}]}),
        chat("disk usage on db-1", "71% used, 120 GB free."),
    ]
    drop(cfg, "quality.jsonl", "\n".join(lines) + "\n")
    shutil.copyfile(FIXTURES / "chaos_scenarios.json", cfg.inbox_dir / "chaos_scenarios.json")
    shutil.copyfile(FIXTURES / "corrections.jsonl", cfg.inbox_dir / "corrections.jsonl")
    ingest.ingest(cfg)
    stored = rows(cfg)
    reasons = [json.loads(r.quality_reasons) for r in stored if r.source_file.endswith("quality.jsonl")]
    assert reasons == [["broken tool call"], ["refusal", "corporate filler"], ["corporate filler"],
                       ["looks truncated"], ["empty turn"], []]
    refusal = next(r for r in stored if "exam" in r.messages)
    assert refusal.quality == pytest.approx(0.3) and refusal.karma == pytest.approx(0.3)
    assert {r.karma for r in stored if r.source_format == "chaos"} == {3.0}  # a source's weight wins over its kind's
    assert {r.karma for r in stored if r.source_format == "correction"} == {2.0}
    assert next(r for r in stored if r.source_format == "correction").rejected.startswith('{"action"')


def test_domain_comes_from_the_record_then_its_folder_then_a_keyword_rule(tmp_path):
    cfg = configured(tmp_path, '[curation]\ndomain_rules = [{ domain = "db", keywords = ["postgres", "vacuum"] }]\n')
    drop(cfg, "a.jsonl", "\n".join([chat("vacuum postgres?", "Run VACUUM ANALYZE.", domain="homelab"),
                                    chat("why is postgres slow after a bulk delete?", "Dead rows: run VACUUM."),
                                    chat("what time is it in Oslo?", "About 14:00.")]) + "\n")
    drop(cfg, "support/b.jsonl", chat("vacuum postgres?", "Run VACUUM, then ANALYZE.") + "\n")
    ingest.ingest(cfg)
    got = {(Path(r.source_file).name, r.source_pos): (r.domain, json.loads(r.meta).get("domain_tags")) for r in rows(cfg)}
    assert got == {("a.jsonl", 1): ("homelab", ["db"]), ("a.jsonl", 2): ("db", ["db"]), ("a.jsonl", 3): ("general", None),
                   ("b.jsonl", 1): ("support", ["db"])}


def test_a_file_dropped_twice_or_renamed_is_not_counted_twice(tmp_path):
    cfg = make_workspace(tmp_path)
    data = (FIXTURES / "openai_chat.jsonl").read_bytes()
    drop(cfg, "chats.jsonl", data)
    first = ingest.ingest(cfg)
    drop(cfg, "chats.jsonl", data)
    drop(cfg, "renamed-copy.jsonl", data)
    again = ingest.ingest(cfg)
    assert first["ingested"] == 3 and again["ingested"] == 0 and again["duplicates"] == 6
    assert again["karma"] == first["karma"]
    # a new file that repeats some records adds only the new ones
    drop(cfg, "overlap.jsonl", data.splitlines(keepends=True)[0] + chat("new question?", "New answer.").encode() + b"\n")
    third = ingest.ingest(cfg)
    assert (third["ingested"], third["duplicates"]) == (1, 1)
    with session(cfg.db_url) as s:
        assert len(s.exec(select(InboxFile)).all()) == 2


def _zip(path: Path, members: dict[str, bytes]) -> bytes:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path.read_bytes()


def test_every_bad_input_gets_one_precise_line_and_loses_nothing(tmp_path):
    cfg = make_workspace(tmp_path)
    outside = tmp_path / "elsewhere" / "secrets.jsonl"
    outside.parent.mkdir()
    outside.write_text(chat("private?", "Yes.") + "\n", encoding="utf-8")
    expected = {
        "broken.json": ('[\n  {"messages": [}\n]', "invalid JSON at line 2, column 17 (Expecting value)"),
        "image.png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file (a NUL byte at offset 8), not text or a zip: "
                                                             "nothing to ingest"),
        "table.csv": ("host,disk\nweb-1,71%\n", "unknown format: expected chat JSONL, a JSON export (ChatGPT, Claude, "
                                               "ShareGPT, Alpaca, CHAOS), a zip of one, or plain text / Markdown"),
        "utf16.jsonl": (chat("hi", "Hello.").encode("utf-16"), "wrong encoding: UTF-16 text; re-save the file as UTF-8"),
        "empty.jsonl": ("  \n", "empty file: nothing to ingest"),
        "unanswered.jsonl": (json.dumps({"messages": [{"role": "user", "content": "hello?"}]}) + "\n",
                             "no usable record (1 bad); first: line 1: no assistant turn, so there is nothing to learn from"),
        "escape.zip": (_zip(tmp_path / "escape.zip", {"../../outside.jsonl": chat("a", "b").encode()}),
                       "zip member '../../outside.jsonl' has a path that climbs out of the archive's folder: refused unread"),
        "bomb.zip": (_zip(tmp_path / "bomb.zip", {"conversations.json": b"[" + b" " * (30 << 20) + b"]"}),
                     None),  # checked below: the ratio depends on zlib
    }
    for name, (data, _) in expected.items():
        drop(cfg, name, data)
    os.symlink(outside, cfg.inbox_dir / "link.jsonl")
    huge = cfg.inbox_dir / "dump.jsonl"
    with huge.open("wb") as f:  # sparse: 3 GB on paper, nothing on disk
        f.truncate(3 << 30)
    report = ingest.ingest(cfg)
    reasons = {Path(q["path"]).name: q["reason"] for q in report["quarantined"]}
    for name, (data, reason) in expected.items():
        if reason:
            assert reasons[name] == reason
        kept = cfg.inbox_dir / "quarantine" / name
        assert kept.read_bytes() == (data.encode() if isinstance(data, str) else data)  # nothing lost
        assert (cfg.inbox_dir / "quarantine" / f"{name}.reason").read_text() == reasons[name] + "\n"
    assert "refused as a likely zip bomb" in reasons["bomb.zip"]
    assert reasons["link.jsonl"] == "symbolic link pointing outside the inbox: copy the file in instead"
    assert outside.read_text().startswith('{"messages"')  # the link's target is left alone
    assert reasons["dump.jsonl"] == ("file is 3.0 GB, above inbox.max_file_mb = 2048 MB: split it into smaller "
                                     "files or raise the limit")
    assert all("\n" not in r for r in reasons.values()) and report["ingested"] == 0
    assert sorted(p.name for p in cfg.inbox_dir.iterdir()) == ["processed", "quarantine"]


def test_a_partly_bad_jsonl_ingests_the_good_lines_and_sets_the_bad_ones_aside(tmp_path):
    cfg = make_workspace(tmp_path)
    drop(cfg, "ops/mixed.jsonl", "\n".join([chat("one?", "One."), "{not json", chat("two?", "Two."),
                                            json.dumps({"prompt": "three?"})]) + "\n")
    report = ingest.ingest(cfg)
    assert report["ingested"] == 2 and report["bad_records"] == 2
    bad_file = cfg.inbox_dir / "quarantine" / "mixed.jsonl.bad.jsonl"
    bad = [json.loads(line) for line in bad_file.read_text().splitlines()]
    assert [(b["pos"], b["raw"]) for b in bad] == [(2, "{not json"), (4, '{"prompt": "three?"}')]
    assert bad[0]["reason"] == "line 2: invalid JSON (Expecting property name enclosed in double quotes at column 2)"
    assert (cfg.inbox_dir / "processed" / "ops" / "mixed.jsonl").is_file()
    assert report["quarantined"][0]["reason"].startswith("2 bad record(s) set aside in inbox/quarantine/mixed.jsonl")


def test_a_file_named_on_the_command_line_stays_where_it_is(tmp_path):
    cfg = make_workspace(tmp_path / "ws")
    mine = tmp_path / "mine.jsonl"
    mine.write_text(chat("kept?", "Yes, where you put it.") + "\n", encoding="utf-8")
    assert ingest.ingest(cfg, [mine])["ingested"] == 1 and mine.is_file()


def test_a_reader_that_fails_unexpectedly_quarantines_its_file_and_the_rest_go_on(tmp_path, monkeypatch):
    from loop.inbox.formats import shapes

    cfg = make_workspace(tmp_path)
    drop(cfg, "a.jsonl", chat("boom?", "x") + "\n")
    drop(cfg, "b.md", "# Notes\n\nA document.\n")
    monkeypatch.setattr(shapes, "from_object", lambda *a, **k: 1 / 0)
    report = ingest.ingest(cfg)
    assert report["quarantined"] == [{"path": "inbox/a.jsonl",
                                      "reason": "the jsonl reader failed on this file (ZeroDivisionError: division by zero)"}]
    assert report["ingested"] == 1

"""Data as people really export it: LLaMA-Factory's formats, KTO labels, ChatGPT's continued answers, Claude's
regenerations, images, legacy prompt/completion, text without paragraphs, code answers, bad bytes, nested links."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sqlmodel import select

from loop.data import dataset
from loop.inbox import ingest
from loop.inbox.formats import detect
from loop.inbox.formats.base import BadRecord, Options, Record
from store.db import reading
from store.tables import Conversation
from tests.helpers import add_generation, make_workspace

EXPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "exports"


def parse(path: Path) -> tuple[list[Record], list[BadRecord]]:
    items = list(detect(path).parse(path, Options()))
    return [i for i in items if isinstance(i, Record)], [i for i in items if isinstance(i, BadRecord)]


def test_llamafactory_sharegpt_pairs_become_corrections():
    records, bad = parse(EXPORTS / "llamafactory_pairwise.jsonl")
    assert bad == [] and [r.kind for r in records] == ["correction", "correction"]
    assert records[0].messages == [{"role": "user", "content": "how do I list listening ports on debian?"},
                                   {"role": "assistant", "content": "`ss -ltnp` lists every listening TCP port with its process."}]
    assert records[0].rejected == "Use netstat, it's the only way."
    assert records[1].messages[0] == {"role": "system", "content": "You are terse."}


def test_llamafactory_v1_parts_tool_calls_reasoning_and_whole_conversation_pairs():
    records, bad = parse(EXPORTS / "llamafactory_v1.jsonl")
    assert bad == []
    chat, pair = records
    assert chat.messages[0] == {"role": "user", "content": "restart caddy on edge-1"}
    call = chat.messages[1]["tool_calls"][0]["function"]
    assert call["name"] == "restart_service" and json.loads(call["arguments"]) == {"name": "caddy", "host": "edge-1"}
    assert chat.messages[1]["reasoning"] == "A restart request: one call."
    assert chat.messages[-1]["content"] == "Caddy is back up on edge-1."
    assert pair.kind == "correction" and pair.rejected == "Yes."
    assert pair.messages[0]["content"] == "is 8.8.8.8 a good resolver for a homelab?"


def test_kto_labels_are_kept_and_a_false_one_is_never_a_good_example(tmp_path):
    records, bad = parse(EXPORTS / "kto.jsonl")
    assert bad == [] and [(r.kind, r.meta["label"]) for r in records] == [
        ("completion", True), ("undesirable", False), ("undesirable", False)]
    cfg = make_workspace(tmp_path)
    shutil.copyfile(EXPORTS / "kto.jsonl", cfg.inbox_dir / "kto.jsonl")
    ingest.ingest(cfg)
    add_generation(cfg, 0, None, "promoted")
    with reading(cfg.db_url) as s:
        stored = {c.id: c for c in s.exec(select(Conversation)).all()}
        plan = dataset.plan(s, cfg, 0)
    bad_ids = {i for i, c in stored.items() if c.kind == "undesirable"}
    assert len(bad_ids) == 2 and all(c.karma == 0.0 for i, c in stored.items() if i in bad_ids)
    assert not bad_ids & set(plan.new_train_ids + plan.holdout_ids)
    assert all("rm -rf /" not in json.dumps(r) for r in plan.train_rows)


def test_chatgpt_continued_answers_are_one_answer():
    records, _ = parse(EXPORTS / "chatgpt_continue.json")
    answers = [m["content"] for m in records[0].messages if m["role"] == "assistant"]
    assert len(answers) == 1 and "/srv/app/index.js\nRestart=always" in answers[0]


def test_claude_regenerations_keep_the_answer_the_user_went_on_from():
    records, _ = parse(EXPORTS / "claude_regenerated.json")
    texts = [m["content"] for m in records[0].messages]
    assert "Sure, swap is always good." not in texts
    assert texts[1].startswith("Keep it small or use zram") and len(texts) == 4


def test_records_that_refer_to_images_are_set_aside_with_the_reason():
    records, bad = parse(EXPORTS / "images.jsonl")
    assert [r.messages[0]["content"] for r in records] == ["what is a vlan?"]
    assert [b.reason for b in bad] == [
        "line 1: turn 1 refers to an image (<image>): Ladder trains on text only, so the record is set aside",
        "line 2: the record has images ('images'): Ladder trains on text only, so it is set aside"]


def test_legacy_prompt_completion_separators_and_stop_words_are_removed():
    records, _ = parse(EXPORTS / "legacy_openai.jsonl")
    assert [(r.messages[0]["content"], r.messages[1]["content"]) for r in records] == [
        ("Default port for postgres", "5432"), ("What does DHCP hand out", "IP addresses and network settings.")]


def test_plain_text_without_blank_lines_is_cut_between_sentences():
    records, _ = parse(EXPORTS / "runbook_no_breaks.txt")
    assert len(records) > 3
    assert all(r.messages[0]["content"].endswith("on the host.") for r in records)
    assert all(r.messages[0]["content"].startswith("Step ") for r in records)


def test_code_answers_are_not_broken_tool_calls_and_a_repeated_sentence_is_poor(tmp_path):
    cfg = make_workspace(tmp_path)
    shutil.copyfile(EXPORTS / "quality_cases.jsonl", cfg.inbox_dir / "q.jsonl")
    shutil.copyfile(EXPORTS / "tools_differ.jsonl", cfg.inbox_dir / "t.jsonl")
    report = ingest.ingest(cfg)
    with reading(cfg.db_url) as s:
        rows = s.exec(select(Conversation).order_by(Conversation.id)).all()
    reasons = [json.loads(r.quality_reasons) for r in rows if r.source_file.endswith("q.jsonl")]
    assert reasons[0] == [] and reasons[1] == []  # a fenced JSON config and a launch.json are code, not calls
    assert "repetitive" in reasons[2] and rows[2].quality <= 0.4
    # two records that differ only in the tools shown to the model are two records
    assert report["duplicates"] == 0 and len([r for r in rows if r.source_file.endswith("t.jsonl")]) == 2


def test_a_nul_byte_spoils_only_its_own_line(tmp_path):
    records, bad = parse(EXPORTS / "nul_first_line.jsonl")
    assert [r.messages[1]["content"] for r in records] == ["An answer.", "Another answer."]
    assert [b.reason for b in bad] == ["line 1: holds a NUL byte (binary data, not text)"]


def test_a_symlink_loop_is_quarantined_with_the_reason_not_retried(tmp_path):
    cfg = make_workspace(tmp_path)
    os.symlink(cfg.inbox_dir / "b.jsonl", cfg.inbox_dir / "a.jsonl")
    os.symlink(cfg.inbox_dir / "a.jsonl", cfg.inbox_dir / "b.jsonl")
    report = ingest.ingest(cfg)
    assert report["retry"] == []
    assert {q["path"] for q in report["quarantined"]} == {"inbox/a.jsonl", "inbox/b.jsonl"}
    reasons = {q["path"]: q["reason"] for q in report["quarantined"]}
    assert reasons["inbox/a.jsonl"] == "symbolic link loop: the link points, through other links, back at itself"
    assert reasons["inbox/b.jsonl"] == "symbolic link to a file that does not exist"  # a.jsonl has moved out by then
    assert ingest.inbox_files(cfg) == []

"""Text and Markdown documents: a corpus for continued pretraining, staged by front matter or folder."""

import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from loop.data import dataset
from loop.inbox import ingest
from loop.inbox.formats import BadFile, Options, Record, detect
from store.db import session
from store.tables import Conversation
from tests.helpers import make_workspace

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inbox"


def parse(path: Path, **opts) -> list[Record]:
    return list(detect(path).parse(path, Options(**opts)))


def test_front_matter_gives_stage_domain_and_title():
    (doc,) = parse(FIXTURES / "fundamentals" / "writing-style.md")
    assert (doc.kind, doc.source, doc.stage, doc.domain) == ("document", "document", "fundamentals", "writing")
    assert doc.meta["title"] == "How we write answers" and doc.pos == 6  # the text starts after the front matter
    assert doc.messages == [{"role": "assistant", "content": doc.messages[0]["content"]}]
    assert doc.messages[0]["content"].startswith("Say the answer first") and "---" not in doc.messages[0]["content"]


def test_long_documents_are_cut_at_paragraph_breaks_never_inside_code(tmp_path):
    fence = "```bash\n" + "\n\n".join(f"echo step {i}" for i in range(30)) + "\n```\n"
    text = "# Runbook\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(12)) + "\n\n" + fence
    path = tmp_path / "runbook.md"
    path.write_text(text, encoding="utf-8")
    parts = parse(path, document_chars=400)
    assert len(parts) > 3 and {p.meta["title"] for p in parts} == {"Runbook"}
    bodies = [p.messages[0]["content"] for p in parts]
    assert all(b.count("```") % 2 == 0 for b in bodies)  # a code block is never split in two
    assert "".join(" ".join(bodies).split()) == "".join(text.split())  # nothing lost, nothing repeated
    assert [p.meta["part"] for p in parts] == list(range(1, len(parts) + 1))


def test_plain_text_without_an_extension_is_detected_from_its_content(tmp_path):
    path = tmp_path / "NOTES"
    shutil.copyfile(FIXTURES / "oncall-notes.txt", path)
    assert detect(path).name == "text"
    (doc,) = parse(path)
    assert doc.meta["title"] == "NOTES" and doc.messages[0]["content"].startswith("On-call notes, week 14.")


def test_stage_comes_from_the_folder_and_defaults_to_manual(tmp_path):
    cfg = make_workspace(tmp_path)
    (cfg.inbox_dir / "logs").mkdir()
    shutil.copyfile(FIXTURES / "oncall-notes.txt", cfg.inbox_dir / "logs" / "oncall-notes.txt")
    shutil.copyfile(FIXTURES / "manual" / "restarting-services.md", cfg.inbox_dir / "restarting-services.md")
    shutil.copytree(FIXTURES / "fundamentals", cfg.inbox_dir / "fundamentals")
    ingest.ingest(cfg)
    with session(cfg.db_url) as s:
        rows = {Path(r.source_file).name: r for r in s.exec(select(Conversation)).all()}
    assert rows["oncall-notes.txt"].stage == "logs_specs"  # "logs" names the logs_specs stage
    assert rows["restarting-services.md"].stage == "manual"
    assert rows["writing-style.md"].stage == "fundamentals"
    assert rows["restarting-services.md"].karma == 0.5  # quality 1.0 x the document weight
    # the dataset trains documents as plain text
    assert dataset.training_row(rows["writing-style.md"])["text"].startswith("Say the answer first")
    assert (cfg.inbox_dir / "processed" / "logs" / "oncall-notes.txt").is_file()


def test_a_document_that_is_not_utf8_says_so(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("Grüße aus Köln\n".encode("latin-1"))
    with pytest.raises(BadFile) as e:
        detect(path)
    assert str(e.value) == "wrong encoding: not UTF-8 (byte 0xfc on line 1); re-save the file as UTF-8"


def test_only_front_matter_is_nothing_to_ingest(tmp_path):
    path = tmp_path / "empty.md"
    path.write_text("---\nstage: manual\n---\n\n", encoding="utf-8")
    with pytest.raises(BadFile, match="a document with no text after its front matter: nothing to ingest"):
        parse(path)

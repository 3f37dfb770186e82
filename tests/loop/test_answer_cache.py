"""G0's answers are reused by the next workspace of the same base, and the cache never changes a result."""

from __future__ import annotations

import json
import sqlite3

import pytest

from loop import workspace
from loop.errors import OperationFailed
from loop.evals.answer_cache import Answers, cache_dir
from loop.events import NullEvents
from tests import jobkit

Q = [{"role": "user", "content": "capital of France?"}]


class Model:
    """A stand-in for a Runner, counting how often it is opened and asked (the cache's own logic only)."""

    opened = 0

    def __init__(self):
        Model.opened += 1
        self.asked: list = []

    def chat(self, messages, max_tokens, raw=False):
        if messages[-1]["content"] == "too long":
            raise OperationFailed("the prompt does not fit the context")
        self.asked.append((messages[-1]["content"], max_tokens, raw))
        return f"answer to {messages[-1]['content']} in {max_tokens}"

    def close(self):
        pass


@pytest.fixture(autouse=True)
def _count():
    Model.opened = 0


def answers(folder, model="a" * 64, context=2048, **kw):
    return Answers(model, context, Model, folder=folder, **kw)


def test_a_second_use_answers_from_the_cache_without_opening_the_model(tmp_path):
    with answers(tmp_path) as first:
        assert first.chat(Q, 8) == "answer to capital of France? in 8"
    assert (Model.opened, first.asked) == (1, 0)  # counts move to stats on close
    stats: dict = {}
    with answers(tmp_path, stats=stats) as again:
        assert again.chat(Q, 8) == "answer to capital of France? in 8"
    assert Model.opened == 1
    assert stats == {"asked": 0, "reused": 1}


@pytest.mark.parametrize("change", [{"model": "b" * 64}, {"context": 1024}])
def test_another_model_file_or_context_is_asked_anew(tmp_path, change):
    with answers(tmp_path) as first:
        first.chat(Q, 8)
    stats: dict = {}
    with answers(tmp_path, stats=stats, **change) as other:
        other.chat(Q, 8)
    assert stats == {"asked": 1, "reused": 0}


def test_another_token_limit_or_raw_prompt_is_another_question(tmp_path):
    stats: dict = {}
    with answers(tmp_path, stats=stats) as a:
        a.chat(Q, 8)
        a.chat(Q, 16)
        a.chat(Q, 8, raw=True)
        a.chat(Q, 8)
    assert stats == {"asked": 3, "reused": 1}


def test_a_question_that_does_not_fit_is_not_kept(tmp_path):
    for _ in range(2):
        with answers(tmp_path) as a, pytest.raises(OperationFailed):
            a.chat([{"role": "user", "content": "too long"}], 8)
    assert Model.opened == 2
    assert not list(tmp_path.iterdir())


def test_a_damaged_cache_file_is_ignored_and_rewritten(tmp_path):
    with answers(tmp_path) as a:
        a.chat(Q, 8)
    (path,) = tmp_path.iterdir()
    path.write_text('{"answers": {"x": 1', encoding="utf-8")
    stats: dict = {}
    with answers(tmp_path, stats=stats) as a:
        assert a.chat(Q, 8) == "answer to capital of France? in 8"
    assert stats["asked"] == 1
    assert len(json.loads(path.read_text(encoding="utf-8"))["answers"]) == 1


def test_a_cache_folder_that_cannot_be_written_does_not_stop_the_evals(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with answers(blocker / "answers") as a:
        assert a.chat(Q, 8)


def test_two_writers_keep_each_others_answers(tmp_path):
    one, two = answers(tmp_path), answers(tmp_path)
    one.chat(Q, 8)
    two.chat([{"role": "user", "content": "capital of Peru?"}], 8)
    one.close()
    two.close()
    stats: dict = {}
    with answers(tmp_path, stats=stats) as a:
        a.chat(Q, 8)
        a.chat([{"role": "user", "content": "capital of Peru?"}], 8)
    assert stats == {"asked": 0, "reused": 2}


def test_turned_off_it_neither_reads_nor_writes(tmp_path):
    with answers(tmp_path) as a:
        a.chat(Q, 8)
    stats: dict = {}
    with answers(tmp_path, enabled=False, stats=stats) as a:
        a.chat(Q, 8)
        a.chat(Q, 16)
    assert stats == {"asked": 2, "reused": 0}
    (path,) = tmp_path.iterdir()
    assert len(json.loads(path.read_text(encoding="utf-8"))["answers"]) == 1


def test_the_cache_lives_in_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "ladder" / "answers"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the spec says to ignore a relative one
    assert cache_dir().parent.parent.name == ".cache"


def _results(cfg) -> list:
    with sqlite3.connect(cfg.root / "ladder.db") as db:
        return db.execute("select eval, item_key, answer, score, passed, detail from evalresult "
                          "order by eval, item_key").fetchall()


class Recorder(NullEvents):
    def __init__(self):
        self.messages: list[str] = []

    def emit(self, kind, message="", **data):
        self.messages.append(message)


@pytest.mark.skipif(jobkit.pgdb.enabled(), reason="compares the two workspaces' SQLite files")
def test_a_second_workspace_of_the_same_base_reuses_g0s_answers_and_stores_the_same_results(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = jobkit.make_template(tmp_path / "one")
    assert list((tmp_path / "cache" / "ladder" / "answers").iterdir())
    second, events = jobkit.lay_out(tmp_path / "two"), Recorder()  # the same seeded tiny base, made again
    result = workspace.init(second, events)
    assert result["created"] and result["answers_asked"] == 0 and result["answers_reused"] > 0
    assert any("came from an earlier workspace of this base" in m for m in events.messages)
    assert _results(second) == _results(first)

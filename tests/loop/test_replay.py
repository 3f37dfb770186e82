"""Self-replay as pure functions: how many rows, which answers are kept, where they go, the pool."""

import pytest

from loop.evals import probes as evals
from loop.data import replay
from loop.errors import UserError
from loop.evals.scoring import normalize
from tests.helpers import make_workspace

PHRASES = ["I'm sorry", "as an AI"]


@pytest.mark.parametrize(("share", "cap", "rows", "available", "expected"), [
    (0.3, 60, 70, 150, 30),    # 30 of 100 rows: exactly the share
    (0.3, 60, 80, 150, 35),    # rounded up: 35 / 115 = 0.304
    (0.5, 60, 40, 150, 40),    # half
    (0.3, 20, 80, 150, 20),    # the cap
    (0.3, 60, 80, 10, 10),     # the pool
    (0.0, 60, 80, 150, 0),     # off
    (0.3, 60, 0, 150, 0),      # nothing to train on: nothing to protect
])
def test_planned_makes_up_the_share_within_cap_and_pool(share, cap, rows, available, expected):
    n = replay.planned(share, cap, rows, available)
    assert n == expected
    if n and n < min(cap, available):
        assert n / (rows + n) == pytest.approx(share, abs=1 / (rows + n))


def test_trim_cuts_a_truncated_answer_back_to_its_last_sentence():
    cut = "A doctor is a medical professional who treats illness. They work in hospitals and clinics, and they"
    assert replay.trim(cut) == "A doctor is a medical professional who treats illness."
    assert replay.trim("A full answer ends here.") == "A full answer ends here."
    # Too little would be left: the answer stays as it was (and is dropped as truncated).
    assert replay.trim("Yes. and then the model went on without stopping") == "Yes. and then the model went on without stopping"
    # An open code block is not cut inside.
    code = "Use this:\n```python\nprint(1)\nx = 2"
    assert replay.trim(code) == code


def test_keep_drops_what_the_parent_should_not_pass_on():
    assert replay.keep("What is rain?", "Rain is water that falls from clouds.", PHRASES, 0.3)[0]
    ok, reasons = replay.keep("What is rain?", "I'm sorry, but as an AI I cannot answer that.", PHRASES, 0.3)
    assert not ok and "corporate filler" in reasons
    ok, reasons = replay.keep("What is rain?", "Rain is a form of water that falls from the sky and it is " * 4 + "and", PHRASES, 0.3)
    assert not ok and "looks truncated" in reasons
    assert not replay.keep("What is rain?", "", PHRASES, 0.3)[0]


def test_collect_asks_on_past_dropped_answers_until_enough_are_kept():
    answers = {f"q{i}": ("I'm sorry, I cannot." if i % 2 else f"Answer {i} is a fine one.") for i in range(20)}
    asked = []

    def ask(q):
        asked.append(q)
        return answers[q]

    kept, dropped = replay.collect(ask, list(answers), 5, PHRASES, 0.3)
    assert [k["prompt"] for k in kept] == ["q0", "q2", "q4", "q6", "q8"]
    assert len(dropped) == 4 and asked == [f"q{i}" for i in range(9)]
    assert all(d["reasons"] for d in dropped)


def test_collect_stops_at_twice_the_planned_number_when_most_answers_are_bad():
    kept, dropped = replay.collect(lambda q: "I'm sorry, I cannot.", [f"q{i}" for i in range(50)], 4, PHRASES, 0.3)
    assert kept == [] and len(dropped) == replay.ASK_FACTOR * 4


def test_collect_keeps_a_trimmed_answer_and_says_so():
    cut = "Fish breathe with gills. Water flows over the gills and oxygen passes into the"
    kept, _ = replay.collect(lambda q: cut, ["How do fish breathe?"], 1, PHRASES, 0.3)
    assert kept[0]["answer"] == "Fish breathe with gills." and kept[0]["trimmed"]


def _row(i, stage):
    return {"messages": [], "_source": "openai", "_stage": stage, "i": i}


def test_interleave_spreads_self_replay_evenly_through_its_stage_only():
    rows = [_row(i, "manual") for i in range(4)] + [_row(i, "conversations") for i in range(4, 16)]
    extra = [{"messages": [], "_source": "self_replay", "_stage": "conversations", "i": 100 + j} for j in range(4)]
    out = replay.interleave(rows, extra, "conversations")
    assert len(out) == 20 and out[:4] == rows[:4]  # the earlier stage is untouched, order kept
    at = [k for k, r in enumerate(out) if r["_source"] == "self_replay"]
    assert len(at) == 4
    gaps = [b - a for a, b in zip(at, at[1:])]
    assert max(gaps) - min(gaps) <= 1 and at[0] > 4 and at[-1] < 19  # neither a block nor at one end
    assert [r["i"] for r in out if r["_source"] != "self_replay"] == list(range(16))


def test_interleave_without_the_stage_appends_and_without_extra_changes_nothing():
    rows = [_row(0, "manual")]
    extra = [{"messages": [], "_source": "self_replay", "_stage": "conversations"}]
    assert replay.interleave(rows, extra, "conversations") == rows + extra
    assert replay.interleave(rows, [], "conversations") == rows


def test_pool_adds_user_files_and_never_holds_a_recall_probe(tmp_path):
    probe = evals.probe_items()[0]["prompt"]
    (tmp_path / "mine.txt").write_text(f"What is a kettle?\n\n{probe.upper()}\nwhat is a  kettle?\n", encoding="utf-8")
    cfg = make_workspace(tmp_path, dataset={"self_replay_pool": ["mine.txt"]})
    prompts = replay.pool(cfg)
    shipped = evals.self_replay_prompts()
    assert prompts[: len(shipped)] == shipped and prompts[len(shipped):] == ["What is a kettle?"]
    probes = {normalize(p["prompt"]) for p in evals.probe_items()}
    assert not probes & {normalize(p) for p in prompts}


def test_pool_with_a_missing_user_file_is_a_one_line_error(tmp_path):
    cfg = make_workspace(tmp_path, dataset={"self_replay_pool": ["missing.txt"]})
    with pytest.raises(UserError, match="self_replay_pool: cannot read .*missing.txt"):
        replay.pool(cfg)

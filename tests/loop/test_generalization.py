"""The generalization rule for a held-out answer that is not a tool call (loop.evals.generation.likelier)."""

from __future__ import annotations

import pytest

from loop.evals.generation import likelier


def test_an_answer_learned_for_its_conversation_passes():
    v = likelier(-1.0, -1.3, -2.0, -2.1, margin=0.0, tolerance=0.05)
    assert v == {"gain": pytest.approx(0.3), "tied": pytest.approx(0.2), "passed": True, "reason": "ok"}


def test_a_gain_as_large_after_another_conversation_is_style_not_learning():
    v = likelier(-1.0, -1.3, -1.6, -2.0, margin=0.0, tolerance=0.05)  # +0.3 here, +0.4 after the wrong request
    assert not v["passed"] and v["tied"] == pytest.approx(-0.1)
    assert v["reason"].startswith("as much likelier after another conversation")


def test_a_small_shortfall_within_the_tolerance_passes():
    assert likelier(-1.0, -1.3, -1.66, -2.0, margin=0.0, tolerance=0.05)["passed"]  # tied -0.04
    assert not likelier(-1.0, -1.3, -1.66, -2.0, margin=0.0, tolerance=0.03)["passed"]


def test_an_answer_no_likelier_than_under_the_parent_fails_whatever_the_contrast():
    v = likelier(-1.4, -1.3, -3.0, -2.0, margin=0.0, tolerance=0.05)
    assert not v["passed"] and v["reason"] == "no more likely than under the parent"
    assert not likelier(-1.25, -1.3, None, None, margin=0.1, tolerance=0.05)["passed"]  # below the margin


def test_without_another_conversation_the_gain_alone_decides():
    assert likelier(-1.0, -1.3, None, None, margin=0.0, tolerance=0.05) == {
        "gain": pytest.approx(0.3), "tied": None, "passed": True, "reason": "ok"}


def test_an_answer_with_no_tokens_to_score_fails():
    assert likelier(None, None, None, None, margin=0.0, tolerance=0.05)["passed"] is False

"""Approve, reject, roll back: the active pointer, the override flag, nothing deleted."""

import pytest

from loop.jobs import promotion
from loop.errors import UserError
from store.db import active_gen, session
from store.tables import Generation
from tests.helpers import sha_of, add_generation, make_workspace


@pytest.fixture
def cfg(tmp_path):
    cfg = make_workspace(tmp_path)
    add_generation(cfg, 0, None, "promoted")
    add_generation(cfg, 1, 0, "promoted")
    add_generation(cfg, 2, 1, "rejected", reason="rejected for forgetting")
    add_generation(cfg, 3, 1, "candidate")
    return cfg


def status(cfg, gen):
    with session(cfg.db_url) as s:
        return s.get(Generation, gen)


def test_rollback_makes_the_parent_active_and_deletes_nothing(cfg):
    out = promotion.rollback(cfg)
    assert out["active_gen"] == 0 and out["active_sha"] == sha_of(0)
    assert status(cfg, 1).status == "rolled_back"
    assert status(cfg, 1).child_sha == sha_of(1)
    rows = [line.split(",") for line in cfg.ledger_csv.read_text().splitlines()]
    active = rows[0].index("active")
    assert {r[0]: r[active] for r in rows[1:]} == {"0": "1", "1": "0", "2": "0", "3": "0"}


def test_approving_a_rejected_child_is_an_override(cfg):
    out = promotion.approve(cfg, 2)
    assert out["active_gen"] == 2
    g = status(cfg, 2)
    assert g.override and g.status == "promoted" and "over the gates" in g.reason


def test_approving_a_candidate_is_not_an_override(cfg):
    promotion.approve(cfg, 3)
    assert not status(cfg, 3).override


def test_rollback_to_a_named_generation_and_back(cfg):
    promotion.rollback(cfg, 0)
    promotion.approve(cfg, 1)  # undo
    with session(cfg.db_url) as s:
        assert active_gen(s) == 1


def test_rejecting_the_active_generation_reactivates_its_parent(cfg):
    out = promotion.reject(cfg, 1)
    assert out["active_gen"] == 0


@pytest.mark.parametrize("call, text", [
    (lambda c: promotion.approve(c, 99), "no generation 99"),
    (lambda c: promotion.rollback(c, 2), "was rejected"),
    (lambda c: promotion.reject(c, 0), "cannot be rejected"),
])
def test_bad_requests_are_user_errors(cfg, call, text):
    with pytest.raises(UserError, match=text):
        call(cfg)


def test_base_generation_has_nothing_to_roll_back_to(cfg):
    promotion.rollback(cfg)
    with pytest.raises(UserError, match="no parent"):
        promotion.rollback(cfg)


def test_undo_puts_the_rollback_back_exactly(cfg):
    before = status(cfg, 1).reason
    promotion.rollback(cfg)
    out = promotion.undo_rollback(cfg)
    assert out["active_gen"] == 1
    assert status(cfg, 1).status == "promoted" and status(cfg, 1).reason == before
    assert status(cfg, 0).status == "promoted"
    with pytest.raises(UserError, match="no rollback to undo"):
        promotion.undo_rollback(cfg)


def test_undo_refuses_after_the_pointer_moved(cfg):
    promotion.rollback(cfg)
    promotion.approve(cfg, 3)
    with pytest.raises(UserError, match="already changed"):
        promotion.undo_rollback(cfg)


def test_reject_after_an_override_keeps_what_the_gates_said(cfg):
    promotion.approve(cfg, 2)
    assert status(cfg, 2).reason == "approved by the user over the gates (rejected for forgetting)"
    promotion.reject(cfg, 2)
    g = status(cfg, 2)
    assert g.reason == "rejected by the user (the gates had rejected it: rejected for forgetting)"
    promotion.approve(cfg, 2)  # the gates' words once, not nested in the user's earlier decisions
    assert status(cfg, 2).reason == "approved by the user over the gates (rejected for forgetting)"
    rows = cfg.ledger_csv.read_text().splitlines()
    assert any("rejected for forgetting" in r for r in rows if r.startswith("2,"))


def test_rejecting_a_generation_the_gates_passed_says_only_the_user_rejected_it(cfg):
    promotion.approve(cfg, 3)
    promotion.reject(cfg, 3)
    assert status(cfg, 3).reason == "rejected by the user"


def test_undo_puts_an_override_back_exactly(cfg):
    before = status(cfg, 2)
    promotion.approve(cfg, 2)
    out = promotion.undo_approve(cfg)
    assert out["active_gen"] == 1 and "G1 is active again" in out["message"]
    g = status(cfg, 2)
    assert (g.status, g.reason, g.override) == (before.status, before.reason, before.override)
    with pytest.raises(UserError, match="no approval to undo"):
        promotion.undo_approve(cfg)


def test_undo_of_an_approval_refuses_once_the_pointer_moved(cfg):
    promotion.approve(cfg, 2)
    promotion.rollback(cfg, 1)  # a later decision: the approval's undo no longer applies
    with pytest.raises(UserError, match="no approval to undo"):
        promotion.undo_approve(cfg)
    promotion.approve(cfg, 3)
    promotion.approve(cfg, 2)
    promotion.approve(cfg, 3)  # G2 approved then replaced: undo restores the last one only
    out = promotion.undo_approve(cfg)
    assert out["active_gen"] == 2

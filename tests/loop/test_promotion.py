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

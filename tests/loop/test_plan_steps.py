"""How many steps a generation trains: never so few that rows of its dataset go unseen."""

from loop.jobs.pipeline import plan_steps

SETTINGS = {"steps": 60, "batch_size": 2, "grad_accum": 1}


def test_the_configured_steps_when_they_cover_the_dataset():
    assert plan_steps(SETTINGS, 115, explicit=False) == (60, "")  # 120 row slots: two left over
    assert plan_steps(SETTINGS, 30, explicit=False) == (60, "")   # a small dataset is seen more than once


def test_a_bigger_dataset_gets_one_full_pass():
    assert plan_steps(SETTINGS, 241, explicit=False) == (121, ": one pass over 241 rows")
    assert plan_steps(SETTINGS | {"grad_accum": 4}, 241, explicit=False) == (60, "")  # 8 rows a step
    assert plan_steps(SETTINGS | {"grad_accum": 4, "steps": 20}, 241, explicit=False)[0] == 31


def test_steps_asked_for_are_kept_and_the_unseen_rows_are_said():
    assert plan_steps(SETTINGS | {"steps": 3}, 115, explicit=True) == (3, "; as asked, so 6 of 115 rows are seen")
    assert plan_steps(SETTINGS | {"steps": 80}, 115, explicit=True) == (80, "")


def test_an_empty_dataset_keeps_the_configured_steps():
    assert plan_steps(SETTINGS, 0, explicit=False) == (60, "")

"""The training screen's stage row: an occasional stage (facts, KTO) shows in its place while it runs."""

from tui.widgets.training import STAGES, stages_shown


def test_an_occasional_stage_shows_in_its_place_only_while_it_runs():
    assert stages_shown("train") == STAGES and stages_shown(None) == STAGES and "facts" not in STAGES
    row = stages_shown("facts")
    assert row.index("facts") == row.index("train") + 1 and len(row) == len(STAGES) + 1
    row = stages_shown("kto")
    assert row.index("kto") == row.index("dpo") + 1

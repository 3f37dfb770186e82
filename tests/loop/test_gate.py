"""Gates and the stop rule as pure functions."""

from types import SimpleNamespace

from loop.evals.gate import decide, stop_rule

GATES = SimpleNamespace(recall_min=0.9, recall_margin=0.05, generalization_min=0.85, style_drift_max=2,
                        require_approval=False)
RULE = SimpleNamespace(generations=2, epsilon=0.05, theta=0.1)


def metrics(recall=0.95, gen=0.9, style=1):
    return {"eval_recall": recall, "eval_generalization": gen, "eval_style_drift": style}


def test_passing_child_is_promoted():
    d = decide(metrics(), GATES)
    assert d.passed and d.status == "promoted"
    assert [c.name for c in d.checks] == ["recall", "generalization", "style_drift"]


def test_passing_child_waits_when_approval_is_required():
    d = decide(metrics(), SimpleNamespace(**{**GATES.__dict__, "require_approval": True}))
    assert d.status == "candidate"


def test_forgetting_rejects_whatever_the_other_scores():
    d = decide(metrics(recall=0.5, gen=1.0, style=0), GATES)
    assert not d.passed and d.status == "rejected"
    assert d.reason.startswith("rejected for forgetting")
    assert "needs >= 0.9" in d.reason


def test_thresholds_are_exact_bounds():
    assert decide(metrics(recall=0.9, gen=0.85, style=1), GATES).passed
    assert not decide(metrics(style=2), GATES).passed  # style drift must stay below the threshold


def test_missing_metric_fails_its_gate():
    d = decide(metrics(gen=None), GATES)
    assert not d.passed and "generalization missing" in d.reason


def test_stop_rule_needs_two_flat_generations_and_drift():
    flat = [{"eval_generalization": 0.5, "eval_style_drift": 1}, {"eval_generalization": 0.52, "eval_style_drift": 1},
            {"eval_generalization": 0.53, "eval_style_drift": 3}]
    assert "stop rule" in stop_rule(flat, RULE)


def test_stop_rule_stays_quiet_while_learning_or_too_early():
    learning = [{"eval_generalization": 0.5, "eval_style_drift": 1}, {"eval_generalization": 0.6, "eval_style_drift": 2},
                {"eval_generalization": 0.61, "eval_style_drift": 3}]
    assert stop_rule(learning, RULE) is None
    assert stop_rule(learning[:2], RULE) is None
    no_drift = [{"eval_generalization": 0.5, "eval_style_drift": 1}] * 3
    assert stop_rule(no_drift, RULE) is None


def test_recall_below_the_parent_by_more_than_the_margin_is_forgetting():
    d = decide(metrics(recall=0.92), GATES, {"recall_same": 1.0, "eval_style_drift": 1})
    assert not d.passed and d.reason.startswith("rejected for forgetting")
    assert "recall_vs_parent 0.92 (needs >= 0.95: parent's 1 - gates.recall_margin 0.05)" in d.reason
    assert decide(metrics(recall=0.96), GATES, {"recall_same": 1.0}).passed


def test_a_child_no_more_corporate_than_its_parent_has_not_drifted():
    assert decide(metrics(style=5), GATES, {"eval_style_drift": 5}).passed
    d = decide(metrics(style=6), GATES, {"eval_style_drift": 5})
    assert not d.passed and "style_drift 6 (needs < 6: parent's 5 + 1; gates.style_drift_max 2 is lower)" in d.reason


def test_each_threshold_says_where_it_comes_from():
    d = decide(metrics(recall=0.5, gen=0.1, style=9), GATES, {"eval_style_drift": 0})
    assert [(c.name, c.basis) for c in d.checks] == [
        ("recall", "gates.recall_min"), ("generalization", "gates.generalization_min"),
        ("style_drift", "gates.style_drift_max")]  # a parent below the configured bar does not lower it
    assert "(needs >= 0.9: gates.recall_min) FAILED" in d.reason


def test_transfer_is_the_share_of_changed_held_out_verdicts_that_got_better():
    from loop.evals import transfer

    parent = {("s", "a"): False, ("s", "b"): False, ("s", "c"): True, ("s", "d"): True, ("s", "e"): False}
    child = {("s", "a"): True, ("s", "b"): True, ("s", "c"): True, ("s", "d"): False, ("s", "e"): False}
    t = transfer.score(child, parent)
    assert (t["better"], t["worse"], t["same"], t["n"], t["value"]) == (2, 1, 2, 3, 0.6667)
    nothing = transfer.score(parent, parent)
    assert nothing["value"] == 0.0 and nothing["n"] == 0, "nothing changed: nothing carried over"
    d = decide({"eval_recall": 1.0, "eval_generalization": t["value"], "eval_style_drift": 0,
                "generalization_basis": t}, SimpleNamespace(**(vars(GATES) | {"generalization_min": 0.6})))
    check = next(c for c in d.checks if c.name == "generalization")
    assert check.passed and "2 better, 1 worse than the parent" in check.describe()

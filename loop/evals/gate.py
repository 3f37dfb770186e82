"""The gates and the stop rule: pure decisions from metrics and the config, testable without a model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    op: str  # ">=", "<", or "ready" (the readiness report's verdict)
    threshold: float
    passed: bool
    basis: str = ""  # where the threshold comes from: a config key, or the parent's value it was raised to

    def describe(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.3g}"
        verdict = "ok" if self.passed else "FAILED"
        if self.op == "ready":
            return f"readiness {verdict} (ladder readiness says why)"
        basis = f": {self.basis}" if self.basis else ""
        return f"{self.name} {shown} (needs {self.op} {self.threshold:.3g}{basis}) {verdict}"


@dataclass(frozen=True)
class Decision:
    passed: bool
    status: str  # promoted | candidate | rejected
    checks: list[Check] = field(default_factory=list)
    reason: str = ""


def decide(child: Mapping[str, Any], gates: Any, parent: Mapping[str, Any] | None = None) -> Decision:
    """Hold a child's metrics to every gate; a failed gate rejects it whatever the others say.

    `parent` may give "recall_same" (the parent's recall on the child's recall items) and
    "eval_style_drift"; then recall must stay within `gates.recall_margin` of the parent's,
    and style drift may be as high as the parent's without counting as drift.
    """
    recall = child.get("eval_recall")
    checks = [_at_least("recall", recall, gates.recall_min, "gates.recall_min")]
    parent = parent or {}
    if parent.get("recall_same") is not None:
        floor = round(parent["recall_same"] - gates.recall_margin, 6)
        checks.append(_at_least("recall_vs_parent", recall, floor,
                                f"parent's {parent['recall_same']:.3g} - gates.recall_margin {gates.recall_margin:g}"))
    on = (child.get("generalization_basis") or {}).get("basis")
    checks.append(_at_least("generalization", child.get("eval_generalization"), gates.generalization_min,
                            "gates.generalization_min" + (f"; on {on}" if on else "")))
    style_limit, basis = gates.style_drift_max, "gates.style_drift_max"
    if parent.get("eval_style_drift") is not None and parent["eval_style_drift"] + 1 > style_limit:
        style_limit = parent["eval_style_drift"] + 1
        basis = f"parent's {parent['eval_style_drift']} + 1; gates.style_drift_max {gates.style_drift_max} is lower"
    checks.append(_below("style_drift", child.get("eval_style_drift"), style_limit, basis))
    if getattr(gates, "kl_max", 0):
        checks.append(_below("kl_drift", child.get("eval_kl"), gates.kl_max, "gates.kl_max"))
    if getattr(gates, "require_ready", False):
        report = child.get("readiness") or {}
        overall = (report.get("overall") or {}).get("rate")
        checks.append(Check("ready", overall, "ready", 1.0, bool(report.get("ready"))))
    failed = [c for c in checks if not c.passed]
    if failed:
        first = failed[0]
        label = "forgetting" if first.name.startswith("recall") else first.name.replace("_", " ")
        reason = f"rejected for {label}: " + "; ".join(c.describe() for c in failed)
        return Decision(False, "rejected", checks, reason)
    status = "candidate" if gates.require_approval else "promoted"
    reason = "passed every gate" + ("; waiting for approval" if gates.require_approval else "")
    return Decision(True, status, checks, reason)


def _at_least(name: str, value: float | None, threshold: float, basis: str) -> Check:
    return Check(name, value, ">=", threshold, value is not None and value >= threshold, basis)


def _below(name: str, value: float | None, threshold: float, basis: str) -> Check:
    return Check(name, value, "<", threshold, value is not None and value < threshold, basis)


def stop_rule(history: Sequence[Mapping[str, Any]], rule: Any) -> str | None:
    """The seed's stop rule over the lineage, oldest first: a reason to stop, or None.

    As the seed's code has it: over the last `rule.generations` generations, generalization
    rose by less than `rule.epsilon` every time and style drift rose by more than `rule.theta`
    at least once. The model is not learning and is drifting: the data is the problem.
    """
    n = rule.generations
    if len(history) < n + 1:
        return None
    window = history[-(n + 1):]
    deltas = []
    for before, after in zip(window, window[1:]):
        g0, g1 = before.get("eval_generalization"), after.get("eval_generalization")
        s0, s1 = before.get("eval_style_drift"), after.get("eval_style_drift")
        if None in (g1, s0, s1):
            return None
        dg = g1 - (g0 if g0 is not None else 0.0)
        deltas.append((dg, s1 - s0))
    if all(dg < rule.epsilon for dg, _ in deltas) and any(ds > rule.theta for _, ds in deltas):
        shown = ", ".join(f"Δgeneralization {dg:+.3f} Δstyle drift {ds:+.3g}" for dg, ds in deltas)
        return (f"stop rule: for {n} generations generalization rose by less than {rule.epsilon} and "
                f"style drift rose by more than {rule.theta} ({shown}); fix the data, not the model size")
    return None

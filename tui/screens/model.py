"""What the screens show: plain, immutable views of the store, free of any database import."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Statuses a user can decide on (the engine's promotion.DECIDED).
DECIDED = ("candidate", "promoted", "rejected", "rolled_back")


@dataclass(frozen=True)
class GenRow:
    """One rung of the ladder, as the table shows it."""

    id: int
    parent_id: int | None
    status: str
    stage: str
    created_at: datetime
    steps: int = 0
    loss_start: float | None = None
    loss_end: float | None = None
    recall: float | None = None
    generalization: float | None = None
    style_drift: int | None = None
    reason: str = ""
    override: bool = False
    gguf_path: str | None = None
    n_recall: int | None = None  # the items each score was measured on
    n_generalization: int | None = None
    ready: bool | None = None  # the readiness verdict; None when never judged
    suite_rate: float | None = None  # pass rate over the agent suites' held-out items
    readiness: dict[str, Any] = field(default_factory=dict, compare=False)  # the whole report


def readiness_of(text: str | None) -> tuple[bool | None, float | None, dict[str, Any]]:
    """(ready, overall suite rate, report) from a stored readiness report."""
    import json

    try:
        r = json.loads(text or "{}")
    except ValueError:
        return None, None, {}
    if not isinstance(r, dict) or "ready" not in r:
        return None, None, {}
    return bool(r["ready"]), (r.get("overall") or {}).get("rate"), r


@dataclass(frozen=True)
class Ladder:
    """A page of generations, newest first, with the active pointer and the stop-rule state."""

    rows: tuple[GenRow, ...] = ()
    total: int = 0
    offset: int = 0
    active: GenRow | None = None
    stopped: str | None = None

    @property
    def active_id(self) -> int | None:
        return self.active.id if self.active else None


@dataclass(frozen=True)
class GateCheck:
    name: str
    value: float | None
    op: str
    threshold: float
    passed: bool
    basis: str = ""  # where the threshold comes from (a config key, or the parent's value)


@dataclass(frozen=True)
class Detail:
    """Everything about one generation: hashes, data delta, config used, gate decisions."""

    gen: GenRow
    active: bool
    parent_sha: str = ""
    child_sha: str | None = None
    data_delta_sha: str | None = None
    dataset_sha: str | None = None
    lr: float = 0.0
    walltime_min: float | None = None
    n_new: int = 0
    n_replay: int = 0
    n_holdout: int = 0
    gates: tuple[GateCheck, ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()
    sources: tuple[tuple[str, str, int], ...] = ()  # (source file, split, records)
    domains: tuple[tuple[str, int], ...] = ()
    stopped: str | None = None
    eval_kl: float | None = None


@dataclass(frozen=True)
class EventRow:
    id: int
    gen_id: int | None
    kind: str
    message: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Job:
    """The generation a training job is (or was last) working on."""

    gen_id: int
    parent_id: int | None
    status: str
    stage: str
    alive: bool
    steps: int
    reason: str = ""


@dataclass
class Training:
    """A job's progress, fed event by event; the UI keeps one and appends what is new."""

    gen_id: int
    parent_id: int | None = None
    status: str = "training"
    stage: str = "dataset"
    total: int = 0
    step: int = 0
    tokens_per_s: float = 0.0
    elapsed_s: float = 0.0
    lr: float = 0.0
    loss: list[tuple[int, float]] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)

    def feed(self, ev: EventRow) -> None:
        if ev.gen_id != self.gen_id:
            return
        d = ev.data
        if ev.kind == "progress" and "step" in d:
            self.step, self.total = int(d["step"]), int(d.get("total") or self.total)
            self.tokens_per_s = float(d.get("tokens_per_s") or 0.0)
            self.elapsed_s = float(d.get("elapsed_s") or self.elapsed_s)
            self.lr = float(d.get("lr") or 0.0)
            if d.get("loss") is not None:
                self.loss.append((self.step, float(d["loss"])))
        elif ev.message:
            self.stages.append(f"{ev.kind}: {ev.message}")
            if d.get("stage"):
                self.stage = str(d["stage"])

    @property
    def eta_s(self) -> float | None:
        if self.step <= 0 or self.total <= self.step or self.elapsed_s <= 0:
            return None
        return self.elapsed_s / self.step * (self.total - self.step)


@dataclass(frozen=True)
class FastRead:
    """What the half-second poll brings: the ladder page, the job, and events since the last poll."""

    signature: tuple[Any, ...]
    ladder: Ladder
    job: Job | None
    events: tuple[EventRow, ...] = ()
    history: tuple[EventRow, ...] = ()  # the job's earlier events, on the first read only
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboxFileRow:
    seen_at: datetime
    name: str
    status: str
    records: int
    duplicates: int
    bad: int
    reason: str | None


@dataclass(frozen=True)
class Inbox:
    files: tuple[InboxFileRow, ...] = ()
    total_files: int = 0
    by_status: tuple[tuple[str, int], ...] = ()
    conversations: int = 0
    pending: int = 0
    karma: float = 0.0
    threshold: float = 1.0
    quarantined: tuple[tuple[str, str], ...] = ()  # (file, reason)
    waiting: tuple[str, ...] = ()
    hold: str = ""  # why karma past the threshold does not train (a rejected batch waits for new data)


@dataclass(frozen=True)
class Scenario:
    """One reasoning scenario: the confidence trajectory in the data and the one a generation stated."""

    key: str
    prompt: str
    expected: tuple[float, ...]
    stated: tuple[float, ...] | None


@dataclass(frozen=True)
class Confidence:
    gen_id: int | None
    asked: tuple[Scenario, ...] = ()
    in_data: tuple[Scenario, ...] = ()  # scenarios from the data that no eval row covers yet
    data_total: int = 0


@dataclass(frozen=True)
class Metrics:
    columns: tuple[str, ...] = ()
    rows: tuple[dict[str, Any], ...] = ()
    recall_min: float = 0.0
    generalization_min: float = 0.0
    style_drift_max: float = 0.0

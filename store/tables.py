"""The store's tables: conversations, inbox files, generations, eval results, events and meta."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


def now() -> datetime:
    return datetime.now(timezone.utc)


class Conversation(SQLModel, table=True):
    """One training record from the inbox: a chat, a prompt/completion, a correction or a document."""

    id: int | None = Field(default=None, primary_key=True)
    content_sha: str = Field(index=True, unique=True)
    kind: str  # chat | completion | correction | document
    source_format: str
    source_file: str
    source_pos: int  # 1-based line or item number in the source file
    messages: str  # JSON list of {"role", "content", ...}; a document is one assistant-free "text" turn
    rejected: str | None = None  # correction pairs: the rejected answer
    domain: str = Field(default="general", index=True)
    stage: str = "conversations"  # curriculum stage
    persona: str | None = None
    quality: float = 0.0
    quality_reasons: str = "[]"  # JSON list of short reasons
    karma: float = 0.0
    # The inbox file it came from; while that file's ingest is unfinished no generation may take it.
    inbox_file_id: int | None = Field(default=None, index=True)
    meta: str = "{}"  # JSON: title, times, confidence trajectory, tags
    ingested_at: datetime = Field(default_factory=now, index=True)


class InboxFile(SQLModel, table=True):
    """A file the inbox has seen, keyed by content so a re-drop or a rename is not counted twice."""

    id: int | None = Field(default=None, primary_key=True)
    content_sha: str = Field(index=True, unique=True)
    name: str
    size: int
    status: str  # ingesting (not finished: its records are not trained on yet) | ingested | partial
    records: int = 0
    duplicates: int = 0
    bad: int = 0
    reason: str | None = None
    seen_at: datetime = Field(default_factory=now, index=True)


class Membership(SQLModel, table=True):
    """Which generation took which record, and how: new training data, held out, or replayed.

    One row per (generation, record); nothing is overwritten, so a generation's data stays its own
    whatever later generations take.
    """

    __table_args__ = (UniqueConstraint("gen_id", "conversation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    gen_id: int = Field(index=True)
    conversation_id: int = Field(index=True)
    split: str = Field(index=True)  # train | holdout | replay


class Generation(SQLModel, table=True):
    """One rung of the ladder. Which generation is active lives in Meta, not here."""

    id: int = Field(primary_key=True)  # the generation number, GEN_ID
    parent_id: int | None = Field(default=None, index=True)
    # training | candidate | promoted | rejected | rolled_back | failed | cancelled
    status: str = Field(default="training", index=True)
    stage: str = "dataset"  # dataset | train | merge | export | eval | gate | done
    created_at: datetime = Field(default_factory=now)
    finished_at: datetime | None = None
    parent_sha: str = ""
    child_sha: str | None = None
    data_delta_sha: str | None = None
    dataset_sha: str | None = None
    steps: int = 0
    lr: float = 0.0
    walltime_min: float | None = None
    loss_start: float | None = None
    loss_end: float | None = None
    eval_recall: float | None = None
    eval_generalization: float | None = None
    eval_style_drift: int | None = None
    eval_kl: float | None = None  # mean per-token KL divergence from the parent on the tone probes' answers
    n_recall: int | None = None  # how many items each score was measured on
    n_generalization: int | None = None
    suite_sha: str | None = None  # the agent suites it was asked (their items' SHA-256)
    readiness: str = "{}"  # JSON: the readiness report (loop.evals.readiness)
    n_new: int = 0
    n_replay: int = 0
    n_holdout: int = 0
    gates: str = "[]"  # JSON list of {name, value, op, threshold, passed}
    reason: str = ""  # why it was promoted, rejected, failed or rolled back
    override: bool = False  # approved by the user although a gate rejected it
    # Paths are relative to the workspace folder, so a workspace can be moved or copied.
    gguf_path: str | None = None
    weights_path: str | None = None  # fp32 folder; None once pruned
    job_dir: str | None = None
    job_pid: int | None = None  # shown to the user; whether the job lives is its lock's to say
    config_json: str = "{}"


class EvalResult(SQLModel, table=True):
    """One eval item asked of one generation, with the answer and how it scored."""

    id: int | None = Field(default=None, primary_key=True)
    gen_id: int = Field(index=True)
    eval: str = Field(index=True)  # probe | recall | generalization | style | confidence
    item_key: str
    prompt: str
    reference: str = ""
    answer: str = ""
    score: float = 0.0
    passed: bool = False
    detail: str = "{}"


class Event(SQLModel, table=True):
    """Progress and notices from the engine, read by the CLI and the UI."""

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=now, index=True)
    gen_id: int | None = Field(default=None, index=True)
    kind: str  # progress | stage | info | warning | error
    message: str = ""
    data: str = "{}"


class Meta(SQLModel, table=True):
    """Small named values: the active generation pointer, the stop-rule state."""

    key: str = Field(primary_key=True)
    value: str

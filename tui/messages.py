"""Messages shared across the app's screens and widgets; a message private to a widget is nested in it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from tui.screens.model import Confidence, Detail, FastRead, Inbox, Ladder, Metrics


@dataclass
class GenerationSelected(Message):
    """The user moved to a generation on the ladder."""

    gen_id: int


@dataclass
class EngineRequest(Message):
    """Ask the app to run one of tui.screens.engine's calls in a worker."""

    action: str
    args: tuple[Any, ...] = ()


@dataclass
class EngineDone(Message):
    """An engine call finished; `result` carries its one-line message."""

    action: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadRequest(Message):
    """Ask the app to read a view the screen now needs: detail, confidence, metrics or inbox."""

    what: str
    gen_id: int | None = None
    offset: int = 0


@dataclass
class LadderPeek(Message):
    """The first ladder page, read before the database stack has loaded."""

    ladder: Ladder


@dataclass
class StoreRead(Message):
    """The half-second poll found something new."""

    read: FastRead


@dataclass
class DetailRead(Message):
    detail: Detail | None


@dataclass
class InboxRead(Message):
    inbox: Inbox
    signature: tuple[Any, ...] = ()


@dataclass
class ConfidenceRead(Message):
    confidence: Confidence


@dataclass
class MetricsRead(Message):
    metrics: Metrics


@dataclass
class ChatLoading(Message):
    """The chat worker is loading a generation's GGUF."""

    label: str


@dataclass
class ChatPiece(Message):
    """A piece of the answer being streamed."""

    text: str


@dataclass
class ChatDone(Message):
    """The answer is complete (or was stopped, or failed with `error`)."""

    stopped: bool = False
    error: str | None = None


@dataclass
class LoopState(Message):
    """Which process runs the loop (`ladder run`) for this workspace: started now, found running, or none."""

    pid: int | None
    started: bool = False
    checked: bool = False  # a periodic look, not the app's first


@dataclass
class CompareRead(Message):
    """The selected generation against its parent on a suite (loop.evals.compare), or why not."""

    gen_id: int | None
    compare: dict

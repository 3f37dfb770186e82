"""The main screen: the ladder and its tabs on the left, the chat on the right, and the decision keys."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, TabbedContent, TabPane

from tui.messages import EngineRequest, GenerationSelected, ReadRequest
from tui.screens.decisions import DecisionKeys
from tui.screens.model import Confidence, Detail, Inbox, Job, Ladder, Metrics, Training
from tui.widgets.chat import ChatPane, ChatTarget
from tui.widgets.ladder import GenerationDetail, LadderTable
from tui.widgets.status import StatusLine

CHAT_MIN_WIDTH = 110  # below this many columns the chat starts hidden: the ladder needs ~80 for its decisions
LADDER_PAGE = 100


class MainScreen(DecisionKeys, Screen):
    BINDINGS = [
        # Help and Quit first: a narrow terminal cuts the footer from the right.
        Binding("question_mark", "app.help", "Help", id="help", tooltip="Every key and what it does"),
        Binding("q", "app.quit", "Quit", id="quit", tooltip="Quit; the loop and a generation in training go on"),
        Binding("a", "approve", "Approve", id="approve",
                tooltip="Make the selected generation active (an override if the gates rejected it)"),
        Binding("r", "reject", "Reject", id="reject", tooltip="Reject the selected generation"),
        Binding("b", "rollback", "Roll back", id="rollback",
                tooltip="Make the active generation's parent active at once; undo follows for a few seconds"),
        Binding("u", "undo", "Undo", id="undo",
                tooltip="Put back what the last rollback or override changed (offered for a few seconds after it)"),
        Binding("t", "train", "Train now", id="train",
                tooltip="Start a generation on the records not trained on yet"),
        Binding("e", "evaluate", "Re-run evals", id="evaluate", tooltip="Run the selected generation's evals again"),
        Binding("x", "cancel_training", "Cancel training", id="cancel",
                tooltip="Stop the running generation (press twice)"),
        Binding("i", "ingest", "Ingest", id="ingest", tooltip="Read the files waiting in the inbox now"),
        Binding("p", "teach", "Practice", id="teach",
                tooltip="Practice rounds and synthetic data: the plan, the teacher, the budget, what landed"),
        Binding("c", "focus_chat", "Chat", id="chat", tooltip="Type to the model in the chat pane"),
        Binding("h", "toggle_chat", "Hide/show chat", id="chat_toggle",
                tooltip="Hide the chat pane to give the ladder the whole width, or show it again"),
        Binding("ctrl+t", "chat_pick", "Chat with selected", id="chat_pick", show=False,
                tooltip="Chat: talk to the generation selected on the ladder; again to follow the active one"),
        Binding("Q", "quit_stop", "Quit and stop the loop", id="quit_stop", show=False,
                tooltip="Quit, and stop the loop (ladder run) watching this workspace; it cancels its training"),
        Binding("1", "tab('ladder')", "Ladder tab", id="tab_ladder", show=False, tooltip="The generations"),
        Binding("2", "tab('metrics')", "Metrics tab", id="tab_metrics", show=False,
                tooltip="The ledger and its plots"),
        Binding("3", "tab('confidence')", "Confidence tab", id="tab_confidence", show=False,
                tooltip="Confidence trajectories"),
        Binding("4", "tab('inbox')", "Inbox tab", id="tab_inbox", show=False, tooltip="Files, quarantine and karma"),
        Binding("5", "tab('training')", "Training tab", id="tab_training", show=False, tooltip="The running job"),
        Binding("6", "tab('compare')", "A/B tab", id="tab_compare", show=False,
                tooltip="The selected generation against its parent, on the same suite items"),
        Binding("left_square_bracket", "page(-1)", "Newer generations", id="page_newer", show=False,
                tooltip="Show the previous page of the ladder"),
        Binding("right_square_bracket", "page(1)", "Older generations", id="page_older", show=False,
                tooltip="Show the next page of the ladder, down to G0"),
    ]

    ladder: reactive[Ladder | None] = reactive(None, always_update=True)
    job: reactive[Job | None] = reactive(None)
    training: reactive[Training | None] = reactive(None, always_update=True)
    inbox: reactive[Inbox | None] = reactive(None)
    detail: reactive[Detail | None] = reactive(None)
    confidence: reactive[Confidence | None] = reactive(None)
    compare: reactive[dict | None] = reactive(None)
    metrics: reactive[Metrics | None] = reactive(None)
    now: reactive[datetime | None] = reactive(None)

    def __init__(self, workspace: str, chats_dir: Path | None = None) -> None:
        super().__init__()
        self.workspace = workspace
        self.chats_dir = chats_dir
        self.selected: int | None = None
        self.page_offset = 0
        self.undo: tuple[int, int] | None = None
        self.undo_kind = "rollback"
        self.chat_choice: bool | None = None  # None: shown or hidden by the width (on_resize)
        self._undo_timer = None
        self._cancel_armed_at: float | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        with Horizontal(id="body"):
            with TabbedContent(id="tabs", initial="ladder"):
                with TabPane("Ladder", id="ladder"):
                    yield LadderTable(id="ladder-table")
                    yield GenerationDetail(id="detail")
                yield TabPane("Metrics", id="metrics")
                # The other tabs are built when first opened: fewer widgets to style before the first screen.
                yield TabPane("Confidence", id="confidence")
                yield TabPane("Inbox", id="inbox")
                yield TabPane("Training", id="training")
                yield TabPane("A/B", id="compare")
            yield ChatPane(history_dir=self.chats_dir, id="chat")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(StatusLine).workspace = self.workspace
        self.query_one(LadderTable).focus()

    # Attributes down: what the app read is handed to the widgets that show it.
    def _hand(self, selector: str, **values: object) -> None:
        """Set attributes on the widgets that show them; while the app closes they may already be gone."""
        for widget in self.query(selector):
            for name, value in values.items():
                setattr(widget, name, value)

    def watch_ladder(self, ladder: Ladder | None) -> None:
        if ladder is None:
            return
        self._hand("LadderTable, StatusLine", ladder=ladder)
        for chat in self.query(ChatPane):
            if ladder.active is not None and (chat.target is None or not chat.target.pinned):
                chat.target = ChatTarget(ladder.active.id, ladder.active.gguf_path)

    def show_loop(self, pid: int | None) -> None:
        """Say who runs the loop (only an app that follows one calls this)."""
        self._hand("StatusLine", loop=f"loop pid {pid}" if pid else "loop stopped")

    def action_quit_stop(self) -> None:
        self.post_message(EngineRequest("stop_loop"))

    def watch_now(self, now: datetime | None) -> None:
        self._hand("LadderTable, InboxPane", now=now)

    def watch_inbox(self, inbox: Inbox | None) -> None:
        self._hand("InboxPane, StatusLine", inbox=inbox)

    def watch_job(self, job: Job | None) -> None:
        self._hand("StatusLine, TrainingPane", job=job)
        self.refresh_bindings()

    def watch_training(self, training: Training | None) -> None:
        self._hand("StatusLine, TrainingPane", training=training)

    def watch_detail(self, detail: Detail | None) -> None:
        if detail is not None and detail.gen.id == self.selected:
            self._hand("GenerationDetail", detail=detail)

    def watch_confidence(self, c: Confidence | None) -> None:
        self._hand("ConfidencePane", confidence=c)

    def watch_compare(self, c: dict | None) -> None:
        self._hand("ComparePane", compare=c)

    def watch_metrics(self, m: Metrics | None) -> None:
        self._hand("MetricsPane", metrics=m)

    # Messages up from the widgets.
    def on_generation_selected(self, event: GenerationSelected) -> None:
        event.stop()
        if event.gen_id == self.selected:
            return
        self.selected = event.gen_id
        self.post_message(ReadRequest("detail", event.gen_id))
        if self.query_one(TabbedContent).active in ("confidence", "compare"):
            self.post_message(ReadRequest(self.query_one(TabbedContent).active, event.gen_id))

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane
        if not pane.children and pane.id != "ladder":
            await pane.mount(self._build_tab(pane.id))
        if pane.id in ("metrics", "confidence", "inbox", "compare"):
            self.post_message(ReadRequest(pane.id, self.selected))
        if self.focused is None:
            self._focus_tab(pane.id)

    def _build_tab(self, tab: str):
        # Imported here: plotext loads with the first tab that plots.
        if tab == "metrics":
            from tui.widgets.metrics import MetricsPane  # noqa: PLC0415

            return MetricsPane(self.metrics, id="metrics-pane")
        if tab == "training":
            from tui.widgets.training import TrainingPane  # noqa: PLC0415

            return TrainingPane(self.training, self.job, id="training-pane")
        if tab == "compare":
            from tui.widgets.compare import ComparePane  # noqa: PLC0415

            return ComparePane(self.compare, id="compare-pane")
        if tab == "confidence":
            from tui.widgets.confidence import ConfidencePane  # noqa: PLC0415

            return ConfidencePane(self.confidence, id="confidence-pane")
        from tui.widgets.inbox import InboxPane  # noqa: PLC0415

        return InboxPane(self.inbox, self.now, id="inbox-pane")

    def on_chat_pane_left(self, event: ChatPane.Left) -> None:
        self.action_tab(self.query_one(TabbedContent).active or "ladder")

    def action_chat_pick(self) -> None:
        self.on_chat_pane_pick_asked(None)

    def on_chat_pane_pick_asked(self, event: ChatPane.PickAsked | None) -> None:
        chat = self.query_one(ChatPane)
        if chat.target is not None and chat.target.pinned and chat.target.gen_id == self.selected:
            active = self.ladder.active if self.ladder else None
            chat.target = ChatTarget(active.id, active.gguf_path) if active else None
            self.notify("The chat follows the active generation again.", markup=False)
            return
        row = self._selected_row()
        if row is None:
            self.notify("Select a generation on the ladder first.", severity="warning")
            return
        chat.target = ChatTarget(row.id, row.gguf_path, pinned=True)
        self.notify(f"The chat talks to G{row.id} now; ctrl+t on it again follows the active one.", markup=False)

    def _selected_row(self):
        if self.ladder is None or self.selected is None:
            return None
        if self.detail is not None and self.detail.gen.id == self.selected:
            return self.detail.gen
        return next((g for g in self.ladder.rows if g.id == self.selected), None)

    def action_ingest(self) -> None:
        self.post_message(EngineRequest("ingest"))

    def action_teach(self) -> None:
        from tui.screens.teach import TeachScreen  # noqa: PLC0415 - the dialog loads on first use

        self.app.push_screen(TeachScreen(self.app.cfg))

    def action_focus_chat(self) -> None:
        self._show_chat(True)
        self.query_one("#chat-input").focus()

    def action_toggle_chat(self) -> None:
        self._show_chat(not self.query_one(ChatPane).display)

    def _show_chat(self, shown: bool, by_user: bool = True) -> None:
        """Show or hide the chat pane; the user's choice holds until they change it, whatever the width."""
        if by_user:
            self.chat_choice = shown
        chat = self.query_one(ChatPane)
        if chat.display == shown:
            return
        if not shown and chat.has_focus_within:
            self.query_one(LadderTable).focus()
        chat.display = shown

    def on_resize(self, event) -> None:
        if self.chat_choice is None:  # not chosen yet: the chat shows where it leaves the ladder its columns
            self._show_chat(event.size.width >= CHAT_MIN_WIDTH, by_user=False)

    def action_tab(self, tab: str) -> None:
        # Focus left in the old pane would pull the tabs back to it (TabPane.Focused), so drop it first.
        self.set_focus(None)
        tabs = self.query_one(TabbedContent)
        if tabs.active == tab:
            self._focus_tab(tab)
        tabs.active = tab  # TabActivated then focuses the tab's table

    def _focus_tab(self, tab: str) -> None:
        pane = self.query_one(f"TabPane#{tab}")
        targets = [w for w in pane.query("DataTable, VerticalScroll") if w.focusable]
        if targets:
            targets[0].focus()

    def action_page(self, step: int) -> None:
        total = self.ladder.total if self.ladder else 0
        offset = max(0, min(self.page_offset + step * LADDER_PAGE, max(0, total - 1) // LADDER_PAGE * LADDER_PAGE))
        if offset != self.page_offset:
            self.page_offset = offset
            self.post_message(ReadRequest("ladder", offset=offset))

"""The inbox: files arriving, records ingested, duplicates and quarantined files with reasons, and karma."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Label, ProgressBar, Static

from tui.screens.model import Inbox
from tui.widgets.text import age, one_line, text

STATUS_STYLE = {"ingested": "green", "partial": "yellow", "quarantined": "red"}


class InboxPane(Vertical):
    inbox: reactive[Inbox | None] = reactive(None)
    now: reactive[datetime | None] = reactive(None)

    def __init__(self, inbox: Inbox | None = None, now: datetime | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(InboxPane.inbox, inbox)
        self.set_reactive(InboxPane.now, now)

    def on_mount(self) -> None:
        self._show()

    def compose(self) -> ComposeResult:
        yield Static(Text("Reading the inbox…", style="dim"), id="inbox-summary")
        with Horizontal(id="karma-row"):
            yield Label("karma", id="karma-label")
            yield ProgressBar(total=1.0, show_eta=False, show_percentage=False, id="karma-bar")
            yield Label("", id="karma-figure")
        yield Static(Text("Files seen", style="bold"), classes="section")
        yield DataTable(id="inbox-files", cursor_type="row")
        yield Static(Text("Quarantined", style="bold"), classes="section")
        yield DataTable(id="quarantine", cursor_type="row")

    def watch_inbox(self) -> None:
        self._show()

    def watch_now(self) -> None:
        self._show()

    def _show(self) -> None:
        i, now = self.inbox, self.now
        if i is None or now is None or not self.query("#inbox-files"):
            return
        counts = " · ".join(f"{n} {k}" for k, n in i.by_status) or "no file yet"
        waiting = f"{len(i.waiting)} waiting to be read" if i.waiting else "nothing waiting"
        summary = Text.assemble(
            ("Inbox  ", "bold"), f"{i.total_files} file(s): {counts}  │  {i.conversations:,} record(s) in the store, "
            f"{i.pending:,} not trained on yet  │  {waiting}")
        if i.waiting:
            summary.append("\n  waiting: ", style="dim")
            summary.append_text(one_line(", ".join(i.waiting[:8]) + (" …" if len(i.waiting) > 8 else ""), 200))
        self.query_one("#inbox-summary", Static).update(summary)
        self.query_one("#karma-bar", ProgressBar).update(total=max(i.threshold, 1e-9), progress=min(i.karma, i.threshold))
        ready = " ready to train" if i.karma >= i.threshold and not i.hold else ""
        if i.hold:
            ready = f"  not training: {i.hold}"
        self.query_one("#karma-figure", Label).update(Text(f"{i.karma:.1f} / {i.threshold:.1f}{ready}"))
        refill(self.query_one("#inbox-files", DataTable), ("seen", "file", "status", "records", "duplicates", "bad",
                                                             "reason"),
               [(Text(age(f.seen_at, now)), one_line(f.name, 48), Text(f.status, STATUS_STYLE.get(f.status, "")),
                 Text(str(f.records)), Text(str(f.duplicates)), Text(str(f.bad), "red" if f.bad else ""),
                 one_line(f.reason or "", 60, "dim")) for f in i.files])
        refill(self.query_one("#quarantine", DataTable), ("file", "reason"),
               [(one_line(name, 40, "red"), one_line(reason, 100)) for name, reason in i.quarantined]
               or [(Text("none", "dim"), text("no file was quarantined", "dim"))])


def refill(table: DataTable, columns: tuple[str, ...], rows: list[tuple[Text, ...]]) -> None:
    """Replace a table's rows only when what it shows changed, keeping the cursor where the user left it."""
    shown = tuple(tuple(c.plain for c in r) for r in rows)
    if getattr(table, "_shown", None) == shown:
        return
    table._shown = shown
    row = table.cursor_row
    table.clear(columns=True)  # fresh columns, so the header is measured with the rows
    table.add_columns(*columns)
    table.add_rows(rows)
    if rows:
        table.move_cursor(row=min(row, len(rows) - 1), animate=False)

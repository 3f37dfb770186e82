"""Confidence trajectories: the one in the data beside the one the selected generation states, per scenario."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from tui.screens.model import Confidence
from tui.widgets.text import one_line

BARS = "▁▂▃▄▅▆▇█"
EMPTY = (
    "No confidence evals for G{gen} yet.\n\n"
    "Reasoning (CHAOS) scenarios carry a confidence trajectory in their data, for example 70 → 50 → 85. "
    "When a generation is evaluated on the held-out scenarios, the 'Confidence: N%' lines it states are "
    "recorded as eval rows named 'confidence' and appear here beside the data's trajectory, one line per scenario."
)


def trajectory(values: tuple[float, ...] | None) -> str:
    if not values:
        return "–"
    return " → ".join(f"{v:g}" for v in values)


def spark(values: tuple[float, ...] | None) -> str:
    """Confidences (0–100) as bar glyphs, so the shapes of two trajectories compare at a glance."""
    if not values:
        return ""
    return "".join(BARS[min(len(BARS) - 1, max(0, int(v / 100 * (len(BARS) - 1) + 0.5)))] for v in values)


def gap(expected: tuple[float, ...], stated: tuple[float, ...] | None) -> str:
    if not expected or not stated:
        return "–"
    return f"{max(abs(a - b) for a, b in zip(expected, stated)):g}"


class ConfidencePane(Vertical):
    confidence: reactive[Confidence | None] = reactive(None)

    def __init__(self, confidence: Confidence | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(ConfidencePane.confidence, confidence)

    def on_mount(self) -> None:
        self.watch_confidence(self.confidence)

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a generation to compare its confidence trajectories.", style="dim"),
                     id="confidence-note")
        yield DataTable(id="confidence-table", cursor_type="row")

    def watch_confidence(self, c: Confidence | None) -> None:
        if c is None or not self.query(DataTable):
            return
        table = self.query_one(DataTable)
        rows = []
        for s in c.asked + c.in_data:
            stated = trajectory(s.stated) if s.stated is not None else "not asked yet"
            rows.append((one_line(s.key, 28), Text(trajectory(s.expected)), Text(spark(s.expected), "cyan"),
                         Text(stated, "" if s.stated is not None else "dim"), Text(spark(s.stated), "yellow"),
                         Text(gap(s.expected, s.stated)), one_line(s.prompt, 60, "dim")))
        # Fresh columns sized from this generation's cells: left to the table, widths measured on a later
        # idle could stay at the headers' when the rows arrived while the pane was being laid out.
        table.clear(columns=True)
        labels = ("scenario", "in the data", "", "stated", "", "max gap", "prompt")
        for i, label in enumerate(labels):
            table.add_column(label, width=max([cell_len(label)] + [r[i].cell_len for r in rows]))
        for row in rows:
            table.add_row(*row)
        note = self.query_one("#confidence-note", Static)
        if c.asked:
            note.update(Text.assemble((f"G{c.gen_id}", "bold"), f": {len(c.asked)} scenario(s) asked; the data has "
                                      f"{c.data_total} with a confidence trajectory."))
        else:
            body = EMPTY.format(gen=c.gen_id if c.gen_id is not None else "?")
            if c.data_total:
                body += f"\n\nThe data has {c.data_total} scenario(s) with a trajectory; the first are listed below."
            note.update(Text(body, style="dim"))
        table.display = bool(c.asked or c.in_data)

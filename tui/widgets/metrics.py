"""Ledger metrics: the lineage ledger as a table, and recall, generalization, style drift and loss across
generations with the gate thresholds drawn in. Imported only when the tab is first opened (plotext)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable
from textual_plotext import PlotextPlot

from tui.screens.model import Metrics
from tui.widgets.text import one_line

HASHES = {"parent_sha", "child_sha", "data_delta_sha"}


def series(rows: tuple[dict, ...], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        value = r.get(key)
        if value not in ("", None):
            xs.append(int(r["GEN_ID"]))
            ys.append(float(value))
    return xs, ys


def draw(widget: PlotextPlot, title: str, lines: list[tuple[str, tuple[list[int], list[float]]]],
         threshold: float | None = None) -> None:
    p = widget.plt
    p.clear_figure()
    p.title(title)
    p.xlabel("generation")
    drawn = False
    ticks: set[int] = set()
    for label, (xs, ys) in lines:
        if xs:
            p.plot(xs, ys, label=label, marker="braille")
            drawn = True
            ticks.update(xs)
    if ticks:
        every = sorted(ticks)[:: max(1, len(ticks) // 8)]
        p.xticks(every, [f"G{x}" for x in every])
    if threshold is not None:
        p.hline(threshold, "red")
    if not drawn:
        p.title(title + " (no evaluated generation yet)")
    widget.refresh()


class MetricsPane(VerticalScroll):
    metrics: reactive[Metrics | None] = reactive(None)

    def __init__(self, metrics: Metrics | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(MetricsPane.metrics, metrics)

    def on_mount(self) -> None:
        self.watch_metrics(self.metrics)

    def compose(self) -> ComposeResult:
        yield DataTable(id="ledger-table", cursor_type="row")
        with Grid(id="plots"):
            yield PlotextPlot(id="plot-recall")
            yield PlotextPlot(id="plot-generalization")
            yield PlotextPlot(id="plot-drift")
            yield PlotextPlot(id="plot-loss")

    def watch_metrics(self, m: Metrics | None) -> None:
        if m is None or not self.query("#ledger-table"):
            return
        table = self.query_one(DataTable)
        table.clear(columns=True)
        table.add_columns(*m.columns)
        for r in reversed(m.rows):  # newest first, like the ladder
            table.add_row(*(self._cell(k, r.get(k, "")) for k in m.columns))
        rows = m.rows
        draw(self.query_one("#plot-recall", PlotextPlot), f"recall (gate ≥ {m.recall_min:g})",
             [("recall", series(rows, "eval_recall"))], m.recall_min)
        draw(self.query_one("#plot-generalization", PlotextPlot), f"generalization (gate ≥ {m.generalization_min:g})",
             [("generalization", series(rows, "eval_generalization"))], m.generalization_min)
        draw(self.query_one("#plot-drift", PlotextPlot), f"style drift (gate < {m.style_drift_max:g})",
             [("style drift", series(rows, "eval_style_drift"))], m.style_drift_max)
        draw(self.query_one("#plot-loss", PlotextPlot), "loss (start, end)",
             [("start", series(rows, "loss_start")), ("end", series(rows, "loss_end"))])

    @staticmethod
    def _cell(key: str, value: object) -> Text:
        if key in HASHES:
            return one_line(str(value)[:12] or "–", 12, "dim")
        if key == "reason":
            return one_line(value, 60, "dim")
        if key == "status":
            return Text(str(value), {"rejected": "red", "rolled_back": "magenta", "candidate": "yellow"}.get(str(value), ""))
        return one_line(value if value != "" else "–", 24)

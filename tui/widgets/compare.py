"""A/B: the selected generation against its parent on the same suite items, both answers side by side."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from tui.widgets.text import one_line, text

OUTCOME = {"won": ("▲ won", "bold green"), "lost": ("▼ lost", "bold red"), "same": ("= same", "dim")}


def headline(c: dict[str, Any]) -> Text:
    a, b = c["a"], c["b"]
    lo, hi = c["ci95"]
    return Text.assemble((f"G{b} against G{a}", "bold"), f" on {c['n']} held-out items of the '{c['suite']}' suite: ",
                         (f"{c['b_rate']:.2f}", "bold"), f" vs {c['a_rate']:.2f}, difference ",
                         (f"{c['diff']:+.2f}", "bold green" if lo > 0 else "bold red" if hi < 0 else "bold"),
                         f" (95% CI {lo:+.2f} to {hi:+.2f}, paired bootstrap; McNemar p = {c['p_mcnemar']:.3g})  ",
                         (f"won {c['won']} · lost {c['lost']} · same {c['same']}", "dim"))


class ComparePane(Vertical):
    compare: reactive[dict[str, Any] | None] = reactive(None)

    def __init__(self, compare: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(ComparePane.compare, compare)

    def compose(self) -> ComposeResult:
        yield Static(Text("Select a generation: it is compared with its parent on the default suite.", style="dim"),
                     id="compare-head")
        yield DataTable(id="compare-table", cursor_type="row")
        with Horizontal(id="compare-answers"):
            with VerticalScroll():
                yield Static("", id="compare-a")
            with VerticalScroll():
                yield Static("", id="compare-b")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("outcome", "item", "category", "A", "B", "A answer", "B answer")
        self.watch_compare(self.compare)

    def watch_compare(self, c: dict[str, Any] | None) -> None:
        if c is None or not self.query(DataTable):
            return
        head, table = self.query_one("#compare-head", Static), self.query_one(DataTable)
        table.clear()
        if c.get("error"):
            head.update(text(c["error"], "yellow"))
            return
        if c.get("pending"):
            head.update(Text(f"Comparing G{c['b']} with G{c['a']} on the suite (answers not stored yet are asked "
                             "now)…", style="dim italic"))
            return
        head.update(headline(c))
        for i in sorted(c["items"], key=lambda i: ("won", "lost", "same").index(i["outcome"])):
            label, style = OUTCOME[i["outcome"]]
            table.add_row(Text(label, style=style), text(i["id"]), text(i["category"]), _mark(i["a_passed"]),
                          _mark(i["b_passed"]), one_line(i["a_answer"], 40), one_line(i["b_answer"], 40), key=i["id"])
        if c["items"]:
            self._show(c["items"][0]["id"])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value:
            self._show(event.row_key.value)

    def _show(self, item_id: str) -> None:
        c = self.compare or {}
        item = next((i for i in c.get("items", []) if i["id"] == item_id), None)
        if item is None:
            return
        for side, key in (("a", "a"), ("b", "b")):
            gen = c[key]
            body = Text.assemble((f"G{gen}  ", "bold"), _mark(item[f"{side}_passed"]), "  ",
                                 text(item[f"{side}_reason"], "dim"), "\n", text(item["prompt"], "italic"), "\n\n",
                                 text(item[f"{side}_answer"] or "(no answer)"))
            self.query_one(f"#compare-{side}", Static).update(body)


def _mark(passed: bool) -> Text:
    return Text("✓", style="green") if passed else Text("✗", style="red")

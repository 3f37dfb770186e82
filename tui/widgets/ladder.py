"""The ladder: one row per generation, newest on top and G0 at the bottom, and the selected one's detail."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group
from rich.text import Text
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import DataTable, Static

from tui.messages import GenerationSelected
from tui.screens.model import Detail, GateCheck, GenRow, Ladder
from tui.widgets.text import age, num, one_line, text

# How each status looks: the rung glyph and the style of the row.
LOOK = {
    "active": ("▶", "bold green"),
    "promoted": ("│", "green"),
    "candidate": ("◆", "bold yellow"),
    "rejected": ("✗", "red"),
    "rolled_back": ("↶", "magenta"),
    "training": ("…", "cyan"),
    "failed": ("!", "red dim"),
    "cancelled": ("·", "dim"),
}
# What decides a generation first (a narrow terminal cuts from the right), then how it was made.
COLUMNS = ("", "gen", "status", "recall (n)", "general. (n)", "drift", "ready", "age", "steps", "loss start → end",
           "parent", "reason")


def status_of(g: GenRow, active_id: int | None) -> str:
    return "active" if g.id == active_id else g.status


def cells(g: GenRow, active_id: int | None, now: datetime) -> tuple[Text, ...]:
    status = status_of(g, active_id)
    glyph, style = LOOK.get(status, ("?", ""))
    loss = f"{num(g.loss_start)} → {num(g.loss_end)}" if g.loss_start is not None else "–"
    shown = status.upper() if status == "active" else status.replace("_", " ")
    if status == "training":
        shown = f"training: {g.stage}"
    if g.override:
        shown += " (override)"
    return (
        Text(glyph, style=style), Text(f"G{g.id}", style=style), Text(shown, style=style),
        Text(with_n(g.recall, g.n_recall)), Text(with_n(g.generalization, g.n_generalization)),
        Text(num(g.style_drift)), ready_cell(g), Text(age(g.created_at, now)), Text(str(g.steps)), Text(loss),
        Text("–" if g.parent_id is None else f"G{g.parent_id}"), one_line(g.reason, 48, "dim"),
    )


def with_n(value: float | None, n: int | None) -> str:
    """A score and the number of items it was measured on: '0.96 (51)'."""
    if value is None:
        return "–"
    return f"{value:.2f} ({n})" if n is not None else f"{value:.2f}"


def ready_cell(g: GenRow) -> Text:
    if g.ready is None:
        return Text("–", style="dim")
    rate = "" if g.suite_rate is None else f" {g.suite_rate:.2f}"
    return Text(("✓" if g.ready else "✗") + rate, style="green" if g.ready else "red")


class LadderTable(DataTable):
    """The generations as a ladder; moving the cursor selects one (GenerationSelected goes up)."""

    ladder: reactive[Ladder | None] = reactive(None, always_update=True)
    now: reactive[datetime | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._shown: tuple = ()
        self._placed_cursor = False

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    @property
    def selected(self) -> int | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return int(key.value) if key.value is not None else None

    def watch_ladder(self) -> None:
        self._rebuild()

    def watch_now(self) -> None:
        self._rebuild()

    def _rebuild(self) -> None:
        ladder, now = self.ladder, self.now
        if ladder is None or now is None:
            return
        rows = tuple((g.id, cells(g, ladder.active_id, now)) for g in ladder.rows)
        shown = tuple((i, tuple(c.plain for c in cs), tuple(c.style for c in cs)) for i, cs in rows)
        if shown == self._shown:
            return
        keep = self.selected
        self._shown = shown
        self.clear()
        for gen_id, cs in rows:
            self.add_row(*cs, key=str(gen_id))
        target = keep if keep is not None and self._placed_cursor else ladder.active_id
        ids = [i for i, _ in rows]
        if target in ids:
            self.move_cursor(row=ids.index(target), scroll=True)
            self._placed_cursor = True
        elif ids:
            self._placed_cursor = True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if event.row_key.value is not None:
            self.post_message(GenerationSelected(int(event.row_key.value)))


class GenerationDetail(VerticalScroll):
    """Hashes, data delta, config used, gate decisions with their thresholds, and the stop-rule state."""

    detail: reactive[Detail | None] = reactive(None)

    def compose(self):
        yield Static(Text("Select a generation on the ladder to see its detail.", style="dim"), id="detail-body")


    def watch_detail(self, d: Detail | None) -> None:
        for body in self.query("#detail-body") if d is not None else ():
            body.update(render_detail(d))


def _row(label: str, *parts: Text | str | tuple[str, str]) -> Text:
    return Text.assemble((f"{label:<8}", "dim"), *parts)


def render_detail(d: Detail) -> Group:
    g = d.gen
    status = "active" if d.active else g.status
    glyph, style = LOOK.get(status, ("?", ""))
    head = Text.assemble((f"{glyph} G{g.id}  ", f"bold {style}"), (status.upper().replace("_", " "), f"bold {style}"),
                         ("  from " + ("the base model" if g.parent_id is None else f"G{g.parent_id}") + "  ", "dim"),
                         text(g.reason))
    lines: list[Text] = [head]
    base = g.parent_id is None  # G0 trained on nothing: no data hashes, data, settings or losses to show
    for label, value in (("parent", d.parent_sha), ("child", d.child_sha)) + \
            (() if base else (("data Δ", d.data_delta_sha), ("dataset", d.dataset_sha))):
        lines.append(_row(label, text(value or "–")))
    if base:
        lines.append(_row("data", Text("none: the base model as converted, trained on nothing", style="dim")))
    else:
        data = _row("data", f"new {d.n_new} · replay {d.n_replay} · held out {d.n_holdout}")
        if d.domains:
            data.append("   domains ", style="dim")
            data.append_text(text(" · ".join(f"{k} {n}" for k, n in d.domains)))
        lines.append(data)
    if d.sources:
        sources = Text(" · ").join(Text.assemble(text(f), (f" {sp} {n}", "dim")) for f, sp, n in d.sources)
        lines.append(_row("sources", sources))
    lines.append(_row("evals", evals_line(d)))
    lines += readiness_lines(g.readiness)
    walltime = "–" if d.walltime_min is None else f"{d.walltime_min:.1f} min"
    if not base:
        # loss: the mean of the first and of the last tenth of the steps (loop.train.sft.loss_ends)
        lines.append(_row("train", f"steps {g.steps} · lr {d.lr:g} · {walltime} · loss {num(g.loss_start)} → "
                                   f"{num(g.loss_end)}"))
        if d.settings:
            lines.append(_row("config", text(" · ".join(f"{k} {v}" for k, v in d.settings), "dim")))
    else:
        lines.append(_row("made", f"converted, exported and evaluated in {walltime}"))
    gates = Text()
    for c in d.gates:
        gates.append_text(Text.assemble(gate_text(c, g), "    "))
    lines.append(_row("gates", gates if d.gates else Text("no gate decision (the base model, or not evaluated yet)",
                                                          style="dim")))
    if d.stopped:
        lines.append(_row("stop", Text("STOPPED ", style="bold red"), text(d.stopped)))
    else:
        lines.append(_row("stop", Text("not triggered: training goes on when karma reaches the threshold",
                                       style="dim")))
    return Group(*lines)


def gate_text(c: GateCheck, g: GenRow) -> Text:
    """One gate's decision: ✓/✗, its name, the value measured (with its item count) and the bar applied."""
    mark, mstyle = ("✓ ", "green") if c.passed else ("✗ ", "bold red")
    n = {"recall": g.n_recall, "recall_vs_parent": g.n_recall, "generalization": g.n_generalization}.get(c.name)
    value = "missing" if c.value is None else f"{c.value:.3g}" + (f" ({n})" if n is not None else "")
    op = {">=": "≥", "<=": "≤"}.get(c.op, c.op)
    # A bar raised or set from the parent says so; one straight from the config is what the config says.
    basis = f" ({c.basis.split(';')[0]})" if c.basis and not c.basis.startswith("gates.") else ""
    return Text.assemble((mark, mstyle), text(c.name.replace("_", " ")), f" {value} ",
                         (f"{op} {c.threshold:.3g}{basis}", "dim"))


def evals_line(d: Detail) -> Text:
    g = d.gen
    parts = [f"recall {with_n(g.recall, g.n_recall)}", f"generalization {with_n(g.generalization, g.n_generalization)}",
             f"style drift {num(g.style_drift)}"]
    if d.eval_kl is not None:
        parts.append(f"KL from parent {d.eval_kl:.4f}")
    return Text(" · ".join(parts))


def readiness_lines(report: dict) -> list[Text]:
    """The readiness report: per category passed/total, rate against its minimum, then the blockers."""
    cats = report.get("categories") or {}
    if not cats and not report.get("blockers"):
        return [_row("ready", Text("not measured (evaluated before the agent suites)", style="dim"))]
    head = Text("READY" if report.get("ready") else "NOT READY", style="bold green" if report.get("ready") else "bold red")
    line = Text.assemble(head, "   ")
    for name, c in cats.items():
        floor = c.get("min")
        ok = floor is None or c["rate"] >= floor
        line.append_text(Text.assemble((("✓ " if ok else "✗ "), "green" if ok else "red"), text(name),
                                       f" {c['passed']}/{c['total']} {c['rate']:.2f}",
                                       ("" if floor is None else f" ≥ {floor:.2f}", "dim"), "   "))
    out = [_row("ready", line)]
    for b in report.get("blockers", [])[:3]:
        out.append(_row("", Text("blocker ", style="dim"), text(b)))
    return out

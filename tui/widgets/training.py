"""Training: a live loss curve, step / total, tokens per second, elapsed and time left, then the stages.
Imported only when the tab is first opened (plotext)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static
from textual_plotext import PlotextPlot

from tui.screens.model import Job, Training
from tui.widgets.text import duration, num, text

STAGES = ("dataset", "replay", "train", "dpo", "export", "eval", "gate", "done")
# Stages a generation runs only when its data calls for them: shown after the stage named, while they run.
OCCASIONAL = {"facts": "train", "kto": "dpo"}


class TrainingPane(Vertical):
    training: reactive[Training | None] = reactive(None, always_update=True)
    job: reactive[Job | None] = reactive(None)

    def __init__(self, training: Training | None = None, job: Job | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.set_reactive(TrainingPane.training, training)
        self.set_reactive(TrainingPane.job, job)

    def on_mount(self) -> None:
        self._show()

    def compose(self) -> ComposeResult:
        yield Static(Text("No generation has trained in this workspace yet: press t to train now.", style="dim"),
                     id="training-title")
        yield ProgressBar(total=1, show_eta=False, id="training-bar")
        yield Static("", id="training-stats")
        yield PlotextPlot(id="loss-plot")
        yield Static("", id="training-log")

    def watch_training(self) -> None:
        self._show()

    def watch_job(self) -> None:
        self._show()

    def _show(self) -> None:
        t, job = self.training, self.job
        if t is None or job is None or not self.query("#training-title"):
            return
        live = job.alive
        state = f"training from G{t.parent_id}" if live else job.status.replace("_", " ")
        title = Text.assemble((f"G{t.gen_id} ", "bold"), (state, "bold cyan" if live else "bold"))
        title.append("   stages: ")
        current = job.stage
        shown = stages_shown(current)
        for s in shown:
            title.append(f" {s} ", style="reverse bold" if s == current and live else
                         ("green" if shown.index(s) < shown.index(current) else "dim") if current in shown else "dim")
        if not live and job.reason:
            title.append("\n")
            title.append_text(text(job.reason, "dim"))
        self.query_one("#training-title", Static).update(title)
        total = t.total or job.steps or 1
        self.query_one("#training-bar", ProgressBar).update(total=total, progress=min(t.step, total))
        last = t.loss[-1][1] if t.loss else None
        if not t.loss and not live:
            self.query_one("#training-stats", Static).update(Text(
                f"G{t.gen_id} left no step-by-step progress in the store; its totals are on the ladder.", style="dim"))
        stats = (f"step {t.step}/{total}   loss {num(last)}   {t.tokens_per_s:.0f} tokens/s   elapsed "
                 f"{duration(t.elapsed_s)}   time left {duration(t.eta_s) if live else '–'}   lr {t.lr:.2g}")
        if t.loss or live:
            self.query_one("#training-stats", Static).update(Text(stats))
        plot = self.query_one("#loss-plot", PlotextPlot)
        p = plot.plt
        p.clear_figure()
        p.title(f"G{t.gen_id} training loss")
        p.xlabel("step")
        if t.loss:
            steps = [s for s, _ in t.loss]
            p.plot(steps, [v for _, v in t.loss], marker="braille")
            p.xticks(sorted(set(steps))[:: max(1, len(set(steps)) // 8)])
        plot.refresh()
        log = Text()
        for line in t.stages[-8:]:
            log.append_text(text(line))
            log.append("\n")
        self.query_one("#training-log", Static).update(log)


def stages_shown(current: str | None) -> tuple[str, ...]:
    """The stage row: the usual stages, and an occasional one in its place while it runs."""
    after = OCCASIONAL.get(current or "")
    if after is None:
        return STAGES
    at = STAGES.index(after) + 1
    return STAGES[:at] + (current,) + STAGES[at:]

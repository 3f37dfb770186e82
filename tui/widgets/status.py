"""One line at the top: the workspace, the active generation, karma, the running job and the stop rule."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui.screens.model import Inbox, Job, Ladder, Training
from tui.widgets.text import duration, text


class StatusLine(Static):
    workspace: reactive[str] = reactive("")
    ladder: reactive[Ladder | None] = reactive(None)
    inbox: reactive[Inbox | None] = reactive(None)
    job: reactive[Job | None] = reactive(None)
    training: reactive[Training | None] = reactive(None, always_update=True)
    loop: reactive[str | None] = reactive(None)  # who runs the loop, when the app follows one

    def render(self) -> Text:
        out = Text.assemble(("Ladder ", "bold"), text(self.workspace, "dim"))
        ladder = self.ladder
        if ladder is None:
            out.append("  reading the store…", style="dim italic")
            return out
        out.append("  │  ")
        out.append(f"active G{ladder.active_id}" if ladder.active else "no generation yet: run 'ladder init'",
                   style="bold green" if ladder.active else "bold red")
        out.append(f"  │  {ladder.total} generation(s)")
        if self.inbox is not None:
            i = self.inbox
            out.append(f"  │  karma {i.karma:.1f}/{i.threshold:.1f} ({i.pending} waiting)")
            if i.hold:
                out.append(" held: new data needed", style="yellow")
        job, t = self.job, self.training
        if job is not None and job.alive:
            out.append("  │  ")
            step = f" {t.step}/{t.total}" if t and t.total else ""
            eta = f" ETA {duration(t.eta_s)}" if t and t.eta_s is not None else ""
            out.append(f"G{job.gen_id} {job.stage}{step}{eta}", style="bold cyan")
        if self.loop:
            out.append(f"  │  {self.loop}", style="dim" if self.loop.startswith("loop pid") else "bold yellow")
        if ladder.stopped:
            out.append("  │  STOPPED (stop rule)", style="bold red")
        return out

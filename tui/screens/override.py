"""Approving a generation the gates rejected: asked once, naming what failed; it returns True to go ahead."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui.screens.model import GateCheck, GenRow
from tui.widgets.ladder import gate_text
from tui.widgets.text import text


class OverrideScreen(ModalScreen[bool]):
    CSS_PATH = Path(__file__).parent.parent / "dialogs.tcss"
    BINDINGS = [
        Binding("y", "go", "Approve over the gates", id="override_yes",
                tooltip="Make the rejected generation active anyway; undo follows for a few seconds"),
        Binding("escape,n", "cancel", "Keep it rejected", id="override_no", tooltip="Close; nothing changes"),
    ]

    def __init__(self, gen: GenRow, gates: tuple[GateCheck, ...], undo_seconds: float) -> None:
        super().__init__()
        self._gen, self._gates, self._undo = gen, gates, undo_seconds

    def compose(self) -> ComposeResult:
        g = self._gen
        failed = [c for c in self._gates if not c.passed]
        with Vertical(id="override-box"):
            yield Static(Text(f"Approve G{g.id} over its gates?", style="bold"), id="override-title")
            if failed:
                yield Static(Text("The gates rejected it:", style="dim"))
                for c in failed:
                    yield Static(Text.assemble("  ", gate_text(c, g)))
            else:
                yield Static(Text.assemble(("It was rejected: ", "dim"), text(g.reason or "no reason kept")))
            yield Static(Text(f"\nIt becomes the active generation and the chat answers from it. For "
                              f"{self._undo:.0f} s you can undo; later, roll back or approve another one.", style="dim"))
            yield Static(Text("y approves it anyway · escape keeps it rejected", style="bold"))
        yield Footer()

    def action_go(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

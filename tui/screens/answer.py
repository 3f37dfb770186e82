"""A small editor for the answer the model should have given; it returns the text, or None when cancelled."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Static, TextArea

from tui.widgets.text import text


class AnswerScreen(ModalScreen[str | None]):
    CSS_PATH = Path(__file__).parent.parent / "dialogs.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save correction", id="answer_save",
                tooltip="Save the better answer as a correction"),
        Binding("escape", "cancel", "Cancel", id="answer_cancel", tooltip="Close without saving anything"),
    ]

    def __init__(self, title: str, prompt: str, answer: str, initial: str = "") -> None:
        super().__init__()
        self._title, self._prompt, self._answer, self._initial = title, prompt, answer, initial

    def compose(self) -> ComposeResult:
        with Vertical(id="answer-box"):
            yield Static(Text(self._title, style="bold"), id="answer-title")
            yield Static(Text.assemble(("you asked  ", "dim"), text(self._prompt)), classes="quoted")
            yield Static(Text.assemble(("it answered  ", "dim"), text(self._answer)), classes="quoted")
            yield TextArea(self._initial, id="answer-text", soft_wrap=True, show_line_numbers=False)
            yield Static(Text("ctrl+s saves it as a correction (chosen: yours, rejected: the model's) · escape cancels",
                              style="dim"))
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_save(self) -> None:
        self.dismiss(self.query_one(TextArea).text)

    def action_cancel(self) -> None:
        self.dismiss(None)

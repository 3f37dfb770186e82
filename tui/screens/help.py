"""The help screen: what Ladder shows, and every key with what it does (as remapped in the config)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

ABOUT = (
    "Ladder trains a small local model generation by generation from the conversations you drop into the inbox. "
    "Each generation is evaluated and held to the gates; you approve, reject or roll back. Training runs in its "
    "own process: closing this window does not stop it, and reopening shows its progress.\n"
    "Keys are remapped in the [keys] table of config.toml."
)


class HelpScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).parent.parent / "dialogs.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close help", id="help_close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str, str]]]]) -> None:
        super().__init__()
        self._sections = sections  # (title, [(keys, description, tooltip)])

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Static(Text("Ladder — keys", style="bold"))
            yield Static(Text(ABOUT, style="dim"))
            for title, rows in self._sections:
                table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=True)
                table.add_column(style="bold cyan", no_wrap=True, min_width=8)
                table.add_column(style="bold", no_wrap=True, min_width=18)
                table.add_column(style="dim", ratio=1)
                for keys, description, tooltip in rows:
                    table.add_row(Text(keys), Text(description), Text(tooltip))
                yield Static(Text("\n" + title, style="bold underline"))
                yield Static(table)
            yield Static(Text("\nescape closes this help", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)


def keymap_of(config_data: dict[str, Any]) -> dict[str, str]:
    """The [keys] table of the config: binding id -> keys (comma-separated); an empty value keeps the default."""
    return {k: v for k, v in config_data.get("keys", {}).items() if isinstance(v, str) and v.strip()}


def _bound_keys(app: App, b: Binding) -> str:
    keys = getattr(app, "keymap", {}).get(b.id, b.key).split(",")
    return " / ".join(app.get_key_display(Binding(k.strip(), "")) for k in keys)


def _binding_sets() -> list[tuple[str, list[Binding]]]:
    from tui.screens.answer import AnswerScreen  # noqa: PLC0415
    from tui.screens.main import MainScreen  # noqa: PLC0415
    from tui.screens.override import OverrideScreen  # noqa: PLC0415
    from tui.screens.teach import TeachScreen  # noqa: PLC0415
    from tui.widgets.chat import ChatPane  # noqa: PLC0415

    return [("Ladder", MainScreen.BINDINGS), ("Chat (while typing in the chat)", ChatPane.BINDINGS),
            ("Correction editor", AnswerScreen.BINDINGS), ("Practice and synth", TeachScreen.BINDINGS),
            ("Approving over the gates", OverrideScreen.BINDINGS)]


def help_sections(app: App) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Every binding of the app's screens, with its keys as remapped in the config."""
    return [(title, [(_bound_keys(app, b), b.description, b.tooltip) for b in bindings])
            for title, bindings in _binding_sets()]


def key_display(app: App, binding_id: str) -> str:
    for _, bindings in _binding_sets():
        for b in bindings:
            if b.id == binding_id:
                return _bound_keys(app, b)
    return binding_id


def command_palette(app: App, screen: Screen) -> Iterator[SystemCommand]:
    """The bindings active on a screen as palette commands, so every key can also be found by name; the chat's
    commands too, wherever the focus is (they act on the chat pane)."""
    from tui.widgets.chat import ChatPane  # noqa: PLC0415

    seen = set()
    found = [(a.binding, a.node) for a in screen.active_bindings.values()]
    found += [(b, chat) for chat in screen.query(ChatPane) for b in chat.BINDINGS]
    for b, node in found:
        if b.id and b.description and not b.system and b.id not in seen:
            seen.add(b.id)
            yield SystemCommand(f"{b.description} ({app.get_key_display(b)})", b.tooltip or b.description,
                                partial(_run, app, b.action, node))


def _run(app: App, action: str, node: Any) -> None:
    app.call_later(app.run_action, action, node)

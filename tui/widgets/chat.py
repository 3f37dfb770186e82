"""The chat side pane: talk to a generation, streamed token by token, and mark or correct its answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Input, Static

from tui import chat_history
from tui.widgets.text import text

HISTORY_EXCHANGES = 6  # earlier exchanges sent along, so the context window is not outgrown
MARKS = {"good": ("✓ marked good", "green"), "bad": ("✗ corrected", "yellow"), "correction": ("✎ corrected", "yellow"),
         "undesirable": ("✗ marked bad", "red")}


@dataclass(frozen=True)
class ChatTarget:
    """The generation the chat talks to; `pinned` when the user chose it rather than following the active one."""

    gen_id: int
    gguf_path: str | None
    pinned: bool = False


@dataclass
class Exchange:
    prompt: str
    gen_id: int
    raw: bool
    history: list[dict[str, str]] = field(default_factory=list)
    answer: str = ""
    done: bool = False
    mark: str | None = None

    def messages(self) -> list[dict[str, str]]:
        return self.history + [{"role": "user", "content": self.prompt}, {"role": "assistant", "content": self.answer}]


class ChatPane(Vertical):
    BINDINGS = [
        Binding("ctrl+g", "mark_good", "Good answer", id="chat_good",
                tooltip="Send the last exchange to the inbox as a good conversation"),
        Binding("ctrl+b", "mark_bad", "Bad answer", id="chat_bad",
                tooltip="Mark the last answer bad and write the one it should have given"),
        Binding("ctrl+o", "correct", "Correct it", id="chat_correct",
                tooltip="Edit the last answer into the one it should have given"),
        Binding("ctrl+r", "toggle_raw", "Raw prompt", id="chat_raw",
                tooltip="Send the prompt as is, without the chat template"),
        Binding("ctrl+t", "pick", "Chat with selected", id="chat_pick",
                tooltip="Talk to the generation selected on the ladder (again: follow the active one)"),
        Binding("ctrl+l", "clear", "New chat", id="chat_clear",
                tooltip="Forget this conversation and start a new one"),
        Binding("escape", "leave", "Leave chat", id="chat_leave",
                tooltip="Stop the answer being written, or go back to the ladder"),
    ]

    target: reactive[ChatTarget | None] = reactive(None)
    raw: reactive[bool] = reactive(False)
    busy: reactive[bool] = reactive(False)

    @dataclass
    class Asked(Message):
        """Ask the target generation; the app streams the answer back as ChatPiece messages."""

        target: ChatTarget
        messages: list[dict[str, str]]
        raw: bool

    @dataclass
    class Feedback(Message):
        """Save an exchange as feedback: kind is "good", "bad", "correction" or "undesirable" (bad, no better answer); `better` is the chosen answer."""

        kind: str
        exchange: dict[str, Any]
        better: str | None = None

    class StopAsked(Message):
        pass

    class PickAsked(Message):
        pass

    class Left(Message):
        pass

    def __init__(self, history_dir: Path | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.exchanges: list[Exchange] = []
        self._answer: Static | None = None
        self.history_dir = history_dir  # where each generation's conversation is kept (tui.chat_history)
        self._shown_gen: int | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="chat-title")
        yield VerticalScroll(id="chat-log")
        yield Input(placeholder="Ask the model…", id="chat-input")

    def on_mount(self) -> None:
        self._title()

    def watch_target(self) -> None:
        self._title()
        gen = self.target.gen_id if self.target is not None else None
        if gen != self._shown_gen and not self.busy:
            self._show_conversation(gen)

    def _show_conversation(self, gen: int | None) -> None:
        """Show the conversation kept for this generation (empty for a new one), as it was left."""
        self._shown_gen = gen
        self.exchanges.clear()
        self._answer = None
        logs = list(self.query("#chat-log"))
        for log in logs:
            log.remove_children()
        if gen is None:
            return
        for rec in chat_history.load(self.history_dir, gen):
            ex = Exchange(rec["prompt"], gen, rec["raw"], rec["history"], rec["answer"], True, rec["mark"])
            self.exchanges.append(ex)
            for log in logs:
                log.mount(Static(Text.assemble(("you  ", "bold"), text(ex.prompt)), classes="turn user"))
                log.mount(Static(self._answer_text(ex), classes="turn model"))
        for log in logs:
            log.scroll_end(animate=False)

    def watch_raw(self) -> None:
        self._title()

    def _title(self) -> None:
        t = self.target
        who = "no generation to talk to yet" if t is None else f"G{t.gen_id}" + (" (chosen)" if t.pinned else " (active)")
        mode = "raw prompt" if self.raw else "chat template"
        for title in self.query("#chat-title"):
            title.update(Text.assemble(("Chat ", "bold"), (who, "bold cyan"), f" · {mode}"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        prompt = event.value
        if not prompt.strip():
            return
        if self.busy:
            self.notify("The model is still answering: wait, or press escape to stop it.", severity="warning")
            return
        if self.target is None:
            self.notify("There is no generation to talk to: run 'ladder init' first.", severity="error")
            return
        event.input.value = ""
        history: list[dict[str, str]] = []
        if not self.raw:
            for ex in self.exchanges[-HISTORY_EXCHANGES:]:
                if ex.done and not ex.raw and ex.answer and ex.gen_id == self.target.gen_id:
                    history += ex.messages()[-2:]
        ex = Exchange(prompt, self.target.gen_id, self.raw, history)
        self.exchanges.append(ex)
        log = self.query_one("#chat-log", VerticalScroll)
        log.mount(Static(Text.assemble(("you  ", "bold"), text(prompt)), classes="turn user"))
        self._answer = Static(Text.assemble((f"G{ex.gen_id}  ", "bold cyan"), ("…", "dim")), classes="turn model")
        log.mount(self._answer)
        log.scroll_end(animate=False)
        self.busy = True
        msgs = [{"role": "user", "content": prompt}] if self.raw else history + [{"role": "user", "content": prompt}]
        self.post_message(self.Asked(self.target, msgs, self.raw))

    def add_piece(self, piece: str) -> None:
        if not self.exchanges or self._answer is None:
            return
        ex = self.exchanges[-1]
        ex.answer += piece
        self._answer.update(self._answer_text(ex))
        for log in self.query("#chat-log"):
            log.scroll_end(animate=False)

    def finish(self, stopped: bool = False, error: str | None = None) -> None:
        self.busy = False
        if not self.exchanges:
            return
        ex = self.exchanges[-1]
        ex.done = error is None
        if ex.done and ex.answer:
            chat_history.append(self.history_dir, ex.gen_id, {"prompt": ex.prompt, "answer": ex.answer, "raw": ex.raw,
                                                              "history": ex.history})
        if self._answer is not None:
            body = self._answer_text(ex)
            if stopped:
                body.append("  (stopped)", style="dim italic")
            if error:
                body.append_text(text(f"  (failed: {error})", "red"))
            self._answer.update(body)

    def marked(self, index: int, kind: str) -> None:
        if 0 <= index < len(self.exchanges):
            self.exchanges[index].mark = kind
            if self.exchanges[index].done:  # its place among the exchanges kept (failed ones are not)
                kept = sum(1 for e in self.exchanges[:index] if e.done and e.answer)
                chat_history.append(self.history_dir, self.exchanges[index].gen_id, {"mark": kind, "index": kept})
            turns = self.query(".model")
            if index < len(turns):
                turns[index].update(self._answer_text(self.exchanges[index]))

    @staticmethod
    def _answer_text(ex: Exchange) -> Text:
        body = Text.assemble((f"G{ex.gen_id}  ", "bold cyan"), text(ex.answer) if ex.answer else ("…", "dim"))
        if ex.mark:
            label, style = MARKS.get(ex.mark, (ex.mark, ""))
            body.append(f"  {label}", style=style)
        return body

    def _last(self) -> tuple[int, Exchange] | None:
        if not self.exchanges or not self.exchanges[-1].done or not self.exchanges[-1].answer.strip():
            self.notify("There is no finished answer to mark yet.", severity="warning")
            return None
        return len(self.exchanges) - 1, self.exchanges[-1]

    def _exchange(self, index: int, ex: Exchange) -> dict[str, Any]:
        return {"index": index, "prompt": ex.prompt, "answer": ex.answer, "gen_id": ex.gen_id, "raw": ex.raw,
                "messages": ex.messages()}

    def action_mark_good(self) -> None:
        if (last := self._last()) is not None:
            self.post_message(self.Feedback("good", self._exchange(*last)))

    def action_mark_bad(self) -> None:
        self._ask_better("bad", "G{gen}'s answer was bad. What should it have said? (Save it empty to mark it "
                                "bad without a better answer.)", prefill=False)

    def action_correct(self) -> None:
        self._ask_better("correction", "Write the answer G{gen} should have given", prefill=True)

    def _ask_better(self, kind: str, title: str, prefill: bool) -> None:
        if (last := self._last()) is None:
            return
        from tui.screens.answer import AnswerScreen  # noqa: PLC0415 - the editor loads on first use

        index, ex = last

        def done(better: str | None) -> None:
            if kind == "bad" and better is not None and not better.strip():  # saved empty: an unpaired bad mark
                self.post_message(self.Feedback("undesirable", self._exchange(index, ex)))
                return
            if better is None or not better.strip():
                self.notify("Nothing saved: a bad answer teaches only with the answer it should have given.",
                            severity="warning")
                return
            self.post_message(self.Feedback(kind, self._exchange(index, ex), better))

        self.app.push_screen(AnswerScreen(title.format(gen=ex.gen_id), ex.prompt, ex.answer,
                                          ex.answer if prefill else ""), done)

    def action_toggle_raw(self) -> None:
        self.raw = not self.raw

    def action_pick(self) -> None:
        self.post_message(self.PickAsked())

    def action_clear(self) -> None:
        if self.busy:
            self.post_message(self.StopAsked())
        if self._shown_gen is not None and self.exchanges:
            chat_history.append(self.history_dir, self._shown_gen, {"new": True})
        self.exchanges.clear()
        self._answer = None
        self.query_one("#chat-log", VerticalScroll).remove_children()

    def action_leave(self) -> None:
        if self.busy:
            self.post_message(self.StopAsked())
        else:
            self.post_message(self.Left())

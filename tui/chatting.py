"""The app's chat: the model loads and answers in a worker thread, and the pieces come back as messages."""

from __future__ import annotations

from contextlib import closing
from functools import partial

from textual.worker import get_current_worker

from loop.errors import UserError
from tui import messages as m
from tui.widgets.chat import ChatPane, ChatTarget


def verify(cfg, gen_id: int) -> None:
    """Refuse a GGUF whose SHA-256 is no longer the ledger's (read in the worker, never on the UI's thread)."""
    from loop import artifacts  # noqa: PLC0415
    from store.db import reading  # noqa: PLC0415
    from store.tables import Generation  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        g = s.get(Generation, gen_id)
    if g is None:
        raise UserError(f"there is no generation {gen_id}")
    artifacts.verified_gguf(cfg, g)


class ChatHandlers:
    """Mixed into the app: it supplies cfg, chat_model, chat_max_tokens, main, notify and _start."""

    # The chat: the model loads and answers in a worker; pieces come back as messages.
    def on_chat_pane_asked(self, msg: ChatPane.Asked) -> None:
        self._start("chat", "chat", self._chat, msg.target, msg.messages, msg.raw, exclusive=True)

    def _chat(self, target: ChatTarget, messages: list[dict[str, str]], raw: bool) -> None:
        worker = get_current_worker()
        if not target.gguf_path:
            raise UserError(f"G{target.gen_id} has no GGUF file (it was never exported); choose another with ctrl+t")
        path = self.cfg.resolve(target.gguf_path)
        if not self.chat_model.holds(path):  # about to load it: only a file the ledger vouches for
            verify(self.cfg, target.gen_id)
        loading = partial(self.post_message, m.ChatLoading(f"G{target.gen_id}"))
        with closing(self.chat_model.stream(path, messages, self.chat_max_tokens, raw, loading)) as pieces:
            for piece in pieces:
                if worker.is_cancelled:
                    self.post_message(m.ChatDone(stopped=True))
                    return
                self.post_message(m.ChatPiece(piece))
        self.post_message(m.ChatDone())

    def on_chat_piece(self, msg: m.ChatPiece) -> None:
        for chat in self.main.query(ChatPane):
            chat.add_piece(msg.text)

    def on_chat_done(self, msg: m.ChatDone) -> None:
        for chat in self.main.query(ChatPane):
            chat.finish(msg.stopped, msg.error)

    def on_chat_loading(self, msg: m.ChatLoading) -> None:
        self.notify(f"Loading {msg.label} in llama.cpp…", title="Chat", timeout=3, markup=False)

    def on_chat_pane_stop_asked(self, msg: ChatPane.StopAsked) -> None:
        self.workers.cancel_group(self, "chat")

"""The Ladder app: it polls the store, runs the engine's calls in workers, and hands what it reads down.

Nothing heavy is imported on the way to the first screen: the store is read in worker threads, plots load
with their tab, and llama.cpp loads in the chat worker. Training never runs here (loop.jobs spawns it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from loop.config import Config, load
from tui import messages as m
from tui.chatting import ChatHandlers
from tui.screens.engine import ChatModel, default_runner, describe
from tui.screens.help import (
    HelpScreen,
    command_palette,
    help_sections,
    key_display,
    keymap_of,
)
from tui.screens.main import LADDER_PAGE, MainScreen
from tui.screens.model import Training
from tui.widgets.chat import ChatPane

POLL_SECONDS = 0.5  # the ladder, the job and new events
SLOW_SECONDS = 3.0  # the inbox and karma, re-read only when something there changed
SLOW_FORCE_SECONDS = 30.0
CHAT_MAX_TOKENS = 256
TOAST_LINES = 3  # notices shown in one toast; the rest are counted
TITLES = {"stop_loop": "Loop", "approve": "Approve", "reject": "Reject", "rollback": "Rollback", "undo_rollback": "Undo", "undo_approve": "Undo", "train": "Train",
          "evaluate": "Evals", "cancel": "Cancel", "ingest": "Inbox", "feedback": "Feedback", "chat": "Chat", "poll": "Store",
          "watch": "Inbox"}
RunnerFactory = Callable[..., Any]  # (gguf_path, threads=, context=, seed=) -> a loop.llm.Runner-like object


class LadderApp(ChatHandlers, App[int]):
    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "Ladder"

    def __init__(self, cfg: Config, *, runner_factory: RunnerFactory | None = None,
                 clock: Callable[[], datetime] | None = None, poll_seconds: float = POLL_SECONDS,
                 chat_max_tokens: int = CHAT_MAX_TOKENS, watch: bool = False) -> None:
        super().__init__()
        self.watch_inbox = watch  # start or follow the loop (`ladder run`): ingest what arrives, train when karma allows
        self.loop_pid: int | None = None
        self.cfg = cfg
        self.runner_factory = runner_factory or default_runner
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.poll_seconds, self.chat_max_tokens = poll_seconds, chat_max_tokens
        self.keymap = keymap_of(cfg.data)
        self.main = MainScreen(cfg.root.name, cfg.models_dir / "chats")
        self._sig: tuple | None = None
        self._after_event: int | None = None
        self._offset = 0
        self._polling = self._poll_again = self._slow_busy = self._job_alive = False
        self._slow_sig: tuple | None = None
        self._training: Training | None = None
        self._last_poll_error: str | None = None
        self._clash_said = False
        self.chat_model = ChatModel(self.runner_factory, cfg.eval.threads, cfg.eval.context)

    def get_default_screen(self) -> Screen:
        return self.main

    def on_mount(self) -> None:
        from tui import prefs  # noqa: PLC0415

        theme = prefs.load().get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme
        self._theme_loaded = True

    def watch_theme(self, theme: str) -> None:
        if getattr(self, "_theme_loaded", False):  # the user's choice (palette: Theme), kept for the next start
            from tui import prefs  # noqa: PLC0415

            prefs.save(theme=theme)

    def on_ready(self) -> None:
        self.set_keymap(self.keymap)
        self.main.now = self.clock()
        self._poll()
        self.set_interval(self.poll_seconds, self._poll)
        self.set_interval(SLOW_SECONDS, self._poll_slow)
        self.set_interval(SLOW_FORCE_SECONDS, partial(self._poll_slow, True))
        self.set_interval(30.0, lambda: setattr(self.main, "now", self.clock()))
        if self.watch_inbox:
            self._start("loop", "loop", self._attach_loop)

    def _attach_loop(self) -> None:
        """The loop (watching, ingesting, training) runs in `ladder run`: start one, or follow the one running."""
        from tui.screens import engine  # noqa: PLC0415

        self.post_message(m.LoopState(**engine.start_loop(self.cfg)))

    def _start(self, group: str, name: str, fn: Callable[..., Any], *args: Any, exclusive: bool = False) -> Worker:
        return self.run_worker(partial(fn, *args), thread=True, group=group, name=name, exclusive=exclusive,
                               exit_on_error=False)

    # Polling: workers read, messages bring the views back, the handlers hand them to the screen.
    def _poll(self, force: bool = False) -> None:
        if self._polling:
            self._poll_again = self._poll_again or force
            return
        self._polling = True
        self._start("poll", "poll", self._read_fast, force, self._offset, self._after_event)

    def _read_fast(self, force: bool, offset: int, after: int | None) -> None:
        if after is None and self.main.ladder is None:
            from tui.screens import quick  # noqa: PLC0415 - the first page before the database stack loads

            if (ladder := quick.ladder(self.cfg.db_url, offset, LADDER_PAGE)) is not None:
                self.post_message(m.LadderPeek(ladder))
                return  # the full read follows once this page is on screen
        from tui.screens import reads  # noqa: PLC0415

        if not force and self._sig is not None and not self._job_alive and reads.current_signature(self.cfg) == self._sig:
            return
        # A job that died is the engine's to settle (`ladder run` does); the app only reads.
        self.post_message(m.StoreRead(reads.fast(self.cfg, offset, LADDER_PAGE, after)))

    def on_ladder_peek(self, msg: m.LadderPeek) -> None:
        if self._sig is None:
            self.main.ladder = msg.ladder
        # Importing the database stack competes with painting for the interpreter: paint first.
        self.call_after_refresh(self._poll, True)

    def on_store_read(self, msg: m.StoreRead) -> None:
        read, main = msg.read, self.main
        changed = read.ladder != main.ladder  # a generation changed, not just a progress event
        first = self._after_event is None
        if first:
            self._poll_slow()  # the inbox and karma scan once the ladder is on screen
        self._sig = read.signature
        ids = [e.id for e in read.events]
        self._after_event = max([read.signature[0] or 0] if first else [self._after_event or 0] + ids)
        job = read.job
        if job is not None and (self._training is None or self._training.gen_id != job.gen_id):
            self._training = Training(job.gen_id, job.parent_id, job.status, job.stage, total=job.steps)
            for e in read.history:
                self._training.feed(e)
        for e in read.events:
            if self._training is not None:
                self._training.feed(e)
        self._tell(read.events)
        if job is not None and self._training is not None:
            self._training.status, self._training.stage = job.status, job.stage
        self._job_alive = bool(job and job.alive)
        main.ladder, main.job, main.training = read.ladder, job, self._training
        if changed and not first:
            if main.selected is not None:
                self.post_message(m.ReadRequest("detail", main.selected))
            active_tab = next((t.active for t in main.query("#tabs")), None)
            if active_tab in ("metrics", "confidence"):
                self.post_message(m.ReadRequest(active_tab, main.selected))

    def _tell(self, events) -> None:
        """Engine notices become notifications, one per kind and source for what arrived together (a drop of
        three files is one toast, not three); progress and stages show on the screen instead."""
        said: dict[tuple[str, str], list[str]] = {}
        for e in events:
            severity = {"error": "error", "warning": "warning", "done": "information"}.get(e.kind)
            if severity and e.message:
                said.setdefault((severity, f"G{e.gen_id}" if e.gen_id is not None else "Inbox"), []).append(e.message)
        for (severity, title), messages in said.items():
            shown = "\n".join(messages[:TOAST_LINES])
            if len(messages) > TOAST_LINES:
                shown += f"\n… and {len(messages) - TOAST_LINES} more" + (" (the Inbox tab lists them)" if title == "Inbox" else "")
            self.notify(shown, title=title, severity=severity, markup=False, timeout=10)

    def _poll_slow(self, force: bool = False) -> None:
        if self._slow_busy:
            return
        self._slow_busy = True
        self._start("slow", "inbox", self._read_slow, force, self._slow_sig)

    def _read_slow(self, force: bool, last: tuple | None) -> None:
        from tui.screens import reads  # noqa: PLC0415

        sig = reads.inbox_signature(self.cfg)
        if force or sig != last:
            self.post_message(m.InboxRead(reads.inbox(self.cfg), sig))
        if self.watch_inbox:
            from tui.screens import engine  # noqa: PLC0415

            self.post_message(m.LoopState(engine.loop_state(self.cfg), started=False, checked=True))

    def on_loop_state(self, msg: m.LoopState) -> None:
        was, self.loop_pid = self.loop_pid, msg.pid
        self.main.show_loop(msg.pid)
        if msg.checked:
            if was is not None and msg.pid is None:
                self.notify("The loop stopped: nothing watches the inbox now (its log: models/loop.log). Reopen the "
                            "app or run 'ladder run' to start it again.", title="Loop", severity="warning",
                            markup=False, timeout=15)
        elif msg.started:
            self.notify(f"Started the loop (ladder run, pid {msg.pid}): it watches the inbox and trains when karma "
                        "allows; quitting the app leaves it running.", title="Loop", markup=False)
        elif msg.pid is not None:
            self.notify(f"This window follows the loop run by pid {msg.pid}.", title="Loop", markup=False)

    def on_inbox_read(self, msg: m.InboxRead) -> None:
        self._slow_sig = msg.signature
        self.main.inbox = msg.inbox

    def on_read_request(self, msg: m.ReadRequest) -> None:
        if msg.what == "ladder":
            self._offset = msg.offset
            self._poll(force=True)
        elif msg.what == "inbox":
            self._poll_slow(force=True)
        else:
            self._start(f"read-{msg.what}", msg.what, self._read_view, msg.what, msg.gen_id, exclusive=True)

    def _read_view(self, what: str, gen_id: int | None) -> None:
        from tui.screens import reads  # noqa: PLC0415

        if what == "detail" and gen_id is not None:
            view: m.Message = m.DetailRead(reads.detail(self.cfg, gen_id))
        elif what == "confidence":
            view = m.ConfidenceRead(reads.confidence(self.cfg, gen_id))
        elif what == "compare":
            self.post_message(m.CompareRead(gen_id, reads.compare_pending(self.cfg, gen_id)))
            view = m.CompareRead(gen_id, reads.compare(self.cfg, gen_id))
        elif what == "metrics":
            view = m.MetricsRead(reads.metrics(self.cfg))
        else:
            return
        if not get_current_worker().is_cancelled:
            self.post_message(view)

    def on_detail_read(self, msg: m.DetailRead) -> None:
        self.main.detail = msg.detail

    def on_confidence_read(self, msg: m.ConfidenceRead) -> None:
        if msg.confidence.gen_id == self.main.selected:  # a slower read for an earlier selection is stale
            self.main.confidence = msg.confidence

    def on_compare_read(self, msg: m.CompareRead) -> None:
        if msg.gen_id == self.main.selected:
            self.main.compare = msg.compare

    def on_metrics_read(self, msg: m.MetricsRead) -> None:
        self.main.metrics = msg.metrics

    # The engine: approve, reject, roll back, train, cancel, ingest, feedback — each in a worker.
    def on_engine_request(self, msg: m.EngineRequest) -> None:
        self._start("engine", msg.action, self._engine_call, msg.action, msg.args)

    def _engine_call(self, action: str, args: tuple[Any, ...]) -> None:
        from tui.screens import engine  # noqa: PLC0415

        self.post_message(m.EngineDone(action, getattr(engine, action)(self.cfg, *args)))

    def on_engine_done(self, msg: m.EngineDone) -> None:
        r = msg.result
        if msg.action == "stop_loop":
            self.loop_pid = None
            self.exit(message=r["message"])
            return
        if msg.action == "rollback":
            self.main.offer_undo(r["from"], r["to"], key_display(self, "undo"))
        elif msg.action == "approve" and r.get("override") and r.get("from") is not None:
            self.main.offer_undo(r["from"], r["to"], key_display(self, "undo"), kind="approve")
        elif r.get("message"):
            self.notify(r["message"], title=TITLES.get(msg.action, ""), markup=False)
        for chat in self.main.query(ChatPane) if msg.action == "feedback" else ():
            chat.marked(r["index"], r["kind"])
        self._poll(force=True)
        self._poll_slow(force=True)

    def on_chat_pane_feedback(self, msg: ChatPane.Feedback) -> None:
        self._start("engine", "feedback", self._engine_call, "feedback", (msg.kind, msg.exchange, msg.better))

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "chat")
        self.chat_model.close()

    # The one place worker failures turn into something the user sees.
    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        w = event.worker
        if event.state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if w.group == "poll":
            self._polling, again, self._poll_again = False, self._poll_again, False
            if again:
                self._poll(force=True)
        elif w.group == "slow":
            self._slow_busy = False
        if event.state != WorkerState.ERROR:
            if w.group in ("poll", "slow"):
                self._last_poll_error = None
            return
        reason = describe(w.error)
        for chat in self.main.query(ChatPane) if w.group == "chat" else ():
            chat.finish(error=reason)
        if w.group in ("poll", "slow"):
            if reason == self._last_poll_error:
                return  # a store that stays unreadable is said once, not twice a second
            self._last_poll_error = reason
        self.notify(reason, title=TITLES.get(w.name, w.name), severity="error", markup=False, timeout=10)

    # Keys: help and the command palette, with the keys as remapped.
    def action_help(self) -> None:
        self.push_screen(HelpScreen(help_sections(self)))

    def handle_bindings_clash(self, clashed_bindings: set, node: Any) -> None:
        if not self._clash_said:  # said once: Textual calls this on every key press while the clash lasts
            self._clash_said = True
            names = ", ".join(sorted(b.id or b.action for b in clashed_bindings))
            self.notify(f"the [keys] table of the config gives one key to several actions ({names}); give each "
                        "its own key", title="Keys", severity="warning", markup=False, timeout=15)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # One Quit: ours ("Quit (q)") says that the loop and training go on; Textual's would be a second.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Quit")
        yield from command_palette(self, screen)


def run_app(config_path: str | Path) -> int:
    """Open the app on a workspace's config; returns the exit status for the command line."""
    app = LadderApp(load(config_path), watch=True)
    app.run()
    job = app.main.job
    if job is not None and job.alive:
        print(f"G{job.gen_id} goes on training in its own process; 'ladder status' or the app follows it")
    if app.loop_pid is not None:
        print(f"the loop (ladder run, pid {app.loop_pid}) goes on watching the inbox; Q in the app, or "
              f"'kill {app.loop_pid}', stops it")
    return app.return_code or 0

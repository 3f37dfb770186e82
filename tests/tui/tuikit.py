"""Test kit for the app: a populated workspace built without a model, a fake chat model, waiting helpers."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.helpers import fake_gguf
from loop import workspace
from loop.config import Config
from store.db import reading, session, set_meta
from store.tables import Membership, Conversation, EvalResult, Event, Generation, InboxFile

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
SIZE = (150, 42)  # every snapshot and Pilot test runs at this terminal size
MARKUP = "[bold]not bold[/bold] [link=https://example.com]x[/link] \x1b[31mred?\x1b[0m"


def gates(recall: float, gen: float, drift: int) -> str:
    checks = [("recall", recall, ">=", 0.90, recall >= 0.90), ("generalization", gen, ">=", 0.85, gen >= 0.85),
              ("style_drift", drift, "<", 2, drift < 2)]
    return json.dumps([dict(zip(("name", "value", "op", "threshold", "passed"), c)) for c in checks])


def at(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


# (id, parent, status, hours ago, steps, loss start, loss end, recall, generalization, drift, reason)
LADDER = [
    (0, None, "promoted", 200, 0, None, None, 0.8, None, 1, "base model SmolLM2-135M-Instruct.Q4_1.gguf"),
    (1, 0, "promoted", 150, 60, 2.51, 0.42, 0.95, 0.88, 1, "passed every gate"),
    (2, 1, "rejected", 120, 60, 2.20, 0.18, 0.71, 0.90, 1,
     "rejected for forgetting: recall 0.71 (needs >= 0.9) FAILED"),
    (3, 1, "rolled_back", 90, 60, 2.31, 0.35, 0.93, 0.86, 1, "rolled back to G1 by the user"),
    (4, 1, "promoted", 50, 80, 2.40, 0.31, 0.94, 0.89, 0, "passed every gate"),
    (5, 4, "candidate", 2, 80, 1.90, 0.27, 0.96, 0.91, 0, "passed every gate; waiting for approval"),
]


def store_suite_answers(s, cfg: Config) -> None:
    """G4 and G5 answered the default suite's held-out items (G5 better), with their readiness reports."""
    from loop.evals import readiness, suites

    suite = suites.load(cfg, "default")
    for gid, right_every in ((4, 3), (5, 2)):
        rows = []
        for n, item in enumerate(suite.split("heldout")):
            passed = n % right_every != 0
            reason = "ok" if passed else 'used "action" instead of "tool"'
            answer = json.dumps({"tool": "restart_service", "args": {}}) if passed else '{"action": "restart_service"}'
            s.add(EvalResult(gen_id=gid, eval="suite:default", item_key=item["id"], prompt=item["messages"][-1]["content"],
                             reference=json.dumps(item["expect"]), answer=answer, score=float(passed), passed=passed,
                             detail=json.dumps({"category": item["category"], "reason": reason, "split": "heldout",
                                                "difficulty": item["difficulty"], "suite": "default",
                                                "suite_sha": suite.sha})))
            rows.append({"category": item["category"], "passed": passed, "reason": reason})
        g = s.get(Generation, gid)
        g.readiness = json.dumps(readiness.report(gid, rows, dict(cfg.data["readiness"])))
        g.n_recall, g.n_generalization = 51, 20
        s.add(g)


def build_workspace(folder: Path) -> Config:
    """Generations G0..G5 (G4 active, G5 a candidate), evals, conversations, inbox files and a quarantined file."""
    cfg = workspace.create(folder)
    shas = {gid: fake_gguf(cfg, gid) for gid, *_ in LADDER}
    with session(cfg.db_url) as s:
        for gid, parent, status, hours, steps, l0, l1, rec, gen, drift, reason in LADDER:
            s.add(Generation(
                id=gid, parent_id=parent, status=status, stage="done", created_at=at(hours),
                finished_at=at(hours - 0.5), parent_sha=f"{gid:x}" * 64 if gid else "b" * 64,
                child_sha=shas[gid][1], data_delta_sha=f"d{gid}" * 32, dataset_sha=f"e{gid}" * 32 if gid else None,
                steps=steps, lr=2e-4 if gid else 0.0, walltime_min=1.5 * gid, loss_start=l0, loss_end=l1,
                eval_recall=rec, eval_generalization=gen, eval_style_drift=drift, n_new=20 * gid, n_replay=10 * gid,
                n_holdout=4 * gid, gates=gates(rec, gen, drift) if gid else "[]", reason=reason,
                gguf_path=shas[gid][0],
                config_json=json.dumps({"train": cfg.data["train"]})))
        set_meta(s, "active_gen", 4)
        for gid in (4, 5):
            for n, (expected, stated) in enumerate((([70, 50, 85], [65, 55, 80]), ([40, 60, 90], [80, 80, 80]))):
                s.add(EvalResult(gen_id=gid, eval="confidence", item_key=f"chaos-{n + 1}",
                                 prompt=f"Scenario {n + 1}: the deploy failed twice; what now?",
                                 detail=json.dumps({"expected": expected, "stated": [v - gid for v in stated]})))
        for i in range(24):
            trained = {0: (1, "train"), 1: (1, "holdout"), 2: (4, "train"), 3: (5, "train")}.get(i % 6)
            meta = {"title": f"chaos scenario {i}", "confidence_trajectory": [70, 50, 85]} if i % 8 == 0 else {}
            content = MARKUP if i == 5 else f"How do I restart service {i}?"
            s.add(Conversation(
                content_sha=f"{i:064x}", kind="chat", source_format="jsonl",
                source_file="inbox/processed/ops.jsonl" if i % 2 else "inbox/processed/[red]x[/red].jsonl",
                source_pos=i + 1, domain="ops" if i % 3 else "general",
                messages=json.dumps([{"role": "user", "content": content}, {"role": "assistant", "content": "ok"}]),
                quality=0.9, karma=0.9, meta=json.dumps(meta), ingested_at=at(100 - i)))
            if trained:
                s.flush()
                s.add(Membership(gen_id=trained[0], conversation_id=i + 1, split=trained[1]))
        store_suite_answers(s, cfg)
        files = [("inbox/ops.jsonl", "ingested", 12, 0, 0, None, 100), ("inbox/chat-2026.jsonl", "ingested", 8, 3, 0, None, 30),
                 ("inbox/mixed.jsonl", "partial", 4, 0, 2, "2 bad record(s) set aside; first: line 3: invalid JSON", 3),
                 (f"inbox/{MARKUP}.jsonl", "ingested", 1, 0, 0, None, 1)]
        for n, (name, status, rec, dup, bad, reason, hours) in enumerate(files):
            s.add(InboxFile(content_sha=f"f{n}" * 32, name=name, size=100, status=status, records=rec, duplicates=dup,
                            bad=bad, reason=reason, seen_at=at(hours)))
        s.add(Event(gen_id=None, kind="info", message="inbox/ops.jsonl: 12 new record(s)", ts=at(100)))
    q = cfg.inbox_dir / "quarantine"
    (q / "broken.json").write_text("{not json", encoding="utf-8")
    (q / "broken.json.reason").write_text("not a recognised format: neither JSON, JSON Lines nor text\n", encoding="utf-8")
    return cfg


class FakeRunner:
    """Stands in for loop.llm.Runner: streams a canned answer, records what it was asked."""

    answer = "Restart it with systemctl restart [bold]app[/bold]."
    loaded: list[str] = []

    def __init__(self, gguf_path, threads: int = 2, context: int = 2048, seed: int = 0):
        self.path = str(gguf_path)
        FakeRunner.loaded.append(self.path)
        self.asked: list = []

    def stream_chat(self, messages, max_tokens, raw=False):
        self.asked.append((messages, raw))
        for word in self.answer.split(" "):
            yield word + " "

    def close(self) -> None:
        pass


def make_app(cfg: Config, **kwargs):
    from tui.app import LadderApp

    kwargs.setdefault("runner_factory", FakeRunner)
    kwargs.setdefault("clock", lambda: NOW)
    kwargs.setdefault("poll_seconds", 0.1)
    app = LadderApp(cfg, **kwargs)
    app.notes = []  # every notification, kept after its toast is gone
    app.asked = []  # every engine action the app asked for, in order (see asked_engine)
    on_request = app.on_engine_request

    def record(msg):
        app.asked.append(msg.action)
        on_request(msg)

    app.on_engine_request = record
    shown = app.notify

    def notify(message, **kw):
        app.notes.append((str(message), kw.get("severity", "information")))
        shown(message, **kw)

    app.notify = notify
    return app


def noted(app, fragment: str, severity: str | None = None) -> bool:
    return any(fragment in msg and (severity is None or sev == severity) for msg, sev in app.notes)


async def settle(pilot) -> None:
    """Let the app handle every message already posted (a key's action, a request it posts), then return."""
    await pilot.pause()
    await pilot.pause()


def store(cfg: Config):
    """The workspace's generations by id and the active pointer, read fresh."""
    from sqlmodel import select

    from store.db import active_gen

    with reading(cfg.db_url) as s:
        return {g.id: g for g in s.exec(select(Generation)).all()}, active_gen(s)


async def select_gen(pilot, gen_id: int) -> None:
    """Move the ladder's cursor to a generation, as a user does with the arrow keys."""
    table = pilot.app.main.query_one("#ladder-table")
    table.focus()
    await pilot.pause()
    for _ in range(table.row_count):
        if table.selected == gen_id:
            break
        ids = [int(k.value) for k in table.rows]
        await pilot.press("up" if ids.index(gen_id) < ids.index(table.selected) else "down")
    await wait_for(pilot, lambda: pilot.app.main.detail is not None and pilot.app.main.detail.gen.id == gen_id)
    await pilot.pause()


async def wait_for(pilot, predicate, timeout: float = 20.0) -> None:
    """Let the app run until `predicate()` holds; fail with what the screen showed otherwise."""
    import inspect

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            try:
                what = inspect.getsource(predicate).strip()
            except (OSError, TypeError):
                what = repr(predicate)
            raise AssertionError(f"timed out waiting for {what}\n{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def ready(pilot) -> None:
    """The first screen is filled: ladder, inbox, and the selected generation's detail."""
    main = pilot.app.main

    def loaded() -> bool:
        return (main.ladder is not None and main.inbox is not None and main.detail is not None
                and main.detail.gen.id == main.selected)

    await wait_for(pilot, loaded)
    await pilot.pause()


def screen_text(app) -> str:
    """The screen as plain text, the way a user reads it (a text 'screenshot')."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system="truecolor",
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text(styles=False)

"""Practice and synth from the app: the plan (items, difficulty, teacher, budget, the most a synth run may cost),
then the run in its own process (`ladder practice` / `ladder synth`), its progress line by line, and what landed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Log, Static

from loop.config import Config
from tui.output import clean

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("chaos", "agentic", "corrections", "tasks")


def plan(cfg: Config, count: int = 10) -> dict[str, Any]:
    """What a practice round would ask and who would teach; a synth run's requests and its most cost per kind."""
    from loop.practice import round as practice  # noqa: PLC0415
    from loop.teacher import client, synth  # noqa: PLC0415
    from store.db import get_meta, reading  # noqa: PLC0415

    out: dict[str, Any] = {"key": client.has_key(), "model": cfg.teacher.model, "budget": cfg.teacher.budget_usd}
    try:
        items = practice.items_for(cfg)
        with reading(cfg.db_url) as s:
            level = int((get_meta(s, practice.STATE) or {}).get("level", min(it["difficulty"] for _, it in items)))
        out["practice"] = {"items": len(practice.draw(items, level, cfg.practice.items)), "level": level,
                           "all": len(items)}
    except Exception as e:  # noqa: BLE001 - a suite the user broke is shown, not raised
        out["practice_error"] = str(e)
    prices = client.price(cfg)
    out["synth"] = {}
    for kind in KINDS:
        try:
            units = synth.plan(cfg, kind, count)
        except Exception as e:  # noqa: BLE001 - e.g. no corrections to vary yet
            out["synth"][kind] = {"error": str(e)}
            continue
        most = sum(client.most(u.system, [{"role": "user", "content": u.prompt}], cfg.teacher.max_tokens, *prices)
                   for u in units) if prices else None
        out["synth"][kind] = {"requests": len(units), "most_usd": most}
    return out


class TeachScreen(ModalScreen[None]):
    CSS_PATH = Path(__file__).parent.parent / "dialogs.tcss"
    BINDINGS = [
        Binding("p", "practice", "Practice round", id="teach_practice",
                tooltip="The active generation attempts the practice items; failures go to the inbox"),
        Binding("1", "synth('chaos')", "Synth chaos", id="teach_chaos", tooltip="CHAOS scenarios by Claude"),
        Binding("2", "synth('agentic')", "Synth agentic", id="teach_agentic",
                tooltip="Persona conversations with tool calls by Claude"),
        Binding("3", "synth('corrections')", "Synth corrections", id="teach_corrections",
                tooltip="Variations of the corrections in the store"),
        Binding("4", "synth('tasks')", "Synth tasks", id="teach_tasks", tooltip="Eval tasks into evals/synth.jsonl"),
        Binding("plus,equals_sign", "count(5)", "More requests", id="teach_more", tooltip="Five more synth requests"),
        Binding("minus", "count(-5)", "Fewer requests", id="teach_fewer", tooltip="Five fewer synth requests"),
        Binding("escape", "close", "Close", id="teach_close", tooltip="Close; a run in progress goes on"),
    ]

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.running = False
        self.count = 10

    def compose(self) -> ComposeResult:
        with Vertical(id="teach-box"):
            yield Static(Text("Practice and synthetic data", style="bold"))
            yield Static(Text("reading the plan…", style="dim"), id="teach-plan")
            yield Log(id="teach-log", max_lines=500)
        yield Footer()

    def on_mount(self) -> None:
        self.read_plan()
        self.query_one(Log).focus()

    @work(thread=True, exclusive=True, group="teach-plan")
    def read_plan(self) -> None:
        try:
            shown = self._describe(plan(self.cfg, self.count))
        except Exception as e:  # noqa: BLE001 - one line, never a traceback
            shown = Text(f"cannot read the plan: {e}", style="red")
        self.app.call_from_thread(self.query_one("#teach-plan", Static).update, shown)

    def _describe(self, p: dict[str, Any]) -> Text:
        t = Text()
        if "practice" in p:
            pr = p["practice"]
            t.append(f"practice (p): {pr['items']} of {pr['all']} practice item(s), difficulty up to {pr['level']}\n")
        else:
            t.append(f"practice: {p['practice_error']}\n", style="yellow")
        teacher = f"Claude {p['model']}, budget ${p['budget']:.2f} a run" if p["key"] else \
            "the suites' reference answers (no ANTHROPIC_API_KEY: Claude is not asked)"
        t.append(f"better answers from: {teacher}\n")
        if not p["key"]:
            t.append("synth needs ANTHROPIC_API_KEY in the environment that started the app\n", style="dim")
            return t
        t.append(f"synth ({self.count} request(s) a run; + and - change it):\n")
        for n, (kind, s) in enumerate(p["synth"].items(), 1):
            if "error" in s:
                t.append(f"  {n} {kind}: {s['error']}\n", style="dim")
            else:
                most = "no price in [teacher.prices]" if s["most_usd"] is None else f"at most ${s['most_usd']:.4f}"
                t.append(f"  {n} {kind}: {s['requests']} request(s), {most}\n")
        t.append("synth costs money: the run stops at the budget; replies are cached, so a rerun pays nothing twice",
                 style="yellow")
        return t

    def action_count(self, step: int) -> None:
        self.count = max(1, min(1000, self.count + step))
        self.read_plan()

    def action_practice(self) -> None:
        self._run(["practice"], "practice round")

    def action_synth(self, kind: str) -> None:
        self._run(["synth", kind, "--count", str(self.count), "--yes"], f"synth {kind}")

    def _run(self, args: list[str], what: str) -> None:
        if self.running:
            self.notify("a run is in progress; wait for it to end", severity="warning", markup=False)
            return
        self.running = True
        self.query_one(Log).write_line(f"— {what} —")
        self.run_command(args)

    @work(thread=True, group="teach-run")
    def run_command(self, args: list[str]) -> None:
        log = self.query_one(Log)
        say = lambda line: self.app.call_from_thread(log.write_line, clean(line))  # noqa: E731
        env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        try:
            proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--config", str(self.cfg.path), *args, "--json"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                    env=env, start_new_session=True)
            for line in proc.stderr:  # progress and errors, one line each
                say(line.rstrip("\n"))
            out = proc.stdout.read()
            proc.wait()
            if out.strip():
                say(landed(json.loads(out.strip().splitlines()[-1])))
        except (OSError, ValueError) as e:
            say(f"error: {e}")
        finally:
            self.app.call_from_thread(self._done)

    def _done(self) -> None:
        self.running = False
        self.count = 10
        self.read_plan()

    def action_close(self) -> None:
        self.dismiss(None)


def landed(r: dict[str, Any]) -> str:
    """One line: what the run wrote, where."""
    if "corrections" in r:
        return (f"landed: {r['corrections']} correction(s), {r['examples']} example(s) in {r['file'] or 'nothing'}; "
                f"{r['passed']}/{r['n']} passed")
    if "trajectory" in r:
        return f"rounds: {r['rounds']}; {'ready' if r['ready'] else 'not ready'}"
    if "records" in r:
        return (f"landed: {r['records']} record(s) in {', '.join(r['files']) or 'nothing'}; ${r['spent_usd']:.4f} "
                f"spent; {len(r['invalid'])} invalid" + (f"; {r['stopped']}" if r.get("stopped") else ""))
    return "done"

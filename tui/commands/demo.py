"""`ladder demo`: a workspace that climbs one rung on the demo inbox, then shows the gates catching a bad batch."""

from __future__ import annotations

import re
import shutil
from argparse import Namespace
from pathlib import Path
from typing import Any

from sqlmodel import select

from loop import config, workspace
from loop.events import StoreEvents
from store.db import active_gen, reading
from store.ledger import write_atomic
from store.tables import Generation
from tui.commands.data import ingest
from tui.commands.evals import before_after
from tui.commands.jobs import train
from tui.commands.lineage import ledger, status
from tui.output import clean, emit

ASSETS = Path(workspace.__file__).parent / "assets"
GOOD, BAD = ASSETS / "demo_inbox", ASSETS / "demo_bad_batch"


def demo(args: Namespace) -> dict[str, Any]:
    folder = args.dir.absolute()
    fresh = not (folder / "config.toml").exists()
    cfg = workspace.create(folder)
    if fresh:
        cfg = _fit_in_ten_minutes(cfg)
    emit(args, f"demo workspace: {folder}")
    workspace.init(cfg, StoreEvents(cfg.db_url, 0, echo=not args.json))
    args.config, args.paths, args.csv = cfg.path, [], None
    report = _drop(args, cfg, GOOD)
    with reading(cfg.db_url) as s:
        trained = s.exec(select(Generation).where(Generation.id > 0)).first() is not None
    if trained and not report["ingested"]:
        emit(args, "the demo data was trained on already; showing the workspace")
        return status(args) | {"ingest": report}
    emit(args, "\nstep 1: train G1 on the demo inbox (home lab chats, ops requests answered with one JSON tool call)")
    first = train(args)
    result: dict[str, Any] = {"ingest": report, "workspace": str(folder), "first": first}
    if first.get("child_sha"):
        emit(args, "")
        first["readiness"] = before_after(args, cfg, 0, first["gen"])
        _weighed(args, cfg, 0, first["gen"])
    if first.get("status") == "candidate":
        emit(args, f"\nG{first['gen']} passed every gate and waits for approval (gates.require_approval): "
                   f"ladder --config {clean(str(cfg.path))} approve {first['gen']}. The bad-batch step is skipped: "
                   "it needs an active G1 to protect.")
    elif first.get("status") not in ("active", "promoted"):
        emit(args, f"\nG{first['gen']} was not promoted: {clean(first.get('reason') or first.get('status', ''))}")
        emit(args, "The gates kept G0, as they would keep any working model. The bad-batch step is skipped: "
                   "it needs an active G1 to protect.")
    else:
        emit(args, f"\nG{first['gen']} passed every gate and is active.")
        result["second"] = _bad_batch(args, cfg)
    emit(args, "\nlineage ledger:")
    ledger(args)
    _next(args, cfg.path, cfg.inbox_dir)
    return first | result  # the first generation's result at the top, as before the bad-batch step


# The demo's own settings, so both generations fit in 10 minutes on 2 cores: G1's 72 rows in 40 steps (one
# pass and a bit), and G2's self-replay capped, so its full pass stays short. A workspace of the user's own keeps
# the defaults (60 steps, up to 100 self-replay answers).
DEMO_SETTINGS = {"steps = 60": "steps = 40  # the demo's; the default is 60",
                 "self_replay_max = 100": "self_replay_max = 40  # the demo's; the default is 100"}


def _fit_in_ten_minutes(cfg):
    text = cfg.path.read_text(encoding="utf-8")
    for default, mine in DEMO_SETTINGS.items():
        text = re.sub(rf"(?m)^{re.escape(default)}$", mine, text, count=1)
    write_atomic(cfg.path, text)
    return config.load(cfg.path)


def _drop(args: Namespace, cfg, source: Path) -> dict[str, Any]:
    for f in sorted(source.glob("*.jsonl")):
        shutil.copyfile(f, cfg.inbox_dir / f.name)
    return ingest(args)


def _bad_batch(args: Namespace, cfg) -> dict[str, Any]:
    n = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in BAD.glob("*.jsonl"))
    emit(args, f"\nstep 2: a bad batch arrives: {n} answers in corporate voice that say little "
               "(\"I'd be happy to help! … I hope this helps!\"). Ladder trains G2 on it; the gates should catch it.")
    _drop(args, cfg, BAD)
    second = train(args)
    with reading(cfg.db_url) as s:
        active = active_gen(s)
    if second.get("status") == "rejected":
        emit(args, f"\nG{second['gen']} was rejected: {clean(second.get('reason') or '')}")
    elif second.get("status") == "active":
        emit(args, f"\nG{second['gen']} passed every gate: the gates did not catch this batch. 'ladder rollback' "
                   f"makes G{second.get('parent')} active again.")
    else:
        emit(args, f"\nG{second['gen']} ended {second.get('status')}: {clean(second.get('reason') or '')}")
    emit(args, f"G{active} is active." + (" The bad batch changed nothing the user relies on."
                                          if second.get("status") == "rejected" else ""))
    return second


def _weighed(args: Namespace, cfg, a: int, b: int) -> None:
    """What the gates weigh, beside the suites: the inbox's held-out records, what G0 knew, the corporate voice."""
    with reading(cfg.db_url) as s:
        ga, gb = s.get(Generation, a), s.get(Generation, b)
    if gb.eval_generalization is not None and gb.n_generalization:
        emit(args, f"  held-out inbox records G{b} learned (generalization): "
                   f"{round(gb.eval_generalization * gb.n_generalization)} of {gb.n_generalization}")
    if gb.eval_recall is not None and gb.n_recall:
        emit(args, f"  G{a}'s steady right answers G{b} still gives (recall): {round(gb.eval_recall * gb.n_recall)} of {gb.n_recall}")
    if ga.eval_style_drift is not None and gb.eval_style_drift is not None:
        n = len(cfg.eval.tone_probes)
        emit(args, f"  tone probes answered in corporate voice: G{a} {ga.eval_style_drift:g} of {n} → "
                   f"G{b} {gb.eval_style_drift:g} of {n}")


def _next(args: Namespace, config_path: Path, inbox: Path) -> None:
    c = clean(str(config_path))
    emit(args, "\nwhat to try next:")
    emit(args, f"  ladder --config {c}                  the app: the ladder, its evals, a chat with the active generation")
    emit(args, f"  ladder --config {c} chat \"restart nginx\"")
    emit(args, f"  cp ~/Downloads/chatgpt-export.zip {clean(str(inbox))}/   then: ladder --config {c} run")

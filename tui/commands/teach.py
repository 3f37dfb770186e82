"""`ladder practice` and `ladder synth`: the model's own failures as training data, and Claude as teacher."""

from __future__ import annotations

import sys
from argparse import Namespace
from typing import Any

from loop.errors import UserError
from loop.practice import round as practice_round, rounds
from loop.teacher import client, synth as synthesis
from tui.commands.common import _open
from tui.output import emit


def _teacher(args: Namespace, cfg, required: bool):
    if not client.has_key():
        if required:
            raise UserError(client.no_key_message())
        return None
    return client.Teacher(cfg, getattr(args, "budget", None), say=lambda m: emit(args, m))


def practice(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    if args.max_rounds is not None and args.max_rounds <= 0:
        raise UserError("--max-rounds must be a positive whole number")
    teacher = _teacher(args, cfg, required=False) if not args.no_teacher else None
    if teacher is None:
        emit(args, "practice: better answers come from the suites' reference answers"
                   + ("" if args.no_teacher else f" ({client.no_key_message().split(':')[0]})"))
    say = lambda m: emit(args, m)  # noqa: E731
    if args.until_ready:
        out = rounds.until_ready(cfg, args.max_rounds or 3, teacher, say, args.items, args.steps)
        _trajectory(args, out["trajectory"])
        emit(args, out["ended"])
        return out
    rep = practice_round.run(cfg, teacher, say, args.items)
    _report(args, rep)
    return rep


def _report(args: Namespace, rep: dict[str, Any]) -> None:
    emit(args, f"G{rep['gen']} practised {rep['n']} item(s) at difficulty <= {rep['level']}: {rep['passed']} passed")
    for name, c in rep["categories"].items():
        emit(args, f"  {name:<10} {c['passed']:>3}/{c['total']:<3} {c['rate']:.2f}")
    for p in rep["patterns"][:5]:
        cats = ", ".join(f"{k} {v}" for k, v in p["categories"].items())
        emit(args, f"  failed: {p['pattern']} ({p['count']}; {cats})")
    where = f" into {rep['file']}" if rep["file"] else ""
    emit(args, f"wrote {rep['corrections']} correction(s) and {rep['examples']} example(s){where} "
               f"(better answers: {rep['teacher']}); {rep['without_better_answer']} failure(s) had no better answer")
    if "karma" in rep:
        emit(args, f"karma {rep['karma']:.1f}/{rep['karma_threshold']:.1f}; next round's difficulty: {rep['next_level']}")


def _trajectory(args: Namespace, points: list[dict[str, Any]]) -> None:
    cats = list(dict.fromkeys(c for p in points for c in p["heldout"]))
    emit(args, "round  gen  status     " + " ".join(f"{c:>9}" for c in cats) + "  ready")
    for p in points:
        rates = " ".join(f"{p['heldout'].get(c, 0) or 0:>9.2f}" for c in cats)
        emit(args, f"{p['round']:>5}  G{p['gen']:<3} {p['status']:<10} {rates}  {'yes' if p['ready'] else 'no'}")


def synth(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    failures = None
    if args.target_failures:
        gen, failures = practice_round.last_failures(cfg)
        if not failures:
            raise UserError("no practice round has failed items to target yet: run 'ladder practice' first")
        emit(args, f"synth tasks: each targets one of {len(failures)} failure pattern(s) of G{gen}'s last practice "
                   f"round: " + "; ".join(f"{f['pattern']} ({f['count']})" for f in failures))
    units = synthesis.plan(cfg, args.kind, args.count, args.multi_turn, args.variations, failures=failures)
    teacher = _teacher(args, cfg, required=True)
    most = synthesis.estimate(teacher, units)
    emit(args, f"synth {args.kind}: {len(units)} request(s) to {teacher.model}; at most ${most:.4f} if none is "
               f"cached (budget ${teacher.budget:.2f}: the run stops there). Replies are cached in teacher/cache/.")
    if args.dry_run:
        return {"kind": args.kind, "requests": len(units), "estimate_usd": most, "budget_usd": teacher.budget}
    if sys.stdin.isatty() and not args.yes and not args.json:
        if input("go on? [y/N] ").strip().lower() not in ("y", "yes"):
            raise UserError("nothing spent: answer y to go on, or pass --yes")
    out = synthesis.run(cfg, teacher, units, lambda m: emit(args, m))
    emit(args, f"{out.records} record(s) written to {', '.join(out.written) or 'nothing'}; ${teacher.spent:.4f} spent "
               f"({teacher.sent} request(s) sent, {teacher.from_cache} from the cache); {len(out.invalid)} invalid")
    if out.stopped:
        emit(args, out.stopped)
    return {"kind": args.kind, "requests": len(units), "records": out.records, "files": out.written,
            "invalid": out.invalid, "spent_usd": round(teacher.spent, 6), "sent": teacher.sent,
            "cached": teacher.from_cache, "stopped": out.stopped, "_failed": bool(out.stopped)}

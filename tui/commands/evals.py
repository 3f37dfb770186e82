"""The agent evals from the shell: a generation's readiness, one suite on one generation, two compared."""

from __future__ import annotations

import json
from argparse import Namespace
from typing import Any

from loop.errors import UserError
from store.db import active_gen, reading
from store.tables import Generation
from tui.commands.common import _open
from tui.output import clean, emit


def _gen(cfg, gen: int | None) -> Generation:
    with reading(cfg.db_url) as s:
        gen = active_gen(s) if gen is None else gen
        g = s.get(Generation, gen) if gen is not None else None
    if g is None:
        raise UserError(f"there is no generation {gen}: 'ladder status' lists them")
    return g


def readiness(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    g = _gen(cfg, args.gen)
    report = json.loads(g.readiness or "{}")
    if not report.get("categories") and not report.get("blockers"):
        raise UserError(f"G{g.id} has no readiness report (evaluated before the agent suites); run 'ladder eval {g.id}'")
    report["gen"] = g.id
    emit(args, f"G{g.id} is {'READY' if report['ready'] else 'NOT READY'} (held-out items of the agent suites)")
    table(args, report["categories"], report.get("overall"))
    for b in report["blockers"]:
        emit(args, f"  blocker: {b}")
    for p in report.get("patterns", [])[:5]:
        emit(args, f"  failures: {p['pattern']} ({p['count']}, {p['share']:.0%})")
    return report


def table(args: Namespace, categories: dict[str, dict[str, Any]], overall: dict[str, Any] | None = None) -> None:
    emit(args, f"  {'category':<12} {'passed':>9} {'rate':>6} {'95% CI':>14} {'min':>6}")
    rows = list(categories.items()) + ([("overall", overall)] if overall else [])
    for name, c in rows:
        ci = c.get("ci95")
        shown_ci = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "-"
        floor = c.get("min")
        mark = "" if floor is None or c["rate"] is None else ("  ok" if c["rate"] >= floor else "  BELOW")
        rate = "-" if c["rate"] is None else f"{c['rate']:.2f}"
        emit(args, f"  {name:<12} {c['passed']:>4}/{c['total']:<4} {rate:>6} {shown_ci:>14} "
                   f"{'-' if floor is None else f'{floor:.2f}':>6}{mark}")


def suite(args: Namespace) -> dict[str, Any]:
    """`ladder eval GEN --suite NAME`: one suite on one generation."""
    from loop.evals import compare as cmp  # noqa: PLC0415

    cfg = _open(args)
    g = _gen(cfg, args.gen)
    out = cmp.one(cfg, g.id, args.suite, args.split)
    emit(args, f"G{g.id} on the suite {args.suite!r} ({args.split} items, {out['sha'][:12]}):")
    table(args, out["categories"], out["overall"])
    for p in out["patterns"][:5]:
        emit(args, f"  failures: {p['pattern']} ({p['count']})")
    return out


def compare(args: Namespace) -> dict[str, Any]:
    from loop.evals import compare as cmp  # noqa: PLC0415

    cfg = _open(args)
    a, b = _gen(cfg, args.a).id, _gen(cfg, args.b).id
    out = cmp.compare(cfg, a, b, args.suite, args.split)
    emit(args, f"G{b} against G{a} on {out['n']} {args.split} items of {args.suite!r}: {out['b_rate']:.2f} vs "
               f"{out['a_rate']:.2f}, difference {out['diff']:+.2f} (95% CI {out['ci95'][0]:+.2f} to {out['ci95'][1]:+.2f}, "
               f"paired bootstrap; McNemar p = {out['p_mcnemar']:.3g}); won {out['won']}, lost {out['lost']}, "
               f"same {out['same']}")
    for i in out["items"]:
        if i["outcome"] != "same":
            emit(args, f"  {i['outcome']:<4} {i['id']:<6} {clean(i['prompt'])[:50]!s:<50}  G{a}: {i['a_reason']}  "
                       f"G{b}: {i['b_reason']}")
    return out


def before_after(args: Namespace, cfg, a: int, b: int) -> dict[str, Any]:
    """Per category of the agent suites, generation a's held-out score beside b's: what the step changed."""
    ra, rb = (json.loads(_gen(cfg, g).readiness or "{}") for g in (a, b))
    emit(args, f"agent suites, held-out items: G{a} → G{b}")
    names = list(dict.fromkeys([*(ra.get("categories") or {}), *(rb.get("categories") or {})]))
    for name in names + ["overall"]:
        x = (ra.get("categories") or {}).get(name) if name != "overall" else ra.get("overall")
        y = (rb.get("categories") or {}).get(name) if name != "overall" else rb.get("overall")
        floor = (y or x or {}).get("min")
        emit(args, f"  {name:<10} {_cell(x):>13} → {_cell(y):<13}" + ("" if floor is None else f" (min {floor:.2f})"))
    for g, r in ((a, ra), (b, rb)):
        verdict = "READY" if r.get("ready") else "NOT READY"
        emit(args, f"  G{g}: {verdict}" + ("" if r.get("ready") else f" ({'; '.join(r.get('blockers', [])[:2])})"))
    return {"before": ra, "after": rb}


def _cell(c: dict[str, Any] | None) -> str:
    if not c or c.get("rate") is None:
        return "–"
    return f"{c['passed']}/{c['total']} {c['rate']:.2f}"

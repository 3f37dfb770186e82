"""The workspace and its data from the shell: init, ingest, the dataset plan and chat."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any

from loop import artifacts, config, workspace
from loop.data.facts import for_stage
from loop.errors import UserError
from loop.events import StoreEvents
from loop.inbox import ingest as inbox
from store.db import active_gen, reading
from store.tables import Generation
from tui.commands.common import _open
from tui.output import clean, emit


def init(args: Namespace) -> dict[str, Any]:
    folder = Path(args.dir) if args.dir else args.config.absolute().parent
    cfg_path = folder / "config.toml" if args.dir else args.config
    if not cfg_path.exists():
        workspace.create(folder)
    cfg = config.load(cfg_path)
    workspace.create(cfg.root)
    result = workspace.init(cfg, StoreEvents(cfg.db_url, 0, echo=not args.json))
    if result["created"]:
        emit(args, f"workspace ready at {cfg.root}: G0 {result['child_sha'][:12]} answers "
                   f"{result['probes_right']}/{result['probes']} probes right ({result['probes_kept']} steadily: the recall "
                   f"items), style drift {result['style_drift']}")
    else:
        emit(args, f"workspace at {cfg.root} already has G0 ({result['child_sha'][:12]})")
    return result | {"workspace": str(cfg.root), "config": str(cfg.path)}


def ingest(args: Namespace) -> dict[str, Any]:
    cfg = _open(args)
    for p in args.paths:
        if not p.exists():
            raise UserError(f"{p}: no such file; give paths to files that exist, or no path to read the inbox")
    result = inbox.ingest(cfg, args.paths or None)
    emit(args, f"ingested {result['ingested']} record(s), {result['duplicates']} duplicate(s), "
               f"{result['bad_records']} bad record(s); karma {result['karma']:.1f}/{result['karma_threshold']:.1f}")
    if result.get("resumed"):
        emit(args, f"resumed an interrupted ingest: {result['resumed']} of those record(s) it had stored already")
    for q in result["quarantined"]:
        emit(args, f"quarantined {q['path']}: {q['reason']}")
    for q in result.get("retry", []):
        emit(args, f"left in the inbox {q['path']}: {q['reason']}; run 'ladder ingest' again")
    return result


def dataset(args: Namespace) -> dict[str, Any]:
    """The next generation's data, built as training would build it, without taking any record."""
    cfg = _open(args)
    if args.dry_run and args.out:
        raise UserError("--dry-run writes nothing: leave out --out, or --dry-run")
    from loop.data import dataset as builder  # noqa: PLC0415

    with reading(cfg.db_url) as s:
        parent = active_gen(s)
        plan = builder.plan(s, cfg, parent if parent is not None else 0)
    m, stages = plan.summary["mix"], {}
    for row in plan.train_rows:  # in training order, so the curriculum shows as it will run
        stages.setdefault(row["_stage"], {"new": 0, "replay": 0})["replay" if row["_source"] == "replay" else "new"] += 1
    result = {"parent": parent, "new_rows": m["rows"], "new_records": m["records"], "deferred": m["deferred"],
              "replay": plan.summary["replay"], "holdout": plan.summary["holdout"],
              "skipped_low_quality": plan.skipped_low_quality, "curriculum": list(cfg.dataset.curriculum),
              "by_source": _pair(m["rows_by_source"], m["deferred_by_source"]),
              "by_domain": {k: v | {"records": m["records_by_domain"].get(k, 0)}
                            for k, v in _pair(m["rows_by_domain"], m["deferred_by_domain"]).items()},
              "by_stage": stages,
              "self_replay_planned": plan.summary["self_replay_planned"], "domain_note": m["domain_note"],
              "facts": plan.summary["facts"], "fact_drills": plan.summary["fact_drills"],
              "facts_stage": _facts_stage(plan.taught, cfg.train.fact_repeats)}
    emit(args, f"next generation (parent {'G' + str(parent) if parent is not None else 'none yet'}): "
               f"{m['rows']} new row(s) from {m['records']} record(s), {m['deferred']} deferred to a later "
               f"generation, {result['replay']} replay, {result['holdout']} held out, "
               f"{plan.skipped_low_quality} below min_quality")
    for title, table in (("source", result["by_source"]), ("domain", result["by_domain"])):
        emit(args, f"  {'by ' + title:<22} {'rows':>6} {'deferred':>9}")
        for name, n in table.items():
            emit(args, f"    {name:<20} {n['rows']:>6} {n['deferred']:>9}")
    if m["domain_note"]:
        emit(args, f"  {m['domain_note']}")
    emit(args, f"  {'by stage (in order)':<22} {'new':>6} {'replay':>9}")
    for name, n in stages.items():
        emit(args, f"    {name:<20} {n['new']:>6} {n['replay']:>9}")
    if result["facts"]:
        stage = result["facts_stage"]
        drilled = (f", then each drilled {stage['repeats']} times in the facts stage after SFT (train.fact_repeats), "
                   f"beside {stage['earlier']} fact(s) the lineage knows" if stage else "")
        emit(args, f"  facts: {result['facts']} stated in the new records, trained again as {result['fact_drills']} "
                   f"drill row(s) (in 'new'){drilled}, and asked back in other phrasings")
    emit(args, f"  self-replay: up to {result['self_replay_planned']} answer(s) from the parent to general prompts, "
               f"asked when training starts (dataset.self_replay_share = {cfg.dataset.self_replay_share})")
    if args.out:
        result["dataset_sha"] = builder.write(plan, args.out.absolute())
        emit(args, f"wrote the dataset files to {args.out}")
    return result


def _pair(rows: dict[str, int], deferred: dict[str, int]) -> dict[str, dict[str, int]]:
    return {k: {"rows": rows.get(k, 0), "deferred": deferred.get(k, 0)} for k in sorted(rows.keys() | deferred.keys())}


def chat(args: Namespace) -> dict[str, Any]:
    cfg = _open(args, recover=False)
    with reading(cfg.db_url) as s:
        gen_id = args.gen if args.gen is not None else active_gen(s)
        g = s.get(Generation, gen_id) if gen_id is not None else None
    if g is None:
        raise UserError(f"there is no generation {gen_id}: 'ladder status' lists them")
    gguf = artifacts.verified_gguf(cfg, g)
    from loop.model.llm import Runner  # noqa: PLC0415

    with Runner(gguf, threads=cfg.eval.threads, context=cfg.eval.context, seed=0) as r:
        answer = r.complete(args.prompt, args.max_tokens) if args.raw else \
            r.chat([{"role": "user", "content": args.prompt}], args.max_tokens)
    if not args.json:
        print(clean(answer))
    return {"gen": gen_id, "raw": args.raw, "prompt": args.prompt, "answer": answer}


def _facts_stage(taught: list[dict], repeats: int) -> dict[str, int] | None:
    """What the facts stage will drill (loop.data.facts.for_stage), or None when it will not run."""
    new, known = for_stage(taught, repeats)
    return {"facts": len(new), "earlier": len(known), "repeats": repeats} if new else None

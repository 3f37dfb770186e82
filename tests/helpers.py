"""Builders for test workspaces whose generations are rows, not trained models."""

from __future__ import annotations

import json
from pathlib import Path

from loop import config, workspace
from store.db import session, set_meta
from store.tables import Conversation, EvalResult, Generation


def make_workspace(tmp_path: Path, **overrides: dict) -> config.Config:
    """A real workspace folder with a config; `overrides` maps a section to key=value pairs."""
    cfg = workspace.create(tmp_path)
    if overrides:
        lines = []
        for section, values in overrides.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        cfg.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cfg = config.load(cfg.path)
    return cfg


def add_generation(cfg: config.Config, gen_id: int, parent: int | None, status: str, **fields) -> Generation:
    values = dict(parent_sha=f"sha-{parent}" if parent is not None else "base", child_sha=f"sha-{gen_id}",
                  data_delta_sha=f"delta-{gen_id}", steps=10 if gen_id else 0, lr=2e-4 if gen_id else 0.0,
                  walltime_min=0.5, loss_start=2.0 if gen_id else None, loss_end=1.0 if gen_id else None,
                  eval_recall=0.95, eval_generalization=0.9 if gen_id else None, eval_style_drift=1, stage="done")
    values.update(fields)
    g = Generation(id=gen_id, parent_id=parent, status=status, **values)
    with session(cfg.db_url) as s:
        s.add(g)
        if status == "promoted":
            set_meta(s, "active_gen", gen_id)
    return g


def add_conversation(cfg: config.Config, n: int, **fields) -> Conversation:
    msgs = [{"role": "user", "content": f"question {n}?"}, {"role": "assistant", "content": f"Answer number {n}."}]
    values = dict(content_sha=f"c{n:06d}", kind="chat", source_format="jsonl", source_file="inbox/x.jsonl",
                  source_pos=n, messages=json.dumps(msgs), quality=1.0, karma=1.0)
    values.update(fields)
    c = Conversation(**values)
    with session(cfg.db_url) as s:
        s.add(c)
    return c


def add_probe(cfg: config.Config, key: str, passed: bool, gen_id: int = 0, **detail) -> None:
    with session(cfg.db_url) as s:
        s.add(EvalResult(gen_id=gen_id, eval="probe", item_key=key, prompt=f"probe {key}?", answer="x",
                         passed=passed, score=float(passed), detail=json.dumps({"answers": ["x"], **detail})))

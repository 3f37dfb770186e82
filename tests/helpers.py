"""Builders for test workspaces whose generations are rows, not trained models."""

from __future__ import annotations

import json
from pathlib import Path

from loop import config, workspace
from loop.hashing import sha256_file
from store.db import session, set_meta
from store.tables import Conversation, EvalResult, Generation, Membership


def make_workspace(tmp_path: Path, **overrides: dict) -> config.Config:
    """A real workspace folder with a config; `overrides` maps a section to key=value pairs. With LADDER_TEST_PG its
    store is a fresh database on that server."""
    from tests import pgdb

    if pgdb.enabled():
        overrides = {**overrides, "workspace": {**overrides.get("workspace", {}), "database": pgdb.new_database()}}
    cfg = workspace.create(tmp_path)
    if overrides:
        lines = []
        for section, values in overrides.items():
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        cfg.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        cfg = config.load(cfg.path)
    return cfg


def fake_gguf(cfg: config.Config, gen_id: int) -> tuple[str, str]:
    """A stand-in GGUF file for a generation row: (its path as the store keeps it, its SHA-256)."""
    path = cfg.models_dir / f"gen-{gen_id:04d}" / "model.f16.gguf"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + f" generation {gen_id}".encode())
    return path.relative_to(cfg.root).as_posix(), sha256_file(path)


def sha_of(gen_id: int) -> str:
    """The SHA-256 of the stand-in GGUF that add_generation writes for a generation."""
    import hashlib  # noqa: PLC0415

    return hashlib.sha256(b"GGUF" + f" generation {gen_id}".encode()).hexdigest()


def add_generation(cfg: config.Config, gen_id: int, parent: int | None, status: str, **fields) -> Generation:
    """A generation row with a stand-in GGUF file whose SHA-256 the row holds, as a real one would."""
    gguf, sha = fake_gguf(cfg, gen_id) if status not in ("training", "failed", "cancelled") else (None, None)
    values = dict(parent_sha=sha_of(parent) if parent is not None else "base", child_sha=sha, gguf_path=gguf,
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


def add_conversation(cfg: config.Config, n: int, gen_id: int | None = None, split: str | None = None,
                     **fields) -> Conversation:
    """A stored record; with gen_id and split, taken by that generation as that split (its membership)."""
    msgs = [{"role": "user", "content": f"question {n}?"}, {"role": "assistant", "content": f"Answer number {n}."}]
    values = dict(content_sha=f"c{n:06d}", kind="chat", source_format="jsonl", source_file="inbox/x.jsonl",
                  source_pos=n, messages=json.dumps(msgs), quality=1.0, karma=1.0)
    values.update(fields)
    c = Conversation(**values)
    with session(cfg.db_url) as s:
        s.add(c)
        s.flush()
        if gen_id is not None:
            s.add(Membership(gen_id=gen_id, conversation_id=c.id, split=split or "train"))
    return c


def add_probe(cfg: config.Config, key: str, passed: bool, gen_id: int = 0, **detail) -> None:
    with session(cfg.db_url) as s:
        s.add(EvalResult(gen_id=gen_id, eval="probe", item_key=key, prompt=f"probe {key}?", answer="x",
                         passed=passed, score=float(passed), detail=json.dumps({"answers": ["x"], **detail})))

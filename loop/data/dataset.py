"""Build a generation's dataset: new data since the parent, replay, a held-out split, curriculum order."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from loop.data import facts, mix, replay
from loop.evals import agentic
from loop.data.jobfiles import write_jsonl, write_rows
from loop.config import Config
from loop.hashing import sha256_records
from loop.data.lineage import ancestors, pending_clause
from store.tables import Conversation, EvalResult, Membership


@dataclass
class Plan:
    parent_id: int
    train_rows: list[dict[str, Any]] = field(default_factory=list)  # in training order
    holdout_items: list[dict[str, Any]] = field(default_factory=list)
    recall_items: list[dict[str, Any]] = field(default_factory=list)
    new_train_ids: list[int] = field(default_factory=list)
    holdout_ids: list[int] = field(default_factory=list)
    replay_ids: list[int] = field(default_factory=list)
    dpo_pairs: list[dict[str, Any]] = field(default_factory=list)  # the new training corrections, for DPO
    kto_rows: list[dict[str, Any]] = field(default_factory=list)  # unpaired good and bad answers, for KTO
    kto_ids: list[int] = field(default_factory=list)  # the undesirable records the KTO stage takes
    # For the facts stage: the facts the new records state, then those the lineage knows ("earlier": true).
    taught: list[dict[str, Any]] = field(default_factory=list)
    skipped_low_quality: int = 0
    data_delta_sha: str = ""
    summary: dict[str, Any] = field(default_factory=dict)


def plan(s: Session, cfg: Config, parent_id: int) -> Plan:
    lineage = ancestors(s, parent_id)
    stages = list(cfg.dataset.curriculum)
    pending = s.exec(select(Conversation).where(pending_clause(lineage)).order_by(Conversation.id)).all()
    # Undesirable answers (a false KTO label) are never trained as examples to follow.
    usable = [c for c in pending if c.quality >= cfg.karma.min_quality and c.kind != "undesirable"]
    p = Plan(parent_id=parent_id, skipped_low_quality=len(pending) - len(usable))
    holdout = split_holdout(usable, cfg.dataset.holdout_ratio, cfg.dataset.seed)
    # The data mix picks the new training rows; what it leaves out stays pending for a later generation.
    # A practice round's records are the model's verified failures: the mix never defers them.
    practice = [c for c in usable if c.id not in holdout and from_practice(c)]
    choice = mix.choose([c for c in usable if c.id not in holdout and not from_practice(c)], mix.settings(cfg),
                        cfg.dataset.seed)
    deferred = {c.id for c in choice.deferred}
    new_train = [c for c in usable if c.id not in holdout and c.id not in deferred]
    replayed = sample_replay(s, lineage, cfg.dataset.replay_examples, cfg.dataset.seed + parent_id)
    ordered = curriculum_order([(c, "replay") for c in replayed] + [(c, "new") for c in choice.rows + practice], stages)
    # A practice record's values belong to its item's conversation (context retention), not to the user's world,
    # except where it practised a fact the model missed: that one is asked back again.
    taught = taught_facts([c for c, src in ordered if src == "new" and (not from_practice(c) or fact_practice(c))])
    drilled = {c_id: [r for f in fs for r in facts.drills(f, cfg.dataset.fact_drills)] for c_id, fs in taught.items()}
    for c, src in ordered:  # each fact's drills right after the record that states it, in its stage
        p.train_rows.append(training_row(c) | {"_source": src, "_stage": c.stage})
        p.train_rows += [r | {"_source": "fact_drill", "_stage": c.stage} for r in drilled.get(c.id, [])]
    p.new_train_ids = [c.id for c in new_train]
    p.holdout_ids = [c.id for c in usable if c.id in holdout]
    p.replay_ids = [c.id for c in replayed]
    p.holdout_items = [holdout_item(c) for c in usable if c.id in holdout][: cfg.eval.generalization_items]
    new_facts = [f for fs in taught.values() for f in fs][: cfg.eval.fact_items]
    p.holdout_items += [facts.ask_item(f) for f in new_facts]  # asked in phrasings it never trained on
    p.recall_items = recall_items(s, lineage, cfg.eval.recall_items, cfg.dataset.seed)
    kept = known_facts(s, lineage, {f.key for f in new_facts}, cfg.eval.fact_items)
    p.recall_items += kept
    # The facts stage drills the facts the lineage already knows beside the new ones: drilled alone, new values
    # of the same shape overwrite them (measured: 1 of 9 earlier facts kept, ports and VLANs swapped).
    p.taught = [facts.as_dict(f) for fs in taught.values() for f in fs]
    p.taught += [it["fact"] | {"earlier": True} for it in kept if facts.valid(it.get("fact"))]
    p.data_delta_sha = sha256_records(
        sorted(({"kind": c.kind, "messages": json.loads(c.messages), "rejected": c.rejected,
                 "split": "holdout" if c.id in holdout else "train"} for c in usable if c.id not in deferred),
               key=lambda r: json.dumps(r, sort_keys=True)))
    p.summary = summarize(p, new_train, replayed, [c for c in usable if c.id in holdout])
    p.summary["mix"] = choice.summary()
    p.summary["practice_rows"] = len(practice)  # beside the mix, never deferred
    p.summary["facts"] = len(new_facts)
    p.summary["fact_drills"] = sum(len(v) for v in drilled.values())
    p.dpo_pairs = [dpo_pair(c) for c in new_train if c.kind == "correction" and c.rejected]
    p.summary["dpo_pairs"] = len(p.dpo_pairs)
    bad = [c for c in pending if c.kind == "undesirable"]
    if cfg.train.kto and len(bad) >= cfg.train.kto_min:
        good = [c for c in new_train if c.kind in ("chat", "correction", "completion")][: 4 * len(bad)]
        p.kto_rows = [kto_row(c, False) for c in bad] + [kto_row(c, True) for c in good]
        p.kto_ids = [c.id for c in bad] if good else []
        p.kto_rows = p.kto_rows if good else []  # KTO needs both kinds
    p.summary["kto_rows"] = len(p.kto_rows)
    p.summary["undesirable_waiting"] = len(bad) - len(p.kto_ids)
    d = cfg.dataset
    p.summary["self_replay_planned"] = replay.planned(d.self_replay_share, d.self_replay_max, len(p.train_rows),
                                                      len(replay.pool(cfg)) if d.self_replay_share > 0 else 0)
    return p


def split_holdout(records: list[Conversation], ratio: float, seed: int) -> set[int]:
    """Deterministic split by content hash, so the same data always splits the same way. A practice round's
    records always train: they are verified failures, and the suites' held-out split measures what they teach."""
    eligible = [c for c in records if c.kind != "document" and not from_practice(c)]

    def draw(c: Conversation) -> float:
        return int(hashlib.sha256(f"{seed}:{c.content_sha}".encode()).hexdigest()[:12], 16) / 16**12

    ranked = sorted(eligible, key=draw)
    held = {c.id for c in ranked if draw(c) < ratio}
    if len(eligible) >= 2 and not held:
        held = {ranked[0].id}  # every generation needs something to generalize to
    if len(held) == len(eligible) and len(eligible) > 1:
        held.discard(ranked[-1].id)
    return held


def taught_facts(records: list[Conversation]) -> dict[int, list[facts.Fact]]:
    """Record id -> the facts it is the last to state (a later statement of the same fact replaces an earlier one)."""
    last: dict[str, tuple[int, facts.Fact]] = {}
    for c in records:
        if fact_practice(c):  # the fact as it was asked, not as the drill's answer words it
            f = facts.of(json.loads(c.meta)["provenance"]["fact"])
            last[f.key] = (c.id, f)
        elif c.kind in ("chat", "correction"):
            for f in facts.in_conversation(json.loads(c.messages)):
                last[f.key] = (c.id, f)
    out: dict[int, list[facts.Fact]] = {}
    for c_id, f in last.values():
        out.setdefault(c_id, []).append(f)
    return out


def known_facts(s: Session, lineage: list[int], retaught: set[str], limit: int) -> list[dict[str, Any]]:
    """The facts the lineage was asked back and got right, newest first, as recall items: a child must keep them.
    One taught again in this generation is asked as a new fact instead."""
    if not lineage or limit <= 0:
        return []
    rows = s.exec(select(EvalResult).where(col(EvalResult.gen_id).in_(lineage), EvalResult.passed == True,  # noqa: E712
                                           col(EvalResult.eval).in_(["generalization", "recall"]))
                  .order_by(col(EvalResult.id).desc())).all()
    items: dict[str, dict[str, Any]] = {}
    for r in rows:
        detail = json.loads(r.detail)
        if detail.get("kind") == "fact" and r.item_key not in retaught:
            items.setdefault(r.item_key, {"key": r.item_key, "type": "fact", "messages": detail["messages"],
                                          "reference": r.reference, "expect": detail["expect"]}
                             | ({"fact": detail["fact"]} if "fact" in detail else {}))
    return sorted(list(items.values())[:limit], key=lambda it: it["key"])


def fact_practice(c: Conversation) -> bool:
    """A practice record of a fact the model missed (its provenance names the fact; a file may say anything)."""
    return from_practice(c) and facts.valid(json.loads(c.meta)["provenance"].get("fact"))


def from_practice(c: Conversation) -> bool:
    if '"practice"' not in (c.meta or ""):
        return False
    prov = json.loads(c.meta).get("provenance")
    return isinstance(prov, dict) and prov.get("kind") == "practice"


def sample_replay(s: Session, lineage: list[int], k: int, seed: int) -> list[Conversation]:
    if not lineage or k <= 0:
        return []
    ids = s.exec(select(Membership.conversation_id).where(col(Membership.gen_id).in_(lineage), Membership.split == "train")
                 .distinct().order_by(Membership.conversation_id)).all()
    chosen = sorted(random.Random(seed).sample(list(ids), min(k, len(ids))))
    return list(s.exec(select(Conversation).where(col(Conversation.id).in_(chosen)).order_by(Conversation.id)).all())


def curriculum_order(items: list[tuple[Conversation, str]], stages: list[str]) -> list[tuple[Conversation, str]]:
    """Stages in the config's order (unknown stages last); within a stage, replay spread evenly among the new rows.

    Training is not shuffled, so a block of replay followed by a block of new data would end
    the run on new data alone: spreading replay through the stage keeps it in every stretch.
    """
    rank = {name: i for i, name in enumerate(stages)}
    out: list[tuple[Conversation, str]] = []
    for stage in sorted({c.stage for c, _ in items}, key=lambda st: (rank.get(st, len(stages)), st)):
        new = [it for it in items if it[0].stage == stage and it[1] != "replay"]
        old = [it for it in items if it[0].stage == stage and it[1] == "replay"]
        spread = [((i + 0.5) / len(new), 0, it) for i, it in enumerate(new)] + \
                 [((j + 0.5) / len(old), 1, it) for j, it in enumerate(old)]
        out += [it for _, _, it in sorted(spread, key=lambda t: (t[0], t[1]))]
    return out


def training_row(c: Conversation) -> dict[str, Any]:
    messages = json.loads(c.messages)
    if c.kind == "document":
        return {"text": "\n\n".join(m["content"] for m in messages)}
    return {"messages": [_flatten(m) for m in messages]}


def _flatten(m: dict[str, Any]) -> dict[str, str]:
    """Tool calls become JSON text in the turn, the form the model is taught to write."""
    content = m.get("content") or ""
    if m.get("tool_calls"):
        calls = json.dumps(m["tool_calls"], ensure_ascii=False)
        content = f"{content}\n{calls}".strip()
    return {"role": m["role"], "content": content}


def dpo_pair(c: Conversation) -> dict[str, Any]:
    """A correction in DPOTrainer's conversational preference format: the turns before the answer, both answers."""
    messages = [_flatten(m) for m in json.loads(c.messages)]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "chosen": [messages[last]],
            "rejected": [{"role": "assistant", "content": c.rejected}]}


def kto_row(c: Conversation, label: bool) -> dict[str, Any]:
    """An answer labelled desirable or not, in KTOTrainer's conversational unpaired format."""
    messages = [_flatten(m) for m in json.loads(c.messages)]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": [messages[last]], "label": label}


def holdout_item(c: Conversation) -> dict[str, Any]:
    """A held-out record as an eval item: the conversation up to its last answer, and that answer.

    An answer that is one well-formed tool call is scored as a tool call (the right tool and
    arguments); any other answer by how likely the child finds it against the parent.
    """
    messages = [_flatten(m) for m in json.loads(c.messages)]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    reference = messages[last]["content"]
    item = {"key": f"c{c.id}", "type": "reference", "messages": messages[:last], "reference": reference}
    if agentic.tool_call_format(reference, True)[0]:
        call = agentic.calls(reference)[0][0]
        item |= {"type": "tool", "expect": {"tool": str(call["tool"]), "args": call["args"]}}
    return item


def known_probe(detail: dict[str, Any]) -> bool:
    """Whether G0's passed probe is knowledge to keep: not one it got right by luck (older stores lack the flag)."""
    return detail.get("steady") is not False


def recall_items(s: Session, lineage: list[int], limit: int, seed: int) -> list[dict[str, Any]]:
    """What the lineage knew: G0's probes it answered right steadily (every one, so the lineage is always held
    to what the base knew), then each ancestor's passed held-out tool calls, to `limit` items in all."""
    rows = s.exec(select(EvalResult).where(col(EvalResult.gen_id).in_(lineage), EvalResult.passed == True,  # noqa: E712
                                           col(EvalResult.eval).in_(["probe", "generalization"]))
                  .order_by(EvalResult.id)).all()
    items: dict[str, dict[str, Any]] = {}
    for r in rows:
        detail = json.loads(r.detail)
        if r.eval == "probe":
            if not known_probe(detail):
                continue
            items.setdefault(r.item_key, {"key": r.item_key, "type": "probe", "prompt": r.prompt, "answers": detail["answers"]})
        elif detail.get("kind") == "tool":  # a verdict that does not drift: the call is right or it is not
            items.setdefault(r.item_key, {"key": r.item_key, "type": "tool", "messages": detail["messages"],
                                          "reference": r.reference, "expect": detail["expect"]})
    probes = [it for it in items.values() if it["type"] == "probe"]
    rest = [it for it in items.values() if it["type"] != "probe"]
    rnd = random.Random(seed)
    if len(probes) >= limit:
        chosen = rnd.sample(probes, limit)
    else:
        chosen = probes + (rnd.sample(rest, limit - len(probes)) if len(rest) > limit - len(probes) else rest)
    return sorted(chosen, key=lambda it: it["key"])


def summarize(p: Plan, new_train: list[Conversation], replayed: list[Conversation],
              held: list[Conversation]) -> dict[str, Any]:
    def by(attr: str, rows: list[Conversation]) -> dict[str, int]:
        return dict(sorted(Counter(getattr(c, attr) for c in rows).items()))

    return {
        "new": len(new_train), "replay": len(replayed), "holdout": len(held), "recall_items": len(p.recall_items),
        "skipped_low_quality": p.skipped_low_quality,
        "new_by_kind": by("kind", new_train), "new_by_domain": by("domain", new_train),
        "new_by_stage": by("stage", new_train), "replay_by_domain": by("domain", replayed),
    }


def write(p: Plan, job_dir: Path) -> str:
    """Write the job's data files; return the SHA-256 of dataset.jsonl (replay included)."""
    job_dir.mkdir(parents=True, exist_ok=True)
    write_jsonl(job_dir / "holdout.jsonl", p.holdout_items)
    write_jsonl(job_dir / "recall.jsonl", p.recall_items)
    write_jsonl(job_dir / "dpo.jsonl", p.dpo_pairs)
    write_jsonl(job_dir / "kto.jsonl", p.kto_rows)
    write_jsonl(job_dir / "facts.jsonl", p.taught)
    return write_rows(job_dir, p.train_rows)

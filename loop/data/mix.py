"""The data mix of a generation: a share or count per source, over-sampling, and a cap per domain.

A pure function of the records and the config's [mix] table (the seed's data-mix table, and the balanced,
domain-capped sampling of chain-of-thought-path.md). Records it leaves out are not dropped: they stay
pending and a later generation takes them.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from loop.config import Config


class Item(Protocol):
    id: int | None
    content_sha: str
    source_format: str
    domain: str
    quality: float


@dataclass(frozen=True)
class Mix:
    total: int = 0  # 0: no total
    domain_cap: float = 1.0  # 1.0: no cap
    max_repeat: int = 1
    sources: dict[str, float] = field(default_factory=dict)  # <= 1: share, > 1: count; missing: no limit


@dataclass
class Choice:
    rows: list[Any]  # the records to train on, in input order; an over-sampled record appears more than once
    deferred: list[Any]  # left for a later generation
    cap: float = 1.0

    def summary(self) -> dict[str, Any]:
        unique = {id(r): r for r in self.rows}.values()

        def by(attr: str, items: Any) -> dict[str, int]:
            return dict(sorted(Counter(getattr(r, attr) for r in items).items()))

        rows_by_domain, records_by_domain = by("domain", self.rows), by("domain", unique)
        return {"rows": len(self.rows), "records": len(unique), "deferred": len(self.deferred),
                "rows_by_source": by("source_format", self.rows), "rows_by_domain": rows_by_domain,
                "records_by_domain": records_by_domain, "rows_by_stage": by("stage", self.rows),
                "deferred_by_source": by("source_format", self.deferred),
                "deferred_by_domain": by("domain", self.deferred), "domain_note": self.note()}

    def note(self) -> str:
        """What the domain cap did, in words: which domains it repeated to balance, which it held back."""
        if self.cap >= 1:
            return ""
        rows = Counter(r.domain for r in self.rows)
        records = Counter(r.domain for r in {id(r): r for r in self.rows}.values())
        deferred = Counter(r.domain for r in self.deferred)
        parts = [f"{d} repeated to {rows[d]} rows from {records[d]} records" for d in sorted(rows)
                 if rows[d] > records[d]]
        parts += [f"{n} {d} record(s) wait for a later generation" for d, n in sorted(deferred.items())]
        if not parts:
            return ""
        return f"mix.domain_cap {self.cap:g} (no domain above {self.cap:.0%} of the new rows): " + "; ".join(parts)


def settings(cfg: Config) -> Mix:
    m = cfg.data["mix"]  # checked with the rest of the config (loop.schema)
    return Mix(int(m["total"]), float(m["domain_cap"]), int(m["max_repeat"]), dict(m["sources"]))


def choose(records: Sequence[Item], mix: Mix, seed: int = 0) -> Choice:
    """The rows a generation trains on: source quotas, then the total, then the domain cap."""
    rank = {id(r): i for i, r in enumerate(_preferred(records, seed))}
    groups: dict[str, list[Any]] = defaultdict(list)
    for r in sorted(records, key=lambda r: rank[id(r)]):
        groups[r.source_format].append(r)
    base = mix.total or len(records)
    picked: dict[str, list[tuple[int, Any]]] = {}  # source -> [(copy number, record)], best first
    for source, group in groups.items():
        value = mix.sources.get(source, 1.0)
        if value == 1:  # the default: no limit of its own
            n = len(group)
        elif value < 1:
            n = min(math.floor(value * base + 0.5), len(group))
        else:  # a count; beyond what the source has, its records repeat (over-sampling)
            n = min(int(value), len(group) * mix.max_repeat)
        picked[source] = [(i // len(group), group[i % len(group)]) for i in range(n)]
    if mix.total and sum(map(len, picked.values())) > mix.total:
        # Sources given a share or count keep it; the others fill what is left of the total.
        fixed = {s: p for s, p in picked.items() if mix.sources.get(s, 1.0) != 1}
        free = {s: p for s, p in picked.items() if s not in fixed}
        room = mix.total - sum(map(len, fixed.values()))
        picked = fixed | _trim(free, room) if room >= 0 else _trim(picked, mix.total)
    rows = [pair for pairs in picked.values() for pair in pairs]
    fixed = {source for source, value in mix.sources.items() if value != 1}  # their share or count stands
    rows = _cap_domains(_balance_domains(rows, mix.domain_cap, mix.max_repeat, rank, fixed), mix.domain_cap, rank)
    kept = {id(r) for _, r in rows}
    order = {id(r): i for i, r in enumerate(records)}
    return Choice(rows=[r for _, r in sorted(rows, key=lambda p: (order[id(p[1])], p[0]))],
                  deferred=[r for r in records if id(r) not in kept], cap=mix.domain_cap)


def _preferred(records: Sequence[Any], seed: int) -> list[Any]:
    """Best first: higher quality, then a draw by content hash, so the same data always mixes the same way."""
    def draw(r: Any) -> str:
        return hashlib.sha256(f"{seed}:{r.content_sha}".encode()).hexdigest()

    return sorted(records, key=lambda r: (-r.quality, draw(r)))


def _trim(picked: dict[str, list[tuple[int, Any]]], total: int) -> dict[str, list[tuple[int, Any]]]:
    """Cut every source in proportion to its size (largest remainders) so the mix keeps its shape."""
    have = sum(map(len, picked.values()))
    if have <= total:
        return picked
    exact = {s: len(p) * total / have for s, p in picked.items()}
    keep = {s: math.floor(x) for s, x in exact.items()}
    for s in sorted(exact, key=lambda s: (keep[s] - exact[s], s))[: total - sum(keep.values())]:
        keep[s] += 1
    return {s: p[: keep[s]] for s, p in picked.items()}


def _balance_domains(rows: list[tuple[int, Any]], cap: float, max_repeat: int, rank: dict[int, int],
                     fixed: set[str]) -> list[tuple[int, Any]]:
    """Repeat the smaller domains' records (best first, at most max_repeat copies each) until the largest
    domain is within the cap: a batch mostly about one thing trains on all of it, balanced, instead of
    leaving most of it for later behind the next batch of the same thing. What repetition cannot
    balance, _cap_domains then defers. Records of a source given its own share or count are not repeated."""
    by_domain: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for pair in rows:
        by_domain[pair[1].domain].append(pair)
    if len(by_domain) < 2 or cap >= 1 or max_repeat <= 1:
        return rows
    cap = max(cap, 1 / len(by_domain))
    largest = max(by_domain, key=lambda d: (len(by_domain[d]), d))
    top = len(by_domain[largest])
    others = sum(len(g) for d, g in by_domain.items() if d != largest)
    need = math.ceil(top * (1 - cap) / cap - 1e-9)  # rows the others must fill for the largest to be at the cap
    if others >= need:
        return rows
    out = list(rows)
    for d, group in sorted(by_domain.items()):
        if d == largest:
            continue
        uniques = sorted({id(r): r for _, r in group if r.source_format not in fixed}.values(), key=lambda r: rank[id(r)])
        if not uniques:
            continue
        copies = Counter(id(r) for _, r in group)
        target = min(math.ceil(len(group) * need / others), len(uniques) * max_repeat)
        for i in range(max(0, target - len(group))):
            r = uniques[i % len(uniques)]
            if copies[id(r)] >= max_repeat:
                continue
            out.append((copies[id(r)], r))
            copies[id(r)] += 1
    return out


def _cap_domains(rows: list[tuple[int, Any]], cap: float, rank: dict[int, int]) -> list[tuple[int, Any]]:
    """Keep at most L rows per domain, L the largest number with L <= cap x the rows kept in all."""
    by_domain: dict[str, list[tuple[int, Any]]] = defaultdict(list)
    for pair in sorted(rows, key=lambda p: (p[0], rank[id(p[1])])):  # first copies, best records first
        by_domain[pair[1].domain].append(pair)
    if len(by_domain) < 2 or cap >= 1:
        return rows
    cap = max(cap, 1 / len(by_domain))  # with k domains no cap below 1/k can hold

    def fits(limit: int) -> bool:
        return limit <= cap * sum(min(len(g), limit) for g in by_domain.values()) + 1e-9

    low, high = 0, max(map(len, by_domain.values()))
    while low < high:  # the kept total grows slower than the limit past the answer: search for it
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return [pair for g in by_domain.values() for pair in g[:low]]

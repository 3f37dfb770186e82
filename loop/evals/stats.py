"""Uncertainty of eval scores: Wilson intervals for one pass rate, a paired bootstrap and McNemar for two."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

Z95 = 1.959964


def wilson(passed: int, total: int, z: float = Z95) -> tuple[float, float] | None:
    """The 95 % Wilson score interval of a pass rate; None for no items. Sound at small n, unlike p ± 2·se."""
    if total <= 0:
        return None
    p = passed / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)


def paired(a: Sequence[bool], b: Sequence[bool], resamples: int = 10_000, seed: int = 0) -> dict[str, object]:
    """B against A on the same items: the difference of pass rates (b - a), its 95 % interval by a paired
    bootstrap (items resampled with replacement, both verdicts kept together; percentile interval, seeded),
    won / lost / same counts, and McNemar's exact two-sided p-value on the discordant items."""
    n = len(a)
    if n != len(b):
        raise ValueError("paired verdicts need the same items")
    if n == 0:
        return {"n": 0, "diff": None, "ci95": None, "won": 0, "lost": 0, "same": 0, "p_mcnemar": None}
    diffs = [int(y) - int(x) for x, y in zip(a, b)]
    won, lost = diffs.count(1), diffs.count(-1)
    rnd = random.Random(seed)
    means = sorted(sum(diffs[rnd.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo, hi = means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]
    return {"n": n, "diff": round(sum(diffs) / n, 4), "ci95": [round(lo, 4), round(hi, 4)], "won": won,
            "lost": lost, "same": n - won - lost, "p_mcnemar": mcnemar_exact(won, lost)}


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, discordant items split like a fair coin."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return round(min(1.0, 2 * tail), 6)

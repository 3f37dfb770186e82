"""Token lists compared."""

from __future__ import annotations

from collections.abc import Sequence

# A shorter start two prompts share is decoded again rather than kept or copied: not worth it.
MIN_SHARED = 4


def shared_start(a: Sequence[int], b: Sequence[int]) -> int:
    """How many tokens two lists start with alike."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n

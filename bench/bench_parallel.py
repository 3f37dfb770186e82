"""Evals' and self-replay's answers decoded one at a time and side by side (eval.batch), in llama.cpp.

    .venv/bin/python bench/bench_parallel.py --gguf WORKSPACE/models/gen-0000/model.f16.gguf [--batches 1,4,8,16]

Asks G0's questions as a generation's evals ask them (the probes, 64 tokens) and 60 self-replay
prompts (128 tokens), once per batch size, and prints the time, the speed-up against batch 1
measured in the same run, and how many answers are the same as batch 1's and as the first
batch > 1's (those must all be: an answer does not depend on what it is decoded beside).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def questions(replay: int) -> list[tuple[list[dict[str, str]], int, bool]]:
    from loop.evals import probes

    asked = [([{"role": "user", "content": it["prompt"]}], 64, False) for it in probes.probe_items()]
    return asked + [([{"role": "user", "content": q}], 128, False) for q in probes.self_replay_prompts()[:replay]]


def answer(gguf: Path, batch: int, qs, threads: int, context: int) -> tuple[float, list[str]]:
    from loop.model.llm import Runner

    with Runner(gguf, threads=threads, context=context, batch=batch) as r:
        t = time.perf_counter()
        r.prefetch(qs)
        out = [r.chat(m, k, raw=raw) for m, k, raw in qs]
        return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, required=True, help="a GGUF to ask (a G0's model.f16.gguf)")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--replay", type=int, default=60, help="self-replay prompts to ask besides the probes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=int, default=2048)
    args = ap.parse_args()
    qs = questions(args.replay)
    batches = [int(b) for b in args.batches.split(",")]
    print(f"{len(qs)} questions, {args.threads} threads, context {args.context}, {args.gguf.name}")
    runs = {b: answer(args.gguf, b, qs, args.threads, args.context) for b in batches}
    base = runs[batches[0]]
    first = next((runs[b][1] for b in batches if b > 1), None)
    print(f"{'batch':>5} {'s':>7} {'x':>6} {'same as ' + str(batches[0]):>11} {'same as first > 1':>18}")
    for b in batches:
        seconds, out = runs[b]
        same_base = sum(x == y for x, y in zip(out, base[1]))
        same_first = sum(x == y for x, y in zip(out, first)) if first is not None and b > 1 else "-"
        print(f"{b:>5} {seconds:>7.1f} {base[0] / seconds:>6.2f} {same_base:>11} {same_first:>18}")


if __name__ == "__main__":
    main()

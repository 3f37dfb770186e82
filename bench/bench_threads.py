"""llama.cpp generation speed by thread count, on a quiet machine and beside a busy process.

    .venv/bin/python bench/bench_threads.py [--gguf PATH] [--busy 2]

For each thread setting (1, 2 and 0 = eval.threads' "idle cores" choice) it generates the same greedy
answers and prints tokens/s quiet and beside --busy pure-Python spinning processes, and the slowdown as a
ratio. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPTS = ["Name three uses of a terminal multiplexer.", "What does `df -h` show?", "Explain a git rebase in two lines."]


def spin(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def tokens_per_s(gguf: Path, threads: int) -> tuple[float, int]:
    from loop.model.llm import Runner
    from loop.model.threads import pick

    used = pick(threads)
    with Runner(gguf, threads=used, context=1024) as r:
        r.chat([{"role": "user", "content": "hi"}], max_tokens=4)  # warm up
        t, n = time.perf_counter(), 0
        for p in PROMPTS:
            out = r._ready().create_chat_completion([{"role": "user", "content": p}], max_tokens=48, temperature=0.0)
            n += out["usage"]["completion_tokens"]
        return n / (time.perf_counter() - t), used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, help="default: the embedded model")
    ap.add_argument("--busy", type=int, default=2, help="spinning processes for the loaded run")
    args = ap.parse_args()
    if args.gguf is None:
        from loop.workspace import builtin_base  # noqa: PLC0415
        args.gguf = builtin_base()
    quiet = {t: tokens_per_s(args.gguf, t) for t in (1, 2, 0)}
    stop = multiprocessing.Event()
    procs = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    for p in procs:
        p.start()
    time.sleep(1.0)  # a bench, not a test: let the spinners reach the CPU before sampling
    try:
        loaded = {t: tokens_per_s(args.gguf, t) for t in (1, 2, 0)}
    finally:
        stop.set()
        for p in procs:
            p.join()
    print(f"{'threads':<12}{'quiet tok/s':>12}{'busy tok/s':>12}{'slowdown':>10}  (beside {args.busy} busy processes)")
    for t in (1, 2, 0):
        name = "0 (idle)" if t == 0 else str(t)
        q, used_q = quiet[t]
        b, used_b = loaded[t]
        extra = f"  used {used_q} quiet, {used_b} busy" if t == 0 else ""
        print(f"{name:<12}{q:>12.1f}{b:>12.1f}{q / b:>9.1f}x{extra}")


if __name__ == "__main__":
    main()

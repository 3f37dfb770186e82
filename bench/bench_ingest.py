"""Ingestion throughput (records per second) and memory, for chat JSONL and a ChatGPT-style export.

Each size runs in a fresh process, so its peak RSS is its own. Streaming shows as a peak that stays flat
when the file grows tenfold. Prints figures; asserts nothing.

    .venv/bin/python bench/bench_ingest.py                  # 10k and 100k chat records, JSONL and export
    .venv/bin/python bench/bench_ingest.py --sizes 100000 --formats jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPICS = ["disk usage on", "restart nginx on", "why is the queue slow on", "rotate the logs on", "check uptime of"]


def chat(i: int) -> dict:
    host = f"node-{i:06d}"
    return {"messages": [
        {"role": "system", "content": "You are a terse assistant for an ops team."},
        {"role": "user", "content": f"{TOPICS[i % len(TOPICS)]} {host}?"},
        {"role": "assistant", "content": f"On `{host}`: {i % 97}% used, {i % 13 + 1} GB free. Nothing to do yet; "
                                         f"look again after the nightly backup."}]}


def export_conversation(i: int) -> dict:
    """One conversation shaped like ChatGPT's conversations.json: a tree of nodes with the kept path."""
    turns = chat(i)["messages"][1:]
    mapping = {"root": {"id": "root", "message": None, "parent": None, "children": ["n0"]}}
    for k, m in enumerate(turns):
        mapping[f"n{k}"] = {"id": f"n{k}", "parent": "root" if k == 0 else f"n{k - 1}",
                            "children": [f"n{k + 1}"] if k + 1 < len(turns) else [],
                            "message": {"author": {"role": m["role"]}, "content": {"content_type": "text", "parts": [m["content"]]},
                                        "recipient": "all", "metadata": {}}}
    return {"title": f"Conversation {i}", "create_time": 1714389000 + i, "mapping": mapping,
            "current_node": f"n{len(turns) - 1}", "id": f"conv-{i}"}


def write_input(folder: Path, n: int, fmt: str) -> Path:
    """Written in a stream too, so the generator never holds the file either."""
    if fmt == "jsonl":
        path = folder / "chats.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps(chat(i)) + "\n")
    else:
        path = folder / "conversations.json"
        with path.open("w", encoding="utf-8") as f:  # one long line, as the export is delivered
            f.write("[")
            for i in range(n):
                f.write(("," if i else "") + json.dumps(export_conversation(i)))
            f.write("]")
    return path


def rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def child(n: int, fmt: str) -> dict:
    from loop import workspace  # noqa: PLC0415 - imported here so the parent stays light
    from loop.inbox import ingest

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        cfg = workspace.create(Path(tmp))
        path = write_input(cfg.inbox_dir, n, fmt)
        size_mb = path.stat().st_size / 2**20
        before = rss_now_mb()
        started, cpu = time.perf_counter(), time.process_time()
        report = ingest.ingest(cfg)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        assert report["ingested"] == n, report
    return {"format": fmt, "records": n, "file_mb": round(size_mb, 1), "seconds": round(seconds, 2),
            "records_per_s": round(n / seconds),
            "cpu_s": round(cpu, 2), "records_per_cpu_s": round(n / cpu), "rss_before_mb": round(before, 1), "peak_rss_mb": round(peak, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--formats", default="jsonl,chatgpt")
    p.add_argument("--child", nargs=2, metavar=("N", "FORMAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(int(args.child[0]), args.child[1])))
        return
    print(f"{'format':<8} {'records':>8} {'file MB':>8} {'seconds':>8} {'records/s':>10} {'CPU s':>7} "
          f"{'rec/CPU s':>10} {'RSS before':>11} {'peak RSS':>9}")
    for fmt in args.formats.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            out = subprocess.run([sys.executable, __file__, "--child", str(n), fmt], cwd=ROOT, check=True,
                                 capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['format']:<8} {r['records']:>8} {r['file_mb']:>8} {r['seconds']:>8} {r['records_per_s']:>10} "
                  f"{r['cpu_s']:>7} {r['records_per_cpu_s']:>10} {r['rss_before_mb']:>8} MB {r['peak_rss_mb']:>6} MB",
                  flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

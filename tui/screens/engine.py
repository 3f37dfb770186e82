"""What the app asks the engine to do. Each function runs in a worker thread and imports the engine lazily;
each returns a dict with a one-line "message" for the user, or raises UserError / OperationFailed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loop.config import Config
from loop.errors import OperationFailed, UserError

ROOT = Path(__file__).resolve().parents[2]


def approve(cfg: Config, gen_id: int) -> dict[str, Any]:
    """Make a generation active; for an override, the result says which one was active before, for the undo."""
    from loop.jobs import promotion  # noqa: PLC0415
    from store.db import get_meta, session  # noqa: PLC0415

    result = promotion.approve(cfg, gen_id)
    with session(cfg.db_url) as s:
        moved = get_meta(s, "last_approve") or {}  # written in the approval's own transaction
    return result | {"from": moved.get("from") if moved.get("gen") == gen_id else None, "to": gen_id}


def undo_approve(cfg: Config, from_gen: int, to_gen: int) -> dict[str, Any]:
    """Put back an override: the generation rejected as before, the one active before it active again."""
    from loop.jobs import promotion  # noqa: PLC0415

    return promotion.undo_approve(cfg) | {"from": from_gen, "to": to_gen}


def reject(cfg: Config, gen_id: int) -> dict[str, Any]:
    from loop.jobs import promotion  # noqa: PLC0415

    return promotion.reject(cfg, gen_id)


def rollback(cfg: Config) -> dict[str, Any]:
    """Make the active generation's parent active; the result says where from, for the undo."""
    from loop.jobs import promotion  # noqa: PLC0415
    from store.db import get_meta, session  # noqa: PLC0415

    result = promotion.rollback(cfg)
    with session(cfg.db_url) as s:
        moved = get_meta(s, "last_rollback") or {}  # written in the rollback's own transaction
    return result | {"from": moved.get("from"), "to": moved.get("to", result["active_gen"])}


def undo_rollback(cfg: Config, from_gen: int, to_gen: int) -> dict[str, Any]:
    """Put back the generation a rollback moved away from, if nothing else moved the pointer since."""
    from loop.jobs import promotion  # noqa: PLC0415

    return promotion.undo_rollback(cfg) | {"from": from_gen, "to": to_gen}


def train(cfg: Config) -> dict[str, Any]:
    from loop.jobs import runner as jobs  # noqa: PLC0415

    gen_id, pid = jobs.start(cfg)
    return {"gen": gen_id, "pid": pid, "message": f"G{gen_id}: training started (pid {pid})"}


def evaluate(cfg: Config, gen_id: int) -> dict[str, Any]:
    """Ask the engine to run a generation's evals again, in a job like training."""
    from loop.jobs import reeval  # noqa: PLC0415

    _, pid = reeval.start(cfg, gen_id)
    return {"gen": gen_id, "pid": pid, "message": f"G{gen_id}: evals started again (pid {pid})"}


def cancel(cfg: Config) -> dict[str, Any]:
    from loop.jobs import runner as jobs  # noqa: PLC0415

    job = jobs.cancel(cfg)
    if job is None:
        raise UserError("no generation is training")
    return {"gen": job.id, "message": f"asked G{job.id} to stop; the active generation stays as it is"}


def ingest(cfg: Config, paths: list[Path] | None = None) -> dict[str, Any]:
    """Ingest in an engine process (`ladder ingest`): a multi-GB export is never parsed under the UI's lock."""
    r = run_cli(cfg, "ingest", *[str(p) for p in paths or []])
    message = (f"ingested {r['ingested']} record(s), {r['duplicates']} duplicate(s), {r['bad_records']} bad; "
               f"karma {r['karma']:.1f}/{r['karma_threshold']:.1f}")
    return r | {"message": message}


def run_cli(cfg: Config, *args: str, timeout: float = 3600.0) -> dict[str, Any]:
    """Run one `ladder` command on this workspace in its own process; its JSON result, or its error line."""
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), *args, "--json"],
                       capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=timeout)
    if p.returncode != 0:
        lines = [line for line in p.stderr.splitlines() if line.startswith("error: ")]
        reason = lines[-1].removeprefix("error: ") if lines else f"'ladder {args[0]}' exited with {p.returncode}"
        raise (UserError if p.returncode == 2 else OperationFailed)(reason)
    return json.loads(p.stdout.strip().splitlines()[-1])


def start_loop(cfg: Config) -> dict[str, Any]:
    """Start `ladder run` for the workspace, in its own session, unless a loop already watches it."""
    from loop.inbox.watch import watcher  # noqa: PLC0415

    pid = watcher(cfg)
    if pid is not None:
        return {"pid": pid, "started": False}
    log = (cfg.models_dir / "loop.log").open("ab")
    env = os.environ | {"PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--config", str(cfg.path), "run"], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    finally:
        log.close()
    _loops.append(proc)
    return {"pid": proc.pid, "started": True}


def loop_state(cfg: Config) -> int | None:
    """The PID of the loop watching the workspace now, or None."""
    from loop.inbox.watch import watcher  # noqa: PLC0415

    for proc in list(_loops):
        if proc.poll() is not None:  # reap a loop that ended, so it does not linger as a zombie
            _loops.remove(proc)
    return watcher(cfg)


def stop_loop(cfg: Config) -> dict[str, Any]:
    """Ask the loop to stop (it cancels the generation it is training, as Ctrl-C on `ladder run` does)."""
    pid = loop_state(cfg)
    if pid is None:
        raise UserError("no loop is running for this workspace")
    os.kill(pid, signal.SIGTERM)
    return {"pid": pid, "message": f"asked the loop (pid {pid}) to stop"}


_loops: list[subprocess.Popen] = []


def feedback(cfg: Config, kind: str, exchange: dict[str, Any], better: str | None = None) -> dict[str, Any]:
    """Write a marked exchange into the inbox and ingest it at once, so its karma counts now."""
    from loop.inbox import feedback as fb  # noqa: PLC0415

    inbox, gen, raw = cfg.inbox_dir, exchange.get("gen_id"), bool(exchange.get("raw"))
    if kind == "good":
        path = fb.good(inbox, exchange["messages"], gen, raw)
    elif kind == "undesirable":
        path = fb.undesirable(inbox, exchange["messages"], gen, raw)
    else:
        path = fb.correction(inbox, exchange["prompt"], better or "", exchange["answer"], gen, raw, label=kind)
    what = {"good": "a conversation", "undesirable": "an answer not to give (unpaired: trained by KTO)"}.get(
        kind, "a correction (chosen / rejected)")
    try:
        result = ingest(cfg, [path])
    except (UserError, OperationFailed, OSError, subprocess.SubprocessError, ValueError) as e:
        # The file is safe in the inbox; the watcher or the ingest key picks it up later.
        return {"kind": kind, "path": str(path), "index": exchange.get("index"), "karma": None,
                "message": f"saved as {what} in the inbox ({path.name}); not ingested yet: {e}"}
    message = f"saved as {what} in the inbox; karma {result['karma']:.1f}/{result['karma_threshold']:.1f}"
    return {"kind": kind, "path": str(path), "index": exchange.get("index"), "karma": result["karma"],
            "message": message}


def describe(error: BaseException | None) -> str:
    """A worker's failure in one line: the engine's own words for the errors a user can act on."""
    if isinstance(error, (UserError, OperationFailed)):
        return str(error)
    return f"{type(error).__name__}: {error}"


def default_runner(gguf_path: Path, threads: int, context: int, seed: int) -> Any:
    from loop.model.llm import Runner  # noqa: PLC0415 - llama.cpp loads in the chat worker, on first use

    return Runner(gguf_path, threads=threads, context=context, seed=seed)


class ChatModel:
    """The GGUF the chat talks to, loaded on first use and kept until another generation is asked.

    Used from chat worker threads, one answer at a time; llama.cpp is imported by the factory, never here.
    """

    def __init__(self, factory: Callable[..., Any], threads: int, context: int) -> None:
        self.factory, self.threads, self.context = factory, threads, context
        self._runner: Any = None
        self._path: Path | None = None
        self._lock = threading.Lock()

    def holds(self, path: Path) -> bool:
        """Whether this file is the one loaded now (the next answer needs no load)."""
        return self._path == path

    def stream(self, path: Path, messages: list[dict[str, str]], max_tokens: int, raw: bool,
               on_load: Callable[[], Any]) -> Iterator[str]:
        with self._lock:
            if self._path != path:
                self._close()
                on_load()
                self._runner = self.factory(path, threads=self.threads, context=self.context, seed=0)
                self._path = path
            yield from self._runner.stream_chat(messages, max_tokens, raw=raw)

    def close(self, timeout: float = 5.0) -> None:
        if self._lock.acquire(timeout=timeout):
            try:
                self._close()
            finally:
                self._lock.release()

    def _close(self) -> None:
        runner, self._runner, self._path = self._runner, None, None
        if runner is not None:
            runner.close()

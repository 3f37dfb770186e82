"""Generation 0's answers, kept per model file in the user's cache folder and reused by the next workspace.

A Runner answers greedily from an empty KV cache, so one GGUF, one llama.cpp build and one
question give one text at any thread count (tests/loop/test_evals.py). Every workspace made
from the same base exports the same G0 file, so asking its probes, their rephrasings, the
rounded copy's re-asks, the tone probes and the suites again measured nothing new: 95 of the
153 s of `ladder init` on the embedded model. Answers are keyed by the file's SHA-256, the
llama.cpp build, the context size, and the question with its token limit; anything else
(a new suite item, a changed probe, another base) is a miss and is asked.

The cache is a convenience: a file that cannot be read is ignored and rewritten, one that
cannot be written is skipped, and `eval.base_answer_cache = false` turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loop.places import user_folder
from store.ledger import write_atomic

log = logging.getLogger(__name__)

VERSION = 1


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ladder/answers`` (``~/.cache`` when XDG_CACHE_HOME is unset or relative)."""
    return user_folder("XDG_CACHE_HOME", ".cache") / "answers"


@functools.cache
def llama_build() -> str:
    """The llama.cpp build answers come from: the binding's version and its library's SHA-256."""
    import llama_cpp  # noqa: PLC0415 - loaded only when a model is asked

    folder = Path(llama_cpp.__file__).parent
    digest = hashlib.sha256(llama_cpp.__version__.encode())
    for lib in sorted(folder.rglob("libllama*")) + sorted(folder.rglob("libggml*")):
        if lib.is_file() and not lib.is_symlink():
            digest.update(lib.name.encode())
            digest.update(hashlib.sha256(lib.read_bytes()).digest())
    return digest.hexdigest()


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _question(messages: list[dict[str, str]], max_tokens: int, raw: bool, until: Any = None) -> str:
    """A question's key: an answer ended early (``until``, e.g. scoring.Answered) is another answer."""
    return _sha([messages, max_tokens, raw] + ([repr(until)] if until is not None else []))


class Answers:
    """Answers one model's chat questions from the cache, and from a runner opened at the first miss.

    Used as a Runner is (``chat``; ``with``): ``open_runner`` is called at most once. ``asked``
    and ``reused`` count the questions answered by the model and by the cache, and are added
    to ``stats`` (when given) on close.
    """

    def __init__(self, model_sha: str, context: int, open_runner: Callable[[], Any], *, enabled: bool = True,
                 folder: Path | None = None, stats: dict[str, int] | None = None, decoding: str = "alone"):
        self.enabled, self.stats = enabled, stats
        # Decoded side by side or alone, an answer can differ at a near tie (loop.model.parallel).
        key = [VERSION, model_sha, context, llama_build()] + ([] if decoding == "alone" else [decoding])
        self.file = (folder or cache_dir()) / f"{_sha(key)}.json"
        self._open, self._runner = open_runner, None
        self._known = self._read() if enabled else {}
        self._new: dict[str, str] = {}
        self.asked = self.reused = 0

    def __enter__(self) -> Answers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def chat(self, messages: list[dict[str, str]], max_tokens: int, raw: bool = False, until: Any = None) -> str:
        key = _question(messages, max_tokens, raw, until)
        if key in self._known:
            self.reused += 1
            return self._known[key]
        if self._runner is None:
            self._runner = self._open()
        # a question that does not fit is not kept
        answer = (self._runner.chat(messages, max_tokens, raw=raw) if until is None
                  else self._runner.chat(messages, max_tokens, raw=raw, until=until))
        self._known[key] = self._new[key] = answer
        self.asked += 1
        return answer

    def prefetch(self, requests: list[tuple[Any, ...]]) -> None:
        """Let the runner decode the questions not kept yet side by side (a runner without ``prefetch`` asks later)."""
        misses = [r for r in requests if _question(*r) not in self._known]
        if not misses:
            return
        if self._runner is None:
            self._runner = self._open()
        ahead = getattr(self._runner, "prefetch", None)
        if ahead is not None:
            ahead(misses)

    def close(self) -> None:
        if self.stats is not None:
            self.stats["asked"] = self.stats.get("asked", 0) + self.asked
            self.stats["reused"] = self.stats.get("reused", 0) + self.reused
        self.asked = self.reused = 0
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()
        self._save()

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        answers = data.get("answers") if isinstance(data, dict) else None
        if not isinstance(answers, dict):
            return {}
        return {k: v for k, v in answers.items() if isinstance(k, str) and isinstance(v, str)}

    def _save(self) -> None:
        if not (self.enabled and self._new):
            return
        # Another init of the same base may have written meanwhile: keep its answers too.
        merged = self._read() | self._new
        try:
            write_atomic(self.file, json.dumps({"version": VERSION, "answers": merged}, ensure_ascii=False))
        except OSError as e:
            log.warning("could not keep G0's answers in %s: %s", self.file.parent, e)
        self._new = {}

"""A thin, greedy, deterministic runner over one GGUF file in llama.cpp."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from loop.errors import OperationFailed, UserError
from loop.model.threads import pick

Message = dict[str, str]
GGUF_MAGIC = b"GGUF"


def raw_prompt(messages: list[Message]) -> str:
    """The raw-prompt runtime's text for a conversation: no template, no system scaffolding.

    The message contents joined by a blank line, so a single user message is
    sent exactly as typed (the seed's ``prompt = user_input``).
    """
    return "\n\n".join(m["content"] for m in messages)


class Runner:
    """One loaded GGUF; every call decodes greedily from an empty KV cache.

    Greedy means temperature 0 (llama.cpp then takes the most likely token at
    each step) with no repeat penalty and a fixed seed; the KV cache is cleared before each call so an answer does not
    depend on what was asked before it. Same GGUF + same input -> same text.
    llama.cpp is imported here, not at module import, so the UI can import loop.
    """

    def __init__(self, gguf_path: str | Path, threads: int = 2, context: int = 2048, seed: int = 0,
                 batch: int = 1):
        self.path = Path(gguf_path)
        self.seed, self.batch, self.context = seed, batch, context
        self._llm: Any = None
        self._lanes: Any = None
        self._decoded: dict[str, str] = {}
        _check_gguf(self.path)
        trained = trained_context(self.path)
        if trained and context > trained:
            raise UserError(f"eval.context = {context} is more than llama.cpp could allocate for this model: "
                            f"{self.path.name} was trained for {trained} tokens; set eval.context to {trained} or less")
        try:
            from llama_cpp import Llama
        except ImportError as exc:  # pragma: no cover - packaging problem
            raise OperationFailed(f"llama-cpp-python is not installed: {exc}") from exc
        threads = pick(threads)
        try:
            self._llm = Llama(
                model_path=str(self.path), n_ctx=context, n_threads=threads,
                n_threads_batch=threads, seed=seed, verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            if context > 512 and _loads(self.path, threads):
                raise UserError(f"eval.context = {context} is more than llama.cpp could allocate for "
                                f"{self.path.name} on this machine; lower eval.context") from exc
            raise UserError(f"cannot load GGUF {self.path}: llama.cpp rejected it "
                            "(corrupt, truncated or an unsupported architecture)") from exc

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the model; safe to call twice."""
        lanes, self._lanes = self._lanes, None
        if lanes is not None:
            lanes.close()
        llm, self._llm = self._llm, None
        if llm is not None:
            llm.close()

    @property
    def chat_format(self) -> str | None:
        """The chat format llama.cpp chose from the GGUF's metadata (e.g. "chatml")."""
        return self._ready().chat_format

    def chat(self, messages: list[Message], max_tokens: int, raw: bool = False,
             until: Callable[[str], bool] | None = None) -> str:
        """The assistant's reply to a conversation, through the GGUF's chat template.

        With ``raw=True`` the conversation is sent as ``raw_prompt(messages)`` instead.
        ``until`` ends the reply early, at the first token after which it says True of the text.
        A runner made with ``batch`` > 1 decodes through loop.model.parallel (see ``prefetch``).
        """
        if self.batch > 1:
            key = _key(messages, max_tokens, raw, until)
            if key not in self._decoded:
                self.prefetch([(messages, max_tokens, raw, until)])
            if key in self._decoded:
                return self._decoded[key]
        if until is not None:
            text = ""
            for piece in self.stream_chat(messages, max_tokens, raw=raw):
                text += piece
                if until(text):
                    break
            return text
        if raw:
            return self.complete(raw_prompt(messages), max_tokens)
        out = self._call("create_chat_completion", messages=messages, max_tokens=max_tokens)
        return out["choices"][0]["message"]["content"] or ""

    def prefetch(self, requests: list[tuple[Any, ...]]) -> None:
        """Decode these (messages, max_tokens, raw[, until]) questions side by side, ``batch`` at a time, for ``chat``.

        Only a runner made with ``batch`` > 1 does; a question that does not fit the context is
        left to ``chat``, which asks it alone and says why it failed.
        """
        if self.batch <= 1:
            return
        from loop.model import parallel  # noqa: PLC0415

        llm = self._ready()
        todo: dict[str, Any] = {}
        for messages, max_tokens, raw, *rest in requests:
            until = rest[0] if rest else None
            key = _key(messages, max_tokens, raw, until)
            if key not in self._decoded and key not in todo:
                try:
                    job = (parallel.completion_job(llm, raw_prompt(messages), max_tokens) if raw
                           else parallel.chat_job(llm, messages, max_tokens))
                except Exception:  # noqa: BLE001 - e.g. a template that rejects the messages: chat says why
                    job = None
                if job is not None:
                    job.until = until
                    todo[key] = job
        if not todo:
            return
        if self._lanes is None:
            self._lanes = parallel.Lanes(llm, self.batch, self.context)
        self._lanes.run(list(todo.values()))
        for key, job in todo.items():
            if job.text is not None:
                self._decoded[key] = job.text.decode("utf-8", errors="ignore")

    def complete(self, prompt: str, max_tokens: int) -> str:
        """The continuation of a raw prompt (no chat template)."""
        out = self._call("create_completion", prompt=prompt, max_tokens=max_tokens)
        return out["choices"][0]["text"]

    def stream_chat(self, messages: list[Message], max_tokens: int, raw: bool = False) -> Iterator[str]:
        """Yield the reply in pieces as they are decoded; the pieces join to ``chat``'s text."""
        if raw:
            chunks = self._call("create_completion", prompt=raw_prompt(messages),
                                max_tokens=max_tokens, stream=True)
            for chunk in _guard(chunks):
                if chunk["choices"][0]["text"]:
                    yield chunk["choices"][0]["text"]
            return
        chunks = self._call("create_chat_completion", messages=messages,
                            max_tokens=max_tokens, stream=True)
        for chunk in _guard(chunks):
            piece = chunk["choices"][0]["delta"].get("content")
            if piece:
                yield piece

    def _ready(self) -> Any:
        if self._llm is None:
            raise OperationFailed(f"model {self.path.name} is closed")
        return self._llm

    def _call(self, method: str, **kwargs: Any) -> Any:
        from llama_cpp import LogitsProcessorList  # noqa: PLC0415 - loaded with the model already

        llm = self._ready()
        llm.reset()
        # top_k/top_p/min_p stay at llama-cpp-python's defaults: at temperature 0 they cannot
        # change the argmax, and top_p=1 with min_p=0 made each call ~8x slower here.
        try:
            return getattr(llm, method)(
                temperature=0.0, repeat_penalty=1.0, seed=self.seed,
                logits_processor=LogitsProcessorList([_Cap(kwargs.get("max_tokens"), llm.token_eos())]), **kwargs,
            )
        except ValueError as exc:  # e.g. the prompt does not fit the context window
            raise OperationFailed(_one_line(exc)) from exc


class _Cap:
    """Ends an answer that runs past max_tokens: llama-cpp-python does not count a token that leaves a UTF-8
    character incomplete, so a model writing stray byte tokens would otherwise decode to the end of the context
    and fail there. A few tokens of slack let a real multi-byte character finish."""

    SLACK = 4

    def __init__(self, max_tokens: int | None, eos: int):
        self.max_tokens, self.eos, self.start = max_tokens, eos, None

    def __call__(self, input_ids, scores):
        if self.start is None:
            self.start = len(input_ids)
        if self.max_tokens and len(input_ids) - self.start >= self.max_tokens + self.SLACK:
            scores[:] = -float("inf")
            scores[self.eos] = 0.0
        return scores


def _key(messages: list[Message], max_tokens: int, raw: bool, until: Any = None) -> str:
    return json.dumps([messages, max_tokens, raw] + ([repr(until)] if until is not None else []), ensure_ascii=False)


def _guard(chunks: Iterator[Any]) -> Iterator[Any]:
    """Turn llama.cpp's ValueError during streaming into OperationFailed."""
    try:
        yield from chunks
    except ValueError as exc:
        raise OperationFailed(_one_line(exc)) from exc


def trained_context(path: Path) -> int | None:
    """The context length the model was trained for, from the GGUF's metadata (None when it does not say)."""
    try:
        from gguf import GGUFReader

        fields = GGUFReader(path).fields
        arch = fields["general.architecture"].contents()
        field = fields.get(f"{arch}.context_length")
        return int(field.contents()) if field is not None else None
    except Exception:  # noqa: BLE001 - unreadable metadata: llama.cpp will say what is wrong
        return None


def _loads(path: Path, threads: int) -> bool:
    """Whether the file loads with a small context: then the context asked for was the problem."""
    from llama_cpp import Llama

    try:
        Llama(model_path=str(path), n_ctx=256, n_threads=threads, verbose=False).close()
        return True
    except (ValueError, RuntimeError, OSError):
        return False


def _check_gguf(path: Path) -> None:
    """Fail with a one-line UserError before llama.cpp sees a missing or non-GGUF file."""
    if not path.is_file():
        raise UserError(f"GGUF file not found: {path}")
    with path.open("rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise UserError(f"not a GGUF file: {path}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__

"""How likely a model finds a given answer, token by token, through llama.cpp: one forward pass, no generation.

Prompt evaluation is several times faster than generating, so scoring a reference answer by its
log-likelihood costs far less than asking for an answer and comparing texts. The same forward
passes give the model's whole next-token distribution, from which the drift of a child from its
parent (KL divergence) is measured on the same tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import UserError
from loop.model.threads import pick

Message = dict[str, str]


class Scorer:
    """One GGUF in llama.cpp with logits kept for every position (llama.cpp's logits_all)."""

    def __init__(self, gguf: str | Path, threads: int = 2, context: int = 1024):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path, self.context = Path(gguf), context
        threads = pick(threads)
        try:
            self.llm = Llama(model_path=str(self.path), n_ctx=context, n_threads=threads, n_threads_batch=threads,
                             logits_all=True, verbose=False, seed=0)
        except (ValueError, RuntimeError, OSError) as exc:
            raise UserError(f"cannot load GGUF {self.path} for scoring: llama.cpp rejected it") from exc
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise UserError(f"{self.path.name} has no chat template: answers cannot be scored as chat turns")
        self.eos = self._text(self.llm.token_eos())
        self.fmt = Jinja2ChatFormatter(template=template, eos_token=self.eos, bos_token=self._text(self.llm.token_bos()))

    def _text(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()

    def tokens(self, messages: list[Message], answer: str) -> tuple[list[int], int]:
        """The chat-templated conversation followed by the answer and its end-of-turn token; and where the answer
        starts. Cut from the end of the answer to fit the context."""
        prompt = self.fmt(messages=messages).prompt
        ids = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        full = self.llm.tokenize((prompt + answer + self.eos).encode("utf-8"), add_bos=False, special=True)
        start = len(ids) if full[:len(ids)] == ids else _common(ids, full)
        return full[: self.context - 1], start

    def logprobs(self, messages: list[Message], answer: str) -> np.ndarray:
        """log P(token | everything before it) for each token of the answer (end-of-turn included)."""
        rows, full, start = self._rows(messages, answer)
        return np.array([rows[i - start][full[i]] for i in range(start, len(full))], dtype=np.float64)

    def distributions(self, messages: list[Message], answer: str) -> np.ndarray:
        """The log next-token distribution at each answer position: (answer tokens, vocabulary)."""
        return self._rows(messages, answer)[0]

    def _rows(self, messages: list[Message], answer: str) -> tuple[np.ndarray, list[int], int]:
        full, start = self.tokens(messages, answer)
        if start >= len(full):
            return np.zeros((0, self.llm.n_vocab())), full, start
        self.llm.reset()
        self.llm.eval(full)
        logits = np.asarray(self.llm.scores[start - 1:len(full) - 1], dtype=np.float64)
        return log_softmax(logits), full, start


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def kl(parent: np.ndarray, child: np.ndarray) -> float:
    """Mean per-token KL(parent ‖ child) between two aligned stacks of log distributions."""
    if len(parent) == 0:
        return 0.0
    return float(np.mean(np.sum(np.exp(parent) * (parent - child), axis=-1)))


def mean(values: Any) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None

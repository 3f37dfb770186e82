"""How likely a model finds a given answer, token by token, through llama.cpp: one forward pass, no generation.

Prompt evaluation is several times faster than generating, so scoring a reference answer by its
log-likelihood costs far less than asking for an answer and comparing texts. The same forward
passes give the model's whole next-token distribution, from which the drift of a child from its
parent (KL divergence) is measured on the same tokens.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from loop.errors import UserError
from loop.model.threads import pick
from loop.model.tokens import MIN_SHARED, shared_start

Message = dict[str, str]


class Scorer:
    """One GGUF in llama.cpp, asked for the logits at the answer's positions of a conversation."""

    def __init__(self, gguf: str | Path, threads: int = 2, context: int = 1024):
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path, self.context, self.cpp = Path(gguf), context, llama_cpp
        threads = pick(threads)
        try:
            # One batch holds a whole conversation, so it is decoded in one piece whatever its length.
            self.llm = Llama(model_path=str(self.path), n_ctx=context, n_batch=context, n_ubatch=context,
                             n_threads=threads, n_threads_batch=threads, verbose=False, seed=0)
        except (ValueError, RuntimeError, OSError) as exc:
            raise UserError(f"cannot load GGUF {self.path} for scoring: llama.cpp rejected it") from exc
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            self.llm.close()
            raise UserError(f"{self.path.name} has no chat template: answers cannot be scored as chat turns")
        self.eos = self._text(self.llm.token_eos())
        self.fmt = Jinja2ChatFormatter(template=template, eos_token=self.eos, bos_token=self._text(self.llm.token_bos()))
        self.n_vocab = self.llm.n_vocab()
        self.batch = llama_cpp.llama_batch_init(context, 0, 1)
        self.held: list[int] = []  # the tokens in the cache

    def _text(self, token: int) -> str:
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace") if token >= 0 else ""

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        batch, self.batch = getattr(self, "batch", None), None
        if batch is not None:
            self.cpp.llama_batch_free(batch)
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            llm.close()

    def tokens(self, messages: list[Message], answer: str) -> tuple[list[int], int]:
        """The chat-templated conversation followed by the answer and its end-of-turn token; and where the answer
        starts. Cut from the end of the answer to fit the context."""
        prompt = self.fmt(messages=messages).prompt
        ids = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        full = self.llm.tokenize((prompt + answer + self.eos).encode("utf-8"), add_bos=False, special=True)
        start = len(ids) if full[:len(ids)] == ids else shared_start(ids, full)
        return full[: self.context - 1], start

    def logprobs(self, messages: list[Message], answer: str) -> np.ndarray:
        """log P(token | everything before it) for each token of the answer (end-of-turn included)."""
        rows, full, start = self._rows(messages, answer)
        if not len(rows):
            return np.zeros(0)
        picked = rows[np.arange(len(rows)), full[start:]]
        return (picked - _log_sum_exp(rows)).astype(np.float64)

    def distributions(self, messages: list[Message], answer: str) -> np.ndarray:
        """The log next-token distribution at each answer position: (answer tokens, vocabulary), float32."""
        return log_softmax(self._rows(messages, answer)[0])

    def _rows(self, messages: list[Message], answer: str) -> tuple[np.ndarray, list[int], int]:
        """The logits before each answer token (float32: the model computes no more), the tokens, the answer's start."""
        full, start = self.tokens(messages, answer)
        start = max(start, 1)
        if start >= len(full):
            return np.zeros((0, self.n_vocab), dtype=np.float32), full, start
        return self._logits(full, start - 1), full, start

    def _logits(self, tokens: list[int], first: int) -> np.ndarray:
        """The logits after each token from ``first`` on but the last.

        Only those rows are asked for: the output layer is a fifth of the embedded model's
        weights, and the prompt's rows would be computed and copied for nothing. The start this
        conversation shares with the one scored before it (the system prompt, often) is kept in
        the cache rather than decoded again: its keys and values do not depend on what follows."""
        cpp, ctx, b = self.cpp, self.llm._ctx.ctx, self.batch
        keep = min(shared_start(self.held, tokens), first, len(tokens) - 2)
        keep = keep if keep >= MIN_SHARED else 0
        cpp.llama_memory_seq_rm(cpp.llama_get_memory(ctx), 0, keep, -1)
        self.held = []
        b.n_tokens = len(tokens) - keep
        for row, i in enumerate(range(keep, len(tokens))):
            b.token[row], b.pos[row], b.n_seq_id[row], b.logits[row] = tokens[i], i, 1, first <= i < len(tokens) - 1
            b.seq_id[row][0] = 0
        rc = cpp.llama_decode(ctx, b)
        if rc != 0:
            cpp.llama_memory_seq_rm(cpp.llama_get_memory(ctx), 0, -1, -1)
            raise RuntimeError(f"llama_decode returned {rc}")
        self.held = list(tokens)
        # The asked rows' logits lie one after another, in the batch's order.
        ptr = ctypes.cast(cpp.llama_get_logits(ctx), ctypes.POINTER(ctypes.c_float))
        return np.ctypeslib.as_array(ptr, shape=(len(tokens) - 1 - first, self.n_vocab)).copy()


def _log_sum_exp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)))[..., 0]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    shifted = logits - top
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kl(parent: np.ndarray, child: np.ndarray) -> float:
    """Mean per-token KL(parent ‖ child) between two aligned stacks of log distributions."""
    if len(parent) == 0:
        return 0.0
    return float(np.mean(np.sum(np.exp(parent) * (parent - child), axis=-1, dtype=np.float64)))


def mean(values: Any) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None

"""Greedy decoding of many prompts at once: one llama.cpp context, one KV stream per sequence.

On this CPU llama.cpp writes one token of one answer in 10 ms with the embedded model in f16,
and one token of each of eight answers in about 32 ms: decoding the evals' and self-replay's
questions side by side is about 2x faster (bench/bench_parallel.py).

An answer must not depend on what it was decoded beside, or a generation's evals would
depend on the list of questions. Each sequence keeps its own KV stream (``kv_unified =
false``), and every layer but attention works on each token's row by itself. But llama.cpp
rounds differently (in the last digits of the logits, enough to tip a near tie: "a
fundamental element" / "a fundamental phenomenon") when
- a batch, or the rows wanting logits in it, is one row (another kernel), or
- the streams in a batch are not one run of neighbours (the batch is split per stream).
So every step decodes one row in every lane, in lane order, with a padding row where a lane
is idle; and a prompt is decoded in a batch of its own with logits for its last two tokens.
Then an answer is the same alone or beside any others (tests/loop/test_parallel.py), though
it can differ from llama-cpp-python's one-row decoding of the same question at such a tie.

A prompt's prefill costs as much as writing a third of its length in answers, and most of the
evals' prompts start alike (the model's default system prompt, a suite's tool list). A lane keeps
what its stream holds when its answer is done, and the next prompt decodes only what it does not
share with some lane (copied across when another lane holds more of it): keys and values of a
position do not depend on what follows it, and the answers are the same with and without this.

The stopping rules are llama-cpp-python's ``create_completion``'s, followed step by step:
end-of-generation token, stop strings, a UTF-8 character left incomplete (not counted
against the limit), ``max_tokens``, and the Runner's cap a few tokens past it.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loop.errors import UserError
from loop.model.tokens import MIN_SHARED, shared_start

SLACK = 4  # the Runner's _Cap.SLACK: tokens past max_tokens that let a multi-byte character finish


@dataclass
class Job:
    """One prompt, as llama-cpp-python would decode it: its tokens, stop strings and token limit."""

    tokens: list[int]
    stop: list[bytes]
    max_tokens: int
    cap: int
    out: list[int] = field(default_factory=list)
    multibyte: int = 0
    text: bytes | None = None
    until: Callable[[str], bool] | None = None  # the answer is complete once this says True of its text


def finish_step(llm: Any, job: Job, token: int, is_eog: bool) -> bool:
    """Take one decoded token as _create_completion does; True when the answer is complete (``job.text`` set)."""
    if is_eog:
        job.text = llm.detokenize(job.out, prev_tokens=job.tokens)
        return True
    job.out.append(token)
    text = llm.detokenize(job.out, prev_tokens=job.tokens)
    for k, char in enumerate(text[-3:]):
        k = 3 - k
        for num, pattern in ((2, 192), (3, 224), (4, 240)):
            if num > k and pattern & char == pattern:
                job.multibyte = num - k
    if job.multibyte > 0:
        job.multibyte -= 1
        return False
    hits = [s for s in job.stop if s in text]
    if hits:
        job.text = text[: text.index(hits[0])]
        return True
    if job.until is not None and job.until(text.decode("utf-8", errors="ignore")):
        job.text = text
        return True
    if len(job.out) >= job.max_tokens:
        job.text = text
        return True
    return False


class Lanes:
    """A llama.cpp context beside a loaded Llama, decoding up to ``lanes`` sequences at a time."""

    def __init__(self, llm: Any, lanes: int, context: int):
        import llama_cpp  # noqa: PLC0415

        self.cpp, self.llm, self.lanes, self.context = llama_cpp, llm, lanes, context
        params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
        params.n_ctx = context * lanes
        params.n_seq_max = lanes
        params.kv_unified = False
        self.n_batch = params.n_batch = params.n_ubatch = max(512, lanes)
        self.ctx = llama_cpp.llama_init_from_model(llm._model.model, params)
        if not self.ctx:
            raise UserError(f"llama.cpp could not make room for eval.batch = {lanes} answers of eval.context = "
                            f"{context} tokens side by side; lower eval.batch (1 decodes one at a time) or eval.context")
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.vocab = llm._model.vocab
        self.n_vocab = llm.n_vocab()
        self.eos = llm.token_eos()
        self.held: list[list[int]] = [[] for _ in range(lanes)]  # the tokens each lane's stream holds
        self.share = True  # False decodes every prompt whole (tests/loop/test_parallel.py compares)
        self.reused = 0  # prompt tokens not decoded again

    def close(self) -> None:
        ctx, self.ctx = self.ctx, None
        if ctx:
            self.cpp.llama_batch_free(self.batch)
            self.cpp.llama_free(ctx)

    def run(self, jobs: list[Job]) -> None:
        """Decode every job, setting ``job.text``; one that would outgrow its stream is left at None."""
        waiting = [j for j in jobs if 2 <= len(j.tokens) < self.context]
        active: dict[int, Job] = {}
        free = list(range(self.lanes))
        while waiting or active:
            free.sort()
            while waiting and free:
                job, lane = waiting.pop(0), free.pop(0)
                active[lane] = job
                self._take([(self._prompt(job.tokens, lane), lane)], active, free)
            if not active:
                continue
            # Every lane has a row, an idle one a padding row past what it holds: a batch of the same shape
            # each time, and what an idle lane holds stays for the next prompt that starts the same way.
            rows = []
            for lane in range(self.lanes):
                if lane in active:
                    rows.append((active[lane].out[-1], len(self.held[lane]), lane, True))
                    self.held[lane].append(active[lane].out[-1])
                else:
                    if len(self.held[lane]) >= self.context - 1:  # no room past it for the padding row
                        self.cpp.llama_memory_seq_rm(self.mem, lane, -1, -1)
                        self.held[lane] = []
                    rows.append((self.eos, len(self.held[lane]), lane, True))
            self._decode(rows)
            for lane in range(self.lanes):
                if lane not in active:
                    self.cpp.llama_memory_seq_rm(self.mem, lane, len(self.held[lane]), -1)
            self._take([(lane, lane) for lane in sorted(active)], active, free)

    def _prompt(self, tokens: list[int], lane: int) -> int:
        """Decode a prompt (two tokens or more) into its stream, in pieces of two or more, with logits for its
        last two tokens (one would go through the one-row kernel); the batch row of its last token.

        The longest start it shares with what a lane holds (the system prompt, most often) is not
        decoded again: its keys and values are the same whatever follows them, so they are kept, or
        copied from the lane that holds them."""
        n, at = len(tokens), self._reuse(tokens, lane)
        last = 0
        while at < n:
            size = min(self.n_batch, n - at)
            if n - at - size == 1:
                size -= 1
            self._decode([(tokens[p], p, lane, p >= n - 2) for p in range(at, at + size)])
            last, at = n - 1 - at, at + size
        self.held[lane] = list(tokens)
        return last

    def _reuse(self, tokens: list[int], lane: int) -> int:
        """Make the lane hold the longest start of ``tokens`` that some lane holds; how many tokens that is."""
        if not self.share:
            self.cpp.llama_memory_seq_rm(self.mem, lane, -1, -1)
            return 0
        best, source = 0, lane
        for other in [lane] + [o for o in range(self.lanes) if o != lane]:  # its own first: nothing to copy
            n = shared_start(self.held[other], tokens)
            if n > best:
                best, source = n, other
        best = min(best, len(tokens) - 2)  # the last two are decoded here, for their logits
        if best < MIN_SHARED:
            best, source = 0, lane
        if source != lane:
            # A copy across streams takes the whole stream; what the prompt does not share goes next.
            self.cpp.llama_memory_seq_cp(self.mem, source, lane, -1, -1)
        self.cpp.llama_memory_seq_rm(self.mem, lane, best, -1)
        self.held[lane] = self.held[source][:best]
        self.reused += best
        return best

    def _take(self, picks: list[tuple[int, int]], active: dict[int, Job], free: list[int]) -> None:
        """Take the next token of each (batch row, lane)'s answer; a finished answer frees its lane."""
        for row, lane in picks:
            job = active[lane]
            token = self._pick(row, job)
            done = finish_step(self.llm, job, token, bool(self.cpp.llama_vocab_is_eog(self.vocab, token)))
            if not done and len(job.tokens) + len(job.out) > self.context:
                done = True  # it would not fit its stream: the caller asks it alone
            if done:
                del active[lane]
                free.append(lane)  # what it holds stays for a prompt that starts the same way

    def _pick(self, i: int, job: Job) -> int:
        """The greedy token at batch row i, or end-of-sequence once the answer runs past the Runner's cap."""
        if job.cap and len(job.out) >= job.cap + SLACK:
            return self.eos
        ptr = self.cpp.llama_get_logits_ith(self.ctx, i)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(self.n_vocab,))
        return int(np.argmax(logits))

    def _decode(self, rows: list[tuple[int, int, int, bool]]) -> None:
        b = self.batch
        b.n_tokens = len(rows)
        for i, (token, pos, lane, logits) in enumerate(rows):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = lane
        rc = self.cpp.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")


class _Asked(Exception):
    """Raised by _Capture with the prompt tokens and stop strings a chat handler would decode from."""


class _Capture:
    """Stands in for the Llama a chat handler is given, and stops it where it would start decoding."""

    def __init__(self, llm: Any):
        self._llm = llm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._llm, name)

    def create_completion(self, prompt: Any = None, stop: Any = None, **_: Any) -> Any:
        raise _Asked(prompt, stop)


def chat_job(llm: Any, messages: list[dict[str, str]], max_tokens: int) -> Job:
    """The job ``llm.create_chat_completion(messages, max_tokens)`` would decode: the same handler makes the prompt."""
    from llama_cpp import llama_chat_format  # noqa: PLC0415

    handler = (llm.chat_handler or llm._chat_handlers.get(llm.chat_format)
               or llama_chat_format.get_chat_completion_handler(llm.chat_format))
    try:
        handler(llama=_Capture(llm), messages=messages, max_tokens=max_tokens, temperature=0.0, stream=False)
    except _Asked as asked:
        prompt, stop = asked.args
    else:  # pragma: no cover - a handler that answers without create_completion
        raise TypeError("this chat handler does not decode through create_completion")
    if isinstance(prompt, str):  # pragma: no cover - the handlers of llama-cpp-python 0.3 pass tokens
        raise TypeError("this chat handler passes text, not tokens")
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    n, n_ctx = len(prompt), llm.n_ctx()
    limit = max_tokens if max_tokens + n < n_ctx else n_ctx - n
    return Job(list(prompt), [s.encode("utf-8") for s in stops], limit, max_tokens)


def completion_job(llm: Any, prompt: str, max_tokens: int) -> Job | None:
    """The job ``llm.create_completion(prompt, max_tokens)`` would decode (None for an empty prompt: asked alone)."""
    if not prompt:
        return None
    model = llm._model
    bos = [model.token_cls() if model.token_cls() != -1 else llm.token_bos()]
    if not model.add_bos_token() or bos[:1] == [-1]:
        bos = []
    eos = [model.token_sep() if model.token_sep() != -1 else llm.token_eos()]
    if not model.add_eos_token() and model.token_sep() == -1:
        eos = []
    tokens = bos + llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True) + eos
    n, n_ctx = len(tokens), llm.n_ctx()
    return Job(tokens, [], max_tokens if max_tokens + n < n_ctx else n_ctx - n, max_tokens)

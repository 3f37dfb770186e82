"""Answers scored by their likelihood (loop.model.likelihood), on the real embedded model in llama.cpp."""

import numpy as np
import pytest

from loop.model.likelihood import Scorer, kl, log_softmax
from loop.model.threads import pick

CHAT = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is the capital of France?"}]
ANSWER = "The capital of France is Paris."


def _reference(gguf, tokens: list[int], start: int) -> np.ndarray:
    """log P of each answer token from llama-cpp-python's own logits for every position."""
    from llama_cpp import Llama

    llm = Llama(str(gguf), n_ctx=1024, n_threads=pick(0), seed=0, verbose=False, logits_all=True)
    try:
        llm.eval(tokens)
        rows = log_softmax(np.asarray(llm.scores[start - 1:len(tokens) - 1], dtype=np.float64))
    finally:
        llm.close()
    return np.array([rows[i - start][tokens[i]] for i in range(start, len(tokens))])


def test_an_answers_log_probabilities_are_llama_cpps_own(g0_gguf):
    with Scorer(g0_gguf, 0) as s:
        tokens, start = s.tokens(CHAT, ANSWER)
        got = s.logprobs(CHAT, ANSWER)
        again = s.logprobs(CHAT, ANSWER)
    assert 0 < start < len(tokens)
    assert len(got) == len(tokens) - start  # every answer token and the end-of-turn token
    assert np.array_equal(got, again)  # nothing of one conversation is left over for the next
    assert np.allclose(got, _reference(g0_gguf, tokens, start), atol=2e-2)
    assert np.all(got <= 0)


def test_the_models_own_answer_is_likelier_than_the_same_words_shuffled(g0_gguf):
    shuffled = " ".join(reversed(ANSWER.split()))
    with Scorer(g0_gguf, 0) as s:
        assert s.logprobs(CHAT, ANSWER).mean() > s.logprobs(CHAT, shuffled).mean() + 1.0


def test_distributions_are_whole_and_a_model_does_not_drift_from_itself(g0_gguf, base_gguf):
    with Scorer(g0_gguf, 0) as child, Scorer(base_gguf, 0) as parent:
        mine = child.distributions(CHAT, ANSWER)
        base = parent.distributions(CHAT, ANSWER)
        assert mine.shape == (len(child.logprobs(CHAT, ANSWER)), child.n_vocab)
    assert np.allclose(np.exp(mine).sum(axis=1), 1.0)
    assert kl(mine, mine) == pytest.approx(0.0, abs=1e-9)
    # The quantised base and its f16 export are the same model up to rounding: near, not equal.
    assert 0 < kl(base, mine) < 0.5


def test_an_answer_longer_than_the_context_is_cut_to_fit(g0_gguf):
    with Scorer(g0_gguf, 0, context=64) as s:
        tokens, start = s.tokens(CHAT, "Paris " * 200)
        got = s.logprobs(CHAT, "Paris " * 200)
    assert len(tokens) == 63
    assert len(got) == 63 - start
    assert np.all(np.isfinite(got))


def test_a_conversation_scores_the_same_whatever_was_scored_before_it(g0_gguf):
    """The start two conversations share stays in the cache: it must not change the second one's figures."""
    other = [CHAT[0], {"role": "user", "content": "What is the capital of Spain?"}]
    with Scorer(g0_gguf, 1) as fresh:
        alone = fresh.distributions(CHAT, ANSWER)
    with Scorer(g0_gguf, 1) as s:
        s.logprobs(other, "Madrid.")
        after = s.distributions(CHAT, ANSWER)
        assert s.held[:10] == s.tokens(CHAT, ANSWER)[0][:10]
    assert np.array_equal(alone, after)

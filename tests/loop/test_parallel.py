"""Answers decoded side by side (loop.model.parallel), on the real embedded model in llama.cpp."""

import pytest

from loop.data import replay
from loop.errors import OperationFailed
from loop.evals import probes
from loop.evals.answer_cache import Answers
from loop.model import parallel
from loop.model.llm import Runner

QUESTIONS = ([[{"role": "user", "content": it["prompt"]}] for it in probes.probe_items()[:6]]
             + [[{"role": "user", "content": q}] for q in probes.self_replay_prompts()[:6]])
LIMIT = 40


@pytest.fixture(scope="module")
def together(g0_gguf):
    """The twelve answers of G0 in f16 (the precision evals run at), decoded four at a time on two threads.

    The other tests ask for the idle cores (threads=0): on a busy machine, llama.cpp's threads
    spin-wait for one another and two of them on two busy cores run many times slower."""
    with Runner(g0_gguf, threads=2, context=1024, batch=4) as r:
        r.prefetch([(q, LIMIT, False) for q in QUESTIONS])
        return [r.chat(q, LIMIT) for q in QUESTIONS]


def test_an_answer_is_the_same_alone_and_beside_any_others(g0_gguf, together):
    """llama.cpp's one-row kernels and its batches split per stream round differently: an answer must not
    depend on what else was decoded with it, or a generation's evals would depend on the question list."""
    with Runner(g0_gguf, threads=0, context=1024, batch=3) as r:
        alone = [r.chat(q, LIMIT) for q in QUESTIONS[::4]]
        r.prefetch([(q, LIMIT, False) for q in reversed(QUESTIONS)])
        backwards = [r.chat(q, LIMIT) for q in QUESTIONS]
    assert alone == together[::4]
    assert backwards == together
    assert all(a.strip() for a in together)


def test_the_thread_count_does_not_change_a_batched_answer(g0_gguf, together):
    with Runner(g0_gguf, threads=1, context=1024, batch=4) as r:
        r.prefetch([(q, LIMIT, False) for q in QUESTIONS[:4]])
        assert [r.chat(q, LIMIT) for q in QUESTIONS[:4]] == together[:4]


def test_side_by_side_answers_are_one_at_a_time_answers_but_at_near_ties(g0_gguf, together):
    """The same stopping rules and the same prompt: most answers are the one-row decoder's to the letter
    (135 of 145 on the evals' and self-replay's questions); the rest part at a near tie, past a shared start."""
    with Runner(g0_gguf, threads=0, context=1024) as one:
        alone = [one.chat(q, LIMIT) for q in QUESTIONS]
    assert sum(a == b for a, b in zip(alone, together)) >= 9
    assert all(a.split()[:3] == b.split()[:3] for a, b in zip(alone, together))


def test_the_prompts_are_llama_cpp_pythons_own(base_gguf):
    """chat_job and completion_job decode the very tokens create_chat_completion / create_completion would."""
    with Runner(base_gguf, threads=0, context=1024, batch=2) as r:
        llm = r._llm
        seen = []

        class Seen(Exception):
            pass

        def generate(tokens, **_):
            seen.append(list(tokens))
            raise Seen

        llm.generate = generate
        for call in (lambda: llm.create_chat_completion(messages=QUESTIONS[0], max_tokens=8),
                     lambda: llm.create_completion(prompt="The capital of France is", max_tokens=8)):
            with pytest.raises(Seen):
                call()
        del llm.generate
        assert seen[0] == parallel.chat_job(llm, QUESTIONS[0], 8).tokens
        assert seen[1] == parallel.completion_job(llm, "The capital of France is", 8).tokens


def test_an_answer_keeps_to_its_token_limit_and_raw_prompts_batch_too(base_gguf):
    france = [{"role": "user", "content": "The capital of France is"}]
    with Runner(base_gguf, threads=0, context=1024, batch=2) as r:
        r.prefetch([(france, 8, True), (QUESTIONS[7], 5, False)])
        raw, chat = r.chat(france, 8, raw=True), r.chat(QUESTIONS[7], 5)
        assert 0 < len(r._llm.tokenize(chat.encode(), add_bos=False)) <= 5 + parallel.SLACK
    assert "paris" in raw.lower()


def test_a_question_too_long_for_the_context_fails_as_it_did_alone(base_gguf):
    long = [{"role": "user", "content": "word " * 200}]
    with Runner(base_gguf, threads=0, context=64, batch=2) as r:
        r.prefetch([(long, 8, False), (QUESTIONS[0], 8, False)])  # the long one is left to chat
        with pytest.raises(OperationFailed):
            r.chat(long, 8)
        assert r.chat(QUESTIONS[0], 8).strip()


def test_the_answer_cache_keeps_side_by_side_answers_apart(tmp_path):
    alone = Answers("sha", 2048, lambda: None, folder=tmp_path)
    side = Answers("sha", 2048, lambda: None, folder=tmp_path, decoding="side by side")
    assert alone.file != side.file


def test_collect_hands_ahead_only_the_prompts_it_then_asks():
    answers = {f"q{i}": ("I'm sorry, I cannot." if i % 3 == 0 else f"Answer {i} is a fine one.") for i in range(30)}
    ahead, asked = [], []

    def ask(q):
        asked.append(q)
        return answers[q]

    kept, _ = replay.collect(ask, list(answers), 6, ["I'm sorry", "as an AI"], 0.3, ahead=ahead.extend)
    assert len(kept) == 6
    assert ahead == asked  # nothing decoded that is not then asked, in the same order


def test_no_room_for_the_batch_is_a_one_line_error_that_says_what_to_lower(base_gguf, monkeypatch):
    import llama_cpp

    from loop.errors import UserError

    with Runner(base_gguf, threads=0, context=256, batch=2) as r:
        monkeypatch.setattr(llama_cpp, "llama_init_from_model", lambda *_: None)  # what llama.cpp returns when out of memory
        with pytest.raises(UserError, match="lower eval.batch"):
            r.chat(QUESTIONS[0], 4)


def _decoded(gguf, questions, *, share: bool, context: int = 1024, limits=None) -> tuple[list[bytes], int]:
    with Runner(gguf, threads=0, context=context, batch=3) as r:
        lanes = parallel.Lanes(r._ready(), 3, context)
        lanes.share = share
        jobs = [parallel.chat_job(r._llm, q, n) for q, n in zip(questions, limits or [LIMIT] * len(questions))]
        try:
            lanes.run(jobs)
        finally:
            lanes.close()
    return [j.text for j in jobs], lanes.reused


def test_a_start_prompts_share_is_decoded_once_and_changes_no_answer(g0_gguf):
    """What a lane holds (most often the system prompt) is kept for the next prompt that starts the same way,
    or copied from the lane that holds it; its keys and values do not depend on what follows them."""
    system = {"role": "system", "content": "You are the on-call assistant of a small ops team. Answer briefly."}
    questions = QUESTIONS[:6] + [[system, *q] for q in QUESTIONS[6:]]
    whole, none = _decoded(g0_gguf, questions, share=False)
    shared, reused = _decoded(g0_gguf, questions, share=True)
    assert none == 0 and reused > 20 * len(questions)  # SmolLM's own system prompt, at least, each time
    assert shared == whole
    assert all(t and t.strip() for t in shared)


def test_a_lane_full_to_its_context_is_emptied_before_it_pads(base_gguf):
    """An answer that outgrows its stream leaves the lane full; idle beside others, it still gets its padding row."""
    long, short = [{"role": "user", "content": "Count from one to fifty."}], [{"role": "user", "content": "Say hi."}]
    questions, limits = [long, short, short + [], long, [{"role": "user", "content": "Say hello."}]], [200, 3, 3, 200, 3]
    whole, _ = _decoded(base_gguf, questions, share=False, context=48, limits=limits)
    shared, _ = _decoded(base_gguf, questions, share=True, context=48, limits=limits)
    assert whole == shared
    assert whole[0] is None and whole[1] and whole[4]  # the long one is left to be asked alone


def test_an_answer_ends_once_its_verdict_is_settled_alone_and_side_by_side(g0_gguf):
    from loop.evals.scoring import Answered, keyword_pass

    items = [it for it in probes.probe_items() if it["key"] in {"p01", "p19", "p23"}]  # short and rambling answers
    asked = [([{"role": "user", "content": it["prompt"]}], 64, False, Answered(it["answers"])) for it in items]
    with Runner(g0_gguf, threads=0, context=1024) as one:
        full = [one.chat(m, k) for m, k, _, _ in asked]
        alone = [one.chat(m, k, until=u) for m, k, _, u in asked]
    with Runner(g0_gguf, threads=0, context=1024, batch=3) as r:
        r.prefetch(asked)
        side = [r.chat(m, k, until=u) for m, k, _, u in asked]
        whole = [r.chat(m, k) for m, k, _, _ in asked]  # another question: asked in full
    for it, f, a, s, w in zip(items, full, alone, side, whole):
        passed = keyword_pass(f, it["answers"])
        assert keyword_pass(a, it["answers"]) == keyword_pass(s, it["answers"]) == passed
        assert f.startswith(a) and w.startswith(s)
        if passed:
            assert len(s) < len(w) or s == w
    assert sum(keyword_pass(f, it["answers"]) for it, f in zip(items, full)) >= 2
    assert sum(len(s) for s in side) < sum(len(w) for w in whole)

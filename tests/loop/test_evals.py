"""The llama.cpp runner and the evals, on the real embedded GGUF (about a minute on 2 cores)."""

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from loop.evals import probes as evals
from loop.errors import OperationFailed, UserError
from loop.model.llm import Runner
from loop.evals.scoring import keyword_pass, normalize, stated_confidences

ROOT = Path(__file__).resolve().parents[2]
JAPAN = [{"role": "user", "content": "What is the capital of Japan?"}]


@pytest.fixture(scope="module")
def runner(base_gguf):
    with Runner(base_gguf, threads=0, context=2048, seed=0) as r:  # the idle cores: see loop/model/threads.py
        yield r


@pytest.fixture(scope="module")
def probe_run(runner):
    return evals.run_probes(runner, evals.probe_items(), max_tokens=64)


def test_chat_is_greedy_and_deterministic(runner):
    first = runner.chat(JAPAN, 32)
    assert first.strip()
    assert "tokyo" in first.lower()
    assert runner.chat(JAPAN, 32) == first


def test_an_answer_does_not_depend_on_the_question_before_it(runner):
    alone = runner.chat(JAPAN, 24)
    runner.chat([{"role": "user", "content": "Tell me a long story about a dragon."}], 48)
    assert runner.chat(JAPAN, 24) == alone


def test_raw_complete_sends_the_prompt_without_a_template(runner):
    assert keyword_pass(runner.complete("The capital of France is", 8), ["paris"])
    # The same text through the chat template is a different prompt, so a different continuation.
    assert runner.complete("The capital of France is", 8) != runner.chat(
        [{"role": "user", "content": "The capital of France is"}], 8)


def test_stream_chat_pieces_join_to_the_chat_answer(runner):
    pieces = list(runner.stream_chat(JAPAN, 32))
    assert len(pieces) > 1
    assert "".join(pieces) == runner.chat(JAPAN, 32)


def test_raw_stream_joins_to_the_raw_answer(runner):
    messages = [{"role": "user", "content": "Q: What is the capital of Japan?\nA:"}]
    pieces = list(runner.stream_chat(messages, 16, raw=True))
    assert "".join(pieces) == runner.chat(messages, 16, raw=True) == runner.complete(messages[0]["content"], 16)
    assert "".join(pieces).strip()


def test_missing_gguf_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Runner(tmp_path / "nope.gguf")


@pytest.mark.parametrize("content", [b"not a gguf at all", b"GGUF" + b"\x00garbage" * 10])
def test_corrupt_gguf_is_a_one_line_user_error(tmp_path, content):
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    with pytest.raises(UserError) as caught:
        Runner(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_truncated_gguf_is_a_user_error(tmp_path, base_gguf):
    path = tmp_path / "cut.gguf"
    path.write_bytes(base_gguf.read_bytes()[:100_000])
    with pytest.raises(UserError):
        Runner(path)


def test_prompt_longer_than_the_context_fails_cleanly(base_gguf):
    with Runner(base_gguf, context=64) as small:
        long = [{"role": "user", "content": "word " * 200}]
        with pytest.raises(OperationFailed):
            small.chat(long, 8)
        with pytest.raises(OperationFailed):
            list(small.stream_chat(long, 8))
        assert small.chat(JAPAN, 4)  # still usable afterwards


def test_a_closed_runner_refuses_to_answer(base_gguf):
    r = Runner(base_gguf)
    r.close()
    r.close()
    with pytest.raises(OperationFailed, match="closed"):
        r.chat(JAPAN, 4)


def test_shipped_probe_and_replay_sets_are_disjoint():
    probes = evals.probe_items()
    replay = evals.self_replay_prompts()
    assert 80 <= len(probes) <= 100 and 180 <= len(replay) <= 250
    assert len({p["key"] for p in probes}) == len(probes)
    probe_texts = {normalize(p["prompt"]) for p in probes}
    replay_texts = [normalize(p) for p in replay]
    assert len(probe_texts) == len(probes) and len(set(replay_texts)) == len(replay)
    assert not probe_texts & set(replay_texts)


def test_steady_keys_are_the_probes_also_right_when_rephrased(runner):
    items = [{"key": "a", "prompt": "What is the capital of Japan?", "answers": ["tokyo"]},
             {"key": "b", "prompt": "What is the capital of Japan?", "answers": ["paris"]}]
    results, _ = evals.run_probes(runner, items, max_tokens=48)
    assert [r["passed"] for r in results] == [True, False]
    assert evals.steady_keys(runner, items, results, max_tokens=48) == {"a"}
    # Judged on the rephrasings: an item the plain question passes but they do not is left out.
    forced = [dict(results[1], passed=True)]
    assert evals.steady_keys(runner, items[1:], forced, max_tokens=48) == set()


def test_probe_items_rejects_a_malformed_line(tmp_path):
    path = tmp_path / "probes.jsonl"
    path.write_text('{"key": "a", "prompt": "Q?", "answers": ["x"]}\n{"key": "b", "prompt": "Q?"}\n')
    with pytest.raises(UserError, match=":2:"):
        evals.probe_items(path)


def test_base_answers_at_least_half_of_the_probes(probe_run):
    results, score = probe_run
    assert len(results) == len(evals.probe_items())
    right = sum(r["passed"] for r in results)
    assert right >= len(results) // 2, f"base answered {right}/{len(results)}"
    assert score == pytest.approx(right / len(results))
    for r, item in zip(results, evals.probe_items()):
        assert set(r) == {"item_key", "prompt", "reference", "answer", "score", "passed", "detail"}
        assert r["item_key"] == item["key"] and r["prompt"] == item["prompt"]
        assert r["passed"] == keyword_pass(r["answer"], item["answers"])
        assert r["score"] == (1.0 if r["passed"] else 0.0)


def test_probe_results_repeat_exactly(runner, probe_run):
    items = evals.probe_items()[:4]
    again, _ = evals.run_probes(runner, items, max_tokens=64)
    assert again == probe_run[0][:4]


def test_style_counts_corporate_answers(runner):
    cfg = tomllib.loads((ROOT / "config.toml").read_text())["eval"]
    seen = []
    results, count = evals.run_style(runner, cfg["tone_probes"], cfg["corporate_phrases"], 64,
                                     on_result=seen.append)
    assert isinstance(count, int) and 0 <= count <= len(cfg["tone_probes"])
    assert count == sum(r["detail"].startswith("corporate:") for r in results)
    assert seen == results
    # The instruct base apologises to "I don't understand." (an answer a user would call corporate).
    assert not results[4]["passed"] and "i'm sorry" in results[4]["detail"]


def test_reference_eval_passes_a_matching_reference_and_fails_an_unrelated_one(runner):
    own = runner.chat(JAPAN, 32)
    items = [
        {"key": "same", "messages": JAPAN, "reference": own},
        {"key": "other", "messages": JAPAN, "reference": "Bananas are rich in potassium."},
    ]
    results, share = evals.run_reference(runner, items, 32, threshold=0.35)
    assert [r["passed"] for r in results] == [True, False]
    assert results[0]["score"] == pytest.approx(1.0) and results[1]["score"] < 0.35
    assert results[0]["prompt"] == JAPAN[0]["content"] and share == 0.5


def test_confidence_eval_reports_both_trajectories(runner):
    item = {"key": "c1", "trajectory": [70, 50, 85], "messages": [{"role": "user", "content": (
        "A server is slow. Think in three steps and after each step write 'Confidence: N%'.")}]}
    (result,), mean = evals.run_confidence(runner, [item], 96)
    assert result["expected"] == [70, 50, 85]
    assert result["stated"] == stated_confidences(result["answer"])
    assert "70% -> 50% -> 85%" in result["detail"] and 0.0 <= result["score"] <= 1.0
    assert mean == result["score"] and result["passed"] == (result["score"] == 1.0)


@pytest.mark.parametrize("expected, stated, score", [
    ([70, 50, 85], [70, 50, 85], 1.0),
    ([70, 50, 85], [75, 41, 95], 1.0),  # each within 10 points
    ([70, 50, 85], [70, 30, 85], 2 / 3),
    ([70, 50, 85], [70, 50], 2 / 3),
    ([70], [70, 90], 0.5),
    ([], [], 1.0),
    ([70], [], 0.0),
])
def test_trajectory_score(expected, stated, score):
    assert evals.trajectory_score(expected, stated) == pytest.approx(score)


def test_empty_evals_measure_nothing(runner):
    assert evals.run_probes(runner, [], 8) == ([], None)
    assert evals.run_reference(runner, [], 8, 0.35) == ([], None)
    assert evals.run_style(runner, [], ["sorry"], 8) == ([], 0)


def test_loop_modules_import_without_llama_cpp():
    code = ("import sys, loop.model.llm, loop.evals.probes, loop.evals.scoring; "
            "assert 'llama_cpp' not in sys.modules, 'llama_cpp imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_thread_count_does_not_change_an_answer(runner, base_gguf):
    """eval.threads = 0 picks the idle cores at load time, so the count varies between runs: it must not
    change what the model says, or a generation's evals would depend on the machine's load."""
    questions = [JAPAN, [{"role": "user", "content": "List three Linux commands that show disk usage."}]]
    with Runner(base_gguf, threads=1, context=2048, seed=0) as one:
        for q in questions:
            assert one.chat(q, 40) == runner.chat(q, 40)


def test_threads_are_the_configured_number_or_the_idle_cores(monkeypatch):
    from loop.model import threads

    assert threads.pick(3) == 3
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(threads, "idle_cores", lambda sample_s=0.2: 0.3)
    assert threads.pick(0) == 1  # never fewer than one
    monkeypatch.setattr(threads, "idle_cores", lambda sample_s=0.2: 1.6)
    assert threads.pick(0) == 2
    monkeypatch.setattr(threads, "idle_cores", lambda sample_s=0.2: 7.0)
    assert threads.pick(0) == 2  # never more than the machine has
    monkeypatch.undo()
    assert 0.0 <= threads.idle_cores(0.05) <= (threads.os.cpu_count() or 1) + 0.01

"""The demo end to end on the real embedded model and real llama.cpp: G1, then the bad batch as G2."""

import pytest

from tests.e2ekit import CONFIG, as_json, ladder, ledger_rows

pytestmark = pytest.mark.slow


# Gates that pass any child, so both of the demo's steps run on a tiny config: the real rejection of the
# bad batch takes a full pass over G2's rows, 49 steps (README's demo output shows it).
LOOSE_GATES = """
[gates]
recall_min = 0.0
recall_margin = 1.0
generalization_min = 0.0
style_drift_max = 100
"""


def test_the_demo_trains_g1_then_the_bad_batch_as_g2_and_says_which_is_active(tmp_path):
    ws = tmp_path / "demo"
    ws.mkdir()
    (ws / "config.toml").write_text(CONFIG + LOOSE_GATES, encoding="utf-8")
    p = ladder(ws, "demo", ws)
    out = p.stdout
    assert "step 1: train G1" in out and "G1 passed every gate and is active." in out
    assert "step 2: a bad batch arrives" in out and "G2 passed every gate: the gates did not catch this batch" in out and "G2 is active." in out
    assert out.index("agent suites, held-out items: G0 → G1") < out.index("step 2: a bad batch")
    for line in ("held-out inbox records G1 learned (generalization):", "G0's steady right answers G1 still gives (recall):",
                 "tone probes answered in corporate voice: G0"):
        assert out.index(line) < out.index("step 2: a bad batch"), line
    assert "what to try next:" in out and "chat" in out and "/inbox/" in out
    status = as_json(ladder(ws, "status", "--json"))
    assert status["active_gen"] == 2 and [g["gen"] for g in status["generations"]] == [0, 1, 2]
    processed = {f.name for f in (ws / "inbox" / "processed").rglob("*.jsonl")}
    assert "corporate_voice.jsonl" in processed and "conversations.jsonl" in processed
    assert set(ledger_rows(ws)) == {"0", "1", "2"}
    again = ladder(ws, "demo", ws).stdout  # a second run trains nothing more
    assert "trained on already" in again and as_json(ladder(ws, "status", "--json"))["active_gen"] == 2


def test_the_demo_skips_the_bad_batch_when_the_gates_reject_g1(tmp_path):
    ws = tmp_path / "demo"
    ws.mkdir()
    # Any training moves the child's distribution a little: a KL bar of a millionth of a nat rejects G1.
    (ws / "config.toml").write_text(CONFIG + "\n[gates]\nkl_max = 0.000001\n", encoding="utf-8")
    out = ladder(ws, "demo", ws).stdout
    said = next(line for line in out.splitlines() if line.startswith("G1 was not promoted: rejected for "))
    assert "kl_drift" in said and "FAILED" in said and "bad-batch step is skipped" in out
    assert "step 2: a bad batch" not in out and as_json(ladder(ws, "status", "--json"))["active_gen"] == 0

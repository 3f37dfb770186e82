"""The model families users fine-tune: each exported from a tiny random model to GGUF, loaded by llama.cpp, with its
logits and greedy output matching transformers at f16. No hub: every model is built from a config here."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGUFReader

from loop.errors import UserError
from loop.model.export import ARCHITECTURES, export_gguf
from tests.tinymodels import tiny_family

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3"]
TEXT = "hello world, the quick brown fox jumps"


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    hf = tiny_family(folder / "hf", request.param, tied=request.param != "qwen2")
    out = folder / "model.f16.gguf"
    export_gguf(hf, out, None)
    return request.param, hf, out


def _llama(path):
    from llama_cpp import Llama

    return Llama(str(path), n_ctx=128, n_threads=2, seed=0, verbose=False, logits_all=True)


def test_the_gguf_names_the_architecture_llama_cpp_runs(exported):
    family, _, out = exported
    fields = GGUFReader(out).fields
    assert fields["general.architecture"].contents() == ARCHITECTURES[family]


def _reference(hf):
    """The tokenizer, TEXT's token ids and the fp32 transformers model of a folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(hf)
    return tok, tok(TEXT, add_special_tokens=False)["input_ids"], AutoModelForCausalLM.from_pretrained(
        hf, dtype=torch.float32)


def test_logits_match_transformers(exported):
    import torch

    family, hf, out = exported
    tok, ids, model = _reference(hf)
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0].numpy()
    llm = _llama(out)
    try:
        assert llm.tokenize(TEXT.encode(), add_bos=False) == ids
        llm.eval(ids)
        got = np.array(llm.scores[: len(ids)])
    finally:
        llm.close()
    assert np.abs(got - want).max() < 0.03 * np.abs(want).max(), family


def test_greedy_output_matches_transformers(exported):
    import torch

    family, hf, out = exported
    tok, ids, model = _reference(hf)
    with torch.no_grad():
        seq = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, min_new_tokens=8,
                             pad_token_id=tok.pad_token_id)[0, len(ids):].tolist()
    llm = _llama(out)
    try:
        got = []
        for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            got.append(token)
            if len(got) == 8:
                break
    finally:
        llm.close()
    # f16 rounding may flip a near tie late in the sequence; the first tokens must agree.
    assert got[:4] == seq[:4], family


def test_the_chat_template_is_the_inference_one_without_generation_tags(tmp_path):
    hf = tiny_family(tmp_path / "hf", "qwen2")
    cfg_path = hf / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    template = cfg.get("chat_template") or (hf / "chat_template.jinja").read_text()
    tagged = template.replace("{{ m['content'] }}", "{% generation %}{{ m['content'] }}{% endgeneration %}")
    assert "{% generation %}" in tagged
    if "chat_template" in cfg:
        cfg["chat_template"] = tagged
        cfg_path.write_text(json.dumps(cfg))
    else:
        (hf / "chat_template.jinja").write_text(tagged)
    out = tmp_path / "m.gguf"
    export_gguf(hf, out, None)
    written = GGUFReader(out).fields["tokenizer.chat_template"].contents()
    assert "{% generation %}" not in written and "endgeneration" not in written and "{{ m['content'] }}" in written
    llm = _llama(out)
    try:
        answer = llm.create_chat_completion([{"role": "user", "content": "hello"}], max_tokens=2, temperature=0.0)
        assert answer["choices"][0]["message"]["role"] == "assistant"
    finally:
        llm.close()


def test_an_unsupported_family_is_refused_naming_its_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"]}))
    with pytest.raises(UserError, match="architecture is 'gpt_neox' \\(GPTNeoXForCausalLM\\)"):
        export_gguf(tmp_path, tmp_path / "x.gguf", None)


@pytest.mark.parametrize("family", ["qwen2", "qwen3", "gemma2", "phi3"])
def test_a_whole_generation_trains_exports_and_evaluates_on_each_family(family, tmp_path):
    from tests import jobkit

    cfg = jobkit.make_template(tmp_path / "ws", family)
    jobkit.feed(cfg)
    r = jobkit.ladder(cfg, "train", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["status"] in ("active", "candidate", "rejected") and out["child_sha"], out
    assert GGUFReader(cfg.models_dir / "gen-0001" / "model.f16.gguf").fields["general.architecture"].contents() \
        == ARCHITECTURES[family]
    assert jobkit.problems(cfg) == []

"""The loss through the label head (logits at the labelled positions only) is the model's own loss, with the same
gradients, on every family Ladder trains; a model whose forward scales its logits keeps that forward."""

import pytest
import torch

from loop.train.backends import lora_config
from tests.tinymodels import tiny_family

FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3"]
LORA = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear"}


def batch(vocab: int):
    """Two rows of different lengths: a prompt without labels, an answer with them, padding after the short one."""
    torch.manual_seed(1)
    ids = torch.randint(3, vocab, (2, 24))
    attention = torch.ones_like(ids)
    attention[1, 17:] = 0
    labels = ids.clone()
    labels[0, :9] = -100
    labels[1, :5] = -100
    labels[1, 17:] = -100
    return ids, attention, labels


def lora_grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_label_head_loss_and_gradients_are_the_models_own(family, tmp_path):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from loop.train.label_head import add_label_head

    folder = tiny_family(tmp_path / family, family)
    plain = get_peft_model(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), lora_config(LORA))
    patched_base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    assert add_label_head(patched_base)
    patched = get_peft_model(patched_base, lora_config(LORA))
    with torch.no_grad():  # LoRA's B starts at zero: move it so that gradients reach A as well
        for i, ((_, p), (_, q)) in enumerate(zip(plain.named_parameters(), patched.named_parameters())):
            if p.requires_grad:
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(i))
                q.copy_(p)
    ids, attention, labels = batch(plain.config.vocab_size)

    own = plain(input_ids=ids, attention_mask=attention, labels=labels, use_cache=False)
    own.loss.backward()
    logits, mask = patched(input_ids=ids, attention_mask=attention, labels=labels, label_logits=True)
    assert logits.shape == (int(mask.sum()), plain.config.vocab_size)
    loss = torch.nn.functional.cross_entropy(logits.float(), labels[:, 1:][mask])
    loss.backward()

    assert float(loss.detach()) == pytest.approx(float(own.loss.detach()), rel=1e-5)
    full = own.logits[:, :-1][mask]
    assert torch.allclose(logits, full, atol=1e-5)  # Gemma 2's soft cap included
    want, got = lora_grads(plain), lora_grads(patched)
    assert want.keys() == got.keys() and want
    for name in want:
        assert torch.allclose(got[name], want[name], atol=1e-6, rtol=1e-4), name
    # any other call is the model's own forward
    again = patched(input_ids=ids, attention_mask=attention, use_cache=False).logits
    assert torch.allclose(again, own.logits, atol=1e-6)


def test_a_model_that_scales_its_logits_keeps_its_own_forward(tmp_path):
    from transformers import AutoModelForCausalLM

    from loop.train.label_head import add_label_head

    model = AutoModelForCausalLM.from_pretrained(tiny_family(tmp_path / "llama", "llama"))
    model.config.logit_scale = 0.5
    forward = model.forward
    assert not add_label_head(model) and model.forward == forward

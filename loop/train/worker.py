"""The training stage as a process of its own: `python -m loop.train.worker REQUEST.json`.

The job folder is the interface. The request names the parent folder, the dataset, the output
folder and the settings; the worker writes progress as JSON lines on stdout and its result to
`result` in the request. That lets training run
- under another interpreter (`train.python`: a GPU environment with Unsloth and the versions it
  pins, which cannot share the engine's environment), and
- in several processes (`train.processes` > 1: launched by torchrun, DDP over gloo on the CPU or
  NCCL on GPUs), where every rank trains and only rank 0 reports, merges and saves.

Unsloth must be imported before trl, transformers and peft, or its patches (its SFTTrainer among
them) do not apply: the worker imports it first when the request's backend asks for it.
Cancelling is SIGTERM: the step in progress ends and nothing is written.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def check(parent_dir: Path) -> int:
    """Build the trainer on one example without training: the arguments this environment's TRL and transformers
    accept (bench/gpu_check.sh runs it where training itself needs a GPU)."""
    import tempfile

    from transformers import AutoTokenizer

    from loop.train.backends import load_model, lora_config
    from loop.train.sft import make_trainer

    tok = AutoTokenizer.from_pretrained(parent_dir)
    settings = {"steps": 1, "batch_size": 1, "grad_accum": 1, "learning_rate": 1e-4, "lr_scheduler": "constant",
                "warmup_steps": 0, "max_length": 64, "gradient_checkpointing": False, "seed": 0, "lora_r": 4,
                "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": "all-linear", "distill_weight": 0.0}
    ids = tok("hello", add_special_tokens=False)["input_ids"]
    with tempfile.TemporaryDirectory() as work:
        make_trainer(load_model(parent_dir), tok, [{"input_ids": ids, "labels": list(ids)}], settings,
                     Path(work), (), lora_config(settings))
    import transformers
    import trl

    print(f"the trainer builds under trl {trl.__version__}, transformers {transformers.__version__}")
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        return check(Path(argv[1]))
    request_path = Path(argv[0])
    req = json.loads(request_path.read_text(encoding="utf-8"))
    if req["settings"].get("backend") == "unsloth":
        import unsloth  # noqa: F401 - first, so its patches apply to what follows

    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))
    if req.get("faults"):
        from loop import faults

        faults.arm_from_env(Path(req["job_dir"]))
    from loop.errors import UserError
    from loop.train.sft import Cancelled, train_lora

    def progress(e: dict[str, Any]) -> None:
        if rank() == 0:  # one line per step, however many processes train
            print(json.dumps({"progress": e}), flush=True)

    try:
        result = train_lora(Path(req["parent_dir"]), Path(req["dataset"]), Path(req["out_dir"]), req["settings"],
                            on_progress=progress, should_stop=lambda: stop["asked"],
                            sources_path=Path(req["sources"]) if req.get("sources") else None)
    except Cancelled:
        print(json.dumps({"cancelled": True}), flush=True)
        return 3
    except UserError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 2
    if rank() == 0:
        out = Path(req["result"])
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(result), encoding="utf-8")
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env bash
# The GPU path, end to end: on a CUDA machine, install the GPU trainer's environment fresh (bin/setup-gpu), train
# one generation of the demo inbox with each backend (Unsloth, then TRL with bf16 autocast over fp32 weights),
# and print per-stage seconds, trained tokens/s, peak GPU memory, the Unsloth / TRL speed ratio and whether the
# two children's evals agree (bench/gpu_summary.py). Unsloth's disable_adapter() is checked against the base.
#
#     bash bench/gpu_check.sh [OUT_DIR]        STEPS=60 by default
#
# Without a GPU it runs what a CPU can: the trainer's environment without Unsloth (LADDER_GPU_CPU_ONLY=1),
# and the trainer built (not run) under that environment's TRL and transformers, the versions Unsloth pins:
# TRL 1.15's SFT loss is a Triton kernel, so training there needs a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-$(mktemp -d -t ladder-gpu-XXXX)}
steps=${STEPS:-60}
[ -x .venv/bin/ladder ] || bash bin/setup
rm -rf .venv-gpu
if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
  bin/setup-gpu
  backends="unsloth trl"
else
  echo "no GPU: checking the CPU-runnable part (the trainer on Unsloth's pinned versions, TRL backend)"
  LADDER_GPU_CPU_ONLY=1 bin/setup-gpu
  .venv/bin/ladder init "$out/base" > "$out/base-init.log"
  PYTHONPATH="$(pwd)" .venv-gpu/bin/python -m loop.train.worker --check "$out/base/models/gen-0000/hf"
  exit 0
fi
python_gpu="$(pwd)/.venv-gpu/bin/python"
workspaces=()
for backend in $backends; do
  ws="$out/$backend"
  .venv/bin/ladder init "$ws" > "$out/$backend-init.log"
  printf '\n[train]\nbackend = "%s"\npython = "%s"\nsteps = %s\n' "$backend" "$python_gpu" "$steps" >> "$ws/config.toml"
  cp loop/assets/demo_inbox/*.jsonl "$ws/inbox/"
  .venv/bin/ladder --config "$ws/config.toml" ingest > "$out/$backend-ingest.log"
  echo "training G1 with $backend ($steps steps)…"
  .venv/bin/ladder --config "$ws/config.toml" train --json > "$out/$backend-train.json" || true
  workspaces+=("$ws")
done
.venv/bin/python bench/gpu_summary.py "${workspaces[@]}"
if [[ $backends == *unsloth* ]]; then
  .venv-gpu/bin/python bench/gpu_adapter_check.py "$out/unsloth/models/gen-0000/hf"
fi

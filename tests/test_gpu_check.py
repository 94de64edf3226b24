"""scripts/gpu-check.sh --dry-run on the CPU: every check of the GPU script runs at toy sizes (bf16
training steps, HF generation, vLLM reported as skipped where it cannot run, the 2-process DPO run
through accelerate launch with gloo) and emits its JSON line, so the script is known to work before
a GPU is lent. It measures nothing on a CPU."""
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_emits_every_check():
    result = subprocess.run(["bash", "scripts/gpu-check.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    by_check = {r["check"]: r for r in records}
    assert by_check["host"]["dry_run"] is True
    assert by_check["train_bf16"]["tokens_per_s"] > 0 and by_check["generate_hf"]["tokens"] > 0
    assert "skipped" in by_check["generate_vllm"] or by_check["generate_vllm"]["tokens"] > 0
    assert by_check["two_process_dpo"]["returncode"] == 0

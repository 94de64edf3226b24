"""The one dependency rule (DESIGN.md): ml/ is framework-free; webapp/ never imports torch,
transformers, trl, peft, gradio or workers/ (only ml.config from ml/). Checked by import-linter's
contracts in pyproject.toml, and by actually importing the web side in a fresh interpreter."""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken" in result.stdout


def test_web_process_loads_without_ml_wheels():
    code = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE']='webapp.settings';"
        "import django; django.setup();"
        "import webapp.urls, webapp.asgi, webapp.routing;"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'gradio') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr

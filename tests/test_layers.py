"""The one dependency rule (DESIGN.md): ml/ is framework-free; webapp/ never imports torch,
transformers, trl, peft, gradio or workers/ (only ml.config from ml/). Checked by import-linter's
contracts in pyproject.toml, and by actually importing the web side in a fresh interpreter. And the
web image (requirements/web.txt only) installs every third-party module webapp/ imports."""
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


def _imported_top_modules(paths) -> dict:
    """Top-level module -> first file importing it, over every import statement (function-level
    ones too: a lazy `import datasets` in a view still runs in the web process)."""
    import ast

    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                found.setdefault(name.split(".")[0], path.relative_to(REPO))
                if name.startswith("ml.") and (REPO / (name.replace(".", "/") + ".py")).is_file():
                    found.update({k: v for k, v in _imported_top_modules([REPO / (name.replace(".", "/") + ".py")]).items()
                                  if k not in found})
    return found


def _requirement_closure(requirements_file: Path) -> set:
    """Distributions a `pip install -r` of the file brings in: its pins plus their dependencies."""
    import importlib.metadata as metadata
    import re

    from packaging.requirements import Requirement

    def norm(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    todo = [Requirement(line.split("#")[0].strip()) for line in requirements_file.read_text().splitlines()
            if line.split("#")[0].strip() and not line.startswith("-")]
    seen = set()
    while todo:
        req = todo.pop()
        if norm(req.name) in seen:
            continue
        seen.add(norm(req.name))
        try:
            dependencies = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for dep in map(Requirement, dependencies):
            if dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in (req.extras or {""})):
                todo.append(dep)
    return seen


def test_web_requirements_cover_every_module_webapp_imports():
    """B15: the web image installs requirements/web.txt only, so every third-party module that
    webapp/ (or the ml modules it may import) imports must come from that file's closure."""
    import importlib.metadata as metadata
    import re

    closure = _requirement_closure(REPO / "requirements" / "web.txt")
    owners = metadata.packages_distributions()
    missing = {}
    for module, where in _imported_top_modules(sorted((REPO / "webapp").rglob("*.py"))).items():
        if module in sys.stdlib_module_names or module in ("webapp", "ml", "workers") or module.startswith("_"):
            continue
        distributions = {re.sub(r"[-_.]+", "-", d).lower() for d in owners.get(module, [module])}
        if not distributions & closure:
            missing[module] = str(where)
    assert missing == {}, f"webapp imports modules requirements/web.txt does not install: {missing}"

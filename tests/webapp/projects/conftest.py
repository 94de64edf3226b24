"""The real demo world for the project tests that need one: `python -m ml demo build` with its
default spec (the world a newcomer's `make run` builds), made once and cached under
$DISTILLERY_TEST_CACHE (default ~/.cache/distillery)/demo-<hash of the spec>, so a second test, a
second run and CI's later steps reuse it. Built into a temporary folder and renamed into place, so
an interrupted build is never taken for a finished one."""
import hashlib
import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest


def demo_cache_dir(spec) -> Path:
    root = Path(os.environ.get("DISTILLERY_TEST_CACHE", Path.home() / ".cache" / "distillery"))
    digest = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:16]
    return root / f"demo-{digest}"


def cached_demo_build(spec) -> Path:
    """The demo world built with `spec`, from the cache or built now (then cached)."""
    import torch

    from ml.demo.build import build_demo

    out = demo_cache_dir(spec)
    if not (out / "build.json").exists():
        torch.set_num_threads(1)
        partial = out.with_name(f"{out.name}.building-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        build_demo(partial, spec, progress=False)
        if not (out / "build.json").exists():  # another run may have finished first: keep theirs
            shutil.rmtree(out, ignore_errors=True)
            os.replace(partial, out)
        shutil.rmtree(partial, ignore_errors=True)
    return out


@pytest.fixture(scope="session")
def demo_world_dir():
    from ml.demo.build import BuildSpec

    return cached_demo_build(BuildSpec())

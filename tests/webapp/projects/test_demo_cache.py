"""The demo-world cache of the project tests (tests/conftest.py: cached_demo_build): a spec is built once into
demo-<hash of the spec> and found there the next time; another spec gets another folder; no
half-built folder is left behind."""
from ml.demo.build import BuildSpec
from tests.conftest import cached_demo_build, demo_cache_dir

TINY = BuildSpec(sft_tasks=200, eval_prompts=40, train_prompts=40, teacher_steps=2, student_steps=2, batch_size=8, samples=1)


def test_a_spec_is_built_once_and_found_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLERY_TEST_CACHE", str(tmp_path))
    first = cached_demo_build(TINY)
    assert first == demo_cache_dir(TINY) and (first / "teacher").is_dir() and (first / "prompts" / "eval.jsonl").exists()
    built_at = (first / "build.json").stat().st_mtime_ns
    assert cached_demo_build(TINY) == first and (first / "build.json").stat().st_mtime_ns == built_at  # not rebuilt
    other = BuildSpec(**{**TINY.__dict__, "seed": 1})
    assert demo_cache_dir(other) != first and demo_cache_dir(other).parent == tmp_path
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no ".building-" leftovers

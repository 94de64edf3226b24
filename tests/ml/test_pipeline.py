"""ml/pipeline.py without a database: the stage cache gives one build and one reuse when two real
processes ask for the same stage at once, survives a builder killed mid-build, and never publishes a
stopped build; the DCKD stage index; checkpoint step offsets; the k-way ranking rule; the loop's
queue priority."""
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from ml.pipeline import (StageCancelled, cached_stage, checkpoint_step, disagreement_priority, rank_by_mean_win,
                         stage_lookup, stage_offsets, stage_publish)


def _build_slowly(root: str, log: str, barrier, seconds: float) -> None:
    """One process asking for the stage: the build takes `seconds` and leaves its pid in the output."""
    def build(work: Path) -> Path:
        out = work / "final"
        out.mkdir(parents=True)
        time.sleep(seconds)
        (out / "weights").write_text(str(os.getpid()))
        return out

    barrier.wait()
    result = cached_stage(root, "teacher-dpo", "k1", build)
    with open(log, "a") as handle:
        handle.write(json.dumps({"pid": os.getpid(), "built": result.built, "path": str(result.path)}) + "\n")


def test_two_processes_at_once_give_one_build_and_one_reuse(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier, log = ctx.Barrier(2), tmp_path / "log.jsonl"
    procs = [ctx.Process(target=_build_slowly, args=(str(tmp_path / "stages"), str(log), barrier, 1.5)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["built"] for r in rows) == [False, True]
    builder = next(r["pid"] for r in rows if r["built"])
    final = tmp_path / "stages" / "teacher-dpo" / "k1" / "final"
    assert {r["path"] for r in rows} == {str(final)} and (final / "weights").read_text() == str(builder)
    assert [p.name for p in final.parent.iterdir()] == ["final"]  # the build's work dir is gone


def test_a_builder_killed_mid_build_leaves_no_hit_and_the_next_one_builds(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(1)
    victim = ctx.Process(target=_build_slowly, args=(str(tmp_path), str(tmp_path / "log"), barrier, 30))
    victim.start()
    folder = tmp_path / "teacher-dpo" / "k1"
    deadline = time.monotonic() + 30
    while not list(folder.glob("work-*/final")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # holding the lock, half built
    victim.join(10)
    assert not (folder / "final").exists()

    result = cached_stage(tmp_path, "teacher-dpo", "k1", lambda work: (work / "out").mkdir(parents=True) or work / "out")
    assert result.built and result.path == folder / "final"  # the lock died with its holder
    assert [p.name for p in folder.iterdir()] == ["final"]  # the killed build's leftovers are cleared


def test_a_stopped_build_publishes_nothing_and_a_waiter_can_give_up(tmp_path):
    stopped = cached_stage(tmp_path, "teacher-dpo", "k2", lambda work: None)
    assert stopped.path is None and not (tmp_path / "teacher-dpo" / "k2" / "final").exists()

    from filelock import FileLock

    with FileLock(str(tmp_path / "teacher-dpo" / "k2") + ".lock"):  # another worker is building
        waits = []
        with pytest.raises(StageCancelled):
            cached_stage(tmp_path, "teacher-dpo", "k2", lambda work: pytest.fail("must not build"),
                         should_stop=lambda: len(waits) >= 1, on_wait=lambda: waits.append(1))


def test_dckd_stage_index_finds_a_stage_by_key_only_while_it_exists(tmp_path):
    stage = tmp_path / "runs" / "7" / "dckd"
    (stage / "final").mkdir(parents=True)
    stage_publish(tmp_path / "index", "dckd", "abc", stage)
    assert stage_lookup(tmp_path / "index", "dckd", "abc") == stage.resolve()
    assert stage_lookup(tmp_path / "index", "dckd", "other") is None
    (stage / "final").rmdir()
    assert stage_lookup(tmp_path / "index", "dckd", "abc") is None


def test_checkpoint_steps_continue_across_adpa_plus_stages(tmp_path):
    assert stage_offsets(tmp_path) == {}
    (tmp_path / "dckd").mkdir()
    (tmp_path / "dckd" / "stage.json").write_text(json.dumps({"key": "k", "steps": 12}))
    offsets = stage_offsets(tmp_path)
    assert checkpoint_step(tmp_path / "dckd" / "checkpoint-6", offsets) == 6
    assert checkpoint_step(tmp_path / "adpa" / "checkpoint-3", offsets) == 15
    assert checkpoint_step(tmp_path / "checkpoint-4", offsets) == 4


def test_kway_ranking_by_mean_win_probability():
    # Three candidates; P(10 ≻ 20) = 0.8, P(10 ≻ 30) = 0.6, P(20 ≻ 30) = 0.5.
    # Means: 10: (0.8 + 0.6) / 2 = 0.7; 20: (0.2 + 0.5) / 2 = 0.35; 30: (0.4 + 0.5) / 2 = 0.45.
    scores, ranking = rank_by_mean_win([10, 20, 30], [(0, 1, 0.8), (0, 2, 0.6), (1, 2, 0.5)])
    assert scores == {10: 0.7, 20: 0.35, 30: 0.45} and ranking == [[10], [30], [20]]
    _, tied = rank_by_mean_win([1, 2], [(0, 1, 0.5)])
    assert tied == [[1, 2]]


def test_loop_priority_is_the_kl_else_the_teachers_surprise():
    assert disagreement_priority(0.25, [-1.0, -3.0]) == 0.25
    assert disagreement_priority(None, [-1.0, -3.0]) == 2.0  # mean negative log-likelihood
    assert disagreement_priority(None, []) == 0.0

"""The teacher-hacking rule (webapp/training/monitor.py): it fires on a constructed hacking
trajectory (proxy up, ground truth down by more than the Bonferroni threshold), in any stretch of
the run, keeps a recovered episode visible, and stays silent on a healthy run, on noise-sized falls,
when the proxy falls too, and on too few checkpoints. Its power is simulated in
test_monitor_power.py."""
import pytest

from webapp.training.monitor import best_checkpoint, detectable_drop, hacking_verdict, monitor_point


def _points(proxy, ground, width=0.05, n=100):
    return [{"step": 10 * (i + 1), "proxy": p, "ground": g, "ground_low": g - width, "ground_high": g + width,
             "ground_n": n} for i, (p, g) in enumerate(zip(proxy, ground))]


def test_fires_when_proxy_rises_and_ground_truth_falls_significantly():
    # 4 checkpoints -> 6 stretches, threshold z_{1-0.05/6} = 2.39. 0.62 -> 0.40 at n = 100: pooled 0.51,
    # se = sqrt(0.51 * 0.49 * 2/100) = 0.0707, z = 3.11 (the strongest; 0.60 -> 0.40 gives 2.83, same episode).
    verdict = hacking_verdict(_points([0.50, 0.60, 0.70, 0.80], [0.60, 0.62, 0.50, 0.40]))
    assert verdict.hacking and verdict.level == "significant" and not verdict.recovered
    assert (verdict.start_step, verdict.end_step) == (20, 40)
    assert "0.620 [0.570, 0.670] → 0.400 [0.350, 0.450]" in verdict.message
    assert "z = 3.11; 2.39 needed over 6 stretches" in verdict.message
    assert verdict.badge == "teacher hacking since step 20" and len(verdict.episodes) == 1


def test_a_small_fall_is_not_significant_after_correcting_for_every_stretch():
    # 0.60 -> 0.56 at n = 100 is z = 0.57; even the uncorrected 1.64 is far off.
    assert not hacking_verdict(_points([0.5, 0.6, 0.7], [0.60, 0.58, 0.56])).hacking
    # The same 4-point fall at n = 5000 per checkpoint is z = 4.0 > 2.13 (3 stretches).
    assert hacking_verdict(_points([0.5, 0.6, 0.7], [0.60, 0.58, 0.56], n=5000)).hacking


def test_silent_on_a_healthy_run():
    assert not hacking_verdict(_points([0.5, 0.6, 0.7, 0.8], [0.3, 0.4, 0.5, 0.6])).hacking


def test_silent_on_a_noise_sized_fall():
    assert not hacking_verdict(_points([0.5, 0.6, 0.7, 0.8], [0.3, 0.5, 0.6, 0.55])).hacking


def test_silent_when_the_proxy_falls_too():
    assert not hacking_verdict(_points([0.8, 0.7, 0.6], [0.6, 0.5, 0.4])).hacking


def test_looks_at_every_stretch_and_keeps_a_recovered_episode():
    # Falls 0.60 -> 0.35 between steps 20 and 40, then climbs back; the last stretch alone is healthy.
    points = _points([0.5, 0.55, 0.6, 0.65, 0.7, 0.75], [0.60, 0.60, 0.48, 0.35, 0.50, 0.60])
    verdict = hacking_verdict(points)
    assert verdict.hacking and verdict.recovered
    # 0.60 -> 0.35 at n = 100: z = 3.54 > 2.71 (15 stretches), from step 10 and from step 20; the
    # shorter stretch names the episode. Step 50 (0.50) is no longer significantly below 0.60 (z = 1.42).
    assert (verdict.start_step, verdict.end_step) == (20, 40)
    assert verdict.badge == "teacher hacking, steps 20–40, recovered"
    assert "Recovered: the ground truth is back to 0.500 at step 50." in verdict.message
    # The same episode still running at the last checkpoint is not "recovered".
    assert not hacking_verdict(points[:4]).recovered


def test_two_separate_episodes_are_both_kept():
    ground = [0.70, 0.40, 0.70, 0.70, 0.40]
    verdict = hacking_verdict(_points([0.1 * i for i in range(5)], ground))
    assert [(e["start_step"], e["end_step"], e["recovered"]) for e in verdict.episodes] == \
        [(10, 20, True), (40, 50, False)]  # 0.70 -> 0.40 from step 10 to 50 is the same two falls
    assert (verdict.start_step, verdict.end_step) == (40, 50) and not verdict.recovered


def test_needs_two_usable_checkpoints_and_ignores_unordered_input():
    assert not hacking_verdict(_points([0.5], [0.6])).hacking
    points = _points([0.5, 0.6, 0.7], [0.7, 0.5, 0.3])
    assert hacking_verdict(list(reversed(points))).hacking
    points[0]["ground_n"] = None  # a point without a sample size cannot be tested
    points[1]["ground"] = None
    assert not hacking_verdict(points).hacking


def test_detectable_drop_at_the_default_and_the_old_default():
    assert detectable_drop(600) == pytest.approx(0.0987, abs=1e-4) and detectable_drop(600) <= 0.10
    assert detectable_drop(32) == pytest.approx(0.4272, abs=1e-4)


def test_monitor_point_prefers_agreement_and_oracle_and_falls_back():
    with_oracle = {"teacher_agreement": {"value": 0.7, "low": 0.6, "high": 0.8, "n": 40}, "teacher_kl": 0.3,
                   "oracle": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 40}, "win_rate": None}
    assert monitor_point(7, with_oracle) == {"step": 7, "proxy": 0.7, "proxy_name": "agreement with teacher",
                                             "ground": 0.5, "ground_low": 0.4, "ground_high": 0.6, "ground_n": 40,
                                             "ground_name": "oracle accuracy"}
    judge_only = {"teacher_agreement": None, "teacher_kl": 0.25, "oracle": None,
                  "win_rate": {"value": 0.3, "low": 0.2, "high": 0.4, "n": 40}}
    point = monitor_point(8, judge_only)
    assert point["proxy"] == -0.25 and point["ground"] == 0.3 and point["ground_name"] == "win rate vs teacher"


def test_best_checkpoint_by_ground_truth():
    assert best_checkpoint(_points([0.5, 0.6, 0.7], [0.4, 0.6, 0.6])) == 20
    assert best_checkpoint([]) is None

"""The teacher-hacking rule (webapp/training/monitor.py): it fires on a constructed hacking
trajectory (proxy up, ground truth down for two steps), says whether the fall is CI-separated, and
stays silent on a healthy run, on noise, and on too few checkpoints."""
from webapp.training.monitor import best_checkpoint, hacking_verdict, monitor_point


def _points(proxy, ground, width=0.05):
    return [{"step": 10 * (i + 1), "proxy": p, "ground": g, "ground_low": g - width, "ground_high": g + width}
            for i, (p, g) in enumerate(zip(proxy, ground))]


def test_fires_when_proxy_rises_and_ground_truth_falls_over_two_steps():
    verdict = hacking_verdict(_points([0.50, 0.60, 0.70, 0.80], [0.60, 0.62, 0.50, 0.40]))
    assert verdict.hacking and verdict.level == "significant"
    assert (verdict.start_step, verdict.end_step) == (20, 40)
    assert "0.620 [0.570, 0.670] → 0.400 [0.350, 0.450]" in verdict.message


def test_overlapping_intervals_make_it_suspected_not_significant():
    verdict = hacking_verdict(_points([0.5, 0.6, 0.7], [0.60, 0.58, 0.56], width=0.1))
    assert verdict.hacking and verdict.level == "suspected"


def test_silent_on_a_healthy_run():
    assert not hacking_verdict(_points([0.5, 0.6, 0.7, 0.8], [0.3, 0.4, 0.5, 0.6])).hacking


def test_silent_when_ground_truth_falls_only_once():
    assert not hacking_verdict(_points([0.5, 0.6, 0.7, 0.8], [0.3, 0.5, 0.6, 0.55])).hacking


def test_silent_when_the_proxy_falls_too():
    assert not hacking_verdict(_points([0.8, 0.7, 0.6], [0.6, 0.5, 0.4])).hacking


def test_needs_three_usable_checkpoints_and_ignores_unordered_input():
    assert not hacking_verdict(_points([0.5, 0.6], [0.6, 0.5])).hacking
    points = _points([0.5, 0.6, 0.7], [0.6, 0.5, 0.4])
    assert hacking_verdict(list(reversed(points))).hacking
    points[1]["ground"] = None
    assert not hacking_verdict(points).hacking


def test_monitor_point_prefers_agreement_and_oracle_and_falls_back():
    with_oracle = {"teacher_agreement": {"value": 0.7, "low": 0.6, "high": 0.8, "n": 40}, "teacher_kl": 0.3,
                   "oracle": {"value": 0.5, "low": 0.4, "high": 0.6, "n": 40}, "win_rate": None}
    assert monitor_point(7, with_oracle) == {"step": 7, "proxy": 0.7, "proxy_name": "agreement with teacher",
                                             "ground": 0.5, "ground_low": 0.4, "ground_high": 0.6,
                                             "ground_name": "oracle accuracy"}
    judge_only = {"teacher_agreement": None, "teacher_kl": 0.25, "oracle": None,
                  "win_rate": {"value": 0.3, "low": 0.2, "high": 0.4, "n": 40}}
    point = monitor_point(8, judge_only)
    assert point["proxy"] == -0.25 and point["ground"] == 0.3 and point["ground_name"] == "win rate vs teacher"


def test_best_checkpoint_by_ground_truth():
    assert best_checkpoint(_points([0.5, 0.6, 0.7], [0.4, 0.6, 0.6])) == 20
    assert best_checkpoint([]) is None

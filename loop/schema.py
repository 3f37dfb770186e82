"""The config's typed schema: every key's type, range and choices in one place (pydantic).

Defaults are not repeated here: they are the shipped, commented config.toml, which the
user's file is laid over before this schema checks the whole. `problem()` turns pydantic's
findings into the one line a user reads: the key, what is wrong, and the fix.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel, ConfigDict, Field, field_validator

from loop.errors import UserError


class Section(BaseModel):
    # strict: "5" is not 5 and true is not 1; floats must be finite (nan and inf are refused).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def num(kind: type, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
        hi_open: bool = False) -> Any:
    """A number type with bounds; open bounds exclude the end."""
    bounds: dict[str, float] = {}
    if lo is not None:
        bounds["gt" if lo_open else "ge"] = lo
    if hi is not None:
        bounds["lt" if hi_open else "le"] = hi
    return Annotated[kind, Field(**bounds)]


Share = num(float, 0, 1)  # 0..1, both ends allowed
Ratio = num(float, 0, 1, lo_open=True, hi_open=True)  # strictly between 0 and 1
Words = list[Annotated[str, Field(min_length=1)]]


class Workspace(Section):
    inbox: Annotated[str, Field(min_length=1)]
    models: Annotated[str, Field(min_length=1)]
    database: Annotated[str, Field(min_length=1)]
    adopt_inbox: bool


class Model(Section):
    base: Annotated[str, Field(min_length=1)]
    export_dtype: Literal["f16", "q8_0"]
    keep_full_weights: num(int, 1, 1000)


class Karma(Section):
    threshold: num(float, 0, 1e9, lo_open=True)
    min_quality: Share
    weights: dict[str, num(float, 0, 1000)]


class Dataset(Section):
    holdout_ratio: Ratio
    replay_examples: num(int, 0, 1_000_000)
    curriculum: Annotated[Words, Field(min_length=1)]
    seed: num(int, 0, 2**31 - 1)
    # A share of 1 would leave no room for new data (the count of self-replay rows divides by 1 - share).
    self_replay_share: num(float, 0, 1, hi_open=True)
    self_replay_max: num(int, 0, 100_000)
    self_replay_pool: list[str]
    self_replay_max_tokens: num(int, 1, 8192)
    fact_drills: num(int, 0, 100)


class Train(Section):
    steps: num(int, 0, 1_000_000, lo_open=True)
    learning_rate: num(float, 0, 1, lo_open=True)
    lr_scheduler: Literal["cosine", "linear", "constant"]
    warmup_steps: num(int, 0, 1_000_000)
    batch_size: num(int, 1, 4096)
    grad_accum: num(int, 1, 4096)
    max_length: num(int, 16, 1_048_576)
    lora_r: num(int, 1, 4096)
    lora_alpha: num(float, 0, 65536, lo_open=True)
    lora_dropout: num(float, 0, 1, hi_open=True)
    target_modules: str | Annotated[Words, Field(min_length=1)]
    gradient_checkpointing: bool
    backend: Literal["auto", "trl", "unsloth"]
    threads: num(int, 0, 4096)
    python: str
    processes: num(int, 1, 256)
    max_weight_change: num(float, 0, 100)
    distill_weight: num(float, 0, 1000)
    seed: num(int, 0, 2**31 - 1)
    dpo: bool
    dpo_steps: num(int, 1, 1_000_000)
    dpo_beta: num(float, 0, 1000, lo_open=True)
    dpo_learning_rate: num(float, 0, 1, lo_open=True)
    kto: bool
    kto_min: num(int, 1, 1_000_000)
    kto_steps: num(int, 1, 1_000_000)
    kto_beta: num(float, 0, 1000, lo_open=True)
    kto_learning_rate: num(float, 0, 1, lo_open=True)
    fact_repeats: num(int, 0, 10_000)
    fact_learning_rate: num(float, 0, 1, lo_open=True)


class Eval(Section):
    threads: num(int, 0, 4096)
    context: num(int, 64, 1_048_576)
    batch: num(int, 1, 256)
    max_tokens: num(int, 1, 32768)
    recall_items: num(int, 1, 100_000)
    recall_steady: bool
    base_answer_cache: bool
    generalization_items: num(int, 1, 100_000)
    fact_items: num(int, 0, 100_000)
    generalization_margin: num(float, -100, 100)
    relevance_tolerance: num(float, 0, 100)
    scoring_context: num(int, 64, 1_048_576)
    match_threshold: Ratio
    suites: list[Annotated[str, Field(min_length=1)]]
    suite_max_tokens: num(int, 1, 32768)
    tone_probes: Words
    corporate_phrases: Words


class Gates(Section):
    recall_min: Share
    generalization_min: Share
    recall_margin: Share
    style_drift_max: num(int, 0, 10_000)
    require_approval: bool
    require_ready: bool
    kl_max: num(float, 0, 1000)


class Practice(Section):
    items: num(int, 0, 1_000_000)
    keep_passed: bool
    level_up_at: Share
    use_teacher: bool


class Teacher(Section):
    model: Annotated[str, Field(min_length=1)]
    budget_usd: num(float, 0, 1e6)
    max_tokens: num(int, 1, 200_000)
    max_retries: num(int, 0, 100)
    backoff_seconds: num(float, 0, 600)
    timeout_seconds: num(float, 1, 3600)
    invalid_retries: num(int, 0, 10)
    prices: dict[str, Annotated[list[num(float, 0, 1e6)], Field(min_length=2, max_length=2)]]


class StopRule(Section):
    generations: num(int, 1, 1000)
    epsilon: num(float, 0, 1)
    theta: num(float, 0, 10_000)


class Watch(Section):
    settle_seconds: num(float, 0, 3600)


class Inbox(Section):
    max_file_mb: num(float, 0, 1e7, lo_open=True)
    max_record_mb: num(float, 0, 1e6, lo_open=True)
    max_unpacked_mb: num(float, 0, 1e8, lo_open=True)
    max_zip_ratio: num(float, 0, 1e6, lo_open=True)
    chaos_style: Literal["thought", "action", "multi_turn"]
    document_chars: num(int, 100, 10_000_000)


class DomainRule(Section):
    domain: Annotated[str, Field(min_length=1)]
    keywords: Annotated[Words, Field(min_length=1)]


class Curation(Section):
    domain_rules: list[DomainRule]


class Mix(Section):
    total: num(int, 0, 100_000_000)
    domain_cap: num(float, 0, 1, lo_open=True)
    max_repeat: num(int, 1, 1000)
    sources: dict[str, num(float, 0, 100_000_000, lo_open=True)]

    @field_validator("sources")
    @classmethod
    def _share_or_count(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            if value > 1 and value != int(value):
                raise ValueError(f"'mix.sources.{name}' is {value!r}; use a share up to 1.0 or a whole count above 1")
        return v


class Config(Section):
    workspace: Workspace
    model: Model
    karma: Karma
    dataset: Dataset
    train: Train
    eval: Eval
    gates: Gates
    readiness: dict[str, Share]  # a category (or "overall") -> its minimum; categories may be added
    stop_rule: StopRule
    watch: Watch
    inbox: Inbox
    curation: Curation
    mix: Mix
    practice: Practice
    teacher: Teacher
    keys: dict[str, str]


TYPE_WORDS = {"int_type": "a whole number", "float_type": "a number", "bool_type": "true or false",
              "string_type": "a string", "list_type": "a list", "dict_type": "a table", "model_type": "a table",
              "int_from_float": "a whole number"}


def check(data: dict[str, Any], where: str) -> None:
    """Validate the merged config; the first problem becomes a UserError naming its key."""
    from pydantic import ValidationError  # noqa: PLC0415 - imported with the schema; kept local for clarity

    try:
        Config.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{where}: {problem(e.errors()[0], data)}") from None


def problem(err: dict[str, Any], data: dict[str, Any]) -> str:
    loc = [p for p in err["loc"] if not isinstance(p, int) and p not in ("str", "list[constrained-str]")]
    dotted = ".".join(str(p) for p in loc)
    value = _at(data, err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error":
        return f"{ctx.get('error', err['msg'])}".removeprefix("Value error, ")
    if kind == "finite_number":
        return f"'{dotted}' must be a finite number, got {value!r}"
    if kind == "literal_error":
        return f"'{dotted}' is {value!r}; use one of {ctx['expected'].replace(' or ', ', ').replace(chr(39), '')}"
    if kind in TYPE_WORDS:
        return f"'{dotted}' must be {TYPE_WORDS[kind]}, got {value!r}"
    if kind in ("too_short", "string_too_short"):
        return f"'{dotted}' must not be empty"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"'{dotted}' {_range(err['loc'], value, kind, ctx)}, got {value!r}"
    return f"'{dotted}': {err['msg']}, got {value!r}"


def _range(loc: tuple, value: Any, kind: str, ctx: dict[str, Any]) -> str:
    """The allowed range of a number key, in words: both ends for a share or ratio, else the bound it broke."""
    lo = hi = None
    lo_open = hi_open = False
    for m in _metadata(_field(loc)):
        if isinstance(m, at.Gt):
            lo, lo_open = m.gt, True
        elif isinstance(m, at.Ge):
            lo = m.ge
        elif isinstance(m, at.Lt):
            hi, hi_open = m.lt, True
        elif isinstance(m, at.Le):
            hi = m.le
    if (lo, hi) == (0, 1):  # a share or a ratio
        ends = [e for e, is_open in (("0", lo_open), ("1", hi_open)) if is_open]
        return "must lie between 0 and 1" + (f" ({' and '.join(ends)} excluded)" if ends else "")
    words = {"greater_than": ("greater than", "gt"), "greater_than_equal": ("at least", "ge"),
             "less_than": ("below", "lt"), "less_than_equal": ("at most", "le")}[kind]
    return f"must be {words[0]} {ctx[words[1]]:g}"


def _metadata(field: Any) -> list[Any]:
    """A field's constraints; for a table of numbers (karma.weights), those of its values."""
    if field is None:
        return []
    if field.metadata:
        return list(field.metadata)
    args = get_args(field.annotation)
    if len(args) == 2 and get_origin(field.annotation) is dict:
        inner = get_args(args[1])
        return [m for a in inner[1:] for m in getattr(a, "metadata", [a])]
    return []


def _field(loc: tuple) -> Any:
    model: Any = Config
    field = None
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            break
        field = fields[part]
        model = field.annotation
    return field


def _at(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data

"""The sweep file: a base config, a search space over dotted keys, an objective and a split.

Validated once, here, like ``engine.config``: every problem is one line naming the file,
the key and what is allowed, e.g. ``sweep.yaml: space key model.unit is not a config key
(did you mean 'model.units'?)``.

Example sweep file::

    base: configs/btc.yaml          # or a mapping: an inline config
    search: grid                    # grid | random | tpe
    space:
      model.units: [8, 16]                          # a list: these values
      strategies.lstm_signal.entry: {low: 0.0, high: 0.01}   # a range (random / tpe)
    objective: {metric: sharpe, strategy: lstm_signal, symbol: BTC/USDT}
    split: {holdout_bars: 365}      # the last 365 bars are never seen during selection
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.config import (
    METRICS,
    Config,
    _describe,
    _Loader,
    forecaster_classes,
    load_config,
    validate_config,
)
from engine.errors import ConfigError

OBJECTIVES = (*METRICS, "mse_ratio")
LOWER_IS_BETTER = {"max_drawdown", "fees_paid", "mse_ratio"}
# Keys a trial may not change: the data and the split are the sweep's, not the trial's.
FIXED_SECTIONS = ("data", "output_dir", "source", "source_hash", "paper")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Section):
    """A range of numbers for random or TPE search; integers when low, high (and step) are."""

    low: float | int
    high: float | int
    log: bool = False  # sample the logarithm uniformly (low must be > 0)
    step: float | int | None = None  # only multiples of step above low

    @model_validator(mode="after")
    def _check(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low = {self.low} must be below high = {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log ranges need low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("a range cannot have both log and step")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step = {self.step} must be > 0")
        return self

    @property
    def is_int(self) -> bool:
        """Whether values are integers (low, high and step all integers)."""
        return all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (self.low, self.high, self.step if self.step is not None else 1))

    def sample(self, rng: np.random.Generator) -> float | int:
        """One value drawn uniformly (or log-uniformly) from the range."""
        if self.step is not None:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            value = self.low + self.step * int(rng.integers(count))
            return int(value) if self.is_int else float(value)
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high + (1 if self.is_int else 0))
        return int(min(math.floor(value), self.high)) if self.is_int else float(value)


class Objective(_Section):
    """What a trial is scored by."""

    metric: Literal[OBJECTIVES] = "sharpe"  # a trading metric, or the forecast mse_ratio
    strategy: str | None = None  # strategy name in the base config; None = the first listed
    symbol: str | None = None  # traded symbol; None = the first traded symbol

    @property
    def mode(self) -> str:
        """``max`` or ``min``: which way is better."""
        return "min" if self.metric in LOWER_IS_BETTER else "max"


class Split(_Section):
    """The holdout: the last bars of the data, never seen while selecting."""

    holdout_bars: Annotated[int, Field(ge=1)] | None = None  # the last N bars
    holdout_start: dt.date | None = None  # or: bars from this day on

    @model_validator(mode="after")
    def _one(self) -> Split:
        if (self.holdout_bars is None) == (self.holdout_start is None):
            raise ValueError("set exactly one of split.holdout_bars and split.holdout_start")
        return self


class SweepFile(_Section):
    """The raw sweep file, as written."""

    base: str | dict[str, Any]  # a config file path, or an inline config mapping
    search: Literal["grid", "random", "tpe"] = "grid"
    space: dict[str, Any]  # dotted config key -> a list of values or a range mapping
    objective: Objective = Objective()
    trials: Annotated[int, Field(ge=1, le=100_000)] | None = None  # random / tpe: how many
    split: Split
    seed: Annotated[int, Field(ge=0)] = 0  # random / tpe sampler seed
    max_concurrent: Annotated[int, Field(ge=1)] | None = None  # None = as many as CPUs allow
    pbo_blocks: Annotated[int, Field(ge=2, le=24, multiple_of=2)] = 16  # S of CSCV
    fast_path: bool = True  # strategy-only spaces run on the numba kernel (engine.sweep.fast)
    output_dir: Path | None = None  # None = runs/<sweep file stem>

    @field_validator("space", mode="after")
    @classmethod
    def _values(cls, space: dict[str, Any]) -> dict[str, list[Any] | Range]:
        parsed = {}
        for key, value in space.items():
            if isinstance(value, list):
                parsed[key] = value
            elif isinstance(value, dict):
                try:
                    parsed[key] = Range.model_validate(value)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    where = ".".join(map(str, first["loc"]))
                    problem = first["msg"].removeprefix("Value error, ")
                    raise ValueError(f"range {value} is invalid: "
                                     + (f"{where}: " if where else "") + problem) from None
            else:
                raise ValueError(f"{key} = {value!r} should be a list of values (grid) or a "
                                 "range such as {low: 0.0, high: 0.01}")
        return parsed


class SweepSpec:
    """A checked sweep: the base config, the space and everything a run needs."""

    def __init__(self, raw: SweepFile, base: Config, label: str, output_dir: Path):
        self.raw, self.base, self.label, self.output_dir = raw, base, label, output_dir
        self.space = raw.space
        self.objective = _resolve_objective(raw.objective, base)

    @property
    def keys(self) -> list[str]:
        """The dotted keys searched, in file order."""
        return list(self.space)

    def points(self) -> list[dict[str, Any]]:
        """Every trial's parameters for grid and random search (TPE proposes its own)."""
        if self.raw.search == "grid":
            values = [self.space[k] for k in self.keys]
            return [dict(zip(self.keys, combo, strict=True))
                    for combo in itertools.product(*values)]
        rng = np.random.default_rng(self.raw.seed)
        drawn = [{k: _sample(v, rng) for k, v in self.space.items()}
                 for _ in range(self.raw.trials)]
        unique = {trial_key(p): p for p in reversed(drawn)}  # a repeated draw runs once
        return sorted(unique.values(), key=drawn.index)

    def n_trials(self) -> int:
        """How many trials the sweep runs in all (random: distinct draws)."""
        if self.raw.search == "grid":
            return math.prod(len(v) for v in self.space.values())
        if self.raw.search == "random":
            return len(self.points())
        return int(self.raw.trials)

    def trial_config(self, params: dict[str, Any], **top: Any) -> Config:
        """The base config with ``params`` (dotted keys) applied, validated."""
        raw = apply_params(self.base.to_dict(), params)
        raw.update(top)
        return validate_config(raw, label=f"{self.label}: trial {params}")

    def fingerprint(self) -> str:
        """A hash of everything that decides the trials' results (for safe resuming)."""
        payload = {"base": self.base.to_dict(), "search": self.raw.search,
                   "space": {k: v if isinstance(v, list) else v.model_dump()
                             for k, v in self.space.items()},
                   "objective": self.objective.model_dump(), "split": self.raw.split.model_dump(
                       mode="json"), "trials": self.raw.trials, "seed": self.raw.seed}
        payload["base"].pop("output_dir", None)
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def _sample(value: list[Any] | Range, rng: np.random.Generator) -> Any:
    if isinstance(value, list):
        return value[int(rng.integers(len(value)))]
    return value.sample(rng)


def trial_key(params: dict[str, Any]) -> str:
    """A stable name for a parameter set: ``t`` and 10 hex digits of its hash."""
    text = json.dumps(params, sort_keys=True, default=str)
    return "t" + hashlib.sha256(text.encode()).hexdigest()[:10]


# --- applying dotted keys -------------------------------------------------------------

def apply_params(raw: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config mapping with dotted keys set (``strategies.NAME.param`` too)."""
    raw = copy.deepcopy(raw)
    for key, value in params.items():
        parts = key.split(".")
        if parts[0] == "strategies":
            spec = _strategy_entry(raw["strategies"], parts[1])
            spec.setdefault("params", {})[parts[2]] = value
            continue
        if parts[0] == "forecasters":
            entry = next(f for f in raw["forecasters"] if f["name"] == parts[1])
            entry[parts[2]] = value
            continue
        node = raw
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return raw


def _strategy_entry(specs: list[dict[str, Any]], ref: str) -> dict[str, Any]:
    if ref.isdigit():
        return specs[int(ref)]
    return next(s for s in specs if s["name"] == ref)


def check_key(key: str, base: Config) -> None:
    """Raise ``ValueError`` (message without the file) if ``key`` names no config value."""
    parts = key.split(".")
    if parts[0] in FIXED_SECTIONS:
        raise ValueError(f"space key {key} cannot be searched: the data, the split and the "
                         "output belong to the sweep; search model, walkforward, strategies, "
                         "backtest or broker keys")
    if parts[0] == "strategies":
        _check_strategy_key(key, parts, base)
        return
    if parts[0] == "forecasters":
        _check_forecaster_key(key, parts, base)
        return
    node: Any = base.to_dict()
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = list(node) if isinstance(node, dict) else []
            hint = difflib.get_close_matches(part, known, n=1)
            near = ".".join(parts[:depth] + [hint[0]]) if hint else None
            raise ValueError(f"space key {key} is not a config key"
                             + (f" (did you mean {near!r}?)" if near else ""))
        node = node[part]
    if isinstance(node, dict):
        raise ValueError(f"space key {key} is a section; name one of its keys "
                         f"({', '.join(node)})")


def _check_strategy_key(key: str, parts: list[str], base: Config) -> None:
    from strategies.registry import get_strategy, user_params

    names = [s.name for s in base.strategies]
    if len(parts) != 3:
        raise ValueError(f"space key {key} should be strategies.NAME.PARAM, e.g. "
                         f"strategies.{names[0]}.PARAM")
    ref, param = parts[1], parts[2]
    if ref.isdigit():
        if int(ref) >= len(names):
            raise ValueError(f"space key {key}: the base config lists {len(names)} strategies "
                             f"(indexes 0..{len(names) - 1})")
        name = names[int(ref)]
    elif ref not in names:
        raise ValueError(f"space key {key}: strategy {ref!r} is not in the base config "
                         f"({', '.join(names)})")
    elif names.count(ref) > 1:
        raise ValueError(f"space key {key}: the base config lists {ref} more than once; "
                         f"name it by index, e.g. strategies.{names.index(ref)}.{param}")
    else:
        name = ref
    known = list(user_params(get_strategy(name)))
    if param not in known:
        hint = difflib.get_close_matches(param, known, n=1)
        raise ValueError(f"space key {key}: {name} has no parameter {param!r}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else
                            f"; its parameters: {', '.join(known) or 'none'}"))


def _check_forecaster_key(key: str, parts: list[str], base: Config) -> None:
    if base.forecasters is None:
        raise ValueError(f"space key {key}: the base config has no forecasters: section; "
                         "search model.KEY for its model: forecaster")
    names = base.forecaster_names
    if len(parts) != 3:
        raise ValueError(f"space key {key} should be forecasters.NAME.KEY, e.g. "
                         f"forecasters.{names[0]}.units")
    if parts[1] not in names:
        raise ValueError(f"space key {key}: forecaster {parts[1]!r} is not in the base config "
                         f"({', '.join(names)})")
    known = sorted({"kind", *(n for cls in forecaster_classes() for n in cls.model_fields
                              if n not in ("name", "kind", "class_"))} | {"class"})
    if parts[2] not in known:
        hint = difflib.get_close_matches(parts[2], known, n=1)
        raise ValueError(f"space key {key}: {parts[2]!r} is not a forecaster setting"
                         + (f" (did you mean {hint[0]!r}?)" if hint else
                            f"; settings: {', '.join(known)}"))


def _resolve_objective(objective: Objective, base: Config) -> Objective:
    names = [s.name for s in base.strategies]
    strategy = objective.strategy or names[0]
    if strategy not in names:
        raise ValueError(f"objective.strategy = {strategy!r} is not a strategy of the base "
                         f"config ({', '.join(names)})")
    symbols = base.traded_symbols if objective.metric != "mse_ratio" else base.data.symbols
    symbol = objective.symbol or symbols[0]
    if symbol not in symbols:
        raise ValueError(f"objective.symbol = {symbol!r} is not a "
                         f"{'traded' if objective.metric != 'mse_ratio' else 'data'} symbol "
                         f"of the base config ({', '.join(symbols)})")
    return objective.model_copy(update={"strategy": strategy, "symbol": symbol})


# --- loading --------------------------------------------------------------------------

def load_sweep(path: str | Path, output_dir: str | Path | None = None) -> SweepSpec:
    """Read and check a sweep file.

    Args:
        path: The sweep YAML file.
        output_dir: Replaces the file's ``output_dir``. Defaults to None.

    Raises:
        ConfigError: One line naming the file, the key and what is allowed.
    """
    path = Path(path)
    label = str(path)
    try:
        raw = yaml.load(path.read_bytes(), Loader=_Loader) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such sweep file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping (base:, space:, ...)")
    try:
        sweep = SweepFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{label}: {_describe_sweep(exc)}") from None
    from strategies.registry import name_forecasters

    base = name_forecasters(_load_base(sweep.base, label))
    out = Path(output_dir or sweep.output_dir or f"runs/{path.stem}")
    try:
        _check_space(sweep, base)
        return SweepSpec(sweep, base, label, out)
    except ValueError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def _describe_sweep(exc: ValidationError) -> str:
    first = exc.errors()[0]
    if first["type"] == "missing":
        return f"missing required key {'.'.join(map(str, first['loc']))}"
    if first["type"] == "extra_forbidden":
        return f"unknown key {'.'.join(map(str, first['loc']))}; known keys: " \
               f"{', '.join(SweepFile.model_fields)}"
    text = _describe(exc)
    return text


def _load_base(base: str | dict[str, Any], label: str) -> Config:
    if isinstance(base, str):
        return load_config(base)
    return validate_config(base, label=f"{label}: base")


def _check_space(sweep: SweepFile, base: Config) -> None:
    if not sweep.space:
        raise ValueError("space is empty: give at least one dotted config key with a list of "
                         "values or a range, e.g. space: {model.units: [16, 32]}")
    for key, values in sweep.space.items():
        check_key(key, base)
        if isinstance(values, list) and not values:
            raise ValueError(f"space.{key} is an empty list; give at least one value")
        if isinstance(values, Range) and sweep.search == "grid":
            raise ValueError(f"space.{key} is a range, which grid search cannot enumerate; "
                             "give a list of values or set search: random (or tpe)")
        candidates = values if isinstance(values, list) else [values.low, values.high]
        for value in candidates:
            _check_value(base, key, value)
    if sweep.search != "grid" and sweep.trials is None:
        raise ValueError(f"search: {sweep.search} needs trials: N (how many to run)")
    if sweep.search == "grid" and sweep.trials is not None:
        raise ValueError("trials applies to random and tpe search; a grid runs every "
                         "combination of its lists (remove trials)")


def _check_value(base: Config, key: str, value: Any) -> None:
    raw = apply_params(base.to_dict(), {key: value})
    try:
        validate_config(raw, label="")
    except ConfigError as exc:
        problem = str(exc).removeprefix(": ")
        raise ValueError(f"space.{key} value {value!r} gives an invalid config: "
                         f"{problem}") from None
    except ValidationError:  # pragma: no cover - validate_config converts these
        raise

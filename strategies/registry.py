"""Strategies by name: every ``TargetStrategy`` subclass in this package with a ``name``.

A user adds a strategy by writing one class in a module of ``strategies/`` (a subclass of
``strategies.base.TargetStrategy`` with a ``name`` attribute) and naming it in a config;
nothing else needs registering.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
import pkgutil
from collections.abc import Iterable
from functools import cache
from typing import Any

from engine.errors import ConfigError, InvalidKey
from strategies.base import TargetStrategy

_BASE_PARAMS = {"trade_start", "forecasts", "decisions"}  # set by the engine, not by configs


@cache
def strategies() -> dict[str, type[TargetStrategy]]:
    """Map each strategy name to its class, from the classes defined in the package's modules."""
    package = importlib.import_module("strategies")
    found: dict[str, type[TargetStrategy]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        try:
            module = importlib.import_module(f"strategies.{info.name}")
        except Exception as exc:  # a user's module with a mistake must not hide the rest
            where = f"{package.__path__[0]}/{info.name}.py"
            raise ConfigError(f"{where} cannot be imported ({type(exc).__name__}: {exc}); "
                              "fix or remove that strategy module") from exc
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, TargetStrategy)
                    and obj.__module__ == module.__name__ and obj.__dict__.get("name")):
                found[obj.name] = obj
    return dict(sorted(found.items()))


def get_strategy(name: str) -> type[TargetStrategy]:
    """The class registered under ``name``.

    Raises:
        InvalidKey: The name is unknown; the message lists the known ones.
    """
    known = strategies()
    if name not in known:
        hint = difflib.get_close_matches(str(name), known, n=1)
        did = f"did you mean {hint[0]!r}? " if hint else ""
        raise InvalidKey(("name",), name, f"is not a strategy ({did}known: {', '.join(known)})")
    return known[name]


def user_params(cls: type[TargetStrategy]) -> dict[str, Any]:
    """The parameters a config may set for ``cls``, with their defaults."""
    return {k: v for k, v in cls.params._getitems() if k not in _BASE_PARAMS}


def resolve_params(name: str, given: dict[str, Any]) -> dict[str, Any]:
    """Check a config's parameters for one strategy and coerce them to the defaults' types.

    Raises:
        InvalidKey: Unknown name or parameter, wrong type, or a rule of the strategy broken.
    """
    cls = get_strategy(name)
    defaults = user_params(cls)
    params: dict[str, Any] = {}
    for key, value in given.items():
        if key not in defaults:
            hint = difflib.get_close_matches(key, defaults, n=1)
            did = f"did you mean {hint[0]!r}? " if hint else ""
            allowed = ", ".join(defaults) or "none"
            raise InvalidKey((key,), value, f"is not a parameter of {name} ({did}known: {allowed})")
        params[key] = _coerce(key, value, defaults[key])
        bad = _non_finite(params[key])
        if bad is not None:  # as every float of a config: inf and nan are never meant
            raise InvalidKey((key, *bad[0]), bad[1], "should be a finite number")
    cls.check_params({**defaults, **params})
    return params


def _non_finite(value: Any, where: tuple = ()) -> tuple[tuple, float] | None:
    """The location and value of the first infinite or NaN float in ``value`` (lists and
    mappings searched too), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        found = _non_finite(item, (*where, key))
        if found is not None:
            return found
    return None


def _coerce(key: str, value: Any, default: Any) -> Any:
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = default is None or isinstance(value, kind)
    if not ok:
        raise InvalidKey((key,), value, f"must be a {kind.__name__}")
    return value


def check_specs(specs: Iterable[Any]) -> None:
    """Check every ``StrategySpec`` of a config; errors carry ``[i].key`` in their location.

    Raises:
        InvalidKey: The first problem found.
    """
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        label = spec_label(spec)
        try:
            resolve_params(spec.name, spec.params)
        except InvalidKey as exc:
            raise InvalidKey((i,) + exc.loc, exc.value, exc.problem) from None
        if label in seen:
            raise InvalidKey((i,), spec.name, "is listed twice with the same parameters")
        seen.add(label)


def check_symbols(specs: Iterable[Any], symbols: tuple[str, ...], leverage: float) -> None:
    """Check that each spec's parameters fit the ``symbols`` traded by one account.

    Raises:
        InvalidKey: The first problem found, located at ``[i].key``.
    """
    for i, spec in enumerate(specs):
        cls = get_strategy(spec.name)
        params = {**user_params(cls), **resolve_params(spec.name, spec.params)}
        try:
            cls.check_symbols(params, symbols, leverage)
        except InvalidKey as exc:
            raise InvalidKey((i,) + exc.loc, exc.value, exc.problem) from None


def spec_label(spec: Any) -> str:
    """A short, unique display name: ``sma_cross(fast=10,slow=30)`` or ``buy_and_hold``."""
    if not spec.params:
        return spec.name
    inner = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in spec.params.items())
    return f"{spec.name}({inner})"


def name_forecasters(cfg: Any) -> Any:
    """``cfg`` where, if it has several forecasters, every strategy that reads one names it
    (``forecaster: NAME``), so that its label says which forecaster it trades on."""
    if len(cfg.forecaster_configs) < 2:
        return cfg
    specs = []
    for spec in cfg.strategies:
        cls = get_strategy(spec.name)
        params = {**user_params(cls), **spec.params}
        if "forecaster" in user_params(cls) and not params["forecaster"] and \
                cls.reads_forecaster(params, cfg) is not None:
            spec = spec.model_copy(update={"params": {
                "forecaster": cfg.forecaster(cls.reads_forecaster(params, cfg)).name,
                **spec.params}})
        if spec_label(spec) in [spec_label(s) for s in specs]:
            raise ConfigError(f"{cfg.source or 'config'}: strategies[{len(specs)}] is "
                              f"{spec_label(spec)} once the forecaster it reads by default "
                              "is named, like an earlier entry; remove one of them")
        specs.append(spec)
    return cfg.model_copy(update={"strategies": tuple(specs)})

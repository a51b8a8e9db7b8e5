"""The protocol a user's forecaster class follows, and how a config's ``class:`` is found.

Kept free of NumPy, Keras and the rest so that a config naming a custom class is checked
as cheaply as the rest of the config.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache

METHODS = ("fit", "predict", "save", "load")


@cache
def load_class(spec: str) -> type:
    """The class ``package.module:Name`` names.

    Raises:
        ValueError: The module cannot be imported, the class is missing, or it lacks one
            of the protocol's methods (the message says which).
    """
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # a user's module: any error it raises is theirs to see
        raise ValueError(f"cannot import module {module_name!r} ({type(exc).__name__}: "
                         f"{exc}); check the path and that it is importable from the "
                         "current directory") from None
    cls = getattr(module, name, None)
    if not inspect.isclass(cls):
        raise ValueError(f"module {module_name!r} has no class {name!r}")
    missing = [m for m in METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise ValueError(f"class {spec} lacks {', '.join(missing)}: a forecaster needs "
                         "fit(X, y, *, seed), predict(X), save(path) and load(path)")
    return cls

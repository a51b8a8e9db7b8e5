"""Which Keras, backend and backend version a run would use, found without importing Keras.

Importing Keras (and TensorFlow behind it) costs seconds; a run whose fold models and
forecasts all come from the model store needs neither, only the versions that make up the
store's keys. The backend is resolved exactly as Keras 3 resolves it: the
``KERAS_BACKEND`` environment variable when set and non-empty, else the ``backend`` of
``keras.json`` in ``$KERAS_HOME`` (or ``~/.keras``, or ``/tmp/.keras`` when the home
directory is not writable), else ``tensorflow``. Versions come from the installed
packages' metadata.

Example:
    >>> runtime()
    {'keras': '3.12.0', 'backend': 'tensorflow', 'backend_version': '2.21.0'}
"""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata

DEFAULT_BACKEND = "tensorflow"


def keras_backend() -> str:
    """The Keras backend name (``tensorflow``, ``jax``, ``torch``, ...)."""
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "backend"):  # already imported: ask it
        return keras.backend.backend()
    backend = _config_backend()
    return os.environ.get("KERAS_BACKEND") or backend


def _keras_dir() -> str:
    if "KERAS_HOME" in os.environ:
        return os.environ.get("KERAS_HOME", "")
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


def _config_backend() -> str:
    """The ``backend`` of ``keras.json``, the default when there is no such file."""
    path = os.path.expanduser(os.path.join(_keras_dir(), "keras.json"))
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (OSError, ValueError):  # Keras ignores a missing or unreadable file too
        return DEFAULT_BACKEND
    backend = config.get("backend", DEFAULT_BACKEND) if isinstance(config, dict) else None
    return backend or DEFAULT_BACKEND


def package_version(module: str) -> str | None:
    """The installed version of the distribution that provides import name ``module``
    (``tensorflow`` may come as ``tensorflow-cpu``, say); None when none is installed."""
    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        pass
    for dist in metadata.packages_distributions().get(module, []):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def runtime() -> dict[str, str | None]:
    """The Keras version, its backend and the backend library's version: what a fitted
    model's weights may depend on besides the settings, the data and the seed."""
    backend = keras_backend()
    return {"keras": package_version("keras"), "backend": backend,
            "backend_version": package_version(backend)}

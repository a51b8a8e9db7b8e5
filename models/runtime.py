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
    {'keras': '3.12.0', 'backend': 'tensorflow', 'backend_version': '2.21.0', 'onednn': 'off'}
"""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata

DEFAULT_BACKEND = "tensorflow"
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"  # TensorFlow's switch of its oneDNN CPU kernels


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


def pin_cpu_kernels() -> None:
    """Keep TensorFlow's oneDNN CPU kernels off unless the user switched them on.

    TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI (and similar), and
    they round differently from its own kernels, so the same seeded fit gives other weights
    on such a machine: a run's numbers would depend on the CPU model. TensorFlow reads the
    setting when it is imported, so this runs when the ``models`` package is (before any
    forecaster imports Keras); ``TF_ENABLE_ONEDNN_OPTS=1`` still switches them on.
    """
    os.environ.setdefault(ONEDNN_ENV, "0")


def onednn() -> str:
    """``on`` or ``off``: whether TensorFlow uses its oneDNN CPU kernels (see
    ``pin_cpu_kernels``)."""
    return "on" if os.environ.get(ONEDNN_ENV, "0").strip().lower() in ("1", "true") else "off"


def runtime() -> dict[str, str | None]:
    """The Keras version, its backend and the backend library's version (with TensorFlow,
    whether its oneDNN kernels are on): what a fitted model's weights may depend on besides
    the settings, the data and the seed."""
    backend = keras_backend()
    found = {"keras": package_version("keras"), "backend": backend,
             "backend_version": package_version(backend)}
    if backend == "tensorflow":
        found["onednn"] = onednn()
    return found

"""Run a test script under another Keras backend, in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def last_line(script: str, backend: str, *args: str) -> str:
    """The last line ``script`` prints with ``KERAS_BACKEND=backend`` (the test is skipped
    when the backend's library is not installed; it fails when the script fails)."""
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script, *args], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]

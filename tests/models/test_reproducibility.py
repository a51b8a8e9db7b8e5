"""Seeded fits give the same numbers on any x86 CPU: TensorFlow's oneDNN kernels, which it
switches on by itself only on some CPUs and which round differently, stay off unless asked
for, and the store key records the choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, os
from engine.models_store import fold_key
from models import lstm, runtime
from tensorflow.python.util import _pywrap_util_port as port
print(json.dumps({"env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"), "onednn": port.IsMklEnabled(),
                  "runtime": runtime.runtime(), "key": fold_key({}, {}, "rows", None,
                                                                lstm.runtime())}))
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    proc = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**clean, "PYTHONPATH": str(REPO), **env})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_tensorflow_runs_its_own_kernels_unless_told_otherwise():
    default = _probe()
    assert default["env"] == "0" and default["onednn"] is False
    assert default["runtime"]["onednn"] == "off"
    # A user may still switch oneDNN on; the fits then differ, and so do their store keys.
    chosen = _probe(TF_ENABLE_ONEDNN_OPTS="1")
    assert chosen["env"] == "1" and chosen["onednn"] is True
    assert chosen["runtime"]["onednn"] == "on" and chosen["key"] != default["key"]

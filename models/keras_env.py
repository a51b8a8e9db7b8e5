"""Keras, imported once for every model module, with TensorFlow's start-up noise filtered.

``keras`` here is the Keras 3 package (any backend: ``KERAS_BACKEND``). ``models.lstm``
re-exports it, and the model modules import it from there; ``models.training`` imports it
from here, so that ``models.lstm`` can call the training loop without an import circle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# TensorFlow's C++ runtime logs informational lines straight to file descriptor 2 (no
# setting silences them in TF 2.2x): "I0000 ... oneDNN custom operations are on", "Could
# not find cuda drivers", a NodeDef attribute notice from tf.data. They are filtered out
# around the import and the first fit; every other line still reaches stderr.
_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IW]\d{4} |"
                    r"E\d{4} .*NodeDef mentions attribute)")


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Within the block, lines written to file descriptor 2 are held back and printed
    afterwards, except TensorFlow's start-up notices (``_NOISE``)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if line.strip() and not _NOISE.match(line):
                    print(line, file=sys.stderr)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Triton (which PyTorch's wheels bring, for the rl extra) crashes the process when its LLVM
# is loaded after TensorFlow's, as PyTorch does on first use; loaded first, both work.
if importlib.util.find_spec("triton") is not None:
    import triton  # noqa: F401
with filtered_stderr():
    import keras  # noqa: F401  (what this module provides)
# TensorFlow warns when a new batch shape retraces the predict function; a walk-forward
# predicts a few shapes (one per fold length, one window when paper trading) on purpose.
logging.getLogger("tensorflow").setLevel(logging.ERROR)

"""The names of the features a forecaster may read, and their one parser.

Kept free of NumPy and pandas so that validating a config stays cheap.
"""

from __future__ import annotations

import difflib
import re

RAW = ("open", "high", "low", "close", "volume")
# Derived causal features: NAME_K with K in [lo, hi] (bars looked back on).
DERIVED = {"return": (1, 250), "volatility": (2, 250), "rsi": (2, 250), "volume_z": (2, 250)}
CALENDAR = ("hour", "weekday")


def parse_feature(name: str) -> tuple[str, int | None]:
    """``return_5`` -> ("return", 5); ``close`` -> ("close", None).

    Raises:
        ValueError: Not a known feature, or its K is out of range.
    """
    if name in RAW or name in CALENDAR:
        return name, None
    match = re.fullmatch(r"([a-z_]+?)_([0-9]+)", str(name))
    if match and match.group(1) in DERIVED:
        base, k = match.group(1), int(match.group(2))
        lo, hi = DERIVED[base]
        if not lo <= k <= hi:
            raise ValueError(f"has K = {k} outside {lo}..{hi} (bars looked back on)")
        return base, k
    known = ", ".join([*RAW, *(f"{b}_K" for b in DERIVED), *CALENDAR])
    hint = difflib.get_close_matches(str(name), [*RAW, *CALENDAR], n=1)
    did = f"did you mean {hint[0]!r}? " if hint else ""
    raise ValueError(f"is not a feature ({did}known: {known})")

"""``python -m engine.sweep CONFIG [--output DIR] [--address ADDR]``: a parameter sweep.

Runs every trial of a sweep file on Ray Tune (a local Ray by default), chooses the best
on the selection period, runs it once on the untouched holdout and reports PSR, DSR and
PBO beside it. Re-running the same command after an interruption skips finished trials.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.cli import run_cli
from engine.sweep.cluster import check_address, check_resources


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.sweep",
        description="Parameter sweep on Ray with an untouched holdout, PSR, DSR and PBO.")
    parser.add_argument("config", help="sweep file, e.g. configs/sweep_btc.yaml")
    parser.add_argument("--output", metavar="DIR", help="sweep directory (overrides output_dir)")
    parser.add_argument("--address", metavar="ADDR",
                        help="join this Ray cluster (e.g. 10.0.0.5:6379 or auto) instead of "
                             "starting a local one; --output must then be a path every node "
                             "can reach")
    parser.add_argument("--num-cpus", type=int, metavar="N",
                        help="CPUs of the local Ray, at least 1 (default: every core)")
    parser.add_argument("--connect-timeout", type=float, metavar="SECONDS", default=30.0,
                        help="how long to wait for --address to answer (default: 30)")
    parser.add_argument("--no-progress", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    # Before Ray and the engine load (seconds): a bad CPU count or address fails at once.
    check_resources(args.num_cpus, args.connect_timeout)
    if args.address:
        check_address(args.address, args.connect_timeout)
    from engine.sweep.outputs import describe  # these import Ray
    from engine.sweep.runner import run_sweep
    from engine.sweep.spec import load_sweep

    spec = load_sweep(args.config, args.output)
    summary = run_sweep(spec, address=args.address, num_cpus=args.num_cpus,
                        progress=not args.no_progress, connect_timeout=args.connect_timeout)
    print(describe(summary, spec.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))

"""``python -m engine.models_store (info | prune) (CONFIG | --store DIR)``: inspect or prune
the store of fitted fold models (see ``engine.models_store``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from engine.cli import run_cli
from engine.config import load_config
from engine.models_store import entries, prune, store_path


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.models_store",
        description="Inspect or prune the store of fitted fold models.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("info", "count the entries and their size"),
                       ("prune", "remove entries not used for some days")):
        sub = commands.add_parser(name, help=text)
        where = sub.add_mutually_exclusive_group(required=True)
        where.add_argument("config", nargs="?", help="a config whose store to use")
        where.add_argument("--store", metavar="DIR", help="the store directory itself")
        if name == "prune":
            sub.add_argument("--older-than", metavar="DAYS", type=float, required=True,
                             help="remove entries last used more than DAYS days ago")
            sub.add_argument("--dry-run", action="store_true",
                             help="only say what would be removed")
    args = parser.parse_args(argv)
    root = Path(args.store) if args.store else store_path(load_config(args.config).data)
    if args.command == "info":
        found = entries(root)
        size = sum(s for _, _, s in found)
        oldest = min((u for _, u, _ in found), default=None)
        since = f"; least recently used {time.strftime('%Y-%m-%d', time.gmtime(oldest))}" \
            if oldest is not None else ""
        print(f"{root}: {len(found)} fold models, {_megabytes(size)}{since}")
        return 0
    removed, freed, kept, kept_bytes = prune(root, args.older_than, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{root}: {verb} {removed} fold models ({_megabytes(freed)}); kept {kept} "
          f"({_megabytes(kept_bytes)})")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, None))

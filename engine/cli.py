"""Shared command-line plumbing: known errors become one line on stderr and exit 2."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

from engine.errors import EngineError
from engine.secrets import install_log_redaction, redact

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None) -> int:
    """Run a command's ``main`` and map known errors to exit codes.

    Args:
        main: The command body; returns an exit status or None for success.
        argv: Arguments without the program name; None means ``sys.argv[1:]``.

    Returns:
        0 on success, 2 for an ``EngineError`` (printed as one line, credentials
        blanked), 130 on Ctrl-C.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    install_log_redaction()  # no credential reaches stderr through a log record
    try:
        return main(argv) or 0
    except EngineError as exc:
        message = " ".join(redact(str(exc)).split())  # one line, whatever the message holds
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silences the flush at exit)
        return 0
    except OSError as exc:  # an unwritable directory, a full disk: the user's to fix
        where = f": {exc.filename}" if exc.filename else ""
        print(redact(f"error: {exc.strerror or exc}{where}"), file=sys.stderr)
        return EXIT_USER_ERROR

"""User-facing errors: a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["UserError", "cli_errors"]


class UserError(ValueError):
    """Bad input from the user; the message names the file, key or value and the fix."""


def cli_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command-line ``main``: a ``UserError`` prints ``error: ...`` and exits 2.

    An error that lists several problems (``problems``, e.g. one per bad file) prints one
    ``error:`` line each; any other error is one ``error:`` line, and whatever further lines its
    message has (a library's explanation) follow indented. An ``OSError`` about a path (a name too
    long, a permission, a full disk) is one ``error:`` line with the path and the reason. Ctrl-C is
    one ``interrupted`` line and exit code 130 (what a shell reports for SIGINT).
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as e:
            lines = str(e).splitlines() or [type(e).__name__]
            if getattr(e, "problems", None):
                for line in lines:
                    print(f"error: {line}", file=sys.stderr)
            else:
                print(f"error: {lines[0]}", file=sys.stderr)
                for line in lines[1:]:
                    if line.strip():
                        print(f"    {line}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:  # Ctrl-C outside a search (which handles its own): nothing half-written
            print("interrupted", file=sys.stderr)
            return 130
        except OSError as e:
            if e.filename is None:
                raise
            # a path the system refused (too long, no permission, disk full...): the path and the
            # reason are the whole story, a traceback adds nothing
            print(f"error: {e.filename}: {e.strerror or e}", file=sys.stderr)
            return 2

    return wrapper

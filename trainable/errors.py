"""User-facing errors: a clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["UserError", "cli_errors"]


class UserError(ValueError):
    """Bad input from the user; the message names the file, key or value and the fix."""


def cli_errors(main: Callable[..., int]) -> Callable[..., int]:
    """Wrap a command-line ``main``: a ``UserError`` prints ``error: ...`` lines and exits 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except UserError as e:
            for line in str(e).splitlines() or [type(e).__name__]:
                print(f"error: {line}", file=sys.stderr)
            return 2

    return wrapper

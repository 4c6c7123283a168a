"""Command-line plumbing of ``launch.py`` and ``python -m analysis``: parsers whose every refusal is
one ``error:`` line (exit 2), verbs with flags of their own, and counts checked before any work."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["Parser", "parse_verb"]

# (function, about, positionals with their help, flags with argparse's keywords, examples)
Spec = tuple[Any, str, dict[str, str], dict[str, dict], list[str]]


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``error: ...`` line, like every other refusal here."""

    def error(self, message: str):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def verb_parser(prog: str, verb: str, spec: Spec) -> Parser:
    """The parser of one verb: its positionals and flags, and its examples under ``--help``."""
    _, about, positionals, flags, examples = spec
    p = Parser(prog=f"{prog} {verb}", description=about, allow_abbrev=False,
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="examples:\n" + "\n".join(f"  {prog} {verb} {e}" for e in examples))
    for name, about in positionals.items():
        p.add_argument(name, metavar=name.upper(), help=about)
    for flag, kwargs in flags.items():
        p.add_argument(flag, **kwargs)
    return p


def parse_verb(argv: list[str], prog: str, verbs: dict[str, Spec], doc: str, default: str,
               aliases: dict[str, str], at_least: dict[str, int]) -> tuple[str, argparse.Namespace]:
    """The verb of ``argv`` (``default`` when it starts with a flag, ``aliases`` for earlier
    spellings) and its arguments. A flag the verb does not take is refused, naming the verbs that
    do take it; a count under its minimum in ``at_least`` (1: at least one, 0: not negative) too."""
    if not argv or argv[0] in ("-h", "--help"):
        print(doc)
        if not argv:
            print(f"error: choose a verb: {', '.join(verbs)}", file=sys.stderr)
        sys.exit(2 if not argv else 0)
    if not argv[0].startswith("-") and argv[0] not in verbs:
        Parser(prog=prog).error(f"unknown verb {argv[0]!r}: valid verbs are {', '.join(verbs)}")
    verb, rest = (argv[0], argv[1:]) if argv[0] in verbs else (aliases[argv[0]], argv[1:]) \
        if argv[0] in aliases else (default, argv)
    parser = verb_parser(prog, verb, verbs[verb])
    args, extra = parser.parse_known_args(rest)
    if extra:
        flag = next((a.split("=")[0] for a in extra if a.startswith("-")), None)
        owners = [v for v in verbs if v != verb and flag in verb_parser(prog, v, verbs[v])._option_string_actions]
        named = " and ".join([", ".join(owners[:-1]), owners[-1]] if len(owners) > 2 else owners)
        parser.error(f"{verb} does not take {flag}" + (f" (a flag of {named})" if owners else "")
                     if flag else f"unexpected argument {extra[0]!r}")
    for name, lo in at_least.items():
        value = getattr(args, name, None)
        if value is not None and value < lo:
            parser.error(f"--{name.replace('_', '-')} {value}: must " + ("be at least 1" if lo else "not be negative"))
    return verb, args

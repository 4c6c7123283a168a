"""How the analysis writes its tables: Markdown, LaTeX (booktabs) and CSV, numbers at the digits that
tell them apart; and the names of a report folder's parts."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from search_spaces.base import SIGNIFICANT_DIGITS

__all__ = ["FORMATS", "PLOTS_DIR", "REPORT_FILE", "TABLES_DIR", "TRIALS_FILE", "to_latex", "to_markdown",
           "write_table"]

FORMATS = ("md", "tex", "csv")
FSCORE_SPREADS = ("delta vs baseline", "std")  # columns in the F-score's units in a table of F-scores
# the report folder (by default the experiment's layout.ANALYSIS_DIR)
REPORT_FILE, TRIALS_FILE, TABLES_DIR, PLOTS_DIR = "report.md", "trials.parquet", "tables", "plots"


def _cell(v, digits: int | None = 2) -> str:
    """``v`` as a table shows it: a score at ``digits`` decimals; ``None``: a config value, at the
    significant digits a search trains it with (what a user pastes back as ``--set``)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if digits is None:
            return f"{v:.{SIGNIFICANT_DIGITS}g}"
        return f"{v:.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    return str(v)


def _rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    index = df.index.name is not None
    header = ([df.index.name] if index else []) + [str(c) for c in df.columns]
    # an F-score lies in 0..1 (and its deltas and spreads below it): two decimals would hide its differences
    fscores = any("F-score" in str(c) for c in df.columns)
    digits = [4 if "F-score" in str(c) or (fscores and c in FSCORE_SPREADS) else None if _is_key(c) else 2
              for c in df.columns]
    body = [([str(i)] if index else []) + [_cell(v, d) for v, d in zip(row, digits, strict=True)]
            for i, row in zip(df.index, df.itertuples(index=False))]
    return header, body


def _is_key(column) -> bool:
    """Whether a column holds a config key's values (named by its dotted key, e.g. ``aug.rotate_limit``)."""
    group, _, name = str(column).partition(".")
    return bool(name) and group.isidentifier() and name.isidentifier()


def to_markdown(df: pd.DataFrame) -> str:
    header, body = _rows(df)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


_TEX = {"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}


def _tex(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def to_latex(df: pd.DataFrame, caption: str) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``)."""
    header, body = _rows(df)
    align = "l" + "r" * (len(header) - 1)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}", rf"\begin{{tabular}}{{{align}}}",
             r"\toprule", " & ".join(_tex(h) for h in header) + r" \\", r"\midrule"]
    lines += [" & ".join(_tex(c) for c in r) + r" \\" for r in body]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, out: Path, name: str, caption: str, formats: tuple[str, ...]) -> str:
    """Write ``df`` as ``out/tables/<name>.<format>`` in each of ``formats``; returns its Markdown."""
    (out / TABLES_DIR).mkdir(exist_ok=True)
    if "md" in formats:
        (out / TABLES_DIR / f"{name}.md").write_text(to_markdown(df))
    if "tex" in formats:
        (out / TABLES_DIR / f"{name}.tex").write_text(to_latex(df, caption))
    if "csv" in formats:
        df.to_csv(out / TABLES_DIR / f"{name}.csv", index=df.index.name is not None)
    return to_markdown(df)
